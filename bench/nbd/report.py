#!/usr/bin/python3
"""Turns the fio JSON results of bench/nbd.sh into markdown tables.

usage: report.py RESULTS_DIR

RESULTS_DIR holds rN/SYSTEM__JOB.json (fio --output-format=json) for rounds r1, r2, ...,
systems.txt (one "key<TAB>label" per line, in table order), optionally ratios.txt (one
"numerator<TAB>denominator<TAB>label<TAB>target or -" per line; default: the NBD benchmark's
ratios below) and memory.txt / extra.txt (markdown lines, printed as they are). With several rounds each figure is the median over
the rounds (ratios: of the per-round ratios, with their range). Missing or failed results
show as "FAILED" / "-"; jobs nobody ran (a JOBS subset) as "not run".
"""
import json
import os
import sys

# key, title, kind: "iops" (4K QD32), "bw" (1M QD8), "lat" (4K QD1)
JOBS = [
    ("randread32", "4K randread QD32", "iops"),
    ("randwrite32", "4K randwrite QD32", "iops"),
    ("read8", "1M seq read QD8", "bw"),
    ("write8", "1M seq write QD8", "bw"),
    ("randread1", "4K randread QD1", "lat"),
    ("randwrite1", "4K randwrite QD1", "lat"),
]

# ratio rows: (numerator system, denominator system, label, target)
RATIOS = [
    ("skerryd", "qemu-raw", "skerryd / qemu-nbd raw (cache=none)", 1.2),
    ("skerryd", "nbdkit", "skerryd / nbdkit file", 1.0),
    ("clone-before", "skerryd", "new clone / fresh volume", 0.9),
    ("clone-after", "skerryd", "clone after a full overwrite / fresh volume", 0.9),
    ("clone-before", "clone-copy", "new clone: partial blocks / whole-block copy-up, no target", None),
    ("clone-before", "empty", "new clone / new empty volume (both write into new storage), no target", None),
    ("skerryd", "qemu-raw-wb", "skerryd / qemu-nbd raw (cache=writeback), no target", None),
    ("skerryd", "nopoll", "skerryd / skerryd with busy polling off, no target", None),
    ("skerryd", "skerryd-b", "skerryd / the B build's (A/B), fresh volume, no target", None),
    ("clone-before", "clone-b", "skerryd / the B build's (A/B), new clone, no target", None),
]


def load(results, system, job):
    path = os.path.join(results, f"{system}__{job}.json")
    try:
        with open(path) as f:
            text = f.read()
        # fio may print warnings before the JSON document
        data = json.loads(text[text.index("{"):])
        j = data["jobs"][0]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if j.get("error", 0):
        return None
    side = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
    lat = side.get("lat_ns", {})
    pct = lat.get("percentile") or side.get("clat_ns", {}).get("percentile") or {}
    return {
        "iops": side["iops"],
        "bw": side["bw_bytes"] / 1e6,  # MB/s
        "lat_mean": lat.get("mean", 0) / 1000.0,  # µs
        "lat_p99": pct.get("99.000000", 0) / 1000.0,
        "ios": side.get("total_ios", 0),
        "cpu": load_cpu(path[:-len(".json")] + ".cpu"),
    }


def load_cpu(path):
    """Cores the server kept busy during the measured window, or -1 if unknown."""
    try:
        with open(path) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return -1.0


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def combine(rounds):
    """Median of each field over the rounds that succeeded; None if none did."""
    ok = [r for r in rounds if r is not None]
    if not ok:
        return None
    return {k: median([r[k] for r in ok]) for k in ok[0]}


def cell(r, kind):
    if r is None:
        return "FAILED"
    if kind == "iops":
        return f"{r['iops'] / 1000:.1f} K IOPS"
    if kind == "bw":
        return f"{r['bw']:.0f} MB/s"
    return f"{r['lat_mean']:.0f} / {r['lat_p99']:.0f} µs ({r['iops'] / 1000:.1f} K)"


def perf(r, kind):
    """A 'higher is better' figure for ratios: IOPS, MB/s, or 1/mean latency."""
    if r is None:
        return None
    if kind == "iops":
        return r["iops"]
    if kind == "bw":
        return r["bw"]
    return 1.0 / r["lat_mean"] if r["lat_mean"] > 0 else None


