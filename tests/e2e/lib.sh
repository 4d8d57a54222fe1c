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
export SKERRY_STORE="dir:$WORK/store"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

# expect_fail "message fragment" cmd...: the command must fail, print one line naming the problem.
expect_fail() {
  local want=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure but succeeded: $*"
  [ "$(printf '%s\n' "$out" | wc -l)" -le 2 ] || fail "error is more than one line for: $*: $out"
  printf '%s' "$out" | grep -qF -- "$want" || fail "error for '$*' does not mention '$want': $out"
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
