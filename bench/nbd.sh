#!/usr/bin/env bash
# NBD data-path benchmark (issue 3): fio's nbd engine against skerryd (directory store),
# qemu-nbd on a raw file (cache=none aio=native, and cache=writeback for reference),
# qemu-nbd on a qcow2 overlay over a raw base, nbdkit's file plugin, and skerryd on a thin
# clone (new, with every block shared with its parent; the same with whole-block copy-up, the
# design before partial blocks; after a full overwrite), and, for the write jobs, skerryd on
# a new empty volume (its writes, like a new clone's, go into new storage), and a second
# skerryd with busy polling off (--busy-poll-us 0); all in one run on the same file system,
# over unix sockets. Every job starts after a sync.
# Then skerryd's resident memory with 100 open exports of 100 GiB volumes.
# Prints markdown tables for docs/benchmarks.md on stdout, progress on stderr.
#
# usage: bench/nbd.sh [WORKDIR]     (default build/bench-nbd; needs ~22 GiB free, ~13 minutes)
# env:   BIN=build/bin  SIZE_MIB=2048 (data set per system)  RUNTIME=8  RAMP=1 (seconds per job)
#        ROUNDS=1 (each adds ~10 minutes; the tables then show medians)
#        JOBS="randwrite32 ..." SYSTEMS="skerryd clone-before ..." (subsets, in this order;
#          the ratio tables then show only the rows whose systems ran)
#        KEEP_LOGS=1 keeps WORKDIR/logs and WORKDIR/results (they are kept anyway on failure)
#        BIN_B=DIR: an A/B run: systems "skerryd-b" (a fresh volume) and "clone-b" (a new
#          clone) through a skerryd from DIR (another build), beside the same through BIN's
# shellcheck disable=SC2154  # PID_<server> variables are set by start() through eval
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench/nbd.sh
BIN=$(realpath "${BIN:-build/bin}")
WORK=$(realpath -m "${1:-build/bench-nbd}")
SIZE_MIB=${SIZE_MIB:-2048}
RUNTIME=${RUNTIME:-8}
RAMP=${RAMP:-1}
ROUNDS=${ROUNDS:-1}
PY=/usr/bin/python3   # Debian's python has python3-libnbd; a pyenv python3 on PATH may not
HERE=$PWD/bench/nbd
source bench/lib.sh  # checks, say/odd, start/stop/alive, fio_job, fill

require_tools fio qemu-nbd qemu-img nbdkit nbdcopy
require_skerry
require_python_nbd

fresh_workdir logs results
LOG=$WORK/logs
RES=$WORK/results

