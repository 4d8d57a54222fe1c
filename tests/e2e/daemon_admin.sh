# skerryd's admin socket against requests the CLI would never send: each gets an error
# answer, and the daemon goes on serving (the socket, its volumes, SIGTERM).
source "$(dirname "$0")/lib.sh"

# admin_call NAME REQUEST: sends REQUEST (text, a newline added) to NAME's admin socket and
# prints the answer line; fails if the answer is not UTF-8.
admin_call() {
  python3 - "$WORK/$1.admin" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
answer = b""
while not answer.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk: break
    answer += chunk
print(answer.decode("utf-8").strip())
PY
}

# hold_open NAME VOLUME: a client keeps VOLUME open in daemon NAME (admin operations need
# the volume open for writing there).
hold_open() {
  "$PY_NBD" - "$WORK/$1.sock" "$2" <<'PY' &
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///{sys.argv[2]}?socket={sys.argv[1]}")
time.sleep(600)
PY
  local pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null")
  for _ in $(seq 100); do
    grep -q "export $2: opened read-write" "$WORK/$1.log" && return 0
    sleep 0.05
  done
  fail "volume $2 was not opened in $1"
}

"$SKERRY" create vm1 --size 16M >/dev/null

step "whatever is at the admin socket path that is not a socket stays, and skerryd does not start"
echo "somebody's file" >"$WORK/file.admin"
ln -s loop.admin "$WORK/loop.admin"   # stat() says ELOOP
for admin in file.admin loop.admin; do
  rc=0
  out=$(timeout 20 "$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/x.sock" \
        --admin-socket "$WORK/$admin" 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "admin socket $admin: exit $rc, expected 1: $out"
  grep -qF "$WORK/$admin exists and is not a socket" <<<"$out" || fail "admin socket $admin: $out"
  [ -e "$WORK/x.sock" ] && fail "admin socket $admin: the NBD socket was left behind"
done
[ "$(cat "$WORK/file.admin")" = "somebody's file" ] || fail "the file at the admin socket path was removed"
[ -L "$WORK/loop.admin" ] || fail "the symlink at the admin socket path was removed"
start_daemon d1 --log-level debug
hold_open d1 vm1

step "a long snapshot name cut inside a UTF-8 character is an error answer, not a crash"
long="aaaaaaaaaaaaaaaaaaaé$(printf 'b%.0s' $(seq 100))"
out=$(admin_call d1 "{\"op\":\"snap_create\",\"volume\":\"vm1\",\"snap\":\"$long\"}")
grep -qF '"ok":false' <<<"$out" || fail "long snapshot name: $out"
# Cut before the é, not inside it.
grep -qF "name 'aaaaaaaaaaaaaaaaaaa...' is longer than 100 characters" <<<"$out" || fail "long snapshot name: $out"
kill -0 "$d1_pid" 2>/dev/null || { cat "$WORK/d1.log" >&2; fail "skerryd died of a long snapshot name"; }
out=$(admin_call d1 '{"op":"status"}')
grep -qF '"name":"vm1"' <<<"$out" || fail "status after the long name: $out"

step "a resize size that is negative or not whole is refused"
for size in -1 134217728.5 '"32M"'; do
  out=$(admin_call d1 "{\"op\":\"resize\",\"volume\":\"vm1\",\"size\":$size}")
  grep -qF '"size\" must be a whole number of bytes' <<<"$out" || fail "resize to $size: $out"
done
"$SKERRY" info vm1 | grep -q "size: *16 MiB" || fail "a refused resize changed the size: $("$SKERRY" info vm1)"
out=$(admin_call d1 '{"op":"resize","volume":"vm1","size":33554432}')
grep -qF '"ok":true' <<<"$out" || fail "resize to 32M: $out"

# trickle NAME SECONDS: a client that sends a byte a second and never a newline; prints how
# many seconds passed until the daemon closed the connection, or "held" after SECONDS.
trickle() {
  python3 - "$WORK/$1.admin" "$2" <<'PY'
import select, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
start = time.monotonic()
while time.monotonic() - start < float(sys.argv[2]):
    try:
        s.send(b"{")
    except OSError:
        break
    if select.select([s], [], [], 1)[0]:  # the daemon answered or closed
        break
else:
    print("held")
    sys.exit()
print(round(time.monotonic() - start))
PY
}

step "a client trickling its request is cut off after 5 s in all, and the next request is served"
took=$(trickle d1 20)
[ "$took" != held ] && [ "$took" -le 8 ] || fail "a trickling client held the admin socket: $took"
out=$(admin_call d1 '{"op":"status"}')
grep -qF '"ok":true' <<<"$out" || fail "status after a trickling client: $out"

step "the CLI gives up on a daemon that does not answer, with a clear error"
kill -STOP "$d1_pid"
cleanup_hooks+=("kill -CONT $d1_pid 2>/dev/null")
SKERRY_ADMIN_TIMEOUT=2 expect_fail "did not answer within 2 s" timeout 60 "$SKERRY" snap create vm1@late
# A full listen backlog: connect() itself waits.
python3 - "$WORK/d1.admin" "$SKERRY" <<'PY'
import socket, subprocess, sys, os
held = []
while True:
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(sys.argv[1])
    except BlockingIOError:
        break
    held.append(s)
r = subprocess.run(["timeout", "60", sys.argv[2], "snap", "create", "vm1@never"], capture_output=True, text=True,
                   env=dict(os.environ, SKERRY_ADMIN_TIMEOUT="2"))
assert r.returncode not in (0, 124), r
assert "took no connection within 2 s" in r.stderr, r.stderr
PY
kill -CONT "$d1_pid"
# The daemon serves what was queued in order, the status last: the request the CLI gave up
# on was taken ("the operation may still complete there"), the one that never connected not.
out=$(admin_call d1 '{"op":"status"}')
grep -qF '"ok":true' <<<"$out" || fail "status after SIGCONT: $out"
"$SKERRY" info vm1@late >/dev/null || fail "the request the CLI gave up on was not served"
"$SKERRY" info vm1@never >/dev/null 2>&1 && fail "a request that never connected was served"

step "answers of the wrong shape get a clear error from the CLI, not an abort"
# A stand-in answers in d1's place (its socket moved aside; connect() finds it by inode).
mv "$WORK/d1.admin" "$WORK/d1.admin.real"
python3 - "$WORK/d1.admin" "$SKERRY" <<'PY'
import socket, subprocess, sys, threading
answers = [b'{"ok":"yes"}', b'{"ok":1}', b'{"code":"busy"}', b'{"ok":false,"code":7,"error":["x"]}', b'[true]']
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(1)
def serve():
    for a in answers:
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(a + b"\n")
        c.close()
threading.Thread(target=serve, daemon=True).start()
for a in answers:
    r = subprocess.run(["timeout", "60", sys.argv[2], "snap", "create", "vm1@odd"], capture_output=True, text=True)
    assert r.returncode == 1, (a, r)
    assert r.stderr.count("\n") == 1 and "volume 'vm1' is open in skerryd" in r.stderr, (a, r.stderr)
    if a.startswith(b'{"ok":false'):
        assert "the daemon reported an error" in r.stderr, (a, r.stderr)
    elif a.startswith(b"{"):
        assert 'without "ok": true or false' in r.stderr, (a, r.stderr)
    else:
        assert "not JSON" in r.stderr, (a, r.stderr)
PY
rm "$WORK/d1.admin"
mv "$WORK/d1.admin.real" "$WORK/d1.admin"

step "a relative admin socket is made absolute: the CLI finds it from another directory"
"$SKERRY" create vm2 --size 16M >/dev/null
mkdir "$WORK/sub"
(cd "$WORK/sub" && exec "$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/d2.sock" \
   --admin-socket d2.admin) >"$WORK/d2.log" 2>&1 &
d2_pid=$!
cleanup_hooks+=("kill -9 $d2_pid 2>/dev/null")
for _ in $(seq 100); do [ -S "$WORK/d2.sock" ] && [ -S "$WORK/sub/d2.admin" ] && break; sleep 0.05; done
[ -S "$WORK/sub/d2.admin" ] || { cat "$WORK/d2.log" >&2; fail "skerryd d2 did not start"; }
# Logged once the daemon serves, which may be just after its sockets appear.
for _ in $(seq 100); do grep -q "^.* admin socket " "$WORK/d2.log" && break; sleep 0.05; done
grep -qF "admin socket $WORK/sub/d2.admin" "$WORK/d2.log" || fail "admin socket not absolute: $(cat "$WORK/d2.log")"
hold_open d2 vm2
(cd "$WORK" && "$SKERRY" snap create vm2@through-d2) || fail "the CLI did not find d2's relative admin socket"
stop_daemon d2

step "a daemon on another store at the admin socket a lock names refuses, and changes nothing"
# d3 holds vm3 open in this store and is killed: its lock stays for the lease (60 s). A
# daemon on another store, with a volume of the same name open, then takes d3's paths.
"$SKERRY" create vm3 --size 16M >/dev/null
start_daemon d3
hold_open d3 vm3
kill -9 "$d3_pid"
wait "$d3_pid" 2>/dev/null || true
other="dir:$WORK/other-store"
"$SKERRY" --store "$other" create vm3 --size 16M >/dev/null
rm -f "$WORK/d3.sock" "$WORK/d3.admin"
SKERRY_STORE=$other start_daemon d3
hold_open d3 vm3
expect_fail "is another volume" "$SKERRY" snap create vm3@wrong
expect_fail "is another volume" "$SKERRY" resize vm3 --size 32M
"$SKERRY" --store "$other" info vm3@wrong >/dev/null 2>&1 && fail "the daemon on the other store took the snapshot"
"$SKERRY" --store "$other" info vm3 | grep -q "size: *16 MiB" || fail "the daemon on the other store resized its volume"
grep -qF "a request for volume 'vm3' with id" "$WORK/d3.log" || fail "the refusal is not in d3's log"
stop_daemon d3

step "the same with a synced copy of the store, whose volumes have the same ids: refused too"
# A store of its own (sync refuses while volumes of this one are open).
origin="dir:$WORK/origin-store" copy="dir:$WORK/copy-store"
"$SKERRY" --store "$origin" create vm4 --size 16M >/dev/null
"$SKERRY" sync --from "$origin" --to "$copy" >/dev/null
SKERRY_STORE=$origin start_daemon d4
hold_open d4 vm4
kill -9 "$d4_pid"
wait "$d4_pid" 2>/dev/null || true
rm -f "$WORK/d4.sock" "$WORK/d4.admin"
SKERRY_STORE=$copy start_daemon d4
hold_open d4 vm4
expect_fail "not by this daemon" "$SKERRY" --store "$origin" snap create vm4@wrong
"$SKERRY" --store "$copy" info vm4@wrong >/dev/null 2>&1 && fail "the daemon on the synced copy took the snapshot"
grep -qF "a request for volume 'vm4' refused: its lock is held by" "$WORK/d4.log" || fail "the refusal is not in d4's log"
stop_daemon d4

step "SIGTERM while a client trickles its request: skerryd stops at once"
trickle d1 30 >/dev/null &
trickler=$!
sleep 1
start=$(date +%s%N)
stop_daemon d1
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -lt 3500 ] || fail "SIGTERM took ${elapsed_ms} ms with a trickling admin client"
wait "$trickler" || true
echo "daemon_admin: ok"
