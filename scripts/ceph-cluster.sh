#!/usr/bin/env bash
# A throwaway Ceph cluster on this machine, for tests and benchmarks of the RADOS store.
#
#   scripts/ceph-cluster.sh start DIR [--size N] [--pool NAME[:SIZE]]... [--osds N]
#   scripts/ceph-cluster.sh status DIR
#   scripts/ceph-cluster.sh stop DIR
#   scripts/ceph-cluster.sh kill-osd DIR ID | start-osd DIR ID
#
# start: installs Ceph 16 from Debian's packages if missing, then starts one monitor on
#   127.0.0.1 (a free port), no authentication, and N (default 3) bluestore OSDs on 2 GiB
#   sparse files under DIR, with no systemd: the daemons are started directly and their pids
#   recorded in DIR/pids. Creates each --pool (default: one pool "skerry") with replication
#   size --size (default 1, for speed; 3 for fault tests) or its own :SIZE (min_size is
#   SIZE - SIZE/2, so a size-3 pool keeps serving with one OSD down), waits until every pool answers a
#   `rados put`/`get` round trip, and prints the path of DIR/ceph.conf on stdout (progress
#   goes to stderr). If anything fails it prints the tail of the daemons' logs, stops what it
#   started and exits non-zero: it never pretends a cluster is there.
# stop: kills exactly the pids recorded in DIR/pids (TERM, then KILL after 10 s) and removes DIR.
# status: says whether each recorded daemon runs and what the monitor reports; non-zero when
#   a daemon is missing or the monitor does not answer.
# kill-osd: SIGKILL to osd.ID, the way a crashed disk or host looks to the cluster.
# start-osd: starts osd.ID again (its pid is recorded) and waits until the monitor sees it up.
#
# Environment: CEPH_CLUSTER_OSD_SIZE (default 2G) for the OSD files.
# Design notes and the timings measured here: docs/rados.md.
set -euo pipefail

die() { echo "ceph-cluster: $*" >&2; exit 1; }
say() { echo "ceph-cluster: $*" >&2; }

