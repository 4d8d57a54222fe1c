# Helpers for the tests that run a real QEMU guest on a skerry volume. Source it first thing;
# it sources tests/e2e/lib.sh ($WORK, cleanup hooks, start_daemon, stop_daemon, fail, step).
#
# The guest (scripts/guest/init, built by scripts/guest/build.sh) writes record N at offset
# N*4096 and prints "WROTE N" once the write and a flush returned; check_records.py then holds
# every printed record to be on the volume. The pieces:
#   guest_volume NAME SIZE         a thin clone NAME of a small image with data
#   guest_daemon NAME              skerryd on the test store: $WORK/NAME.sock, $WORK/NAME.admin
#                                  (several daemons on one store: the layout of several hosts)
#   guest_start NAME DAEMON VOLUME JOB [COUNT] [--incoming]
#                                  QEMU (TCG) with the volume as a virtio disk over NBD from
#                                  DAEMON's socket ($WORK/DAEMON.sock; DAEMON file:PATH: the raw
#                                  file PATH, no NBD); console $WORK/NAME.console, QMP
#                                  $WORK/NAME.qmp, and a second QMP monitor
#                                  $WORK/NAME.qmp-events for a listener (qmp.py --events)
#   qmp NAME COMMAND [JSON]        one QMP command, its answer printed on one line
#   guest_status NAME, guest_wait_status NAME STATE    QEMU's run state (query-status)
#   guest_wrote NAME...            the last WROTE on those consoles
#   guest_wait_wrote COUNT SECONDS NAME...   until the consoles (in order) reach WROTE COUNT
#   guest_crashed NAME             the guest kernel's crash line, if it crashed
#   guest_error NAME               the first I/O error the guest reported (init or kernel)
#   guest_migrate SRC DST          live migration over a unix socket, prints its figures
#   guest_stop NAME                QMP quit, wait for the process
#   guest_wait_exit NAME SECONDS   wait for a guest that powers off by itself
#   guest_verify VOLUME NAME...    every WROTE record of those consoles is in the store
# The tag of this run's records is $GUEST_TAG. $GUEST_MEM and $GUEST_ACCEL (default tcg: KVM
# does not boot a stock kernel on the development machines) set the guest's memory and
# accelerator; $QEMU the binary; $GUEST_RECONNECT_DELAY (seconds, unset: none) the NBD
# client's reconnect-delay: requests cut off by a lost connection wait that long for QEMU
# to reconnect, and are then resent, instead of failing at once.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
GUEST_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_SRC_ROOT=$(cd "$GUEST_LIB_DIR/../.." && pwd)
GUEST_MEM=${GUEST_MEM:-256M}
GUEST_ACCEL=${GUEST_ACCEL:-tcg}
GUEST_TAG=run$$
QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || fail "$QEMU is not installed (scripts/install-deps.sh: qemu-system-x86)"

# The kernel and initramfs: made once, kept in var/guest (or $SKERRY_GUEST_DIR).
guest_dir=$("$GUEST_SRC_ROOT/scripts/guest/build.sh") || fail "scripts/guest/build.sh failed"
GUEST_KERNEL=$guest_dir/vmlinuz
GUEST_INITRD=$guest_dir/initramfs.cpio.gz

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# guest_daemon NAME [skerryd args...]: a skerryd on the test store. Busy polling is off: the
# guest runs on TCG and needs the CPU more than its requests need the last microseconds.
guest_daemon() {
  local name=$1; shift
  start_daemon "$name" --busy-poll-us 0 "$@"
}

