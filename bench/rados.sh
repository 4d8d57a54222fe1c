#!/usr/bin/env bash
# RADOS benchmark (issue 4). On one throwaway Ceph cluster (scripts/ceph-cluster.sh: one
# monitor, 3 bluestore OSDs on files, loopback), in one run:
#   librbd      fio's rbd engine on an RBD image (librbd inside fio: no NBD, no extra hop)
#   skerryd     fio's nbd engine through skerryd on the RADOS store
#   qemu-rbd    fio's nbd engine through qemu-nbd exporting an RBD image (cache=none)
# with the jobs of bench/nbd.sh, each on its own image/volume filled once beforehand. Then
# snapshot + clone of a filled image: `rbd snap create` + `rbd clone` against
# `skerry snap create` + `skerry clone` (CLI to CLI, each command connecting to the cluster);
# then the first writes into those new clones (copy-ups) through librbd and skerryd.
# Prints markdown tables for docs/benchmarks.md on stdout, progress on stderr.
#
# usage: bench/rados.sh [WORKDIR]   (default build/bench-rados; ~6 minutes, ~8 GiB of disk)
# env:   BIN=build/bin  SIZE_MIB=1024 (per image)  RUNTIME=8  RAMP=1  ROUNDS=1
#        POOL_SIZE=1 (replicas; 3 is what production uses, and costs 3x the OSD work)
#        SNAP_RUNS=5 (snapshot + clone repetitions; the table shows medians)
#        JOBS="randread32 ..." (a subset of the jobs, in this order)
#        OLD_BIN=DIR  also runs DIR/skerryd (e.g. a build of an earlier commit) as one more
#                     system on a volume of its own: an A/B of a change in the same run
# shellcheck disable=SC2154  # PID_<server> variables are set by start() through eval
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench/rados.sh
BIN=$(realpath "${BIN:-build/bin}")
OLD_BIN=${OLD_BIN:+$(realpath "$OLD_BIN")}
WORK=$(realpath -m "${1:-build/bench-rados}")
SIZE_MIB=${SIZE_MIB:-1024}
RUNTIME=${RUNTIME:-8}
RAMP=${RAMP:-1}
ROUNDS=${ROUNDS:-1}
POOL_SIZE=${POOL_SIZE:-1}
SNAP_RUNS=${SNAP_RUNS:-5}
PY=/usr/bin/python3
source bench/lib.sh  # checks, say/odd, start/stop/alive, fio_job, fill

require_tools fio qemu-nbd rbd
fio --enghelp 2>/dev/null | grep -w rbd >/dev/null || { echo "$BENCH: this fio has no rbd engine" >&2; exit 1; }
require_skerry
fresh_workdir logs results
LOG=$WORK/logs
RES=$WORK/results
CLUSTER=$WORK/cluster

