#!/usr/bin/env bash
# Live migration of a real QEMU guest that keeps writing to a skerry volume: every record
# the guest printed as written, on every QEMU that ran it, must be in the store at the end.
#
#   migrate.sh one-daemon    source and destination QEMU attached to the same skerryd
#   migrate.sh two-daemons   source on skerryd a, destination on skerryd b, one store (the
#                            layout of two hosts: the write lease moves from a to b at the
#                            destination's first write); then the source QEMU quits, skerryd
#                            a stops, and the guest must go on writing through b
#   migrate.sh ping-pong     a to b as above, the source quits; then a new destination QEMU
#                            on a takes the guest back from b (the lease moves back); then
#                            the QEMU on b quits, skerryd b stops, the guest writes on
#   migrate.sh failed        a destination QEMU on b is killed (kill -9) mid-migration (the
#                            bandwidth is held at 1 MiB/s so that it is still copying): the
#                            migration fails, the guest goes on writing on a; then a second
#                            migration, to a new destination on b, must succeed, and skerryd
#                            a stops as in two-daemons
#
# The guest writes until it is stopped; the test waits for GUEST_BEFORE records on the
# source and GUEST_AFTER more after each step (defaults 50 and 50).
#
# QEMU 7.2 on TCG sometimes corrupts the guest's memory in a migration: the guest kernel
# oopses on the destination right after it resumes (or, more rarely, the guest hangs without
# a word while its disk owes it nothing: lib.sh's guest_wait_wrote counts that as a crash). That happens the same with qemu-nbd
# serving a raw file instead of skerryd, and with a raw file as the disk (no NBD at all),
# and the guest reads nothing from its disk after boot: it says nothing about the storage.
# When it happens the records printed so far are still checked against the store, and the
# test starts over with a new guest, volume and daemons, up to GUEST_ATTEMPTS times (default
# 6: with about one first migration in three crashing, 4 would fail about one CI run in 80),
# saying so. Any other failure ends the test.
source "$(dirname "$0")/lib.sh"
layout=${1:?usage: migrate.sh one-daemon|two-daemons|ping-pong|failed}
before=${GUEST_BEFORE:-50}
after=${GUEST_AFTER:-50}
attempts=${GUEST_ATTEMPTS:-6}
case "$layout" in
  one-daemon|two-daemons|ping-pong|failed) ;;
  *) fail "unknown layout '$layout' (one-daemon, two-daemons, ping-pong or failed)" ;;
esac

# The attempt's volume, and the QEMUs that ran its guest, in order (their consoles, joined,
# are the guest's output).
vol='' chain=()

# migrate_to FROM TO DAEMON: a new destination QEMU TO on skerryd DAEMON takes the guest from
# FROM, which must end up postmigrate; then the guest must write $after more records on TO.
# If the guest kernel crashed, sets GUEST_CRASHED=1 and returns.
migrate_to() {
  local from=$1 to=$2 daemon=$3 at
  step "attempt $n: destination QEMU $to on skerryd $daemon; migrate $from -> $to at WROTE $(guest_wrote "${chain[@]}")"
  guest_start "$to" "$daemon" "$vol" write 0 --incoming
  GUEST_ALLOW_CRASH=1 guest_migrate "$from" "$to"
  guest_wait_status "$from" postmigrate
  chain+=("$to")
  [ "$GUEST_CRASHED" = 0 ] || return 0
  at=$(guest_wrote "${chain[@]}")
  echo "$from stopped at WROTE $(guest_wrote "$from"); $to goes on"
  GUEST_ALLOW_CRASH=1 guest_wait_wrote $((at + after)) 120 "${chain[@]}"
}

