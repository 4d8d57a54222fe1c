#!/usr/bin/env bash
# What a clone's copy-ups cost skerryd in CPU, measured on a fixed amount of work rather than
# on throughput over a fixed time, so that other load on the machine (which moves an 8 s fio
# figure a lot on a shared host: docs/benchmarks.md, "The machine") changes it much less. For
# each case, skerryd's user + system CPU while fio's nbd engine does the same number of 4K
# random writes at QD32:
#   fresh   - a volume filled with 1 MiB writes and synced (no copy-up);
#   clone   - a new clone of a snapshot of a volume filled the same way: the writes copy up
#             every block (each 4 MiB block once) while they run;
#   again   - the same clone right after (every block already its own).
# A client stays connected during each case so the volume's closing flush is not counted.
# Also: the CPU of `cp` copying the parent's block objects (copy_file_range, as the directory
# store's Copy does), to compare the copy itself with what a copy-up costs the daemon.
#
# usage: bench/copyup_cpu.sh [WORKDIR]   (default build/bench-copyup; ~5 GiB free, ~2 minutes)
# env:   BIN=build/bin  SIZE_MIB=2048  WRITES=204800 (4K writes per case)  ROUNDS=2
# shellcheck disable=SC2154  # PID_skerryd is set by start() through eval
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench/copyup_cpu.sh
BIN=$(realpath "${BIN:-build/bin}")
WORK=$(realpath -m "${1:-build/bench-copyup}")
SIZE_MIB=${SIZE_MIB:-2048}
WRITES=${WRITES:-204800}
ROUNDS=${ROUNDS:-2}
PY=/usr/bin/python3   # Debian's python has python3-libnbd
source bench/lib.sh  # checks, say/odd, start/stop, cpu_ticks, TICK, fill

require_tools fio cp
require_skerry
require_python_nbd
fresh_workdir logs
LOG=$WORK/logs
PIDS=()   # for lib.sh: servers the trap stops
ODD=()    # for lib.sh: anomalies printed at the end
cleanup() {
  local rc=$?
  stop_all_servers
  if [ "$rc" -ne 0 ]; then
    echo "$BENCH: logs kept in $LOG (exit $rc)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STORE=dir:$WORK/store
SOCK=$WORK/nbd.sock
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }

"$BIN/skerry" --store "$STORE" create fresh --size "${SIZE_MIB}M" >/dev/null
"$BIN/skerry" --store "$STORE" create parent --size "${SIZE_MIB}M" >/dev/null
start skerryd "$SOCK" "$BIN/skerryd" --store "$STORE" --listen "unix:$SOCK" --admin-socket "$WORK/admin.sock"
say "filling fresh and parent ($SIZE_MIB MiB each)"
fill "$(uri fresh)" fresh
fill "$(uri parent)" parent
# The daemon closes parent as fio leaves; the CLI snapshots it directly, or through the
# daemon's admin socket while it still holds the volume.
"$BIN/skerry" --store "$STORE" snap create parent@base >/dev/null
sync

# measure CASE VOLUME: one fixed-work fio job on VOLUME; prints "CASE ms writes" to results.
measure() {
  local name=$1 vol=$2 holder a b rc=0
  # The holder keeps the volume open, so the flush when the last client leaves comes after
  # the measurement (it is the same work in every case but the clone's, which has new objects).
  $PY -c "import nbd, sys, time; h = nbd.NBD(); h.connect_uri(sys.argv[1]); time.sleep(3600)" \
    "$(uri "$vol")" >/dev/null 2>&1 &
  holder=$!
  sleep 0.5
  a=$(cpu_ticks "$PID_skerryd")
  fio --name="$name" --ioengine=nbd --uri="$(uri "$vol")" --rw=randwrite --bs=4k --iodepth=32 \
    --number_ios="$WRITES" --io_size="${SIZE_MIB}M" --norandommap --randrepeat=0 \
    --output-format=json --output="$LOG/$name.json" >"$LOG/fio-$name.log" 2>&1 || rc=$?
  b=$(cpu_ticks "$PID_skerryd")
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  [ "$rc" -eq 0 ] || { echo "$BENCH: fio failed on $name: $(tail -3 "$LOG/fio-$name.log")" >&2; exit 1; }
  local done_ios
  done_ios=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['jobs'][0]['write']['total_ios'])" "$LOG/$name.json")
  echo "$name $(( (b - a) * 1000 / TICK )) $done_ios" >>"$WORK/results.txt"
  say "$name: $(( (b - a) * 1000 / TICK )) ms of skerryd CPU for $done_ios writes"
  sleep 1   # the closing flush, then write everything back so the next case starts clean
  sync
}

for round in $(seq 1 "$ROUNDS"); do
  measure "fresh-$round" fresh
  "$BIN/skerry" --store "$STORE" clone parent@base "clone$round" >/dev/null
  measure "clone-$round" "clone$round"
  measure "again-$round" "clone$round"
done

# The copy alone: cp (coreutils 9 copies with copy_file_range) of the parent's objects.
BLOCKS=$(( SIZE_MIB / 4 ))
mkdir -p "$WORK/cp-src"
mapfile -t OBJS < <(find "$WORK/store/objects" -type f -size 4096k | head -n "$BLOCKS")
ln "${OBJS[@]}" "$WORK/cp-src/" 2>/dev/null || cp --reflink=never "${OBJS[@]}" "$WORK/cp-src/"
sync
TIMEFORMAT='%U %S'   # bash's time keyword: the user and system CPU of cp
CP_MS=$( { time cp --reflink=never -r "$WORK/cp-src" "$WORK/cp-dst"; } 2>&1 | awk '{printf "%d", ($1 + $2) * 1000}')
stop skerryd

$PY - "$WORK/results.txt" "${#OBJS[@]}" "$CP_MS" "$BLOCKS" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, ms, ios = line.split()
    rows[name.rsplit('-', 1)[0]].append((int(ms), int(ios)))
files, cp_ms, blocks = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def per_write(case):
    return statistics.median(ms * 1000 / ios for ms, ios in rows[case])
print("| case | 4K writes (QD32) | skerryd CPU, ms (each round) | CPU per write, µs (median) | / fresh |")
print("|---|---|---|---|---|")
labels = {"fresh": "fresh volume", "clone": f"new clone ({blocks} copy-ups during the writes)",
          "again": "same clone again (all blocks its own)"}
for case in ("fresh", "clone", "again"):
    print(f"| {labels[case]} | {rows[case][0][1]} | {', '.join(str(ms) for ms, _ in rows[case])} | "
          f"{per_write(case):.1f} | {per_write(case) / per_write('fresh'):.2f}× |")
extra = [c[0] - f[0] for c, f in zip(rows["clone"], rows["fresh"])]
print()
print(f"Copy-up: {statistics.median(extra) / blocks:.2f} ms of skerryd CPU per 4 MiB block "
      f"(clone minus fresh, median of {len(extra)}); `cp` of {files} of the store's block "
      f"objects (copy_file_range): {cp_ms / max(files, 1):.2f} ms of CPU per object.")
EOF
for o in "${ODD[@]}"; do echo "ODD: $o"; done
