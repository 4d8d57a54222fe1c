#!/usr/bin/env bash
# STARTTLS with X.509 certificates made by certtool: required and optional modes,
# client certificate checks, with nbdinfo, qemu-img and nbdcopy.
source "$(dirname "$0")/lib.sh"
requires certtool nbdinfo qemu-img nbdcopy

pki=$TMP/pki
mkdir -p "$pki/client" "$pki/anon" "$pki/stranger"
ct() { certtool "$@" >/dev/null 2>&1 || fail "certtool $*"; }
printf 'cn = skerry test CA\nca\ncert_signing_key\nexpiration_days = 2\n' >"$pki/ca.info"
ct --generate-privkey --outfile "$pki/ca-key.pem"
ct --generate-self-signed --load-privkey "$pki/ca-key.pem" --template "$pki/ca.info" --outfile "$pki/ca-cert.pem"
printf 'organization = skerry\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 2\n' >"$pki/server.info"
ct --generate-privkey --outfile "$pki/server-key.pem"
ct --generate-certificate --load-privkey "$pki/server-key.pem" --load-ca-certificate "$pki/ca-cert.pem" \
   --load-ca-privkey "$pki/ca-key.pem" --template "$pki/server.info" --outfile "$pki/server-cert.pem"
printf 'organization = skerry\ncn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 2\n' >"$pki/client.info"
ct --generate-privkey --outfile "$pki/client/client-key.pem"
ct --generate-certificate --load-privkey "$pki/client/client-key.pem" --load-ca-certificate "$pki/ca-cert.pem" \
   --load-ca-privkey "$pki/ca-key.pem" --template "$pki/client.info" --outfile "$pki/client/client-cert.pem"
cp "$pki/ca-cert.pem" "$pki/client/"
cp "$pki/ca-cert.pem" "$pki/anon/"  # trusts the server, has no certificate of its own
# A CA nobody signed our server with.
ct --generate-privkey --outfile "$pki/other-key.pem"
ct --generate-self-signed --load-privkey "$pki/other-key.pem" --template "$pki/ca.info" --outfile "$pki/stranger/ca-cert.pem"

tls_args=(--tls-cert "$pki/server-cert.pem" --tls-key "$pki/server-key.pem")

# --- required: TLS clients work, plain ones are refused.
start_server req --listen tcp:127.0.0.1:0 --tls required "${tls_args[@]}" --export disk:16M --export ro:4M:ro:fill=0x61
port=$(tcp_port req)
nbds="nbds://localhost:$port"
nbdinfo --json "$nbds/disk?tls-certificates=$pki/anon" | grep '"TLS": true' >/dev/null || fail "nbdinfo over TLS"
nbdinfo --list "$nbds/?tls-certificates=$pki/anon" | grep 'export="ro"' >/dev/null || fail "nbdinfo --list over TLS"
nbdinfo "nbd://localhost:$port/disk" >/dev/null 2>&1 && fail "plain client accepted by a TLS-required server"
nbdinfo "nbd+unix:///disk?socket=$TMP/req.sock" >/dev/null 2>&1 && fail "plain unix client accepted"
nbdinfo "$nbds/disk?tls-certificates=$pki/stranger" >/dev/null 2>&1 && fail "client trusting another CA connected"

# qemu-img and nbdcopy through TLS, both directions.
obj="tls-creds-x509,id=tls0,dir=$pki/anon,endpoint=client"
img="driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,tls-creds=tls0,tls-hostname=localhost"
qemu-img info --object "$obj" --image-opts "$img,export=ro" | grep 'virtual size: 4 MiB' >/dev/null || fail "qemu-img info over TLS"
head -c 6M /dev/urandom >"$TMP/data.raw"
truncate -s 16M "$TMP/data.raw"
qemu-img convert -n --object "$obj" -f raw "$TMP/data.raw" --target-image-opts "$img,export=disk"
nbdcopy "$nbds/disk?tls-certificates=$pki/anon" "$TMP/back.raw"
cmp "$TMP/data.raw" "$TMP/back.raw" || fail "data through TLS differs"
stop_server req