# failed_migration FROM TO DAEMON: a destination QEMU TO on skerryd DAEMON is killed with
# kill -9 while the migration from FROM is copying memory; FROM must see the migration fail,
# keep running and write $after more records (on its own daemon). TO's guest never ran.
failed_migration() {
  local from=$1 to=$2 daemon=$3 info status sent bw at t_kill pid_var="${2}_qemu_pid"
  step "attempt $n: destination QEMU $to on skerryd $daemon; migrate $from -> $to at 1 MiB/s, kill -9 $to mid-way"
  guest_start "$to" "$daemon" "$vol" write 0 --incoming
  bw=$(qmp "$from" query-migrate-parameters | python3 -c 'import json,sys; print(json.load(sys.stdin)["max-bandwidth"])')
  qmp "$from" migrate-set-parameters '{"max-bandwidth": 1048576}' >/dev/null
  rm -f "$WORK/migrate.sock"
  qmp "$to" migrate-incoming "{\"uri\": \"unix:$WORK/migrate.sock\"}" >/dev/null || fail "migrate-incoming on $to failed"
  qmp "$from" migrate "{\"uri\": \"unix:$WORK/migrate.sock\"}" >/dev/null || fail "migrate on $from failed"
  for _ in $(seq 100); do
    info=$(qmp "$from" query-migrate) || fail "query-migrate on $from failed"
    read -r status sent < <(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(m.get("status"), m.get("ram", {}).get("transferred", 0))' "$info")
    [ "$status" = active ] && [ "$sent" -ge $((1 << 20)) ] && break
    sleep 0.1
  done
  [ "$status" = active ] || fail "migration $from -> $to is $status, not active, before the kill: $info"
  echo "kill -9 $to with the migration active, $((sent >> 10)) KiB sent, at WROTE $(guest_wrote "${chain[@]}")"
  t_kill=$(now)
  kill -9 "${!pid_var}"
  wait "${!pid_var}" 2>/dev/null || true
  for _ in $(seq 300); do
    info=$(qmp "$from" query-migrate) || fail "query-migrate on $from failed"
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("status"))' "$info")
    [ "$status" = failed ] && break
    sleep 0.1
  done
  [ "$status" = failed ] || fail "migration $from -> $to is $status 30 s after its destination was killed"
  guest_wait_status "$from" running
  qmp "$from" migrate-set-parameters "{\"max-bandwidth\": $bw}" >/dev/null
  at=$(guest_wrote "${chain[@]}")
  echo "the migration failed ($(elapsed "$t_kill") s after the kill); $from runs on at WROTE $at"
  guest_wait_wrote $((at + after)) 120 "${chain[@]}"
  ! grep -aq WROTE "$WORK/$to.console" 2>/dev/null || fail "the killed destination $to printed WROTE lines"
}

# retire QEMU DAEMON: QEMU, the source of a finished migration, quits (as a management layer
# ends it); then skerryd DAEMON stops (SIGTERM, exit 0), and the guest must write $after more
# records through the other daemon.
retire() {
  local at
  step "attempt $n: $1 quits, skerryd $2 stops; the guest writes on"
  guest_stop "$1"
  stop_daemon "$2"
  at=$(guest_wrote "${chain[@]}")
  GUEST_ALLOW_CRASH=1 guest_wait_wrote $((at + after)) 120 "${chain[@]}"
}

# attempt N: a new guest on a new clone vmN, new daemons a and b, and the layout's
# migrations. If the guest kernel crashed, checks what it had printed and sets
# GUEST_CRASHED=1; fails the test on anything else.
attempt() {
  local t0 q d pid_var
  n=$1 vol=vm$1 chain=("src$1")
  GUEST_CRASHED=0
  guest_volume "$vol" 64M
  guest_daemon a
  [ "$layout" = one-daemon ] || guest_daemon b
  step "attempt $n: source guest on skerryd a"
  t0=$(now)
  guest_start "src$n" a "$vol" write 0
  guest_wait_wrote 1 120 "src$n"
  echo "boot to the first WROTE: $(elapsed "$t0") s"
  guest_wait_wrote "$before" 120 "src$n"

  case "$layout" in
    one-daemon) migrate_to "src$n" "dst$n" a ;;
    two-daemons)
      migrate_to "src$n" "dst$n" b
      [ "$GUEST_CRASHED" = 1 ] || retire "src$n" a ;;
    ping-pong)
      migrate_to "src$n" "dst$n" b
      if [ "$GUEST_CRASHED" = 0 ]; then
        guest_stop "src$n"
        migrate_to "dst$n" "back$n" a
      fi
      [ "$GUEST_CRASHED" = 1 ] || retire "dst$n" b ;;
    failed)
      failed_migration "src$n" "killed$n" b
      migrate_to "src$n" "dst$n" b
      [ "$GUEST_CRASHED" = 1 ] || retire "src$n" a ;;
  esac

  step "attempt $n: stop the QEMUs and daemons, verify"
  for q in "${chain[@]}"; do guest_stop "$q"; done
  for d in a b; do
    pid_var=${d}_pid
    if [ -n "${!pid_var:-}" ] && kill -0 "${!pid_var}" 2>/dev/null; then stop_daemon "$d"; fi
  done
  echo "records: $(guest_wrote "${chain[@]}") printed by ${chain[*]}"
  for d in a b; do
    [ ! -e "$WORK/$d.log" ] || grep -h 'handoff:' "$WORK/$d.log" | sed "s/^/  skerryd $d: /" || true
  done
  if [ "$GUEST_CRASHED" = 1 ]; then
    echo "attempt $n: the guest crashed on ${chain[*]: -1}: $(guest_crashed "${chain[@]: -1}")"
    GUEST_ALLOW_CRASH=1 guest_verify "$vol" "${chain[@]}"
  else
    guest_verify "$vol" "${chain[@]}"
  fi
}

for n in $(seq 1 "$attempts"); do
  attempt "$n"
  [ "$GUEST_CRASHED" = 0 ] && break
  [ "$n" -lt "$attempts" ] || fail "the guest crashed after the migration in all $attempts attempts"
  echo "attempt $n: a guest crash at a migration is QEMU's (see the header); starting over"
done
"$SKERRY" check >/dev/null || fail "skerry check found damage after the migration"
echo "OK: guest_migrate ($layout)"
