#!/usr/bin/env bash
# A restarted skerryd takes its dead predecessor's volumes back at once (the flock on its
# state file is the proof), never another daemon's; `skerry lock ls|break` and `skerry status`
# show and break a lock. The lease is the default 60 s throughout: anything that waited for
# a lease to lapse fails here instead of passing slowly.
source "$(dirname "$0")/lib.sh"

"$SKERRY" create -s 16M vm >/dev/null
"$SKERRY" create -s 16M idle >/dev/null

step "lock ls on a free volume"
"$SKERRY" lock ls vm | grep -q "lock: *free" || fail "lock ls: $("$SKERRY" lock ls vm)"

# hold NAME...: a client that writes and flushes each volume through skerryd a and stays
# connected (in the background, pid in $holder) until killed.
hold() {
  $PY_NBD - "$WORK/a.sock" "$@" >"$WORK/holder.out" 2>&1 <<'PY' &
import nbd, sys, time
handles = []
for name in sys.argv[2:]:
    h = nbd.NBD(); h.connect_uri(f"nbd+unix:///{name}?socket={sys.argv[1]}")
    h.pwrite(name[0].encode() * 4096, 0); h.flush(); handles.append(h)
print("ready", flush=True)
time.sleep(600)
PY
  holder=$!
  for _ in $(seq 100); do grep -q ready "$WORK/holder.out" && return 0; sleep 0.05; done
  fail "holder client: $(cat "$WORK/holder.out")"
}

step "a client writes through skerryd a; lock ls and status name a as the writer"
start_daemon a
hold vm idle
out=$("$SKERRY" status vm)
grep -q "held by skerryd@.* token=" <<<"$out" || fail "status: $out"
grep -q "writer with 1 client(s)" <<<"$out" || fail "status: $out"
"$SKERRY" status vm --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["locked"] and j["holder_daemon"]["opens"][0]["role"]=="writer", j'

step "a second skerryd with the same state file refuses to start"
rc=0
"$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/x.sock" --admin-socket "$WORK/a.admin" >"$WORK/x.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "a second skerryd started with a live one's state file"
grep -q "another skerryd runs with it" "$WORK/x.log" || fail "x: $(cat "$WORK/x.log")"

step "kill -9 skerryd a: its locks stay"
kill -9 "$a_pid" "$holder"; wait "$a_pid" "$holder" 2>/dev/null || true
"$SKERRY" lock ls vm | grep -q "held by skerryd@" || fail "lock ls after the kill: $("$SKERRY" lock ls vm)"

step "another daemon (its own state file) does not take them"
start_daemon b --handoff off
if $PY_NBD -c "import nbd; nbd.NBD().connect_uri('$(nbd_uri b vm)')" 2>/dev/null; then fail "b opened a's volume"; fi
grep -q "open for writing elsewhere" "$WORK/b.log" || fail "b's log: $(cat "$WORK/b.log")"
stop_daemon b

step "skerryd a restarted: takes its volumes back at once, releases the ones nobody opens"
rm -f "$WORK/a.sock" "$WORK/a.admin"
t0=$(date +%s%N)
start_daemon a
$PY_NBD - "$(nbd_uri a vm)" <<'PY'
import nbd, sys
h = nbd.NBD(); h.connect_uri(sys.argv[1])
assert h.pread(4096, 0) == b"v" * 4096
h.pwrite(b"R" * 4096, 4096); h.flush(); h.shutdown()
PY
echo "restart to first write served: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
grep -q "released the write locks of [12] volumes" "$WORK/a.log" || fail "a's log: $(cat "$WORK/a.log")"
"$SKERRY" snap create idle@free >/dev/null   # its lock was released at start-up

step "skerry lock break: another daemon gets a dead daemon's volume at once"
hold vm
kill -9 "$a_pid" "$holder"; wait "$a_pid" "$holder" 2>/dev/null || true
owner=$("$SKERRY" lock ls vm --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["owner"])')
expect_fail "held by" "$SKERRY" lock break vm "skerryd@nobody:1 token=0 admin=/nowhere"
"$SKERRY" lock break vm "$owner" | grep -q "broke the lock" || fail "lock break"
"$SKERRY" lock ls vm | grep -q "lock: *free" || fail "still locked after the break"
start_daemon b
$PY_NBD -c "import nbd; h=nbd.NBD(); h.connect_uri('$(nbd_uri b vm)'); h.pwrite(b'B'*4096, 0); h.flush()"
expect_fail "not locked" "$SKERRY" lock break idle
stop_daemon b
echo "daemon_restart: ok"
