#!/usr/bin/env bash
# An OSD dies under a VM's disk: with the volume in a size-3 pool, SIGKILL one OSD in the
# middle of a fio verify workload through skerryd; fio must see no error and every block
# must verify; then the OSD is restarted and a second verify pass reads everything back.
#
# Needs: SKERRY_BIN, SKERRY_CEPH_DIR (the fixture's cluster, scripts/ceph-cluster.sh) and
# SKERRY_E2E_STORE (a URI on a size-3 pool). CTest runs it alone (RUN_SERIAL): the other
# tests' size-1 pools stall while an OSD is down.
source "$(dirname "$0")/../e2e/lib.sh"
: "${SKERRY_CEPH_DIR:?set SKERRY_CEPH_DIR to the directory of the test cluster}"
CLUSTER="$(dirname "$0")/../../scripts/ceph-cluster.sh"
command -v fio >/dev/null || fail "fio is not installed (scripts/install-deps.sh)"
victim=${SKERRY_OSD_VICTIM:-1}
restarted=0
cleanup_hooks+=('[ $restarted = 1 ] || "$CLUSTER" start-osd "$SKERRY_CEPH_DIR" "$victim" || true')

"$SKERRY" create -s 512M disk >/dev/null
start_daemon d
cd "$WORK"  # fio keeps its verify state files in the working directory

# 256 MiB of random writes (4-64 KiB, QD16, a flush every 32) and then the verify pass.
fio --name=osdkill --ioengine=nbd --uri="$(nbd_uri d disk)" --rw=randwrite --bsrange=4k-64k \
    --iodepth=16 --size=256M --fsync=32 --verify=crc32c --verify_fatal=1 --do_verify=1 \
    >"$WORK/fio.out" 2>&1 &
fio_pid=$!
sleep 3
kill -0 "$fio_pid" 2>/dev/null || fail "fio ended before the OSD was killed: $(cat "$WORK/fio.out")"
ceph -c "$SKERRY_CEPH_DIR/ceph.conf" osd stat 2>&1 | grep '3 up' >/dev/null ||
  fail "an OSD was already down before the test: $(ceph -c "$SKERRY_CEPH_DIR/ceph.conf" osd stat 2>&1); $(tail -n 5 "$SKERRY_CEPH_DIR"/log/osd.*.log)"
"$CLUSTER" kill-osd "$SKERRY_CEPH_DIR" "$victim"
sleep 8  # writes go on degraded (min_size 2)
"$CLUSTER" start-osd "$SKERRY_CEPH_DIR" "$victim"
restarted=1
rc=0
wait "$fio_pid" || rc=$?
[ $rc = 0 ] || fail "fio failed while an OSD was killed and restarted: $(cat "$WORK/fio.out")"
grep -qE 'err= *0' "$WORK/fio.out" || fail "fio saw errors: $(cat "$WORK/fio.out")"
grep -q 'verify: bad' "$WORK/fio.out" && fail "fio verify: $(cat "$WORK/fio.out")"
written=$(grep -oE 'WRITE: bw=[^,]*, [^,]*, io=[^ ]*' "$WORK/fio.out" | sed 's/.*io=//')
read_back=$(grep -oE 'READ: bw=[^,]*, [^,]*, io=[^ ]*' "$WORK/fio.out" | sed 's/.*io=//')
[ -n "$written" ] && [ -n "$read_back" ] || fail "fio did not report both phases: $(cat "$WORK/fio.out")"
grep -qE '^[0-9T:.-]+ (error|critical) ' "$WORK/d.log" && fail "skerryd logged errors: $(grep -E ' (error|critical) ' "$WORK/d.log")"

# Everything once more from a fresh daemon, now that the OSD is back (and recovering).
stop_daemon d
start_daemon d
out=$(fio --name=osdkill --ioengine=nbd --uri="$(nbd_uri d disk)" --rw=randwrite --bsrange=4k-64k \
          --iodepth=16 --size=256M --verify=crc32c --verify_fatal=1 --verify_only 2>&1) ||
  fail "verify after the OSD came back: $out"
grep -qE 'err= *0' <<<"$out" || fail "verify after the OSD came back: $out"
stop_daemon d
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"], r' ||
  fail "skerry check"
echo "OK: osd.$victim killed under fio ($written written, $read_back verified), restarted, verified again"
