#!/usr/bin/env bash
# fio's nbd engine, random writes with verification at queue depth 32, over one
# and over several connections to the same export (multi-conn).
source "$(dirname "$0")/lib.sh"
requires fio

start_server s --export disk:256M
cd "$TMP"  # fio saves verify state files in the working directory

for jobs in 1 4; do
  out=$(fio --name=verify --ioengine=nbd --uri="$(uri s disk)" --rw=randwrite --bs=4k \
            --iodepth=32 --size=64M --numjobs=$jobs --offset_increment=64M --verify=crc32c \
            --verify_fatal=1 --do_verify=1 --group_reporting 2>&1) || fail "fio ($jobs jobs): $out"
  grep -q 'verify: bad' <<<"$out" && fail "fio verify ($jobs jobs): $out"
  grep -qE 'err= *0' <<<"$out" || fail "fio reported errors ($jobs jobs): $out"
done
# Mixed sizes and a flush now and then.
out=$(fio --name=mixed --ioengine=nbd --uri="$(uri s disk)" --rw=randrw --bsrange=512-256k \
          --iodepth=16 --size=64M --io_size=128M --fsync=64 --verify=md5 --do_verify=1 2>&1) ||
  fail "fio mixed: $out"

stop_server s
echo PASS