# --- optional: both kinds of client.
start_server opt --listen tcp:127.0.0.1:0 --tls optional "${tls_args[@]}" --export disk:4M
port=$(tcp_port opt)
nbdinfo --json "nbd://localhost:$port/disk" | grep '"TLS": false' >/dev/null || fail "plain client in optional mode"
nbdinfo --json "nbds://localhost:$port/disk?tls-certificates=$pki/anon" | grep '"TLS": true' >/dev/null ||
  fail "TLS client in optional mode"
stop_server opt

# --- client certificates required.
start_server mtls --listen tcp:127.0.0.1:0 --tls required "${tls_args[@]}" --tls-client-ca "$pki/ca-cert.pem" --export disk:4M
port=$(tcp_port mtls)
nbdinfo "nbds://localhost:$port/disk?tls-certificates=$pki/client" >/dev/null || fail "client with a certificate"
nbdinfo "nbds://localhost:$port/disk?tls-certificates=$pki/anon" >/dev/null 2>&1 &&
  fail "client without a certificate accepted"
qemu-img info --object "tls-creds-x509,id=tls0,dir=$pki/client,endpoint=client" \
  --image-opts "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port=$port,export=disk,tls-creds=tls0,tls-hostname=localhost" \
  >/dev/null || fail "qemu-img with a client certificate"
stop_server mtls

# --- skerryd re-reads its TLS setup on SIGHUP, for connections from then on; a broken
# setup is refused and the running one stays.
if [ $BACKEND = skerryd ]; then
  printf 'log_level = "info"\n' >"$TMP/hup.toml"
  start_server hup --listen tcp:127.0.0.1:0 --config "$TMP/hup.toml" --export disk:4M
  port=$(tcp_port hup)
  hup() {  # hup LOG-LINE: SIGHUP, then wait for the daemon's answer in its log
    local before
    before=$(grep -c "$1" "$TMP/hup.log" || true)
    kill -HUP "$(eval echo "\$PID_hup")"
    for _ in $(seq 100); do
      [ "$(grep -c "$1" "$TMP/hup.log" || true)" -gt "$before" ] && return 0
      sleep 0.05
    done
    fail "no '$1' in the log after SIGHUP"
  }
  nbdinfo "nbd://localhost:$port/disk" >/dev/null || fail "plain client before the reload"
  printf 'log_level = "info"\n[tls]\nmode = "required"\ncert = "%s"\nkey = "%s"\n' \
    "$pki/server-cert.pem" "$pki/server-key.pem" >"$TMP/hup.toml"
  hup 'SIGHUP: reloaded'
  nbdinfo "nbd://localhost:$port/disk" >/dev/null 2>&1 && fail "plain client accepted after TLS was required"
  nbdinfo "nbds://localhost:$port/disk?tls-certificates=$pki/anon" >/dev/null || fail "TLS client after the reload"
  # A key file that is not there: refused, TLS as it was.
  printf '[tls]\nmode = "required"\ncert = "%s"\nkey = "%s/missing.pem"\n' "$pki/server-cert.pem" "$pki" >"$TMP/hup.toml"
  hup 'SIGHUP: not reloaded'
  nbdinfo "nbds://localhost:$port/disk?tls-certificates=$pki/anon" >/dev/null || fail "TLS client after a refused reload"
  nbdinfo "nbd://localhost:$port/disk" >/dev/null 2>&1 && fail "plain client accepted after a refused reload"
  EXPECTED_ERRORS='SIGHUP: not reloaded' stop_server hup
fi

# --- TLS off: a client insisting on TLS is refused.
start_server off --listen tcp:127.0.0.1:0 --export disk:4M
nbdinfo "nbds://localhost:$(tcp_port off)/disk?tls-certificates=$pki/anon" >/dev/null 2>&1 &&
  fail "TLS client against a server without TLS"
stop_server off
echo PASS