PIDS=()
ODD=()
cleanup() {
  local rc=$?
  stop_all_servers
  [ -d "$CLUSTER" ] && scripts/ceph-cluster.sh stop "$CLUSTER" 2>>"$LOG/cluster.log" || true
  if [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    echo "$BENCH: logs and fio results kept in $WORK (exit $rc)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

T0=$(date +%s)
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || echo ' with uncommitted changes in the tree')"

# ---------------------------------------------------------------- cluster, images, servers
say "starting a Ceph cluster (pool size $POOL_SIZE)"
CEPH_CLUSTER_OSD_SIZE=8G scripts/ceph-cluster.sh start "$CLUSTER" --size "$POOL_SIZE" \
  --pool skerry-bench --pool rbd-bench >/dev/null 2>"$LOG/cluster.log" ||
  { cat "$LOG/cluster.log" >&2; exit 1; }
export CEPH_CONF=$CLUSTER/ceph.conf  # librados and librbd (fio, rbd, qemu) read it from here
# No client-side write-back cache in librbd: skerryd acknowledges a write once the OSDs have
# it, and so does qemu-nbd with cache=none; librbd's default cache (write-back after the
# first flush) would compare acknowledgements of a different kind.
printf '\n[client]\nrbd cache = false\n' >>"$CEPH_CONF"
ceph osd set-require-min-compat-client mimic >/dev/null 2>&1 ||
  odd "could not allow clone format 2 (rbd clone will need snap protect)"
rbd pool init rbd-bench
for img in img qimg parent; do rbd create --size "${SIZE_MIB}M" "rbd-bench/$img"; done
STORE="rados:skerry-bench?conf=$CEPH_CONF"
"$BIN/skerry" --store "$STORE" create vol --size "${SIZE_MIB}M"
"$BIN/skerry" --store "$STORE" create parent --size "${SIZE_MIB}M"

start skerryd "$WORK/s.sock" "$BIN/skerryd" --store "$STORE" --listen "unix:$WORK/s.sock" --admin-socket "$WORK/s.admin"
start qemu-rbd "$WORK/q.sock" qemu-nbd -f raw --cache=none -t -e 4 -k "$WORK/q.sock" "rbd:rbd-bench/qimg:conf=$CEPH_CONF"
declare -A TARGET=(
  [librbd]="--ioengine=rbd --clientname=admin --pool=rbd-bench --rbdname=img"
  [skerryd]="nbd+unix:///vol?socket=$WORK/s.sock"
  [qemu-rbd]="nbd+unix:///?socket=$WORK/q.sock"
)
declare -A PID_OF=([librbd]=0 [skerryd]=$PID_skerryd [qemu-rbd]=$PID_qemu_rbd)
SYSTEMS=(librbd skerryd qemu-rbd)
if [ -n "$OLD_BIN" ]; then
  "$BIN/skerry" --store "$STORE" create vol-old --size "${SIZE_MIB}M"
  start skerryd-old "$WORK/o.sock" "$OLD_BIN/skerryd" --store "$STORE" --listen "unix:$WORK/o.sock" --admin-socket "$WORK/o.admin"
  TARGET[skerryd-old]="nbd+unix:///vol-old?socket=$WORK/o.sock"
  PID_OF[skerryd-old]=$PID_skerryd_old
  SYSTEMS+=(skerryd-old)
fi

say "filling (one sequential 1M pass over each image)"
for sys in "${SYSTEMS[@]}"; do fill "${TARGET[$sys]}" "$sys"; done
fill "--ioengine=rbd --clientname=admin --pool=rbd-bench --rbdname=parent" rbd-parent
fill "nbd+unix:///parent?socket=$WORK/s.sock" skerry-parent

: >"$RES/systems.txt"
system() { printf '%s\t%s\n' "$1" "$2" >>"$RES/systems.txt"; }
system librbd "librbd (fio rbd engine, in process)"
system skerryd "skerryd on RADOS (fio nbd engine)"
system qemu-rbd "qemu-nbd on the RBD image, cache=none (fio nbd engine)"
printf '%s\t%s\t%s\t%s\n' skerryd librbd "skerryd / librbd direct" 1.0 \
  skerryd qemu-rbd "skerryd / qemu-nbd on RBD" 3.0 >"$RES/ratios.txt"
if [ -n "$OLD_BIN" ]; then
  system skerryd-old "skerryd on RADOS, the binaries in OLD_BIN (A/B)"
  printf '%s\t%s\t%s\t%s\n' skerryd skerryd-old "skerryd / the same at OLD_BIN, no target" - \
    skerryd-old librbd "skerryd at OLD_BIN / librbd direct" - >>"$RES/ratios.txt"
fi

read -r -a JOBS <<<"${JOBS:-randread32 randwrite32 read8 write8 randread1 randwrite1}"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$RES/r$round"
  for j in "${JOBS[@]}"; do
    say "round $round/$ROUNDS, $j"
    for sys in "${SYSTEMS[@]}"; do
      fio_job "r$round" "$sys" "$j" "${TARGET[$sys]}" "${PID_OF[$sys]}"
    done
  done
done
alive skerryd && stop skerryd
alive qemu-rbd && stop qemu-rbd
if [ -n "$OLD_BIN" ]; then alive skerryd-old && stop skerryd-old; fi

# ---------------------------------------------------------------- snapshot + clone
say "snapshot + clone, $SNAP_RUNS times each"
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rbd_ms=() sk_ms=()
for i in $(seq 1 "$SNAP_RUNS"); do
  t=$(date +%s%N)
  rbd snap create "rbd-bench/parent@s$i" >/dev/null 2>>"$LOG/snap.log" &&
    rbd clone "rbd-bench/parent@s$i" "rbd-bench/c$i" 2>>"$LOG/snap.log" || odd "rbd snap/clone $i failed"
  rbd_ms+=("$(ms "$t")")
  t=$(date +%s%N)
  "$BIN/skerry" --store "$STORE" snap create "parent@s$i" >/dev/null 2>>"$LOG/snap.log" &&
    "$BIN/skerry" --store "$STORE" clone "parent@s$i" "c$i" >/dev/null 2>>"$LOG/snap.log" ||
    odd "skerry snap/clone $i failed"
  sk_ms+=("$(ms "$t")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# The CLIs' own start-up and cluster connection, for reference: a command that connects and lists.
t=$(date +%s%N); rbd ls rbd-bench >/dev/null; rbd_ls=$(ms "$t")
t=$(date +%s%N); "$BIN/skerry" --store "$STORE" ls >/dev/null; sk_ls=$(ms "$t")
{
  echo "Snapshot + clone of a filled ${SIZE_MIB} MiB image, two CLI commands each, wall time (median of $SNAP_RUNS;"
  echo "all runs in ms in parentheses):"
  echo
  echo "| | snapshot + clone | one listing command (CLI start + cluster connection) |"
  echo "|---|---|---|"
  echo "| rbd snap create + rbd clone (clone format 2) | $(median "${rbd_ms[@]}") ms (${rbd_ms[*]}) | $rbd_ls ms |"
  echo "| skerry snap create + skerry clone | $(median "${sk_ms[@]}") ms (${sk_ms[*]}) | $sk_ls ms |"
  echo
} >"$RES/extra.txt"

# ---------------------------------------------------------------- first writes into new clones
# Every block of a new clone is shared with its parent: its first write copies the block
# (RBD: librbd's copy-up; skerry: copy_from on the OSD, deferred to the volume's copier
# threads). Two jobs per system, each on a clone of its own made above: one 4 KiB write
# into each 4 MiB block at QD1 (every write a copy-up), and 4K random writes at QD32 for
# RUNTIME seconds with no ramp (the copy-ups fall inside the measured window).
if [ "$SNAP_RUNS" -ge 4 ]; then
  say "first writes into new clones"
  start skerryd "$WORK/s.sock" "$BIN/skerryd" --store "$STORE" --listen "unix:$WORK/s.sock" --admin-socket "$WORK/s.admin"
  CLONE_SYSTEMS=("librbd|librbd (rbd clone)|--ioengine=rbd --clientname=admin --pool=rbd-bench --rbdname=c1|--ioengine=rbd --clientname=admin --pool=rbd-bench --rbdname=c2"
                 "skerryd|skerryd (skerry clone)|nbd+unix:///c1?socket=$WORK/s.sock|nbd+unix:///c2?socket=$WORK/s.sock")
  if [ -n "$OLD_BIN" ]; then
    start skerryd-old "$WORK/o.sock" "$OLD_BIN/skerryd" --store "$STORE" --listen "unix:$WORK/o.sock" --admin-socket "$WORK/o.admin"
    CLONE_SYSTEMS+=("skerryd-old|skerryd at OLD_BIN (skerry clone)|nbd+unix:///c3?socket=$WORK/o.sock|nbd+unix:///c4?socket=$WORK/o.sock")
  fi
  for entry in "${CLONE_SYSTEMS[@]}"; do
    IFS='|' read -r key _ one qd32 <<<"$entry"
    # shellcheck disable=SC2046  # target_args splits an engine's arguments on purpose
    fio --name="copyup-$key" $(target_args "$one") --rw=write:4092k --bs=4k --number_ios=$((SIZE_MIB / 4)) \
      --iodepth=1 --lat_percentiles=1 --output-format=json --output="$RES/clone-copyup__$key.json" \
      >"$LOG/fio-clone-copyup-$key.log" 2>&1 || odd "copy-up job on $key failed: $(tail -3 "$LOG/fio-clone-copyup-$key.log" | tr '\n' ' ')"
    # shellcheck disable=SC2046
    fio --name="clone32-$key" $(target_args "$qd32") --rw=randwrite --bs=4k --iodepth=32 --time_based \
      --runtime="$RUNTIME" --norandommap --randrepeat=0 --output-format=json --output="$RES/clone-qd32__$key.json" \
      >"$LOG/fio-clone-qd32-$key.log" 2>&1 || odd "QD32 clone job on $key failed: $(tail -3 "$LOG/fio-clone-qd32-$key.log" | tr '\n' ' ')"
  done
  {
    echo "First writes into a new clone of a filled ${SIZE_MIB} MiB image (every block shared with the parent):"
    echo "one 4 KiB write into each 4 MiB block at QD1 (each one a copy-up), and 4K random writes at"
    echo "QD32 for ${RUNTIME} s from the clone's first write (no ramp: the copy-ups are in the window)."
    echo
    echo "| system | QD1 first write into a block: mean | p99 | 4K random writes QD32 on a new clone |"
    echo "|---|---|---|---|"
    for entry in "${CLONE_SYSTEMS[@]}"; do
      IFS='|' read -r key label _ _ <<<"$entry"
      # report.py's loader: fio's JSON after any warnings, a failed job as FAILED.
      $PY - "$RES" "$key" "$label" <<'PY' || echo "| $label | FAILED | - | - |"
import sys
sys.path.insert(0, "bench/nbd")
from report import load
one, qd32 = load(sys.argv[1], "clone-copyup", sys.argv[2]), load(sys.argv[1], "clone-qd32", sys.argv[2])
cells = [f"{one['lat_mean']:.0f} µs", f"{one['lat_p99']:.0f} µs"] if one else ["FAILED", "-"]
cells.append(f"{qd32['iops'] / 1000:.1f} K IOPS" if qd32 else "FAILED")
print(f"| {sys.argv[3]} | " + " | ".join(cells) + " |")
PY
    done
    echo
  } >>"$RES/extra.txt"
  alive skerryd && stop skerryd
  if [ -n "$OLD_BIN" ]; then alive skerryd-old && stop skerryd-old; fi
else
  odd "SNAP_RUNS < 4: no clones left for the first-write jobs"
fi

T1=$(date +%s)
echo "### fio $(fio --version | sed 's/fio-//'), $SIZE_MIB MiB per image, ${RUNTIME} s per job (+${RAMP} s ramp), $ROUNDS round(s)"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r); Ceph $(ceph --version | awk '{print $3}')" \
  "(1 monitor, 3 bluestore OSDs on files, pool size $POOL_SIZE, loopback); $(qemu-nbd --version | head -1);" \
  "skerry $REV; load average before the jobs: $LOAD0, after: $(cut -d' ' -f1-3 /proc/loadavg); total $((T1 - T0)) s."
echo
$PY bench/nbd/report.py "$RES"
if [ "${#ODD[@]}" -gt 0 ]; then
  echo
  echo "Anomalies in this run:"
  for o in "${ODD[@]}"; do echo "- $o"; done
fi
