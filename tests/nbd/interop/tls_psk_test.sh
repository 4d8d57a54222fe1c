#!/usr/bin/env bash
# STARTTLS with pre-shared keys made by psktool: nbdinfo, qemu-img, qemu-io and
# nbdcopy with the right key; wrong keys and unknown identities are refused.
source "$(dirname "$0")/lib.sh"
requires psktool nbdinfo qemu-img qemu-io nbdcopy

mkdir -p "$TMP/psk" "$TMP/wrong"
psktool -u alice -p "$TMP/psk/keys.psk" >/dev/null
psktool -u bob -p "$TMP/psk/keys.psk" >/dev/null
psktool -u alice -p "$TMP/wrong/keys.psk" >/dev/null  # same name, other key
psktool -u mallory -p "$TMP/mallory.psk" >/dev/null

start_server s --listen tcp:127.0.0.1:0 --tls required --tls-psk "$TMP/psk/keys.psk" --export disk:16M
port=$(tcp_port s)
nbds() { echo "nbds://$1@localhost:$port/disk?tls-psk-file=$2"; }

nbdinfo --json "$(nbds alice "$TMP/psk/keys.psk")" | grep '"TLS": true' >/dev/null || fail "alice over PSK"
nbdinfo "$(nbds bob "$TMP/psk/keys.psk")" >/dev/null || fail "bob over PSK"
nbdinfo "$(nbds alice "$TMP/wrong/keys.psk")" >/dev/null 2>&1 && fail "wrong key accepted"
nbdinfo "$(nbds mallory "$TMP/mallory.psk")" >/dev/null 2>&1 && fail "unknown identity accepted"
nbdinfo "nbd://localhost:$port/disk" >/dev/null 2>&1 && fail "plain client accepted"

obj="tls-creds-psk,id=tls0,dir=$TMP/psk,username=alice,endpoint=client"
img="driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,export=disk,tls-creds=tls0"
out=$(qemu-io --object "$obj" --image-opts "$img" -c 'write -P 0x7e 1M 1M' -c 'read -P 0x7e 1M 1M' \
      -c 'write -z 4M 1M' -c 'flush' 2>&1) || fail "qemu-io over PSK: $out"
grep -qiE 'failed|error' <<<"$out" && fail "qemu-io over PSK: $out"
qemu-img info --object "$obj" --image-opts "$img" | grep 'virtual size: 16 MiB' >/dev/null || fail "qemu-img info over PSK"

# Bulk data in both directions (the TLS send path with big records).
head -c 16M /dev/urandom >"$TMP/data.raw"
nbdcopy --connections=2 "$TMP/data.raw" "$(nbds alice "$TMP/psk/keys.psk")"
nbdcopy "$(nbds bob "$TMP/psk/keys.psk")" "$TMP/back.raw"
cmp "$TMP/data.raw" "$TMP/back.raw" || fail "data through TLS-PSK differs"

stop_server s
echo PASS
