#!/usr/bin/env bash
# A well-behaved client (fio with verification) runs while hostile clients attack
# the same server: the server must not crash, leak exports, or disturb fio.
source "$(dirname "$0")/lib.sh"
requires fio python3

start_server s --export disk:256M
cd "$TMP"  # fio saves verify state files in the working directory
python3 "$HERE/hostile_clients.py" "$TMP/s.sock" 6 >"$TMP/hostile.out" 2>&1 &
hostile=$!
out=$(fio --name=victim --ioengine=nbd --uri="$(uri s disk)" --rw=randwrite --bs=4k --iodepth=32 \
          --size=64M --verify=crc32c --verify_fatal=1 --do_verify=1 --runtime=5 2>&1) ||
  fail "fio beside hostile clients: $out"
grep -qE 'err= *0' <<<"$out" || fail "fio saw errors: $out"
wait "$hostile" || fail "hostile client script failed: $(cat "$TMP/hostile.out")"
cat "$TMP/hostile.out"
kill -0 "$PID_s" || fail "server died"
stop_server s
echo PASS
