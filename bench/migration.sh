#!/usr/bin/env bash
# Live migration benchmark (issue 19): the test guest (tests/guest: a Debian kernel and a
# busybox init on TCG, writing numbered 4 KiB records with direct I/O and a flush each) is
# migrated between two QEMUs on this host while it writes, on three systems:
#   raw        both QEMUs open one raw file in a shared directory (no NBD; QEMU's default
#              cache: a flush is an fdatasync)
#   skerryd-1  both QEMUs on one skerryd (directory store)
#   skerryd-2  the source on skerryd a, the destination on skerryd b, one store: the
#              destination's first write moves the write lease from a to b (a handoff)
# For each migration: QEMU's total-time and downtime (query-migrate on the source), and the
# time from the destination's RESUME event (QEMU's timestamp) to the guest's first and
# second WROTE on the destination's console. The first may be a record whose write the
# source had finished; the second was written wholly through the destination, so it
# includes what the destination's first write costs (on skerryd-2, the handoff).
# Each round runs every system once, back to back, with a new guest and disk; every record
# is checked on the disk afterwards. QEMU 7.2 on TCG now and then crashes (or hangs) the guest
# at a migration (tests/guest/migrate.sh): such a try is dropped and the round tried again.
# A try that fails otherwise is noted and tried again too, once: a system that fails twice
# is dropped from the run.
# Prints markdown on stdout (medians, ranges, ratios against raw), progress on stderr, then
# every line of the daemons' logs that mentions a handoff.
#
# usage: bench/migration.sh [WORKDIR]     (default build/bench-migration; 2-4 minutes a round)
# env:   BIN=build/bin  ROUNDS=3  SYSTEMS="raw skerryd-1 skerryd-2" (a subset, in this order)
#        BEFORE=20 (records before the migration)  AFTER=10 (records after it)
#        ATTEMPTS=6 (tries per round and system)  KEEP_LOGS=1 keeps WORKDIR/logs (kept
#        anyway when a try failed)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench/migration.sh
BIN=$(realpath "${BIN:-build/bin}")
OUT=$(realpath -m "${1:-build/bench-migration}")
ROUNDS=${ROUNDS:-3}
BEFORE=${BEFORE:-20}
AFTER=${AFTER:-10}
ATTEMPTS=${ATTEMPTS:-6}
read -r -a SYSTEMS <<<"${SYSTEMS:-raw skerryd-1 skerryd-2}"
source bench/lib.sh  # require_*, say, odd
require_skerry
ODD=()
case "$OUT" in /|"$HOME"|"$PWD") echo "$BENCH: refusing WORKDIR $OUT" >&2; exit 2 ;; esac
rm -rf "$OUT" && mkdir -p "$OUT"
# The guest helpers (QEMU, QMP, consoles, record checks); they work in WORK, a new directory
# under WORKDIR, removed at exit; its logs are copied to WORKDIR/logs first on a failure
# (of the run or of a system) or with KEEP_LOGS.
export SKERRY_BIN=$BIN TMPDIR=$OUT
source tests/guest/lib.sh
keep_logs() {
  [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ] || [ "${#NFAIL[@]}" -gt 0 ] || { rm -rf "$OUT"; return 0; }
  mkdir -p "$OUT/logs"
  cp "$WORK"/*.log "$WORK"/*.console "$WORK"/*.events "$WORK"/*.stamps "$WORK"/res/* "$OUT/logs/" 2>/dev/null || true
  echo "$BENCH: logs kept in $OUT/logs (exit $rc)" >&2
}
cleanup_hooks+=(keep_logs)  # runs in lib's exit trap, which has the exit status in rc
declare -A FAILED=() TRIES=() NFAIL=()  # per system: why it stopped; tries; failed tries
mkdir -p "$WORK/res" "$WORK/shared"

T0=$(date +%s)
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || echo ' with uncommitted changes in the tree')"
STALE=$(find src include -newer "$BIN/skerryd" -type f 2>/dev/null | head -3 | tr '\n' ' ')
[ -z "$STALE" ] || odd "$BIN/skerryd is older than $STALE(rebuild?)"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# The daemons stay up for the whole run, as on hosts: s for skerryd-1, a and b for skerryd-2.
for sys in "${SYSTEMS[@]}"; do
  case "$sys" in
    raw) ;;
    skerryd-1) guest_daemon s ;;
    skerryd-2) guest_daemon a; guest_daemon b ;;
    *) echo "$BENCH: unknown system $sys (raw, skerryd-1, skerryd-2)" >&2; exit 2 ;;
  esac
done

# stamp_wrote NAME: in the background, a line "TIME N" in $WORK/NAME.stamps for each whole
# "WROTE N" line on NAME's console, TIME when it appeared (the console is read every 5 ms).
stamp_wrote() {
  python3 - "$WORK/$1.console" >"$WORK/$1.stamps" <<'PY' &
import re, sys, time
path, pos, buf, end = sys.argv[1], 0, b"", time.time() + 900
while time.time() < end:
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            new = f.read()
    except FileNotFoundError:
        new = b""
    if new:
        t, pos = time.time(), pos + len(new)
        *lines, buf = (buf + new).split(b"\n")
        for line in lines:
            m = re.fullmatch(rb"WROTE (\d+)\r?", line)
            if m:
                print(f"{t:.6f} {int(m.group(1))}", flush=True)
    time.sleep(0.005)
PY
  cleanup_hooks+=("kill $! 2>/dev/null")
}

# measure SYSTEM ROUND TRY: one migration on SYSTEM; writes "total-time downtime to-1st
# to-2nd" (ms) to $WORK/res/SYSTEM.ROUND. Exits 3 if the guest crashed (or hung: lib.sh).
measure() {
  local sys=$1 id=${1//-/_}_$2_$3 vol src dst src_at dst_at info
  src=src_$id dst=dst_$id vol=vm_$id
  case "$sys" in
    raw) truncate -s 64M "$WORK/shared/$vol.raw"; src_at=file:$WORK/shared/$vol.raw dst_at=$src_at ;;
    skerryd-1) guest_volume "$vol" 64M; src_at=s dst_at=s ;;
    skerryd-2) guest_volume "$vol" 64M; src_at=a dst_at=b ;;
  esac
  guest_start "$src" "$src_at" "$vol" write 0
  guest_wait_wrote "$BEFORE" 180 "$src"
  guest_start "$dst" "$dst_at" "$vol" write 0 --incoming
  python3 "$GUEST_LIB_DIR/qmp.py" "$WORK/$dst.qmp-events" --events >"$WORK/$dst.events" &
  cleanup_hooks+=("kill $! 2>/dev/null")
  stamp_wrote "$dst"
  GUEST_ALLOW_CRASH=1 guest_migrate "$src" "$dst" >&2
  [ "$GUEST_CRASHED" = 0 ] || { echo "crashed: $(guest_crashed "$dst")"; exit 3; }
  GUEST_ALLOW_CRASH=1 guest_wait_wrote $(( $(guest_wrote "$src" "$dst") + AFTER )) 120 "$src" "$dst"
  [ "$GUEST_CRASHED" = 0 ] || { echo "crashed: $(guest_crashed "$dst")"; exit 3; }
  info=$(qmp "$src" query-migrate)
  guest_stop "$dst"
  guest_stop "$src"
  if [ "$sys" = raw ]; then
    python3 "$GUEST_LIB_DIR/check_records.py" --tag "$GUEST_TAG" --image "$WORK/shared/$vol.raw" \
      "$WORK/$src.console" "$WORK/$dst.console" >&2 || fail "$vol does not hold what the guest wrote"
    rm -f "$WORK/shared/$vol.raw"
  else
    guest_verify "$vol" "$src" "$dst" >&2
  fi
  python3 - "$info" "$WORK/$dst.events" "$WORK/$dst.stamps" >"$WORK/res/$sys.$2" <<'PY'
import json, sys
m = json.loads(sys.argv[1])
resume = [json.loads(l)["timestamp"] for l in open(sys.argv[2]) if '"RESUME"' in l]
if not resume:
    sys.exit("no RESUME event from the destination")
t0 = resume[0]["seconds"] + resume[0]["microseconds"] / 1e6
stamps = [float(l.split()[0]) for l in open(sys.argv[3])]
if len(stamps) < 2:
    sys.exit("fewer than 2 WROTE lines stamped on the destination")
print(m["total-time"], m["downtime"], round((stamps[0] - t0) * 1000, 1), round((stamps[1] - t0) * 1000, 1))
PY
}

for round in $(seq 1 "$ROUNDS"); do
  for sys in "${SYSTEMS[@]}"; do
    [ -z "${FAILED[$sys]:-}" ] || continue
    for try in $(seq 1 "$ATTEMPTS"); do
      say "round $round/$ROUNDS, $sys, try $try"
      TRIES[$sys]=$(( ${TRIES[$sys]:-0} + 1 ))
      # A subshell per try: a failure (fail exits) ends the try, not the run, and the QEMUs
      # and helpers the try started are killed when it ends.
      set +e
      (
        set -e
        hooks0=${#cleanup_hooks[@]}
        trap 'for h in "${cleanup_hooks[@]:hooks0}"; do eval "$h" || true; done' EXIT
        measure "$sys" "$round" "$try"
      ) >"$WORK/try_${sys}_${round}_$try.log" 2>&1
      rc=$?
      set -e
      [ "$rc" -eq 0 ] && { say "  $(cat "$WORK/res/$sys.$round")"; break; }
      if [ "$rc" -eq 3 ]; then
        odd "round $round, $sys, try $try: the guest crashed after the migration (QEMU's, tests/guest/migrate.sh): $(grep -h '^crashed: ' "$WORK/try_${sys}_${round}_$try.log" | cut -c 10-200); tried again"
        continue
      fi
      # Anything else is noted and the round tried again, unless the system failed before:
      # what fails twice is no accident, and its further rounds are skipped.
      why=$(grep -h 'FAIL' "$WORK/try_${sys}_${round}_$try.log" | head -n 1 | cut -c 1-400)
      odd "round $round, $sys, try $try failed: ${why:-exit $rc} (log: try_${sys}_${round}_$try.log)"
      NFAIL[$sys]=$(( ${NFAIL[$sys]:-0} + 1 ))
      if [ "${NFAIL[$sys]}" -ge 2 ]; then
        FAILED[$sys]="failed in ${NFAIL[$sys]} tries, the last in round $round: ${why:-exit $rc}"
        odd "$sys: its further rounds are skipped"
        break
      fi
    done
    [ "$rc" -eq 0 ] || [ -n "${FAILED[$sys]:-}" ] || odd "round $round, $sys: no try of $ATTEMPTS succeeded"
  done
done
for d in s a b; do
  pid_var=${d}_pid
  if [ -n "${!pid_var:-}" ]; then
    stop_daemon "$d"
    while read -r line; do odd "skerryd $d log: $line"; done < <(grep -E ' (warning|error|critical) ' "$WORK/$d.log" | head -5)
  fi
done

# ---------------------------------------------------------------- report
T1=$(date +%s)
echo "### Live migration of a writing guest: $ROUNDS round(s), $BEFORE records before each migration"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r);" \
  "$($QEMU --version | head -1) (TCG, ${GUEST_MEM} guest, 1 vCPU), skerry $REV (binaries built $(date -r "$BIN/skerryd" '+%F %R'));" \
  "busy polling off (tests/guest); load average (1/5/15 min) before: $LOAD0, after: $(cut -d' ' -f1-3 /proc/loadavg); total $((T1 - T0)) s."
echo
for sys in "${SYSTEMS[@]}"; do printf '%s\t%s\t%s\n' "$sys" "${TRIES[$sys]:-0}" "${FAILED[$sys]:-}"; done >"$WORK/res/systems.txt"
python3 - "$WORK/res" <<'PY'
import os, statistics, sys
res = sys.argv[1]
names = {"raw": "raw file, both QEMUs (no NBD)", "skerryd-1": "skerryd, both QEMUs on one daemon",
         "skerryd-2": "skerryd a to skerryd b, one store (handoff)"}
cols = ["total-time", "downtime", "RESUME to 1st WROTE", "RESUME to 2nd WROTE"]
rows = {}
for line in open(os.path.join(res, "systems.txt")):
    sys_, tries, failed = (line.rstrip("\n").split("\t") + [""])[:3]
    runs = [list(map(float, open(os.path.join(res, f)).read().split()))
            for f in sorted(os.listdir(res)) if f.startswith(sys_ + ".")]
    rows[sys_] = (runs, int(tries), failed)
med = {s: [statistics.median(r[i] for r in runs) for i in range(4)] for s, (runs, _, _) in rows.items() if runs}
print("| system | migrations | " + " | ".join(c + " (ms)" for c in cols) + " |")
print("|---" * (len(cols) + 2) + "|")
for s, (runs, tries, failed) in rows.items():
    if not runs:
        print(f"| {names[s]} | 0 of {tries} tries | " + " | ".join("-" for _ in cols) + f" |")
        continue
    cells = [f"{med[s][i]:.0f} ({min(r[i] for r in runs):.0f}–{max(r[i] for r in runs):.0f})" for i in range(4)]
    print(f"| {names[s]} | {len(runs)} of {tries} tries | " + " | ".join(cells) + " |")
print()
print("Medians, (min–max) over the rounds. Tries in which the guest kernel crashed or that failed")
print("are not counted (the anomalies below list them); a system that failed twice was dropped:",
      "; ".join(f"{s}: {f}" for s, (_, _, f) in rows.items() if f) or "none was.")
if "raw" in med and len(med) > 1:
    print()
    print("| ratio of medians (lower is better) | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for s in med:
        if s != "raw":
            print(f"| {s} / raw | " + " | ".join(
                f"{med[s][i] / med['raw'][i]:.2f}×" if med["raw"][i] > 0 else "-" for i in range(4)) + " |")
PY
echo
echo "Daemon log lines that mention a handoff:"
found=0
for d in s a b; do
  [ -e "$WORK/$d.log" ] || continue
  # (Not the start-up line, which says that opens are cooperative.)
  while read -r line; do echo "- skerryd $d: $line"; found=1; done < <(grep -i handoff "$WORK/$d.log" | grep -v 'cooperative opens' || true)
done
[ "$found" = 1 ] || echo "- none"
if [ "${#ODD[@]}" -gt 0 ]; then
  echo
  echo "Anomalies in this run:"
  for o in "${ODD[@]}"; do echo "- $o"; done
fi
