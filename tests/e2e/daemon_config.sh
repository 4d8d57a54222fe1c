#!/usr/bin/env bash
# skerryd's config file and flags: each kind of mistake stops the daemon at start with exit
# status 1 and one line that names the file and the problem; nothing is served or opened.
source "$(dirname "$0")/lib.sh"

"$SKERRY" create -s 16M disk >/dev/null
# expect_daemon_fail "message fragment" CONFIG-TEXT [flags...]
expect_daemon_fail() {
  local want=$1 text=$2
  shift 2
  printf '%s\n' "$text" >"$WORK/bad.toml"
  local out rc=0
  out=$(timeout 20 "$SKERRYD" --config "$WORK/bad.toml" --listen "unix:$WORK/x.sock" \
        --admin-socket "$WORK/x.admin" "$@" 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "config '$text': exit $rc, expected 1: $out"
  [ "$(printf '%s\n' "$out" | wc -l)" -le 2 ] || fail "config '$text': more than one line: $out"
  grep -qF -- "$want" <<<"$out" || fail "config '$text': no '$want' in: $out"
  [ -e "$WORK/x.sock" ] && fail "config '$text': a socket was left behind"
  return 0
}
store="store = \"$SKERRY_STORE\""
expect_daemon_fail "unknown setting 'wokers'" "$store
wokers = 4"
expect_daemon_fail "unknown setting 'tls.cert_file'" "$store
[tls]
cert_file = \"x\""
expect_daemon_fail "'workers' must be a whole number" "$store
workers = \"many\""
expect_daemon_fail "'store' has the wrong type" "store = 5"
expect_daemon_fail "'workers' must be a whole number" "$store
workers = 1e84"        # a float: once undefined behaviour in the conversion (config_fuzz)
expect_daemon_fail "'lock_lease_seconds' must be a whole number" "$store
lock_lease_seconds = 2.5"
expect_daemon_fail "lock_lease_seconds must be 3..3600" "$store
lock_lease_seconds = 1"
expect_daemon_fail "stall_timeout_seconds must be 1..3600" "$store
stall_timeout_seconds = 0"
expect_daemon_fail "'listen' must be a list" "$store
listen = \"unix:/x\""
expect_daemon_fail "bad.toml:2:" "$store
workers = = 3"        # TOML syntax: the file, line and column
expect_daemon_fail "no store" "workers = 4"
expect_daemon_fail "cannot open store" "store = \"nosuch:xyz\""
expect_daemon_fail "opry" "$store
[tls]
mode = \"opry\""
expect_daemon_fail "unknown log level" "$store
log_level = \"loud\""
expect_daemon_fail "max_inflight_memory must be 0 (off) or at least 64M" "$store
max_inflight_memory = \"1M\""
expect_daemon_fail "max_inflight_memory must be a size" "$store
max_inflight_memory = 1024"
expect_daemon_fail "max_inflight_memory" "$store
max_inflight_memory = \"lots\""
expect_daemon_fail "max_inflight_memory must be 0 (off) or at least 64M" "$store" --max-inflight-memory 10M
expect_daemon_fail "copy-up mode 'sideways': expected background, on-demand or off" "$store
copy_up = \"sideways\""
expect_daemon_fail "copier_threads must be 1..64" "$store
copier_threads = 0"
expect_daemon_fail "partial_blocks must be true or false" "$store
partial_blocks = \"no\""
expect_daemon_fail "copy-up mode 'later'" "$store" --copy-up later
expect_daemon_fail "busy_poll_us must be 0..1000" "$store
busy_poll_us = 1001"
expect_daemon_fail "busy_poll_us must be 0..1000" "$store
busy_poll_us = -1"
expect_daemon_fail "'busy_poll_us' must be a whole number" "$store
busy_poll_us = \"50\""
out=$(timeout 20 "$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/x.sock" --busy-poll-us 5000 2>&1) &&
  fail "--busy-poll-us 5000 was accepted"
grep -qF -- "--busy-poll-us: Value 5000 not in range 0 to 1000" <<<"$out" || fail "--busy-poll-us 5000: $out"
out=$("$SKERRYD" --config "$WORK/missing.toml" 2>&1) && fail "a missing config file was accepted"
grep -qF "missing.toml" <<<"$out" || fail "missing config file: $out"
# A directory reads as nothing through an ifstream: it was an empty config.
mkdir "$WORK/conf.d"
out=$(timeout 20 "$SKERRYD" --config "$WORK/conf.d" --store "$SKERRY_STORE" --listen "unix:$WORK/x.sock" \
      --admin-socket "$WORK/x.admin" 2>&1) && fail "a directory was accepted as the config file"
grep -qF "$WORK/conf.d is not a regular file" <<<"$out" || fail "config directory: $out"
# A newline in the admin socket would go into every lock owner, which is one line: every
# read-write export was refused.
expect_daemon_fail "admin_socket must not contain control characters" "$store
admin_socket = \"$WORK/a\\nb.admin\""
out=$(timeout 20 "$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/x.sock" \
      --admin-socket "$WORK/a"$'\t'"b.admin" 2>&1) && fail "a tab in --admin-socket was accepted"
grep -qF "admin_socket must not contain control characters" <<<"$out" || fail "tab in --admin-socket: $out"

# A good file starts.
printf '%s\nworkers = 4\nlock_lease_seconds = 10\nmax_inflight_memory = "256M"\nbusy_poll_us = 0\ncopy_up = "on-demand"\npartial_blocks = false\n' "$store" >"$WORK/good.toml"
start_daemon good --config "$WORK/good.toml"
# The line comes once the daemon serves, which may be just after its sockets appear.
for _ in $(seq 100); do grep -q "busy polling:" "$WORK/good.log" && break; sleep 0.05; done
grep -q "busy polling: off)" "$WORK/good.log" || fail "busy_poll_us = 0 did not turn it off: $(cat "$WORK/good.log")"
grep -q "volumes: copy-up deferred, on demand, partial blocks off, write-lock lease 10 s" "$WORK/good.log" ||
  fail "copy_up, partial_blocks or the lease from the file were not applied: $(cat "$WORK/good.log")"
step "SIGHUP warns of a setting that changes only on restart"
echo "max_connections = 7" >>"$WORK/good.toml"
kill -HUP "$good_pid"
for _ in $(seq 100); do grep -q "SIGHUP: reloaded" "$WORK/good.log" && break; sleep 0.05; done
grep -q "SIGHUP: reloaded" "$WORK/good.log" || fail "no reload after SIGHUP: $(cat "$WORK/good.log")"
grep "change only on restart" "$WORK/good.log" | grep -q max_connections ||
  fail "a changed max_connections was reloaded without a warning: $(cat "$WORK/good.log")"
stop_daemon good
echo "daemon_config: ok"
