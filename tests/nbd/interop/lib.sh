# Shared helpers of the NBD interoperability tests. Each test sources this file
# with the nbd_test_server binary as $1, starts one or more servers on Unix
# sockets in a private temporary directory, drives them with real clients, and
# ends with stop_server, which also checks the graceful shutdown.
set -euo pipefail

SERVER_BIN=$(realpath "${1:?usage: $0 path/to/nbd_test_server}")
HERE=$(cd "$(dirname "$0")" && pwd)  # tests may cd elsewhere
# nbdsh runs "python3": the system one has the libnbd bindings, a pyenv one may not.
export PATH=/usr/bin:/bin:/usr/sbin:$PATH
TMP=$(mktemp -d /tmp/skerry-nbd-test.XXXXXX)
SERVER_PIDS=()
QEMU_NBD_PIDS=()

cleanup() {
  local rc=$? pid
  # Our servers were already stopped (and checked) by stop_server unless the test
  # failed; qemu-nbd gets a SIGTERM here.
  set +e  # a failing kill or wait must not cut the cleanup short
  for pid in "${SERVER_PIDS[@]}" "${QEMU_NBD_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  for log in "$TMP"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

# Exit 77 (ctest SKIP) when a tool is missing.
requires() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool is not installed"; exit 77; }
  done
}

# start_server NAME [nbd_test_server args...]: serves on $TMP/NAME.sock.
start_server() {
  local name=$1
  shift
  rm -f "$TMP/$name.ready"
  "$SERVER_BIN" --listen "unix:$TMP/$name.sock" --ready-file "$TMP/$name.ready" \
    --stats-file "$TMP/$name.stats" "$@" >"$TMP/$name.log" 2>&1 &
  SERVER_PIDS+=($!)
  eval "PID_$name=$!"
  local i
  for i in $(seq 200); do
    [ -f "$TMP/$name.ready" ] && return 0
    kill -0 "$!" 2>/dev/null || break
    sleep 0.05
  done
  fail "server $name did not start"
}

# uri SERVER EXPORT
uri() { echo "nbd+unix:///$2?socket=$TMP/$1.sock"; }

# stop_server NAME: SIGTERM, which must end the server cleanly (exit 0) with every
# export it opened released.
stop_server() {
  local name=$1 pid
  pid=$(eval echo "\$PID_$name")
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || fail "server $name exited with $rc after SIGTERM"
  local stats
  stats=$(cat "$TMP/$name.stats")
  local opens=${stats#opens=}; opens=${opens%% *}
  local releases=${stats##*releases=}
  [ "$opens" = "$releases" ] || fail "server $name: $stats (every open must be released)"
  ! grep -qE 'ERROR|runtime error|Sanitizer' "$TMP/$name.log" || fail "server $name logged errors"
  [ -e "$TMP/$name.sock" ] && fail "server $name left its socket behind"
  return 0
}

# start_qemu_nbd NAME FILE [qemu-nbd args...]: the reference server, same socket layout.
start_qemu_nbd() {
  local name=$1 file=$2
  shift 2
  qemu-nbd --persistent --shared=8 -k "$TMP/$name.sock" -f raw "$@" "$file" >"$TMP/$name.log" 2>&1 &
  QEMU_NBD_PIDS+=($!)
  local i
  for i in $(seq 100); do
    [ -S "$TMP/$name.sock" ] && return 0
    sleep 0.05
  done
  fail "qemu-nbd $name did not start"
}

expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# tcp_port NAME: the port of the server's "tcp:" listener.
tcp_port() { grep '^tcp:' "$TMP/$1.ready" | head -n 1 | sed 's/.*://'; }
