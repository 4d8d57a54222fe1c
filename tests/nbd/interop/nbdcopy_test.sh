#!/usr/bin/env bash
# nbdcopy both ways, with multi-conn (4 connections, as nbdcopy does when the
# server advertises it) and without (--connections=1): data must arrive intact
# and holes must stay holes.
source "$(dirname "$0")/lib.sh"
requires nbdcopy qemu-img python3

start_server s --export a4:64M --export b4:64M --export a1:64M --export b1:64M --export c:64M

src=$TMP/src.raw
truncate -s 64M "$src"
for mib in 0 7 8 31 63; do
  head -c 1M /dev/urandom | dd of="$src" bs=1M seek=$mib conv=notrunc status=none
done

data_mib() {  # MiB of data blocks qemu-img map sees in an export
  qemu-img map --output=json "$1" | python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]) >> 20)'
}

for conns in 4 1; do
  nbdcopy --connections=$conns "$src" "$(uri s a$conns)"
  nbdcopy --connections=$conns "$(uri s a$conns)" "$(uri s b$conns)"
  nbdcopy --connections=$conns "$(uri s b$conns)" "$TMP/back-$conns.raw"
  cmp "$src" "$TMP/back-$conns.raw" || fail "round trip with $conns connections differs"
  expect_eq "data MiB in b$conns" "$(data_mib "$(uri s b$conns)")" 5
done

# nbdcopy with --request-size and many requests in flight.
nbdcopy --connections=4 --requests=64 --request-size=65536 "$src" "$(uri s c)"
nbdcopy "$(uri s c)" "$TMP/back-c.raw"
cmp "$src" "$TMP/back-c.raw" || fail "small-request copy differs"

stop_server s
echo PASS
