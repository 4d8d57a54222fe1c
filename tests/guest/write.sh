#!/usr/bin/env bash
# A real QEMU guest writes to a thin clone served by skerryd: each record it prints as
# written (after a direct write and a flush returned) must be in the store once QEMU and
# skerryd are gone. GUEST_RECORDS sets how many records (default 200).
source "$(dirname "$0")/lib.sh"
records=${GUEST_RECORDS:-200}

guest_volume vm 64M
guest_daemon d
step "boot the guest on clone vm, $records records"
t0=$(now)
guest_start g d vm write "$records"
guest_wait_wrote 1 120 g
echo "boot to the first WROTE: $(elapsed "$t0") s"
t1=$(now)
guest_wait_wrote "$records" 120 g
echo "$records records in $(elapsed "$t1") s"
guest_wait_exit g 30  # the guest powers off after its last record
grep -aq "DONE $records" "$WORK/g.console" || fail "the guest did not print DONE $records"
stop_daemon d

step "verify"
guest_verify vm g
"$SKERRY" check >/dev/null || fail "skerry check found damage after the guest's writes"
echo "OK: guest_write"
