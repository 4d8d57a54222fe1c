#!/usr/bin/env bash
# nbdinfo: --json, --list, --map, and --can/--is for every capability of a
# writable and a read-only export.
source "$(dirname "$0")/lib.sh"
requires nbdinfo python3

start_server s --export disk:32M --export ro:8M:ro:fill=0x42

json=$(nbdinfo --json "$(uri s disk)")
echo "$json" | python3 -c '
import json, sys
e = json.load(sys.stdin)["exports"][0]
want = {"export-size": 32 << 20, "is_read_only": False, "can_flush": True, "can_fua": True,
        "can_trim": True, "can_zero": True, "can_fast_zero": True, "can_cache": True,
        "can_df": True, "can_multi_conn": True, "is_rotational": False,
        "block_size_minimum": 1, "block_size_preferred": 4096, "block_size_maximum": 32 << 20}
bad = {k: (e.get(k), v) for k, v in want.items() if e.get(k) != v}
assert not bad, bad
assert "base:allocation" in e["contexts"], e["contexts"]
' || fail "nbdinfo --json: $json"

list=$(nbdinfo --list --json "$(uri s '')")
names=$(echo "$list" | python3 -c 'import json,sys; print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))')
# skerryd lists snapshots as exports too; a qemu-nbd process serves one export.
expect_eq "nbdinfo --list" "$names" "$(by_backend "disk ro" "disk ro ro@ro" "disk")"

map=$(nbdinfo --map "$(uri s ro)" | tr -s ' \t' ' ' | sed 's/^ //')
expect_eq "nbdinfo --map" "$map" "0 4194304 0 data
4194304 4194304 3 hole,zero"

# --can / --is answer through the exit status: 0 yes, 2 no.
can() {  # can EXPORT FEATURE EXPECTED(yes|no)
  local rc=0
  nbdinfo --can "$2" "$(uri s "$1")" || rc=$?
  expect_eq "--can $2 on $1" "$([ $rc = 0 ] && echo yes || echo no)" "$3"
}
is() {
  local rc=0
  nbdinfo --is "$2" "$(uri s "$1")" || rc=$?
  expect_eq "--is $2 on $1" "$([ $rc = 0 ] && echo yes || echo no)" "$3"
}
for f in connect read write flush fua trim zero fast-zero cache df multi-conn structured-reply; do
  can disk "$f" yes
done
for f in connect read flush cache df multi-conn structured-reply; do can ro "$f" yes; done
for f in write trim zero fast-zero; do can ro "$f" no; done
# FUA on a read-only export: qemu-nbd 7.2 advertises it anyway (harmless, never usable).
can ro fua "$(by_backend no no yes)"
is disk read-only no
is ro read-only yes
is disk rotational no
is disk tls no

stop_server s
echo PASS
