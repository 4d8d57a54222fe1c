# Shared helpers of the NBD interoperability tests. Each test sources this file
# with the server to test as $1, starts one or more servers on Unix sockets in a
# private temporary directory, drives them with real clients, and ends with
# stop_server, which also checks the graceful shutdown. The same scripts run
# against three servers (BACKEND):
#   test      path/to/nbd_test_server: the NBD library over in-memory volumes
#   skerryd   path/to/skerryd: the real daemon; volumes are made with the skerry
#             CLI next to it, on $SKERRY_NBD_STORE (a RADOS pool: each server gets
#             a namespace of its own) or else a new dir: store per server
#   qemu-nbd  the word qemu-nbd: the reference, one qemu-nbd process per export
# Export specs are those of nbd_test_server: NAME:SIZE[:ro][:fill=BYTE]. A read-only
# export of skerryd is a snapshot, so `uri s ro` names NAME@ro there.
set -euo pipefail

case "${1:?usage: $0 path/to/nbd_test_server|path/to/skerryd|qemu-nbd}" in
  qemu-nbd) BACKEND=qemu-nbd; SERVER_BIN=qemu-nbd ;;
  *skerryd) BACKEND=skerryd; SERVER_BIN=$(realpath "$1"); SKERRY_CLI=$(dirname "$SERVER_BIN")/skerry ;;
  *) BACKEND=test; SERVER_BIN=$(realpath "$1") ;;
esac
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

# start_server NAME [--export SPEC]... [server args...]: serves on $TMP/NAME.sock
# (qemu-nbd: $TMP/NAME.EXPORT.sock, one process per export). Other arguments
# (--listen, --tls*) are the ones nbd_test_server and skerryd share.
declare -A EXPORT_NAME EXPORT_SOCK
start_server() {
  local name=$1
  shift
  local specs=() args=()
  while [ $# -gt 0 ]; do
    if [ "$1" = --export ]; then specs+=("$2"); shift 2; else args+=("$1"); shift; fi
  done
  case $BACKEND in
    test)
      local s export_args=()
      for s in "${specs[@]}"; do export_args+=(--export "$s"); done
      launch "$name" "$SERVER_BIN" --listen "unix:$TMP/$name.sock" --ready-file "$TMP/$name.ready" \
        --stats-file "$TMP/$name.stats" "${export_args[@]}" "${args[@]}" ;;
    skerryd)
      # SKERRY_NBD_STORE_WRAP: decorators put before the directory store (e.g. an
      # asynchronous delay: store, to run skerryd's asynchronous read path without Ceph).
      local store=${SKERRY_NBD_STORE:-${SKERRY_NBD_STORE_WRAP:-}dir:$TMP/$name.store}
      # A RADOS pool is shared by every test: a namespace per server keeps them apart.
      [[ $store == rados:* ]] && store="$store&namespace=interop-$name-$$-$RANDOM"
      eval "STORE_$name='$store'"
      local s
      for s in "${specs[@]}"; do make_skerry_export "$name" "$store" "$s"; done
      launch "$name" "$SERVER_BIN" --store "$store" --listen "unix:$TMP/$name.sock" \
        --admin-socket "$TMP/$name.admin" "${args[@]}" ;;
    qemu-nbd)
      local s
      for s in "${specs[@]}"; do start_qemu_nbd_export "$name" "$s" "${args[@]}"; done ;;
  esac
}

# launch NAME CMD...: runs a server in the background, waits until it listens.
launch() {
  local name=$1
  shift
  rm -f "$TMP/$name.ready"
  "$@" >"$TMP/$name.log" 2>&1 &
  SERVER_PIDS+=($!)
  eval "PID_$name=$!"
  local i
  for i in $(seq 400); do
    if [ $BACKEND = test ]; then [ -f "$TMP/$name.ready" ] && return 0
    else [ -S "$TMP/$name.sock" ] && grep -q 'admin socket' "$TMP/$name.log" && return 0
    fi
    kill -0 "$!" 2>/dev/null || break
    sleep 0.05
  done
  fail "server $name did not start"
}

# export_spec SPEC: sets SPEC_NAME, SPEC_SIZE, SPEC_RO (0/1), SPEC_FILL (or empty).
export_spec() {
  local IFS=: part
  read -r -a parts <<<"$1"
  SPEC_NAME=${parts[0]} SPEC_SIZE=${parts[1]} SPEC_RO=0 SPEC_FILL=
  for part in "${parts[@]:2}"; do
    case $part in
      ro) SPEC_RO=1 ;;
      fill=*) SPEC_FILL=${part#fill=} ;;
      *) fail "export option '$part' is only for nbd_test_server" ;;
    esac
  done
}

# image_file PATH SIZE FILL: a raw file, its first half FILL bytes, the rest a hole.
image_file() {
  truncate -s "$2" "$1"
  [ -z "$3" ] && return 0
  local bytes
  bytes=$(numfmt --from=iec "$2")
  python3 -c 'import sys; sys.stdout.buffer.write(bytes([int(sys.argv[1], 0)]) * int(sys.argv[2]))' \
    "$3" $((bytes / 2)) | dd of="$1" conv=notrunc status=none
}