def main():
    results = sys.argv[1]
    systems = []
    with open(os.path.join(results, "systems.txt")) as f:
        for line in f:
            if line.strip():
                key, label = line.rstrip("\n").split("\t", 1)
                systems.append((key, label))
    keys = {k for k, _ in systems}
    ratios_rows = RATIOS
    if os.path.exists(os.path.join(results, "ratios.txt")):
        ratios_rows = []
        with open(os.path.join(results, "ratios.txt")) as f:
            for line in f:
                if line.strip():
                    num, den, label, target = line.rstrip("\n").split("\t")
                    ratios_rows.append((num, den, label, None if target == "-" else float(target)))
    rounds = sorted(d for d in os.listdir(results) if d.startswith("r") and d[1:].isdigit())
    per_round = {(s, j): [load(os.path.join(results, r), s, j) for r in rounds]
                 for s, _ in systems for j, _, _ in JOBS}
    data = {key: combine(v) for key, v in per_round.items()}
    # Jobs no system has a result file for were left out (JOBS=...): "not run", not FAILED;
    # so is a job a system skips on purpose (SYSTEM__JOB.skip: reads of the empty volume).
    ran = {j for s, _ in systems for j, _, _ in JOBS for r in rounds
           if os.path.exists(os.path.join(results, r, f"{s}__{j}.json"))}
    skipped = {(s, j) for s, _ in systems for j, _, _ in JOBS
               if rounds and all(os.path.exists(os.path.join(results, r, f"{s}__{j}.skip")) for r in rounds)}

    print("| system \\ fio job | " + " | ".join(t for _, t, _ in JOBS) + " |")
    print("|---" * (len(JOBS) + 1) + "|")
    for key, label in systems:
        print(f"| {label} | " + " | ".join(cell(data[(key, j)], k) if j in ran and (key, j) not in skipped
                                          else "not run" for j, _, k in JOBS) + " |")
    print()
    print("QD1 cells: mean / p99 latency in µs (IOPS in parentheses). MB/s = 10^6 bytes/s.")
    print()
    print("| ratio (higher is better for skerryd; QD1 rows compare mean latency) | target | "
          + " | ".join(t for _, t, _ in JOBS) + " |")
    print("|---|---" + "|---" * len(JOBS) + "|")
    for num, den, label, target in ratios_rows:
        if num not in keys or den not in keys:
            continue
        cells = []
        for j, _, k in JOBS:
            ratios = []
            for a, b in zip(per_round[(num, j)], per_round[(den, j)]):
                a, b = perf(a, k), perf(b, k)
                if a is not None and b:
                    ratios.append(a / b)
            if not ratios:
                cells.append("-")
                continue
            ratio = median(ratios)
            mark = "" if target is None else (" ✓" if ratio >= target else " ✗")
            spread = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
            cells.append(f"{ratio:.2f}×{mark}{spread}")
        t = "-" if target is None else f"≥ {target}×"
        print(f"| {label} | {t} | " + " | ".join(cells) + " |")
    print()
    print("Server CPU per request in µs (all threads, user + system, from /proc/PID/stat during the")
    print("measured window; in parentheses the cores it kept busy). Lower is better; it depends less")
    print("on what else the machine runs than the throughput does. O_DIRECT servers leave part of")
    print("their I/O work to interrupts and kernel threads that are not counted here.")
    print()
    print("| server CPU per request | " + " | ".join(t for _, t, _ in JOBS) + " |")
    print("|---" * (len(JOBS) + 1) + "|")
    for key, label in systems:
        cells = []
        for j, _, k in JOBS:
            r = data[(key, j)]
            if r is None or r["cpu"] < 0 or r["iops"] <= 0:
                cells.append("-")
            else:
                cells.append(f"{r['cpu'] / r['iops'] * 1e6:.0f} ({r['cpu']:.2f})")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    copyup = [(label, load(results, "copyup", key)) for key, label in
              (("clone", "new clone: every write is the first into a block shared with the parent"),
               ("clone-copy", "the same, whole-block copy-up (--partial-blocks off)"),
               ("fresh", "fresh volume: every write lands in its own block"))]
    if any(r for _, r in copyup):
        print("One 4 KiB write into each 4 MiB block of the volume, QD1, skerryd (the first write into a block):")
        print()
        print("| volume | writes | mean latency | p99 latency |")
        print("|---|---|---|---|")
        for label, r in copyup:
            if r is None:
                print(f"| {label} | FAILED | - | - |")
            else:
                print(f"| {label} | {r['ios']} | {r['lat_mean']:.0f} µs | {r['lat_p99']:.0f} µs |")
        print()
    for extra in ("memory.txt", "extra.txt"):
        path = os.path.join(results, extra)
        if os.path.exists(path):
            with open(path) as f:
                sys.stdout.write(f.read())


if __name__ == "__main__":
    main()
