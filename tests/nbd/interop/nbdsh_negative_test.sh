#!/usr/bin/env bash
# Negative cases with nbdsh (libnbd, strict mode off), against nbd_test_server and,
# as the reference, against qemu-nbd. The script names the three answers where
# qemu-nbd 7.2 differs (EINVAL where the spec recommends ENOSPC, EOVERFLOW, EPERM).
source "$(dirname "$0")/lib.sh"
requires nbdsh qemu-nbd
script=$HERE/nbdsh_negative_test.py

start_server s --export disk:64M --export ro:4M:ro
SERVER=skerry URI_RW=$(uri s disk) URI_RO=$(uri s ro) URI_MISSING=$(uri s nope) \
  nbdsh -n -c "exec(open('$script').read())" || fail "nbdsh against nbd_test_server"
stop_server s

truncate -s 64M "$TMP/q.raw"
truncate -s 4M "$TMP/qro.raw"
start_qemu_nbd q "$TMP/q.raw" -x disk
start_qemu_nbd qro "$TMP/qro.raw" -x ro -r
SERVER=qemu-nbd URI_RW=$(uri q disk) URI_RO=$(uri qro ro) URI_MISSING=$(uri q nope) \
  nbdsh -n -c "exec(open('$script').read())" || fail "nbdsh against qemu-nbd"
echo PASS
