#!/usr/bin/env bash
# skerryd killed (kill -9) under a real QEMU guest that keeps writing, and restarted at once
# with the same config file (same sockets, same admin socket): the guest must not see an I/O
# error, and must go on writing as soon as the new daemon serves.
#
# QEMU's NBD client runs with reconnect-delay (GUEST_RECONNECT_DELAY, default 5 s): the
# requests the kill cut off wait that long for a new connection and are then resent. The
# write lease stays skerryd's default (60 s), far longer than that: the restarted daemon must
# take the locks its dead predecessor left (the lock names the same admin socket) at once,
# not wait for them to lapse. RESTART_LEASE_SECONDS sets the lease in the config instead.
#
# Prints the time from the restart to the guest's next WROTE. Every record the guest printed
# must be in the store at the end; the guest's console must show no I/O error (the init
# script's EIO, or the kernel's "I/O error", "Buffer I/O error", "blk_update_request").
# GUEST_BEFORE (default 50) records before the kill, GUEST_AFTER (default 50) after it;
# GUEST_KILLS (default 1) kills in a row.
source "$(dirname "$0")/lib.sh"
export GUEST_RECONNECT_DELAY=${GUEST_RECONNECT_DELAY:-5}
before=${GUEST_BEFORE:-50}
after=${GUEST_AFTER:-50}
kills=${GUEST_KILLS:-1}

{
  echo "store = \"$SKERRY_STORE\""
  echo "listen = [\"unix:$WORK/d.sock\"]"
  echo "admin_socket = \"$WORK/d.admin\""
  echo "busy_poll_us = 0"
  [ -z "${RESTART_LEASE_SECONDS:-}" ] || echo "lock_lease_seconds = $RESTART_LEASE_SECONDS"
} >"$WORK/skerryd.toml"

# launch LOG: skerryd with the config file; returns once it serves. A killed daemon leaves
# its socket files behind: the new one must cope (they are not removed here).
launch() {
  "$SKERRYD" --config "$WORK/skerryd.toml" >"$WORK/$1" 2>&1 &
  d_pid=$!
  cleanup_hooks+=("kill -9 $d_pid 2>/dev/null")
  for _ in $(seq 500); do
    grep -q 'admin socket' "$WORK/$1" && return 0
    kill -0 "$d_pid" 2>/dev/null || fail "skerryd died at start: $(cat "$WORK/$1")"
    sleep 0.02
  done
  fail "skerryd did not start within 10 s: $(cat "$WORK/$1")"
}

# On a failure, the daemons' last words (lib's exit trap has the exit status in rc).
cleanup_hooks+=('[ "$rc" -eq 0 ] || for f in "$WORK"/d*.log; do echo "--- $f" >&2; tail -n 25 "$f" >&2; done')
guest_volume vm 64M
# Known gap (docs/crash-contract.md, "Process death"): an acknowledged write whose effect lives
# only in skerryd's memory until the next flush (a first write's map entry, a write held for a
# deferred copy-up) dies with skerryd, and QEMU's reconnect resends only the requests in
# flight, so the guest's next flush does not notice. Written in place into blocks the volume
# already owns, a write is in the kernel when acknowledged and survives. By default the
# volume is filled first, so this test covers what holds today; RESTART_FRESH=1 runs it on
# the clone as it is and shows the gap (records lost).
if [ -z "${RESTART_FRESH:-}" ]; then
  head -c 64M /dev/zero | "$SKERRY" write vm - >/dev/null
fi
launch d.log
step "guest on skerryd (NBD reconnect-delay ${GUEST_RECONNECT_DELAY} s)"
t0=$(now)
guest_start g d vm write 0
guest_wait_wrote 1 120 g
echo "boot to the first WROTE: $(elapsed "$t0") s"
guest_wait_wrote "$before" 120 g

for k in $(seq 1 "$kills"); do
  step "kill -9 skerryd at WROTE $(guest_wrote g), restart it with the same config"
  t_kill=$(now)
  kill -9 "$d_pid"
  wait "$d_pid" 2>/dev/null || true
  at=$(guest_wrote g)
  t_restart=$(now)
  launch "d.$k.log"
  echo "restarted in $(elapsed "$t_restart") s"
  guest_wait_wrote $((at + 1)) 60 g
  echo "restart to the next WROTE ($((at + 1))): $(elapsed "$t_restart") s ($(elapsed "$t_kill") s from the kill)"
  guest_wait_wrote $((at + after)) 120 g
  echo "WROTE $(guest_wrote g): records keep coming"
  grep -i 'lock' "$WORK/d.$k.log" | sed 's/^/  restarted skerryd: /' || true
done

step "stop the guest and skerryd, verify"
guest_stop g
stop_daemon d
! guest_error g >/dev/null || fail "the guest reported an I/O error: $(guest_error g)"
guest_verify vm g
"$SKERRY" check >/dev/null || fail "skerry check found damage after the restarts"
echo "OK: guest_restart"