# guest_start NAME DAEMON VOLUME JOB [COUNT] [--incoming]: starts QEMU; with --incoming it
# waits for a migration (-incoming defer; guest_migrate gives it the address).
guest_start() {
  local name=$1 daemon=$2 volume=$3 job=$4 count=${5:-0} incoming=() disk
  [ "${6:-}" = "--incoming" ] && incoming=(-incoming defer)
  case "$daemon" in
    file:*) disk="driver=file,node-name=disk0,filename=${daemon#file:}" ;;
    *) disk="driver=nbd,node-name=disk0,server.type=unix,server.path=$WORK/$daemon.sock,export=$volume"
       [ -z "${GUEST_RECONNECT_DELAY:-}" ] || disk+=",reconnect-delay=$GUEST_RECONNECT_DELAY" ;;
  esac
  rm -f "$WORK/$name.console" "$WORK/$name.qmp" "$WORK/$name.qmp-events"
  "$QEMU" -accel "$GUEST_ACCEL" -machine pc -m "$GUEST_MEM" -smp 1 -nodefaults -display none -no-reboot \
    -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
    -append "console=ttyS0 panic=-1 quiet guest.job=$job guest.count=$count guest.tag=$GUEST_TAG" \
    -serial "file:$WORK/$name.console" -qmp "unix:$WORK/$name.qmp,server=on,wait=off" \
    -qmp "unix:$WORK/$name.qmp-events,server=on,wait=off" -blockdev "$disk" \
    -d cpu_reset -D "$WORK/$name.cpu.log" \
    -device virtio-blk-pci,drive=disk0 "${incoming[@]}" >"$WORK/$name.qemu.log" 2>&1 &
  local pid=$!
  eval "${name}_qemu_pid=$pid"
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  # QEMU listens on QMP before it opens the disk: started means QMP answers.
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || fail "QEMU $name exited at start: $(tr '\n' ' ' <"$WORK/$name.qemu.log")"
    [ -S "$WORK/$name.qmp" ] && qmp "$name" query-status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "QEMU $name did not answer on QMP within 30 s"
}

qmp() {
  local name=$1; shift
  python3 "$GUEST_LIB_DIR/qmp.py" "$WORK/$name.qmp" "$@"
}

