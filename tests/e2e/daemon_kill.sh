#!/usr/bin/env bash
# Whole-process crashes: kill -9 skerryd again and again while clients write through it,
# restart it, and check that nothing a completed flush covered was lost.
#
# Each round: skerryd starts; flush_checker.py writes 4 KiB blocks at queue depth 16 with a
# flush every 64 writes and records what each completed flush covered; beside it fio's nbd
# engine runs a verify workload with periodic flushes on a second volume (load from another
# client and export, the way a host serves many VMs); at a random moment skerryd gets SIGKILL.
# After the restart: flush_checker.py check holds every block to the last completed flush,
# `skerry check` must find the store sound, and both volumes get a snapshot, so the next
# round starts with every block shared: its first writes into each block are copy-ups
# (on a directory store deferred: held, acknowledged, copied in the background), and the
# snapshots must come through the kills intact too. (Whether a flush waits for deferred
# copy-ups is decided within milliseconds of a round's start, long before its kill: the
# crash runner, crash_test, is what catches a flush that does not.) At the end fio writes
# and verifies both volumes through the restarted daemon.
#
# SKERRY_E2E_STORE runs it on another store (tests/rados: RADOS); SKERRY_KILL_ROUNDS sets
# the number of kills (default 8).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
command -v fio >/dev/null || fail "fio is not installed (scripts/install-deps.sh)"
rounds=${SKERRY_KILL_ROUNDS:-8}

# The default lease (60 s): the restarted daemon must take its dead predecessor's locks at
# once (daemon/identity.h), never wait them out; a round that waited would time out.
: >"$WORK/skerryd.toml"
"$SKERRY" create -s 64M crash >/dev/null
"$SKERRY" create -s 256M load >/dev/null
cd "$WORK"  # fio keeps its verify state files in the working directory

# snap_after_lease VOLUME@SNAP: the restarted daemon released the killed one's lock on a
# volume it never opened ("load") as it started; the CLI retries briefly in case it is slow.
snap_after_lease() {
  local out
  for _ in $(seq 50); do
    out=$("$SKERRY" snap create "$1" 2>&1) && return 0
    case "$out" in *"is open in skerryd"*) sleep 0.2 ;; *) fail "snap create $1: $out" ;; esac
  done
  fail "snap create $1: $out"
}

state=$WORK/crash.state
for round in $(seq 1 "$rounds"); do
  rm -f "$WORK/d.sock" "$WORK/d.admin"  # what the killed daemon left behind
  start_daemon d --config "$WORK/skerryd.toml"
  # What the state said before this round: the kill waits for this round's first flush.
  if [ -e "$state" ]; then cp "$state" "$state.before"; else : >"$state.before"; fi
  $PY_NBD "$HERE/flush_checker.py" write "$(nbd_uri d crash)" "$state" "$round" >"$WORK/writer.out" 2>&1 &
  writer=$!
  fio --name=load --ioengine=nbd --uri="$(nbd_uri d load)" --rw=randwrite --bsrange=4k-64k \
      --iodepth=16 --size=256M --time_based --runtime=60 --fsync=32 --verify=crc32c \
      >"$WORK/fio.out" 2>&1 &
  fio_pid=$!
  # Kill somewhere between 1 and 3 s in, once the writer has seen a flush complete.
  sleep "$(python3 -c "import random; print(1 + 2 * random.random())")"
  for _ in $(seq 300); do [ -s "$state" ] && ! cmp -s "$state" "$state.before" && break; sleep 0.1; done
  kill -9 "$d_pid"
  wait "$d_pid" 2>/dev/null || true
  # With the daemon's last words: an error answer (EIO once on RADOS in CI) says why there.
  wait "$writer" || fail "round $round: writer failed: $(cat "$WORK/writer.out")
skerryd's log, last lines: $(tail -n 40 "$WORK/d.log")"
  wait "$fio_pid" 2>/dev/null || true  # fio fails when its server dies; that is expected
  grep -q 'connection ended' "$WORK/writer.out" || fail "round $round: writer: $(cat "$WORK/writer.out")"

  rm -f "$WORK/d.sock" "$WORK/d.admin"
  start_daemon d --config "$WORK/skerryd.toml"
  out=$($PY_NBD "$HERE/flush_checker.py" check "$(nbd_uri d crash)" "$state" 2>&1) ||
    fail "round $round: after kill -9: $out"
  echo "round $round: $(tail -n 1 "$WORK/writer.out" | sed 's/.*: connection/connection/'); $out"
  stop_daemon d
  "$SKERRY" check --json >"$WORK/check.json" || fail "round $round: skerry check: $(cat "$WORK/check.json")"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"], r' "$WORK/check.json" ||
    fail "round $round: skerry check found damage: $(cat "$WORK/check.json")"
  snap_after_lease "crash@r$round"
  snap_after_lease "load@r$round"
done

# Both volumes still take a full write-and-verify pass.
start_daemon d --config "$WORK/skerryd.toml"
# What must hold is in fio's report: no error, and every byte written was read back and verified.
# fio's exit status is printed too: once in CI (a loaded machine) fio exited non-zero after a
# report with err=0 and the whole verify pass done, and nothing it printed said why.
for vol in crash load; do
  rc=0
  fio --name=after --ioengine=nbd --uri="$(nbd_uri d $vol)" --rw=randwrite --bs=16k --iodepth=16 \
      --size=32M --verify=crc32c --verify_fatal=1 --do_verify=1 --output-format=json \
      --output="$WORK/after.json" >"$WORK/after.err" 2>&1 || rc=$?
  python3 - "$WORK/after.json" "$rc" <<'PY' || fail "fio after the kills ($vol), exit $rc: $(cat "$WORK/after.err" "$WORK/after.json")"
import json, sys
text = open(sys.argv[1]).read()
job = json.loads(text[text.index("{"):])["jobs"][0]  # fio may print notes before the JSON
written, verified = job["write"]["io_bytes"], job["read"]["io_bytes"]
assert job["error"] == 0, f"fio error {job['error']}"
assert written == 32 << 20 and verified == written, f"wrote {written}, verified {verified}"
if sys.argv[2] != "0":
    print(f"note: fio exited {sys.argv[2]} after a clean report (no error, all {written} bytes verified)")
PY
done
stop_daemon d
echo "OK: $rounds kills, nothing flushed was lost"
