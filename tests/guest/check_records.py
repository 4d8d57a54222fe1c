#!/usr/bin/env python3
"""Checks that every record the test guest printed as written is on the volume.

    check_records.py --tag TAG --image FILE|- CONSOLE...

The consoles are the serial logs of the QEMUs that ran the guest, in the order they ran it
(the source of a migration, then the destination); their text is joined, so a line cut in
two by a migration still counts. Their "WROTE N" lines must be 1, 2, ..., LAST with nothing
missing or repeated, and no "EIO", "KILLED" or "GUEST-ERROR" line may appear, nor a guest
kernel's I/O error ("I/O error", "error, dev vda", "blk_update_request") (KILLED
may with --guest-crashed: a write cut short by a guest kernel crash is no storage error). The image is the volume's
raw contents (e.g. `skerry export VOL -`): block N (4 KiB at N*4096) must hold record N of
this tag, exactly as scripts/guest/init writes it, for every N from 1 to LAST. Records past
LAST may be there too (written, not yet printed when QEMU stopped), but only as a run
LAST+1, LAST+2, ... with no gap: the guest writes one record at a time, in order.
Prints one line: OK with the counts, or FAIL and the first problem (exit 1).
"""
import argparse
import re
import sys

RECORD = 4096


def record(tag, n):
    header = b"SKERRY-GUEST-RECORD %s %010d\n" % (tag.encode(), n)
    return header + b"." * (RECORD - len(header))


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", required=True)
    ap.add_argument("--image", required=True, help="raw volume contents, - for stdin")
    ap.add_argument("--min", type=int, default=1, help="fewest WROTE lines acceptable")
    ap.add_argument("--guest-crashed", action="store_true",
                    help="the guest kernel crashed: a write killed with it (KILLED) is no error")
    ap.add_argument("consoles", nargs="+")
    a = ap.parse_args()

    text = "".join(open(c, encoding="utf-8", errors="replace").read() for c in a.consoles)
    kernel = r"|I/O error|error, dev vd|blk_update_request"
    errors = (r"(EIO|GUEST-ERROR" if a.guest_crashed else r"(EIO|KILLED|GUEST-ERROR") + kernel + ")"
    for bad in re.finditer(errors + r"[^\n]*", text):
        fail(f"the guest reported an error: {bad.group(0).strip()}")
    wrote = [int(m) for m in re.findall(r"WROTE (\d+)", text)]
    for i, n in enumerate(wrote, 1):
        if n != i:
            fail(f"WROTE line {i} says {n}: the printed sequence has a gap or a repeat")
    last = len(wrote)
    if last < a.min:
        fail(f"the guest printed {last} WROTE lines, fewer than {a.min}")

    img = sys.stdin.buffer if a.image == "-" else open(a.image, "rb")
    img.read(RECORD)  # block 0 holds no record
    n, on_volume = 1, 0
    header = re.compile(rb"SKERRY-GUEST-RECORD " + re.escape(a.tag.encode()) + rb" (\d{10})\n")
    stray = None
    while True:
        block = img.read(RECORD)
        if len(block) < RECORD:
            if n <= last:
                fail(f"the volume ends at block {n}, but the guest printed WROTE {last}")
            break
        if block == record(a.tag, n) and on_volume == n - 1:
            on_volume = n
        elif n <= last:
            m = header.match(block)
            what = (f"record {int(m.group(1))}" if m and block == record(a.tag, int(m.group(1)))
                    else "a damaged record" if m else "no record of this run")
            fail(f"record {n} was printed as WROTE but block {n} holds {what}")
        elif stray is None and header.match(block):
            stray = n
        n += 1
    if stray is not None:
        fail(f"block {stray} holds a record, but records end at {on_volume}: a gap")
    print(f"OK: records 1..{last} printed as WROTE are all on the volume "
          f"({on_volume - last} more written after the last print)")


if __name__ == "__main__":
    main()
