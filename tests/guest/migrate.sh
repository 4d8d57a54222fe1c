#!/usr/bin/env bash
# Live migration of a real QEMU guest that keeps writing to a skerry volume: every record
# the guest printed as written, on the source before the migration and on the destination
# after it, must be in the store at the end.
#
#   migrate.sh one-daemon    source and destination QEMU attached to the same skerryd
#   migrate.sh two-daemons   source on skerryd a, destination on skerryd b, one store (the
#                            layout of two hosts; needs the write lease to move between
#                            daemons)
#
# The guest writes until it is stopped; the test waits for GUEST_BEFORE records on the
# source and GUEST_AFTER more on the destination (defaults 50 and 50).
#
# QEMU 7.2 on TCG sometimes corrupts the guest's memory in a migration: the guest kernel
# oopses on the destination right after it resumes. That happens the same with qemu-nbd
# serving a raw file instead of skerryd, and with a raw file as the disk (no NBD at all),
# and the guest reads nothing from its disk after boot: it says nothing about the storage.
# When it happens the records printed so far are still checked against the store, and the
# test starts over with a new guest and volume, up to GUEST_ATTEMPTS times (default 6: with
# about one first migration in three crashing, 4 would fail about one CI run in 80), saying
# so. Any other failure ends the test.
source "$(dirname "$0")/lib.sh"
layout=${1:?usage: migrate.sh one-daemon|two-daemons}
before=${GUEST_BEFORE:-50}
after=${GUEST_AFTER:-50}
attempts=${GUEST_ATTEMPTS:-6}

guest_daemon a
case "$layout" in
  one-daemon) dst_daemon=a ;;
  two-daemons) guest_daemon b; dst_daemon=b ;;
  *) fail "unknown layout '$layout' (one-daemon or two-daemons)" ;;
esac

# attempt N: one migration of a new guest on a new clone vmN. If the guest kernel crashed,
# checks what it had printed and sets GUEST_CRASHED=1; fails the test on anything else.
attempt() {
  local n=$1 vol=vm$1 src=src$1 dst=dst$1 t0 at
  GUEST_CRASHED=0
  guest_volume "$vol" 64M
  step "attempt $n: source guest on skerryd a"
  t0=$(now)
  guest_start "$src" a "$vol" write 0
  guest_wait_wrote 1 120 "$src"
  echo "boot to the first WROTE: $(elapsed "$t0") s"
  guest_wait_wrote "$before" 120 "$src"

  step "attempt $n: destination QEMU on skerryd $dst_daemon, waiting for the migration"
  guest_start "$dst" "$dst_daemon" "$vol" write 0 --incoming
  step "attempt $n: migrate $src -> $dst at WROTE $(guest_wrote "$src")"
  GUEST_ALLOW_CRASH=1 guest_migrate "$src" "$dst"
  guest_wait_status "$src" postmigrate
  if [ "$GUEST_CRASHED" = 0 ]; then
    at=$(guest_wrote "$src" "$dst")
    echo "source stopped at WROTE $(guest_wrote "$src"); the destination goes on"
    GUEST_ALLOW_CRASH=1 guest_wait_wrote $((at + after)) 120 "$src" "$dst"
  fi

  step "attempt $n: stop both QEMUs, verify"
  guest_stop "$dst"
  guest_stop "$src"
  echo "records: $(guest_wrote "$src") printed on the source, $(guest_wrote "$src" "$dst") in all"
  if [ "$GUEST_CRASHED" = 1 ]; then
    echo "attempt $n: the guest kernel crashed on the destination: $(guest_crashed "$dst")"
    GUEST_ALLOW_CRASH=1 guest_verify "$vol" "$src" "$dst"
  else
    guest_verify "$vol" "$src" "$dst"
  fi
}

for n in $(seq 1 "$attempts"); do
  attempt "$n"
  [ "$GUEST_CRASHED" = 0 ] && break
  [ "$n" -lt "$attempts" ] || fail "the guest kernel crashed after the migration in all $attempts attempts"
  echo "attempt $n: a guest kernel crash is QEMU's (see the header); starting over"
done
stop_daemon a
[ "$layout" = two-daemons ] && stop_daemon b
"$SKERRY" check >/dev/null || fail "skerry check found damage after the migration"
echo "OK: guest_migrate ($layout)"