PIDS=()          # servers we started, stopped by the trap if still running
ODD=()           # anomalies to print at the end
cleanup() {
  local rc=$?
  stop_all_servers
  if [ "$rc" -ne 0 ] || [ -n "${KEEP_LOGS:-}" ]; then
    find "$WORK" -mindepth 1 -maxdepth 1 ! -name logs ! -name results -exec rm -rf {} +
    echo "bench/nbd.sh: logs and fio results kept in $WORK (exit $rc)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a JOBS <<<"${JOBS:-randread32 randwrite32 read8 write8 randread1 randwrite1}"
: >"$RES/systems.txt"
read -r -a SYSTEMS <<<"${SYSTEMS:-skerryd nopoll clone-before clone-copy clone-after empty qemu-raw qemu-qcow2 nbdkit qemu-raw-wb}"
# The systems that run, in table order; a row is listed only if its system runs.
system() { [[ " ${SYSTEMS[*]} " == *" $1 "* ]] && printf '%s\t%s\n' "$1" "$2" >>"$RES/systems.txt"; return 0; }

T0=$(date +%s)
# What is measured: the commit, and whether the binaries are older than the sources.
REV="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || echo ' with uncommitted changes in the tree')"
STALE=$(find src include -newer "$BIN/skerryd" -type f 2>/dev/null | head -3 | tr '\n' ' ')
[ -z "$STALE" ] || odd "$BIN/skerryd is older than $STALE(rebuild?)"
FSTYPE=$(df --output=fstype "$WORK" | tail -1)

# ---------------------------------------------------------------- servers and data
# Every data set is written the same way: one sequential 1M QD8 pass through the server
# that will serve it (the page cache then holds what that write pattern leaves: large
# folios, see docs/benchmarks.md), then sync.
say "starting the servers; every file and volume is ${SIZE_MIB} MiB on $FSTYPE ($WORK)"
STORE="dir:$WORK/store"
"$BIN/skerry" --store "$STORE" create vol --size "${SIZE_MIB}M"
"$BIN/skerry" --store "$STORE" create parent --size "${SIZE_MIB}M"
"$BIN/skerry" --store "$STORE" create vol-np --size "${SIZE_MIB}M"
for f in qemu base nbdkit wb; do truncate -s "${SIZE_MIB}M" "$WORK/$f.raw"; done

start skerryd "$WORK/s.sock" "$BIN/skerryd" --store "$STORE" --listen "unix:$WORK/s.sock" --admin-socket "$WORK/s.admin"
# The same store, a second daemon that copies a shared block whole on a clone's first write
# into it (no partial blocks): the reference for what partial blocks save.
start skerryd-copy "$WORK/c.sock" "$BIN/skerryd" --partial-blocks off --store "$STORE" \
  --listen "unix:$WORK/c.sock" --admin-socket "$WORK/c.admin"
# A third, with busy polling off (docs/nbd.md, "Busy polling"), on a volume of its own
# filled like vol: what the spinning reader gains and costs.
start nopoll "$WORK/n.sock" "$BIN/skerryd" --store "$STORE" --listen "unix:$WORK/n.sock" \
  --admin-socket "$WORK/n.admin" --busy-poll-us 0
# An A/B run: the same through a skerryd of another build, on a volume of its own filled
# like vol, and new clones of the same parent.
if [ -n "${BIN_B:-}" ]; then
  BIN_B=$(realpath "$BIN_B")
  "$BIN/skerry" --store "$STORE" create vol-b --size "${SIZE_MIB}M"
  start skerryd-b "$WORK/ab.sock" "$BIN_B/skerryd" --store "$STORE" --listen "unix:$WORK/ab.sock" \
    --admin-socket "$WORK/ab.admin"
fi
start qemu-raw "$WORK/q.sock" qemu-nbd -f raw --cache=none --aio=native -t -e 4 -k "$WORK/q.sock" "$WORK/qemu.raw"
start qemu-base "$WORK/b.sock" qemu-nbd -f raw --cache=none --aio=native -t -k "$WORK/b.sock" "$WORK/base.raw"
start nbdkit "$WORK/k.sock" nbdkit -f -U "$WORK/k.sock" --threads 16 file file="$WORK/nbdkit.raw"
start qemu-raw-wb "$WORK/w.sock" qemu-nbd -f raw --cache=writeback --aio=threads -t -e 4 -k "$WORK/w.sock" "$WORK/wb.raw"
SK() { echo "nbd+unix:///$1?socket=$WORK/s.sock"; }
SKC() { echo "nbd+unix:///$1?socket=$WORK/c.sock"; }
declare -A URI=(
  [skerryd]="$(SK vol)"
  [clone-after]="$(SK ca)"
  [nopoll]="nbd+unix:///vol-np?socket=$WORK/n.sock"
  [qemu-raw]="nbd+unix:///?socket=$WORK/q.sock"
  [qemu-qcow2]="nbd+unix:///?socket=$WORK/o.sock"
  [nbdkit]="nbd+unix:///?socket=$WORK/k.sock"
  [qemu-raw-wb]="nbd+unix:///?socket=$WORK/w.sock"
)
[ -z "${BIN_B:-}" ] || URI[skerryd-b]="nbd+unix:///vol-b?socket=$WORK/ab.sock"
say "filling"
fill "$(SK vol)" skerryd-vol
fill "$(SK parent)" skerryd-parent
fill "${URI[nopoll]}" skerryd-nopoll
[ -z "${BIN_B:-}" ] || fill "${URI[skerryd-b]}" skerryd-b
fill "${URI[qemu-raw]}" qemu-raw
fill "nbd+unix:///?socket=$WORK/b.sock" qemu-base
fill "${URI[nbdkit]}" nbdkit
fill "${URI[qemu-raw-wb]}" qemu-raw-wb
stop qemu-base
qemu-img create -q -f qcow2 -b "$WORK/base.raw" -F raw "$WORK/overlay.qcow2"
start qemu-qcow2 "$WORK/o.sock" qemu-nbd -f qcow2 --cache=none --aio=native -t -e 4 -k "$WORK/o.sock" "$WORK/overlay.qcow2"

# The clones come from a snapshot of another volume, "parent", filled like vol (a snapshot
# of vol itself would make vol's next write to every block a copy-up: vol would no longer
# be a fresh volume). "before": a new clone per job, so every job starts with all blocks
# shared with the parent (reads go to the parent's objects; the first write to a block makes
# it partial: the clone's object holds the 4 KiB granules it wrote). "copy": the same through
# the daemon whose first write to a block copies it whole. "after": one clone overwritten
# once, every block its own.
# The daemon closes parent (flush, unlock) as fio disconnects; the CLI then snapshots it
# directly, or through the admin socket if the daemon still holds it.
for try in 1 2 3 4 5; do
  "$BIN/skerry" --store "$STORE" snap create parent@base 2>"$LOG/snap.err" && break
  odd "snap create parent@base, try $try: $(cat "$LOG/snap.err")"
  [ "$try" -lt 5 ] || exit 1
  sleep 1
done
"$BIN/skerry" --store "$STORE" clone parent@base ca
fill "$(SK ca)" clone-after
sync
say "nbdkit file plugin: $(nbdkit file --dump-plugin | grep '^thread_model='), 16 threads"

system skerryd "skerryd, fresh volume (dir store)"
system nopoll "skerryd, fresh volume, busy polling off (--busy-poll-us 0)"
[ -z "${BIN_B:-}" ] || system skerryd-b "skerryd of the B build ($BIN_B), fresh volume"
system clone-before "skerryd, new clone (blocks shared with the parent)"
[ -z "${BIN_B:-}" ] || system clone-b "skerryd of the B build, new clone"
system clone-copy "skerryd, new clone, whole-block copy-up (--partial-blocks off)"
system clone-after "skerryd, clone after a full overwrite"
system empty "skerryd, new empty volume (write jobs only)"
system qemu-raw "qemu-nbd raw file, cache=none aio=native"
system qemu-qcow2 "qemu-nbd qcow2 overlay on raw base, cache=none aio=native"
system nbdkit "nbdkit file plugin (page cache)"
system qemu-raw-wb "qemu-nbd raw file, cache=writeback aio=threads (reference)"

# ---------------------------------------------------------------- the jobs
# Job by job, each on every system back to back, so that the load other processes put
# on the machine drifts as little as possible between the figures that are compared.
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  mkdir -p "$RES/r$round"
  for j in "${JOBS[@]}"; do
    say "round $round/$ROUNDS, $j"
    for sys in "${SYSTEMS[@]}"; do
      pid=$PID_skerryd
      case $sys in
        clone-before)
          "$BIN/skerry" --store "$STORE" clone parent@base "cb-$j-$round"
          uri=$(SK "cb-$j-$round") ;;
        clone-b)
          "$BIN/skerry" --store "$STORE" clone parent@base "cbb-$j-$round"
          uri="nbd+unix:///cbb-$j-$round?socket=$WORK/ab.sock" pid=$PID_skerryd_b ;;
        clone-copy)
          "$BIN/skerry" --store "$STORE" clone parent@base "cc-$j-$round"
          uri=$(SKC "cc-$j-$round") pid=$PID_skerryd_copy ;;
        empty)
          # A new volume per write job: like a new clone's, its writes go into new storage
          # (new objects, new page-cache pages), where the fresh volume, filled before,
          # overwrites cached pages. Reading it would only read holes.
          if [ "${j#randread}" != "$j" ] || [ "${j#read}" != "$j" ]; then
            : >"$RES/r$round/empty__$j.skip"
            continue
          fi
          "$BIN/skerry" --store "$STORE" create "e-$j-$round" --size "${SIZE_MIB}M"
          uri=$(SK "e-$j-$round") ;;
        *)
          pidvar=PID_${sys//-/_}
          [ "${sys#clone}" = "$sys" ] || pidvar=PID_skerryd
          uri=${URI[$sys]} pid=${!pidvar} ;;
      esac
      # Every job starts with its data in the page cache: one read of the whole export
      # through its server (bench/results/2026-11-nbd-cold-pages.md). Not for the O_DIRECT
      # servers, which do not use the page cache.
      case $sys in
        qemu-raw|qemu-qcow2) ;;
        *) nbdcopy "$uri" null: 2>>"$LOG/warm.log" || odd "warming $sys before $j failed" ;;
      esac
      fio_job "r$round" "$sys" "$j" "$uri" "$pid"
    done
  done