# guest_wrote NAME...: the last WROTE number printed on those consoles (0 if none).
guest_wrote() {
  local files=() n
  for c in "$@"; do [ -e "$WORK/$c.console" ] && files+=("$WORK/$c.console"); done
  [ ${#files[@]} -gt 0 ] || { echo 0; return; }
  n=$(cat "${files[@]}" | grep -ao 'WROTE [0-9]*' | tail -n 1 | cut -d' ' -f2)
  echo "${n:-0}"
}

# guest_crashed NAME: prints the first line of a guest kernel crash on NAME's console, if any,
# a triple fault (QEMU's CPU reset log: with -no-reboot the guest's reset ends QEMU without a
# word on the console), or why guest_wait_wrote found the guest hung ($WORK/NAME.hung).
guest_crashed() {
  { grep -aE "$GUEST_CRASH_RE" "$WORK/$1.console" 2>/dev/null
    grep -a 'Triple fault' "$WORK/$1.cpu.log" 2>/dev/null | sed 's/^/QEMU: the guest reset itself: /'
    cat "$WORK/$1.hung" 2>/dev/null; } | head -n 1 | tr -d '\r' | grep .
}
# ("kernel BUG at" and "invalid opcode: 0000 [#1]" come without "BUG: " or "Oops": a bench run
# saw a list_add corruption end so, and the guest hang with "Fixing recursive fault".)
GUEST_CRASH_RE='BUG: |kernel BUG at|Oops|Kernel panic|general protection fault|stack guard page|invalid opcode|\[#[0-9]+\] |Fixing recursive fault'
GUEST_CRASHED=0

# guest_error NAME: prints the first I/O error on NAME's console, if any: the init script's
# (EIO, KILLED, GUEST-ERROR) or the guest kernel's (a failed request on vda, a buffer error).
guest_error() {
  grep -aE "$GUEST_ERROR_RE" "$WORK/$1.console" 2>/dev/null | head -n 1 | tr -d '\r' | grep .
}
GUEST_ERROR_RE='EIO|KILLED|GUEST-ERROR|I/O error|error, dev vd|blk_update_request'

# guest_wait_wrote COUNT SECONDS NAME...: waits until the consoles reach WROTE COUNT. Fails
# at once when the guest reports an I/O error, its kernel crashes, or the last QEMU named
# exits; with GUEST_ALLOW_CRASH=1 a kernel crash sets GUEST_CRASHED=1 and returns instead.
# A guest that had written, then printed no WROTE for $GUEST_STALL_SECONDS (default 30) while
# its virtio disk holds no request of its (guest_inflight: the storage owes it nothing), has
# stopped asking: after a migration its memory was corrupted as in a crash, without the crash
# line (seen: an empty console; init looping on "Bad file descriptor"). That counts as a
# crash. A request still held is the storage's to answer: the wait goes on to SECONDS.
guest_wait_wrote() {
  local want=$1 secs=$2; shift 2
  local last_name=${*: -1} pid_var deadline n last=-1 since=0
  pid_var="${last_name}_qemu_pid"
  deadline=$(( $(date +%s) + secs ))
  while :; do
    n=$(guest_wrote "$@")
    [ "$n" -ge "$want" ] && return 0
    [ "$n" = "$last" ] || { last=$n since=$(date +%s); }
    if [ "$n" -gt 0 ] && [ $(( $(date +%s) - since )) -ge "${GUEST_STALL_SECONDS:-30}" ] &&
       [ "$(guest_inflight "$last_name")" = 0 ] && ! guest_crashed "$last_name" >/dev/null; then
      echo "hung: no WROTE for ${GUEST_STALL_SECONDS:-30} s after WROTE $n, and QEMU holds no request of the guest's" \
        "($(guest_disk_stats "$last_name"))" >"$WORK/$last_name.hung"
    fi
    if guest_crashed "$last_name" >/dev/null; then
      [ "${GUEST_ALLOW_CRASH:-0}" = 1 ] && { GUEST_CRASHED=1; return 0; }
      fail "guest $last_name: its kernel crashed: $(guest_crashed "$last_name")"
    fi
    guest_error "$last_name" >/dev/null && fail "guest $last_name: $(guest_error "$last_name")"
    # (A kernel crash also ends QEMU, panic=-1 with -no-reboot: look again after an exit.)
    kill -0 "${!pid_var}" 2>/dev/null || guest_crashed "$last_name" >/dev/null ||
      fail "QEMU $last_name exited at WROTE $(guest_wrote "$@") before WROTE $want: $(tr '\n' ' ' <"$WORK/$last_name.qemu.log")"
    [ "$(date +%s)" -lt "$deadline" ] ||
      fail "guest $last_name: WROTE $(guest_wrote "$@") after ${secs}s, waited for WROTE $want" \
        "(QEMU $(guest_status "$last_name"), $(guest_disk_stats "$last_name"), console ends: $(tail -c 120 "$WORK/$last_name.console" | tr -d '\r' | tr '\n' ' '))"
    sleep 0.1
  done
}

# guest_inflight NAME: how many requests of the guest QEMU's virtio disk holds (taken from
# the ring, not yet answered); "?" when QEMU does not say.
guest_inflight() {
  qmp "$1" x-query-virtio-queue-status '{"path": "/machine/peripheral-anon/device[0]/virtio-backend", "queue": 0}' \
    2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["inuse"])' 2>/dev/null || echo "?"
}

# guest_disk_stats NAME: what QEMU's block layer says of the guest's disk (query-blockstats):
# requests done and failed, and how long since the last one ended. For a stalled guest: a
# request QEMU still waits for, or a guest that asks for nothing.
guest_disk_stats() {
  qmp "$1" query-blockstats 2>/dev/null | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d.get("qdev"):
        s = d["stats"]
        idle = s.get("idle_time_ns")
        print("disk: %d reads, %d writes, %d flushes done, %d failed, %s" % (
            s["rd_operations"], s["wr_operations"], s["flush_operations"],
            s["failed_rd_operations"] + s["failed_wr_operations"] + s["failed_flush_operations"],
            "none ended yet" if idle is None else "the last ended %.1f s ago" % (idle / 1e9)))
        break' 2>/dev/null || echo "disk: no blockstats"
}

# guest_stop NAME: asks QEMU to quit (the guest stops wherever it is) and waits for it.
guest_stop() {
  local name=$1 pid_var="${1}_qemu_pid"
  qmp "$name" quit >/dev/null 2>&1 || true
  for _ in $(seq 100); do kill -0 "${!pid_var}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${!pid_var}" 2>/dev/null && { kill -9 "${!pid_var}"; fail "QEMU $name did not quit"; }
  wait "${!pid_var}" 2>/dev/null || true
}

# guest_wait_exit NAME SECONDS: waits for a guest that powers itself off; QEMU must exit 0.
guest_wait_exit() {
  local name=$1 secs=$2 pid_var="${1}_qemu_pid" rc=0
  for _ in $(seq $((secs * 10))); do kill -0 "${!pid_var}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${!pid_var}" 2>/dev/null && fail "QEMU $name still running after ${secs}s"
  wait "${!pid_var}" || rc=$?
  [ "$rc" -eq 0 ] || fail "QEMU $name exited $rc: $(tr '\n' ' ' <"$WORK/$name.qemu.log")"
}

# guest_migrate SRC DST: live migration from QEMU SRC to QEMU DST (started with --incoming)
# over a unix socket; waits until query-migrate says completed and prints its figures.
# Fails if the migration fails or the destination does not run afterwards (with
# GUEST_ALLOW_CRASH=1, a guest kernel crash on the destination sets GUEST_CRASHED=1 instead).
guest_migrate() {
  local src=$1 dst=$2 uri="unix:$WORK/migrate.sock" status info
  rm -f "$WORK/migrate.sock"
  qmp "$dst" migrate-incoming "{\"uri\": \"$uri\"}" >/dev/null || fail "migrate-incoming on $dst failed"
  qmp "$src" migrate "{\"uri\": \"$uri\"}" >/dev/null || fail "migrate on $src failed"
  local deadline=$(( $(date +%s) + 120 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    info=$(qmp "$src" query-migrate) || fail "query-migrate on $src failed"
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("status", "none"))' "$info")
    case "$status" in
      completed) break ;;
      failed|cancelled) fail "migration $src -> $dst $status: $info" ;;
    esac
    sleep 0.1
  done
  [ "$status" = completed ] || fail "migration $src -> $dst still $status after 120s"
  python3 -c '
import json, sys
m = json.loads(sys.argv[1])
ram = m.get("ram", {})
print("migration: total-time %s ms, downtime %s ms, setup-time %s ms, %d MiB sent, %s passes" % (
    m.get("total-time"), m.get("downtime"), m.get("setup-time"),
    ram.get("transferred", 0) >> 20, ram.get("dirty-sync-count")))' "$info"
  guest_wait_status "$dst" running
}

