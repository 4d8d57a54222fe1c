# Shared by the benchmarks (bench/nbd.sh, bench/rados.sh, bench/copyup_cpu.sh, bench/core.sh,
# bench/import_formats.sh, bench/migration.sh); sourced from
# the repository root once the script has set BENCH (its name, for messages), BIN, WORK and
# PY (a python3 with the nbd module). Before the functions below that use them are called it
# also sets LOG and RES (directories), RUNTIME and RAMP (seconds), PIDS=() and ODD=().
# shellcheck shell=bash

# Whole commands timed (bench/core.sh, bench/import_formats.sh).
time_cmd() {  # prints seconds for "$@" (anything dirty synced first, so it is not charged)
  sync; local a b
  a=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  b=$(date +%s.%N)
  echo "$b - $a" | bc -l
}
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

# Checks before a benchmark starts; each exits naming what is missing.
require_tools() {  # require_tools TOOL...
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$BENCH: $tool is not installed (scripts/install-deps.sh)" >&2; exit 1; }
  done
}
require_skerry() {  # $BIN/skerry and $BIN/skerryd
  local b
  for b in skerry skerryd; do
    [ -x "$BIN/$b" ] || { echo "$BENCH: $BIN/$b not found (set BIN)" >&2; exit 1; }
  done
}
require_python_nbd() {
  $PY -c 'import nbd' 2>/dev/null || { echo "$BENCH: $PY lacks the nbd module (python3-libnbd)" >&2; exit 1; }
}

# fresh_workdir SUBDIR...: empties WORK (never /, $HOME or the repository) and makes
# $WORK/SUBDIR for each.
fresh_workdir() {
  case "$WORK" in /|"$HOME"|"$PWD") echo "$BENCH: refusing WORKDIR $WORK" >&2; exit 2 ;; esac
  rm -rf "$WORK"
  local d
  for d in "$@"; do mkdir -p "$WORK/$d"; done
}

# stop_all_servers: for the exit trap: every server in PIDS still running gets SIGTERM,
# SIGKILL after 5 s.
stop_all_servers() {
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}

say() { echo "[$(date +%T)] $*" >&2; }
odd() { say "ODD: $*"; ODD+=("$*"); }

# start NAME SOCKET cmd...: runs a server in the background, waits for its socket.
start() {
  local name=$1 sock=$2; shift 2
  rm -f "$sock"
  "$@" >"$LOG/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  eval "PID_${name//-/_}=$pid"
  for _ in $(seq 200); do
    [ -S "$sock" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$LOG/$name.log" >&2; echo "$BENCH: $name died at start" >&2; exit 1; }
    sleep 0.05
  done
  echo "$BENCH: $name did not create $sock" >&2; exit 1
}

# stop NAME: SIGTERM, wait up to 60 s; anything but a clean exit is noted.
stop() {
  local name=$1 var="PID_${1//-/_}" rc=0
  local pid=${!var}
  kill -0 "$pid" 2>/dev/null || { odd "$name had already exited before stop (log: $LOG/$name.log)"; wait "$pid" || true; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    odd "$name did not exit within 60 s of SIGTERM; killed"
    kill -KILL "$pid"
  fi
  wait "$pid" || rc=$?
  # qemu-nbd and nbdkit exit 0 on SIGTERM; so must skerryd
  [ "$rc" -eq 0 ] || odd "$name exited $rc after SIGTERM: $(tail -3 "$LOG/$name.log" | tr '\n' ' ')"
}

alive() {  # alive NAME: notes a server that died under load
  local var="PID_${1//-/_}"
  kill -0 "${!var}" 2>/dev/null && return 0
  odd "$1 died during the run: $(tail -5 "$LOG/$1.log" | tr '\n' ' ')"
  return 1
}

cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime + stime
TICK=$(getconf CLK_TCK)

# target_args TARGET: fio's engine arguments: an nbd URI, or the arguments themselves
# (e.g. "--ioengine=rbd --pool=P --rbdname=I", no spaces inside one argument).
target_args() {
  case $1 in
    nbd*) echo "--ioengine=nbd --uri=$1" ;;
    *) echo "$1" ;;
  esac
}

# job_params JOB: sets rw, bs and qd of one of the benchmark jobs (the caller's locals).
job_params() {
  case $1 in
    randread32) rw=randread bs=4k qd=32 ;;
    randwrite32) rw=randwrite bs=4k qd=32 ;;
    read8) rw=read bs=1M qd=8 ;;
    write8) rw=write bs=1M qd=8 ;;
    randread1) rw=randread bs=4k qd=1 ;;
    randwrite1) rw=randwrite bs=4k qd=1 ;;
    *) echo "unknown job $1" >&2; return 1 ;;
  esac
}

# fio_job ROUND SYSTEM JOB TARGET PID: one fio job, results in $RES/ROUND/SYSTEM__JOB.json;
# the server's CPU use (PID 0: not measured) (cores busy, all its threads, user + system) during the measured
# window (after the ramp) in SYSTEM__JOB.cpu.
fio_job() {
  local round=$1 sys=$2 job=$3 uri=$4 pid=$5 rw bs qd
  job_params "$job" || return 1
  local out=$RES/$round/${sys}__${job}.json rc=0
  # What earlier jobs left dirty is written back now, not during this job, where the
  # kernel's writeback would compete with the server under test for the cores.
  sync
  # shellcheck disable=SC2046  # target_args splits an engine's arguments on purpose
  fio --name="$sys-$job" $(target_args "$uri") --rw=$rw --bs=$bs --iodepth=$qd \
    --time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap --randrepeat=0 \
    --lat_percentiles=1 --output-format=json --output="$out" >"$LOG/fio-$round-$sys-$job.log" 2>&1 &
  local fio_pid=$! t1 c1 t2 c2
  sleep "$(echo "$RAMP + 0.3" | bc -l)"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid" 2>/dev/null || echo 0)
  sleep "$(echo "$RUNTIME - 0.6" | bc -l)"
  t2=$(date +%s.%N); c2=$(cpu_ticks "$pid" 2>/dev/null || echo 0)
  if [ "$pid" = 0 ]; then echo -1; else echo "($c2 - $c1) / $TICK / ($t2 - $t1)" | bc -l; fi \
    >"$RES/$round/${sys}__${job}.cpu"
  wait "$fio_pid" || rc=$?
  [ "$rc" -eq 0 ] || odd "fio $sys $job exited $rc: $(tail -3 "$LOG/fio-$round-$sys-$job.log" | tr '\n' ' ')"
  $PY - "$out" "$sys $job" "$(cat "$RES/$round/${sys}__${job}.cpu")" >&2 <<'PY' || true
import json, sys
t = open(sys.argv[1]).read(); j = json.loads(t[t.index("{"):])["jobs"][0]
s = j["write"] if "write" in sys.argv[2] else j["read"]
print(f"    {sys.argv[2]}: {s['iops']:.0f} IOPS, {s['bw_bytes']/1e6:.0f} MB/s, mean {s['lat_ns']['mean']/1000:.0f} us, "
      f"server {float(sys.argv[3]):.2f} cores, error {j['error']}")
PY
}

# fill TARGET NAME: one sequential 1M pass over the whole export (not timed).
fill() {
  local rc=0
  # shellcheck disable=SC2046
  fio --name="fill-$2" $(target_args "$1") --rw=write --bs=1M --iodepth=8 \
    --output-format=terse >"$LOG/fill-$2.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { odd "fill of $2 failed ($rc): $(tail -3 "$LOG/fill-$2.log" | tr '\n' ' ')"; return 1; }
}