done
# The first write into a shared block itself: the jobs above run long enough that all of a
# clone's 512 blocks get theirs within its first few thousand writes. Here: one 4 KiB write
# into each 4 MiB block of a new clone (partial blocks; whole-block copy-ups through the
# second daemon), against the same on the fresh volume.
say "first writes: one 4K write into each 4 MiB block, QD1"
"$BIN/skerry" --store "$STORE" clone parent@base cu
"$BIN/skerry" --store "$STORE" clone parent@base cu-copy
for target in clone:cu clone-copy:cu-copy fresh:vol; do
  uri=$(SK "${target#*:}")
  [ "${target%%:*}" != clone-copy ] || uri=$(SKC "${target#*:}")
  fio --name="copyup-${target%%:*}" --ioengine=nbd --uri="$uri" --rw=write:4092k --bs=4k --number_ios=$((SIZE_MIB / 4)) \
    --iodepth=1 --lat_percentiles=1 --output-format=json --output="$RES/copyup__${target%%:*}.json" \
    >"$LOG/fio-copyup-${target%%:*}.log" 2>&1 || odd "copy-up job on ${target#*:} failed: $(tail -3 "$LOG/fio-copyup-${target%%:*}.log" | tr '\n' ' ')"
done
for s in skerryd skerryd-copy nopoll ${BIN_B:+skerryd-b} qemu-raw qemu-qcow2 nbdkit qemu-raw-wb; do alive "$s" && stop "$s"; done
for d in skerryd skerryd-copy nopoll ${BIN_B:+skerryd-b}; do
  while read -r line; do odd "$d log: $line"; done < <(grep -E ' (warning|error|critical) ' "$LOG/$d.log" | head -5)