# guest_status NAME: QEMU's run state (running, paused, postmigrate, inmigrate, ...), or
# guest-crashed if QEMU has exited after the guest kernel crashed.
guest_status() {
  local out
  out=$(qmp "$1" query-status 2>&1) || {
    local pid_var="${1}_qemu_pid"
    # A QEMU on its way out (a guest kernel panic ends it) stops answering before it is gone:
    # give it 2 s, so that a crash is not taken for a QEMU that failed.
    for _ in $(seq 20); do kill -0 "${!pid_var}" 2>/dev/null || break; sleep 0.1; done
    if ! kill -0 "${!pid_var}" 2>/dev/null; then
      guest_crashed "$1" >/dev/null && { echo guest-crashed; return 0; }
      fail "QEMU $1 has exited: $(tr '\n' ' ' <"$WORK/$1.qemu.log")"
    fi
    fail "query-status on $1: $out"
  }
  python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$out"
}

# guest_wait_status NAME STATUS: waits up to 10 s for QEMU NAME to reach STATUS. With
# GUEST_ALLOW_CRASH=1, sets GUEST_CRASHED=1 and returns if the guest kernel crashed meanwhile.
guest_wait_status() {
  local status
  for _ in $(seq 100); do
    status=$(guest_status "$1") || exit 1
    if [ "$status" = guest-crashed ] || guest_crashed "$1" >/dev/null; then
      [ "${GUEST_ALLOW_CRASH:-0}" = 1 ] && { GUEST_CRASHED=1; return 0; }
      fail "QEMU $1: the guest kernel crashed: $(guest_crashed "$1")"
    fi
    [ "$status" = "$2" ] && return 0
    sleep 0.1
  done
  fail "QEMU $1 is $status, not $2"
}

# guest_verify VOLUME NAME...: reads the volume from the store (skerry export, not through
# a daemon) and checks it against the consoles of the QEMUs that ran the guest, in order.
guest_verify() {
  local volume=$1; shift
  local consoles=() crashed=()
  [ "${GUEST_ALLOW_CRASH:-0}" = 1 ] && crashed=(--guest-crashed)
  for c in "$@"; do consoles+=("$WORK/$c.console"); done
  "$SKERRY" export "$volume" "$WORK/$volume.verify.raw" || fail "skerry export $volume failed"
  python3 "$GUEST_LIB_DIR/check_records.py" --tag "$GUEST_TAG" --image "$WORK/$volume.verify.raw" \
    "${crashed[@]}" "${consoles[@]}" || fail "volume $volume does not hold what the guest wrote"
  rm -f "$WORK/$volume.verify.raw"
}

# guest_volume NAME SIZE: a thin clone of a small image whose blocks hold data, so the
# guest's first writes land in blocks the clone shares with its parent.
guest_volume() {
  local name=$1 size=$2
  head -c 1M /dev/urandom >"$WORK/base.bin"
  "$SKERRY" create -s "$size" "$name-base" >/dev/null
  "$SKERRY" write "$name-base" "$WORK/base.bin" --offset 0 >/dev/null
  "$SKERRY" snap create "$name-base@gold" >/dev/null
  "$SKERRY" clone "$name-base@gold" "$name" --size "$size" >/dev/null
}