# A skerryd export: a volume with 64 KiB blocks (the block of nbd_test_server's volumes,
# so both report the same allocation map); a read-only one is the volume's snapshot "ro".
make_skerry_export() {
  local name=$1 store=$2
  export_spec "$3"
  if [ -n "$SPEC_FILL" ]; then
    image_file "$TMP/$name.$SPEC_NAME.img" "$SPEC_SIZE" "$SPEC_FILL"
    "$SKERRY_CLI" --store "$store" import --block-size 64K "$TMP/$name.$SPEC_NAME.img" "$SPEC_NAME" >/dev/null
  else
    "$SKERRY_CLI" --store "$store" create --block-size 64K -s "$SPEC_SIZE" "$SPEC_NAME" >/dev/null
  fi
  EXPORT_NAME[$name/$SPEC_NAME]=$SPEC_NAME
  if [ $SPEC_RO = 1 ]; then
    "$SKERRY_CLI" --store "$store" snap create "$SPEC_NAME@ro" >/dev/null
    EXPORT_NAME[$name/$SPEC_NAME]=$SPEC_NAME@ro
  fi
}

# A qemu-nbd export: a raw file served by one qemu-nbd on $TMP/NAME.EXPORT.sock.
start_qemu_nbd_export() {
  local name=$1
  export_spec "$2"
  shift 2
  [ $# -eq 0 ] || fail "qemu-nbd backend: server arguments $* are not translated"
  image_file "$TMP/$name.$SPEC_NAME.raw" "$SPEC_SIZE" "$SPEC_FILL"
  local ro=()
  [ $SPEC_RO = 1 ] && ro=(-r)
  start_qemu_nbd "$name.$SPEC_NAME" "$TMP/$name.$SPEC_NAME.raw" -x "$SPEC_NAME" "${ro[@]}" \
    --cache=none --aio=native --discard=unmap
  EXPORT_SOCK[$name/$SPEC_NAME]=$TMP/$name.$SPEC_NAME.sock
}

# uri SERVER EXPORT
uri() {
  local sock=${EXPORT_SOCK[$1/$2]:-$TMP/$1.sock} export=${EXPORT_NAME[$1/$2]:-$2}
  [ $BACKEND = qemu-nbd ] && [ -z "${EXPORT_SOCK[$1/$2]:-}" ] &&
    sock=$(printf '%s\n' "${EXPORT_SOCK[@]}" | grep "^$TMP/$1\." | sort | head -n 1)  # a missing export
  echo "nbd+unix:///$export?socket=$sock"
}

# stop_server NAME: SIGTERM, which must end the server cleanly (exit 0) with every
# export it opened released (and, for skerryd, flushed and closed, leaving a store
# that `skerry check` finds clean).
stop_server() {
  local name=$1 pid
  if [ $BACKEND = qemu-nbd ]; then return 0; fi  # cleanup stops qemu-nbd
  pid=$(eval echo "\$PID_$name")
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  STOPPED_AT_NS=$(date +%s%N)  # when the process was gone, before the checks below
  [ "$rc" = 0 ] || fail "server $name exited with $rc after SIGTERM"
  if [ $BACKEND = test ]; then
    local stats
    stats=$(cat "$TMP/$name.stats")
    local opens=${stats#opens=}; opens=${opens%% *}
    local releases=${stats##*releases=}
    [ "$opens" = "$releases" ] || fail "server $name: $stats (every open must be released)"
    ! grep -qE 'ERROR|runtime error|Sanitizer' "$TMP/$name.log" || fail "server $name logged errors"
  else
    local opens closes store
    opens=$(grep -c ': opened read-' "$TMP/$name.log" || true)
    closes=$(grep -c 'last client left; flushed and closed' "$TMP/$name.log" || true)
    [ "$opens" = "$closes" ] || fail "server $name: $opens exports opened, $closes closed"
    # Errors a test provoked on purpose match EXPECTED_ERRORS (an extended regex).
    ! grep -E '^[0-9T:.-]+ (error|critical) |runtime error|Sanitizer' "$TMP/$name.log" |
      grep -qvE "${EXPECTED_ERRORS:-^\$}" || fail "server $name logged errors"
    grep -q 'stopped cleanly' "$TMP/$name.log" || fail "server $name did not say it stopped cleanly"
    store=$(eval echo "\$STORE_$name")
    "$SKERRY_CLI" --store "$store" check >"$TMP/$name.check" 2>&1 ||
      fail "skerry check after server $name: $(cat "$TMP/$name.check")"
  fi
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

# by_backend TEST SKERRYD QEMU_NBD: the one of three that applies to this run, for
# answers the NBD spec leaves to the server (allocation reporting, export lists).
by_backend() {
  case $BACKEND in test) echo "$1" ;; skerryd) echo "$2" ;; qemu-nbd) echo "$3" ;; esac
}

expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

# tcp_port NAME: the port of the server's "tcp:" listener.
tcp_port() {
  if [ $BACKEND = test ]; then grep '^tcp:' "$TMP/$1.ready"
  else grep -o 'listening on tcp:[^ ]*' "$TMP/$1.log"  # skerryd logs the port it bound
  fi | head -n 1 | sed 's/.*://'
}