done
du -sh "$WORK/store" >"$LOG/store-du.txt" 2>&1 || true
rm -f "$WORK"/*.raw "$WORK"/*.qcow2
rm -rf "$WORK/store"

# ---------------------------------------------------------------- memory: 100 exports
say "memory: 100 thin 100 GiB volumes, one open connection each"
MSTORE="dir:$WORK/mstore"
names=()
for i in $(seq -w 1 100); do
  "$BIN/skerry" --store "$MSTORE" create "m$i" --size 100G
  names+=("m$i")
done
start skerryd-mem "$WORK/m.sock" "$BIN/skerryd" --store "$MSTORE" --listen "unix:$WORK/m.sock" --admin-socket "$WORK/m.admin"
{
  echo "Resident memory of the server with thin 100 GiB volumes (4 MiB blocks) open over NBD, one"
  echo "connection each, 4 blocks read from each (from /proc/PID/status):"
  echo
  echo "| daemon | open exports | VmRSS | VmHWM | threads | open fds |"
  echo "|---|---|---|---|---|---|"
  $PY "$HERE/open_exports.py" "$WORK/m.sock" "$PID_skerryd_mem" "skerryd" "${names[@]}"
} >"$RES/memory.txt" 2>"$LOG/open_exports.err" || odd "100-export memory test failed: $(tail -3 "$LOG/open_exports.err" | tr '\n' ' ')"
alive skerryd-mem && stop skerryd-mem
# For scale: qemu-nbd serves one image per process; one 100 GiB sparse raw file, one client.
truncate -s 100G "$WORK/sparse.raw"
start qemu-mem "$WORK/qm.sock" qemu-nbd -f raw --cache=none --aio=native -t -k "$WORK/qm.sock" "$WORK/sparse.raw"
$PY "$HERE/open_exports.py" "$WORK/qm.sock" "$PID_qemu_mem" "one qemu-nbd process (per export)" "" \
  >>"$RES/memory.txt" 2>>"$LOG/open_exports.err" || odd "qemu-nbd memory reference failed"
alive qemu-mem && stop qemu-mem
rm -rf "$WORK/mstore" "$WORK/sparse.raw"

# ---------------------------------------------------------------- report
T1=$(date +%s)
echo "### fio $(fio --version | sed 's/fio-//'), $SIZE_MIB MiB per system, ${RUNTIME} s per job (+${RAMP} s ramp), $ROUNDS round(s)"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM," \
  "$FSTYPE on $(df --output=source "$WORK" | tail -1), kernel $(uname -r);" \
  "$(qemu-nbd --version | head -1), nbdkit $(nbdkit --version | awk '{print $2}'), skerry $REV (binaries built $(date -r "$BIN/skerryd" '+%F %R'));" \
  "load average (1/5/15 min) before the jobs: $LOAD0, after the run: $(cut -d' ' -f1-3 /proc/loadavg); total $((T1 - T0)) s."
# A kernel that pages out idle page cache by itself (a DAMON "pageout" scheme, as on the VMs
# these figures were taken on) evicts a data set between its jobs; each job reads its export
# once before it starts, so that its figures are of a warm cache
# (bench/results/2026-11-nbd-cold-pages.md).
for k in /sys/kernel/mm/damon/admin/kdamonds/*; do
  if [ -e "$k/state" ] && ! [ -r "$k/state" ]; then
    echo "Whether the kernel pages out idle page cache is unknown: $k/state is for root only."
  elif [ "$(cat "$k/state" 2>/dev/null)" = on ] && grep -qx pageout "$k"/contexts/*/schemes/*/action 2>/dev/null; then
    echo "The kernel pages out idle page cache (DAMON pageout scheme in $k)."
  fi
done
echo
$PY "$HERE/report.py" "$RES"
if [ "${#ODD[@]}" -gt 0 ]; then
  echo
  echo "Anomalies in this run:"
  for o in "${ODD[@]}"; do echo "- $o"; done
fi