usage() {
  sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
DIR=$2
shift 2
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
CONF="$DIR/ceph.conf"
PIDS="$DIR/pids"

# ---------------------------------------------------------------- helpers

ensure_packages() {
  local need=() p
  for p in ceph-mon ceph-osd ceph-common librados-dev libradospp-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  say "installing ${need[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# ceph CLI against our cluster, never waiting forever.
ceph_cmd() { timeout 60 ceph -c "$CONF" --connect-timeout 20 "$@"; }
rados_cmd() { timeout 60 rados -c "$CONF" "$@"; }

# A TCP port on 127.0.0.1 nothing listens on (the monitor needs a fixed one in its map).
free_port() {
  local port used
  used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  for _ in $(seq 200); do
    port=$((20000 + RANDOM % 20000))
    grep -qx "$port" <<<"$used" || { echo "$port"; return 0; }
  done
  die "no free TCP port found"
}

# Is PID alive and one of our daemons (guards against a recycled pid)?
ours() {
  local pid=$1 cmdline
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline")
  [[ "$cmdline" == *ceph-*"$CONF"* ]]
}

# start_daemon NAME cmd...: runs a daemon in the foreground of its own session, output to
# DIR/log/NAME.out, and records "PID NAME" in DIR/pids.
start_daemon() {
  local name=$1; shift
  setsid "$@" < /dev/null >> "$DIR/log/$name.out" 2>&1 &
  echo "$! $name" >> "$PIDS"
}

# The end of every log, without Ceph's crash dumps of recent events and without the
# messages every mkfs prints (no label yet on a new block file).
show_logs() {
  local f
  for f in "$DIR"/log/*; do
    [ -s "$f" ] || continue
    local body
    body=$(sed '/--- begin dump of recent events ---/,$d' "$f" |
             grep -v -e '_read_bdev_label failed to open' -e '_read_fsid unparsable uuid' -e '^$' || true)
    [ -n "$body" ] || continue
    echo "===== $f: errors" >&2
    grep -E '^[0-9T:.+-]+ [0-9a-f]+ +-1 ' <<<"$body" | tail -n 6 | cut -c1-300 >&2 || true
    echo "===== $f: last lines" >&2
    tail -n 8 <<<"$body" | cut -c1-300 >&2
  done
}

# Stops the daemons recorded in DIR/pids: OSDs first (each tells the monitor it is going down
# and waits up to 5 s for its answer), then the monitor.
kill_recorded() {
  [ -f "$PIDS" ] || return 0
  kill_some osd
  kill_some mon
}

kill_some() {
  local kind=$1 pid name alive=()
  while read -r pid name; do
    [[ "$name" == "$kind".* ]] || continue
    if ours "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      alive+=("$pid")
    fi
  done < "$PIDS"
  for _ in $(seq 100); do
    local left=()
    for pid in "${alive[@]}"; do ours "$pid" && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${alive[@]}"; do
    if ours "$pid"; then
      say "pid $pid did not stop after SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

start_failed() {
  say "FAILED: $*"
  show_logs
  say "stopping what was started (logs stay in $DIR/log)"
  kill_recorded
  rm -f "$PIDS"
  exit 1
}

# ---------------------------------------------------------------- start

do_start() {
  local size=1 osds=3 pools=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --size) size=$2; shift 2 ;;
      --osds) osds=$2; shift 2 ;;
      --pool) pools+=("$2"); shift 2 ;;
      *) usage ;;
    esac
  done
  [ ${#pools[@]} -gt 0 ] || pools=(skerry)
  [ "$size" -ge 1 ] && [ "$size" -le "$osds" ] || die "--size $size needs 1..$osds"
  if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
    die "$DIR exists and is not empty (a cluster already there? stop it first)"
  fi
  ensure_packages
  local t0=$SECONDS
  mkdir -p "$DIR"/{log,run,mon,osd}
  : > "$PIDS"
  trap 'start_failed "interrupted or a command failed (line $LINENO)"' ERR INT TERM

  local fsid port
  fsid=$(cat /proc/sys/kernel/random/uuid)
  port=$(free_port)
  cat > "$CONF" <<EOF
# Throwaway test cluster made by scripts/ceph-cluster.sh; stop it with: ceph-cluster.sh stop $DIR
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
run dir = $DIR/run
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
log to stderr = false
err to stderr = true
# one host: replicas go to different OSDs, not different hosts
osd crush chooseleaf type = 0
osd pool default size = $size
osd pool default min size = $((size - size / 2))
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1

[mon]
admin socket = $DIR/run/\$name.asok
mon data = $DIR/mon/\$name

[osd]
admin socket = $DIR/run/\$name.asok
osd data = $DIR/osd/\$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${CEPH_CLUSTER_OSD_SIZE:-2G}
bluestore fsck on mkfs = false
bluestore fsck on mount = false
# modest memory: small caches, few op threads (2 shared cores)
osd memory target = 939524096
bluestore cache autotune = false
bluestore cache size = 67108864
osd op num shards = 2
osd op num threads per shard = 1
EOF

  say "monitor on 127.0.0.1:$port"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" >> "$DIR/log/mkfs.out" 2>&1
  start_daemon mon.a ceph-mon -f -c "$CONF" -i a
  local ok=0
  for _ in $(seq 60); do
    if ceph_cmd mon stat >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  [ $ok -eq 1 ] || start_failed "monitor did not answer"
  say "monitor up after $((SECONDS - t0)) s"

  # Each OSD: an id from the monitor, mkfs (bluestore labels, an empty database), start.
  # The OSDs are made in parallel: the ceph CLI alone takes about a second per call.
  local i pids=()
  for ((i = 0; i < osds; i++)); do
    (
      uuid=$(cat /proc/sys/kernel/random/uuid)
      id=$(ceph_cmd osd new "$uuid")
      mkdir -p "$DIR/osd/$id"
      ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" >> "$DIR/log/mkfs-osd.$id.out" 2>&1
      echo "$id" > "$DIR/osd/made.$i"
    ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || start_failed "making an OSD (ceph osd new, ceph-osd --mkfs) failed"; done
  local id
  for ((i = 0; i < osds; i++)); do
    id=$(cat "$DIR/osd/made.$i")
    rm -f "$DIR/osd/made.$i"
    start_daemon "osd.$id" ceph-osd -f -c "$CONF" -i "$id"
  done
  ok=0
  for _ in $(seq 120); do
    if [ "$(ceph_cmd osd stat -f json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_up_osds"])' 2>/dev/null)" = "$osds" ]; then
      ok=1; break
    fi
    sleep 0.5
  done
  [ $ok -eq 1 ] || start_failed "$osds OSDs did not come up"
  say "$osds OSDs up after $((SECONDS - t0)) s"

  # Pools get size and min_size from "osd pool default size/min size" above.
  local pool
  pids=()
  local spec pool_size names=()
  for spec in "${pools[@]}"; do
    pool=${spec%%:*}
    names+=("$pool")
    pool_size=$size
    [[ "$spec" == *:* ]] && pool_size=${spec#*:}
    [ "$pool_size" -ge 1 ] && [ "$pool_size" -le "$osds" ] || die "pool $pool: size $pool_size needs 1..$osds"
    (ceph_cmd osd pool create "$pool" 8 8 replicated >> "$DIR/log/pools.out" 2>&1 &&
     ceph_cmd osd pool set "$pool" size "$pool_size" --yes-i-really-mean-it >> "$DIR/log/pools.out" 2>&1 &&
     ceph_cmd osd pool set "$pool" min_size $((pool_size - pool_size / 2)) >> "$DIR/log/pools.out" 2>&1 &&
     ceph_cmd osd pool application enable "$pool" skerry >> "$DIR/log/pools.out" 2>&1) &
    pids+=($!)
  done
  pools=("${names[@]}")
  for i in "${pids[@]}"; do wait "$i" || start_failed "creating the pools failed"; done
  # Usable = a write and a read come back (PGs peered and active).
  echo "skerry probe $fsid" > "$DIR/probe.in"
  for pool in "${pools[@]}"; do
    ok=0
    for _ in $(seq 240); do
      if rados_cmd -p "$pool" put skerry-cluster-probe "$DIR/probe.in" 2>/dev/null &&
         rados_cmd -p "$pool" get skerry-cluster-probe "$DIR/probe.out" 2>/dev/null &&
         cmp -s "$DIR/probe.in" "$DIR/probe.out"; then
        rados_cmd -p "$pool" rm skerry-cluster-probe
        ok=1; break
      fi
      sleep 0.5
    done
    [ $ok -eq 1 ] || start_failed "pool $pool did not become usable"
  done
  rm -f "$DIR/probe.in" "$DIR/probe.out"
  trap - ERR INT TERM
  say "cluster ready in $((SECONDS - t0)) s: pools ${pools[*]} (size $size), $osds OSDs"
  echo "$CONF"
}

# ---------------------------------------------------------------- stop / status

do_stop() {
  [ -d "$DIR" ] || { say "$DIR does not exist; nothing to stop"; return 0; }
  [ -f "$CONF" ] || [ -f "$PIDS" ] || die "$DIR does not look like a cluster of this script; not touching it"
  kill_recorded
  rm -rf "$DIR"
  say "stopped; removed $DIR"
}

do_status() {
  [ -f "$PIDS" ] || die "no cluster in $DIR"
  local pid name bad=0
  while read -r pid name; do
    if ours "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: NOT running (pid $pid)"; bad=1; fi
  done < "$PIDS"
  ceph_cmd -s || bad=1
  return $bad
}

# The recorded pid of osd.ID, if it runs.
osd_pid() {
  local pid name found=
  while read -r pid name; do
    [ "$name" = "osd.$1" ] && ours "$pid" && found=$pid
  done < "$PIDS"
  echo "$found"
}

do_kill_osd() {
  local id=${1:?usage: kill-osd DIR ID} pid
  pid=$(osd_pid "$id")
  [ -n "$pid" ] || die "osd.$id is not running"
  kill -KILL "$pid"
  say "killed osd.$id (pid $pid)"
}

do_start_osd() {
  local id=${1:?usage: start-osd DIR ID}
  [ -z "$(osd_pid "$id")" ] || die "osd.$id is already running"
  start_daemon "osd.$id" ceph-osd -f -c "$CONF" -i "$id"
  for _ in $(seq 240); do
    if ceph_cmd osd dump -f json 2>/dev/null |
         python3 -c 'import json,sys; sys.exit(0 if any(o["osd"] == int(sys.argv[1]) and o["up"] for o in json.load(sys.stdin)["osds"]) else 1)' "$id"; then
      say "osd.$id is up again"
      return 0
    fi
    sleep 0.5
  done
  die "osd.$id did not come up again (log: $DIR/log/osd.$id.out)"
}

case "$cmd" in
  kill-osd) do_kill_osd "$@" ;;
  start-osd) do_start_osd "$@" ;;
  start) do_start "$@" ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
