#!/usr/bin/env bash
# Profiles skerryd under one fio job of bench/nbd.sh with perf (cpu-clock samples, frame
# pointers), on a fresh filled volume of the directory store, and prints where the time goes.
#
# usage: bench/nbd/profile.sh JOB [WORKDIR]
#   JOB: randread32 randwrite32 read8 write8 randread1 randwrite1
# env:   BIN=build-prof/bin   a build with frame pointers and debug info, e.g.
#          cmake -S . -B build-prof -G Ninja -DCMAKE_BUILD_TYPE=Release \
#                -DCMAKE_CXX_FLAGS="-g -fno-omit-frame-pointer" && ninja -C build-prof skerry skerryd
#        SIZE_MIB=2048 RUNTIME=8  CLONE=1 (profile a clone before copy-up instead)
#        SERVER=nbdkit (profile nbdkit's file plugin on a raw file filled the same way, to compare)
#        PERF_ARGS="--call-graph fp"  (or "--call-graph dwarf", slower, sees through libc)
# Leaves WORKDIR/perf.data, WORKDIR/report.txt and WORKDIR/fio.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
JOB=${1:?usage: bench/nbd/profile.sh JOB [WORKDIR]}
BIN=$(realpath "${BIN:-build-prof/bin}")
WORK=$(realpath -m "${2:-build/bench-nbd-profile}")
SIZE_MIB=${SIZE_MIB:-2048}
RUNTIME=${RUNTIME:-8}
PERF_ARGS=${PERF_ARGS:---call-graph fp}
source bench/lib.sh  # job_params
job_params "$JOB" || exit 2
case "$WORK" in /|"$HOME"|"$PWD") echo "refusing WORKDIR $WORK" >&2; exit 2 ;; esac
rm -rf "$WORK"; mkdir -p "$WORK"
PID=
cleanup() {
  local rc=$?
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" || true
  fi
  rm -rf "$WORK/store"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STORE="dir:$WORK/store"
if [ "${SERVER:-skerryd}" = nbdkit ]; then
  mkdir -p "$WORK/store"; truncate -s "${SIZE_MIB}M" "$WORK/store/file.raw"
  nbdkit -f -U "$WORK/s.sock" --threads 16 --exportname vol file file="$WORK/store/file.raw" >"$WORK/nbdkit.log" 2>&1 &
else
  "$BIN/skerry" --store "$STORE" create vol --size "${SIZE_MIB}M"
  "$BIN/skerryd" --store "$STORE" --listen "unix:$WORK/s.sock" --admin-socket "$WORK/s.admin" >"$WORK/skerryd.log" 2>&1 &
fi
PID=$!
for _ in $(seq 200); do [ -S "$WORK/s.sock" ] && break; sleep 0.05; done
fio --name=fill --ioengine=nbd --uri="nbd+unix:///vol?socket=$WORK/s.sock" --rw=write --bs=1M --iodepth=8 \
  --output-format=terse >/dev/null
sync
export_name=vol
if [ -n "${CLONE:-}" ]; then
  "$BIN/skerry" --store "$STORE" snap create vol@base
  "$BIN/skerry" --store "$STORE" clone vol@base c
  export_name=c
fi
fio --name="$JOB" --ioengine=nbd --uri="nbd+unix:///$export_name?socket=$WORK/s.sock" --rw=$rw --bs=$bs \
  --iodepth=$qd --time_based --runtime="$((RUNTIME + 1))" --norandommap --randrepeat=0 \
  --output-format=json --output="$WORK/fio.json" &
FIO=$!
sleep 1
# shellcheck disable=SC2086
perf record $PERF_ARGS -e cpu-clock -F 2000 -p "$PID" -o "$WORK/perf.data" -- sleep "$RUNTIME" 2>"$WORK/perf-record.err"
wait "$FIO"
/usr/bin/python3 - "$WORK/fio.json" <<'PY'
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index("{"):])["jobs"][0]
s = j["write"] if j["write"]["io_bytes"] else j["read"]
print(f"fio: {s['iops']:.0f} IOPS, {s['bw_bytes']/1e6:.0f} MB/s, mean latency {s['lat_ns']['mean']/1000:.0f} us")
PY
{
  echo "== $(perf script -i "$WORK/perf.data" -F period 2>/dev/null | wc -l) cpu-clock samples at 2000 Hz in ${RUNTIME} s"
  echo "== self time by symbol (server process, all threads)"
  perf report -i "$WORK/perf.data" --no-children --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
  echo "== self time by thread"
  perf report -i "$WORK/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -10
  echo "== inclusive time (children), skerry code"
  perf report -i "$WORK/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -E 'skerry::' | head -40
} | tee "$WORK/report.txt"
