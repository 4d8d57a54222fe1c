# Shared helpers for the end-to-end tests. Source it first thing.
set -euo pipefail
: "${SKERRY_BIN:?set SKERRY_BIN to the bin directory of a build}"
SKERRY="$SKERRY_BIN/skerry"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/skerry-e2e.XXXXXX")
cleanup_hooks=()
cleanup() {
  local rc=$?
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
# SKERRY_E2E_STORE runs a test on another store (tests/rados: a RADOS pool); default a new dir: store.
export SKERRY_STORE="${SKERRY_E2E_STORE:-dir:$WORK/store}"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

# expect_fail "message fragment" cmd...: the command must fail, print one line naming the problem.
expect_fail() {
  local want=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure but succeeded: $*"
  [ "$rc" -lt 128 ] || fail "killed by a signal (exit $rc), not an error exit: $*: $out"
  [ "$(printf '%s\n' "$out" | wc -l)" -le 2 ] || fail "error is more than one line for: $*: $out"
  grep -qF -- "$want" <<<"$out" || fail "error for '$*' does not mention '$want': $out"
}

# A raw image: random data in a few places, holes and zeros elsewhere.
make_image() {
  local path=$1 size_mb=$2
  truncate -s "${size_mb}M" "$path"
  dd if=/dev/urandom of="$path" bs=1M count=3 conv=notrunc status=none
  dd if=/dev/urandom of="$path" bs=1M seek=$((size_mb / 2)) count=2 conv=notrunc status=none
  dd if=/dev/urandom of="$path" bs=4096 seek=$(( (size_mb * 256) - 3 )) count=1 conv=notrunc status=none
  dd if=/dev/zero of="$path" bs=1M seek=8 count=4 conv=notrunc status=none
}

SKERRYD="$SKERRY_BIN/skerryd"
# Debian's python has the libnbd bindings (python3-libnbd); a pyenv python on PATH may not.
PY_NBD=/usr/bin/python3

# start_daemon NAME [extra args...]: starts skerryd on the test store with a unix socket
# $WORK/NAME.sock and admin socket $WORK/NAME.admin; waits until it listens.
start_daemon() {
  local name=$1; shift
  "$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/$name.sock" \
    --admin-socket "$WORK/$name.admin" "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  eval "${name}_pid=$pid"
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  for _ in $(seq 100); do
    [ -S "$WORK/$name.sock" ] && [ -S "$WORK/$name.admin" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.log" >&2; fail "skerryd $name died at start"; }
    sleep 0.05
  done
  fail "skerryd $name did not start listening"
}

# stop_daemon NAME: SIGTERM, which must end in exit status 0.
stop_daemon() {
  local name=$1 pid_var="${1}_pid" rc=0
  kill -TERM "${!pid_var}"
  wait "${!pid_var}" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$WORK/$name.log" >&2; fail "skerryd $name exited $rc after SIGTERM"; }
}

nbd_uri() { echo "nbd+unix:///$2?socket=$WORK/$1.sock"; }
