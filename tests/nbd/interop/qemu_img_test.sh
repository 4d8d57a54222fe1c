#!/usr/bin/env bash
# qemu-img info, convert (both directions), compare and map against the server:
# data and holes must survive the round trip, and map must see the holes.
source "$(dirname "$0")/lib.sh"
requires qemu-img

start_server s --export disk:64M --export img:16M:ro:fill=0xab

# info: the size and the raw format.
info=$(qemu-img info --output=json "$(uri s img)")
grep -q '"virtual-size": 16777216' <<<"$info" || fail "qemu-img info: $info"

# map of the read-only export: first half data, second half a hole that reads as zeros.
map=$(qemu-img map --output=json "$(uri s img)")
expect_eq "map" "$(echo "$map" | tr -d ' \n')" \
  '[{"start":0,"length":8388608,"depth":0,"present":true,"zero":false,"data":true,"offset":0},{"start":8388608,"length":8388608,"depth":0,"present":true,"zero":true,"data":false,"offset":8388608}]'

# A sparse local image: 1 MiB of data at 0, 2 MiB at 20 MiB, zeros elsewhere.
src=$TMP/src.raw
truncate -s 64M "$src"
head -c 1M /dev/urandom | dd of="$src" conv=notrunc status=none
head -c 2M /dev/urandom | dd of="$src" bs=1M seek=20 conv=notrunc status=none

# Upload, compare, and check the export stayed sparse.
qemu-img convert -n -f raw -O raw "$src" "$(uri s disk)"
qemu-img compare -f raw -F raw "$src" "$(uri s disk)" >/dev/null || fail "compare after upload"
data_bytes=$(qemu-img map --output=json "$(uri s disk)" | python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')
[ "$data_bytes" -le $((4 << 20)) ] || fail "upload was not sparse: $data_bytes data bytes"

# Download back into a fresh file, and compare again.
qemu-img convert -f raw -O raw "$(uri s disk)" "$TMP/back.raw"
cmp "$src" "$TMP/back.raw" || fail "downloaded image differs"
qemu-img compare -f raw -F raw "$(uri s img)" "$(uri s disk)" >/dev/null && fail "compare must see a difference"

stop_server s
echo PASS
