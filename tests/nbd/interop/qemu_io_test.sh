#!/usr/bin/env bash
# qemu-io against the server: write -P / read -P, write -z (with and without
# unmap), discard, flush, map.
source "$(dirname "$0")/lib.sh"
requires qemu-io

start_server s --export disk:16M --export ro:4M:ro

# qemu-io exits non-zero on some failures only: judge by its output.
qio() { qemu-io -f raw "$@" 2>&1 || true; }
out=$(qio -c 'write -P 0x5a 0 1M' -c 'write -P 0x33 4M 64k' -c 'flush' \
          -c 'read -P 0x5a 0 1M' -c 'read -P 0x33 4M 64k' -c 'read -P 0 8M 1M' "$(uri s disk)")
grep -qiE 'verification failed|error|failed' <<<"$out" && fail "qemu-io write/read: $out"

# write -z allocates zeros; write -z -u may unmap (a hole); discard punches a hole.
out=$(qio -c 'write -P 0x11 2M 2M' -c 'write -z 2M 64k' -c 'write -z -u 3M 1M' -c 'discard 0 512k' \
          -c 'read -P 0 2M 64k' -c 'read -P 0x11 2162688 64k' -c 'read -P 0 3M 1M' -c 'read -P 0 0 512k' \
          -c 'read -P 0x5a 512k 512k' -c 'flush' "$(uri s disk)")
grep -qiE 'verification failed|error|failed' <<<"$out" && fail "qemu-io zero/discard: $out"

# qemu-io's map runs (it reports allocation relative to a backing chain, so on a
# raw export it calls everything allocated); qemu-img map shows the holes.
map=$(qio -c 'map' "$(uri s disk)")
grep -q '16 MiB (0x1000000) bytes *allocated at offset 0 bytes' <<<"$map" || fail "qemu-io map: $map"
layout=$(qemu-img map --output=json "$(uri s disk)" | python3 -c '
import json, sys
print(" ".join("%d+%d:%s%s" % (e["start"] >> 10, e["length"] >> 10, "D" if e["data"] else "-",
                             "Z" if e["zero"] else "-") for e in json.load(sys.stdin)))')
# KiB: discarded hole, data, never written, zeroed but allocated (no -u), data,
# unmapped by -z -u, data, never written. How the zeroed-but-allocated range is
# reported is the server's choice: nbd_test_server flags it data+zero; skerryd
# stores a block of zeros and calls it data; qemu-nbd on ext4 lets it become a hole.
expect_eq "layout after zero/discard" "$layout" "$(by_backend \
  "0+512:-Z 512+512:D- 1024+1024:-Z 2048+64:DZ 2112+960:D- 3072+1024:-Z 4096+64:D- 4160+12224:-Z" \
  "0+512:-Z 512+512:D- 1024+1024:-Z 2048+1024:D- 3072+1024:-Z 4096+64:D- 4160+12224:-Z" \
  "0+512:-Z 512+512:D- 1024+1088:-Z 2112+960:D- 3072+1024:-Z 4096+64:D- 4160+12224:-Z")"

# Reads of about 1 MiB that do not start or end on a 4 KiB page, and a read past the end of
# an object that ends mid-page (a 512-byte write into an empty block): skerryd reads of 64 KiB
# and more go through a 1 MiB pipe, where every page piece takes a slot, so these need one
# slot more than the bytes they carry and must still be answered (with the right bytes).
out=$(qio -c 'write -P 0x61 8M 4M' -c 'read -P 0x61 8389120 1M' -c 'read -P 0x61 9436672 1048064' \
          -c 'write -P 0x62 12M 512' -c 'read -P 0x62 12M 512' -c 'read -P 0 12583424 1048064' \
          -c 'read -P 0 12583424 1M' -c 'read 12M 1M' "$(uri s disk)")
grep -qiE 'verification failed|error|failed' <<<"$out" && fail "qemu-io reads off page boundaries: $out"

# Writes to a read-only export fail, reads work.
out=$(qio -r -c 'read -P 0 0 4M' "$(uri s ro)")
grep -qE 'failed|error' <<<"$out" && fail "read-only read: $out"
out=$(qio -c 'write -P 1 0 4k' "$(uri s ro)" || true)
grep -qiE 'read-only|Operation not permitted|Permission denied' <<<"$out" || fail "read-only write: $out"

stop_server s
echo PASS
