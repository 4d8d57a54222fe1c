# skerryd with real clients: qemu-img writes an image into a volume, reads it back, maps it;
# a snapshot taken while a client is connected is point-in-time; a second daemon cannot
# write a volume the first holds; bad startup gets a clear error; SIGTERM flushes and exits 0.
source "$(dirname "$0")/lib.sh"

step "startup errors are clear and non-zero"
out=$("$SKERRYD" --store "unknown:x" --listen "unix:$WORK/x.sock" --admin-socket "$WORK/x.admin" 2>&1) && fail "bad store accepted"
grep -q "cannot open store" <<<"$out" || fail "bad store message: $out"
"$SKERRY" create disk --size 64M
make_image "$WORK/image.raw" 64
start_daemon d1
out=$("$SKERRYD" --store "$SKERRY_STORE" --listen "unix:$WORK/d1.sock" --admin-socket "$WORK/other.admin" 2>&1) && fail "second bind accepted"
grep -q "cannot listen on unix:$WORK/d1.sock" <<<"$out" || fail "bind failure message: $out"

step "qemu-img writes and reads through the daemon"
qemu-img convert -n -f raw -O raw "$WORK/image.raw" "$(nbd_uri d1 disk)"
qemu-img compare -f raw -F raw "$WORK/image.raw" "$(nbd_uri d1 disk)"
qemu-img info "$(nbd_uri d1 disk)" | grep "virtual size: 64 MiB" >/dev/null
# The map reports the zero runs of the image as holes (import-like sparseness through NBD).
qemu-img map --output=json -f raw "$(nbd_uri d1 disk)" > "$WORK/map.json"
python3 - "$WORK/map.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
holes = sum(e["length"] for e in m if not e["data"])
assert holes >= 40 << 20, f"only {holes} bytes reported as holes"
PY

step "snapshot while a client is connected is point-in-time"
"$PY_NBD" - "$WORK/d1.sock" "$SKERRY" <<'PY'
import nbd, subprocess, sys
sock, skerry = sys.argv[1], sys.argv[2]
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///disk?socket={sock}")
h.pwrite(b"A" * 65536, 0)
subprocess.run([skerry, "snap", "create", "disk@live"], check=True)
h.pwrite(b"B" * 65536, 0)
h.flush()
assert h.pread(4, 0) == b"BBBB"
h.shutdown()
PY
[ "$("$SKERRY" export disk@live - | head -c 4)" = "AAAA" ] || fail "snapshot is not the point in time"
qemu-io -r -f raw -c 'read -v 0 4' "$(nbd_uri d1 disk)" | head -1 | grep '42 42 42 42  BBBB' >/dev/null || fail "head lost the later write"

step "read-only snapshot export"
qemu-io -r -f raw -c 'read -P 0x41 0 64k' "$(nbd_uri d1 disk@live)" | grep "read 65536" >/dev/null
out=$(qemu-io -f raw -c 'write 0 4k' "$(nbd_uri d1 disk@live)" 2>&1) || true
grep -qi "read-only\|permission\|not permitted" <<<"$out" || fail "write to a snapshot export: $out"

step "a second daemon with exclusive opens (--handoff off) cannot open a volume the first holds"
"$PY_NBD" - "$WORK/d1.sock" "$WORK/d2.sock" "$SKERRYD" "$SKERRY_STORE" "$WORK" <<'PY'
import nbd, subprocess, sys, time, os
s1, s2, skerryd, store, work = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///disk?socket={s1}")  # holds disk open in d1
d2 = subprocess.Popen([skerryd, "--store", store, "--listen", f"unix:{s2}", "--admin-socket", f"{work}/d2.admin",
                       "--handoff", "off"], stderr=open(f"{work}/d2.log", "w"))
for _ in range(100):
    if os.path.exists(s2): break
    time.sleep(0.05)
try:
    g = nbd.NBD()
    try:
        g.connect_uri(f"nbd+unix:///disk?socket={s2}")
        raise SystemExit("second daemon opened a volume held by the first")
    except nbd.Error as e:
        pass  # libnbd shows only that the export was refused; the reason is in d2's log
    log = open(f"{work}/d2.log").read()
    assert "open for writing elsewhere" in log, log
    g2 = nbd.NBD()
    g2.connect_uri(f"nbd+unix:///disk@live?socket={s2}")  # reading a snapshot is fine
    assert g2.pread(4, 0) == b"AAAA"
    g2.shutdown()
    # Asking what the held volume is (NBD_OPT_INFO, as nbdinfo --list does for every export)
    # works on the second daemon: describing takes no lock.
    out = subprocess.run(["nbdinfo", "--json", "--list", f"nbd+unix:///?socket={s2}"],
                         capture_output=True, text=True, check=True).stdout
    import json
    exports = {e["export-name"]: e for e in json.loads(out)["exports"]}
    assert exports["disk"]["is_read_only"] is False and exports["disk"]["export-size"] > 0, exports
    assert exports["disk@live"]["is_read_only"] is True, exports
    assert "export disk: opened read-write" not in open(f"{work}/d2.log").read()
finally:
    d2.terminate()
    assert d2.wait(timeout=30) == 0, "second daemon did not stop cleanly"
h.shutdown()
PY

step "a second daemon (cooperative, the default) opens a standby; its first write takes the volume over"
"$PY_NBD" - "$WORK/d1.sock" "$WORK/d3.sock" "$SKERRYD" "$SKERRY_STORE" "$WORK" <<'PY'
import nbd, subprocess, sys, time, os
s1, s3, skerryd, store, work = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///disk?socket={s1}")
h.pwrite(b"D" * 4096, 2 << 20)   # acknowledged, not flushed: the handover must flush it
d3 = subprocess.Popen([skerryd, "--store", store, "--listen", f"unix:{s3}", "--admin-socket", f"{work}/d3.admin"],
                      stderr=open(f"{work}/d3.log", "w"))
for _ in range(100):
    if os.path.exists(s3): break
    time.sleep(0.05)
try:
    g = nbd.NBD()
    g.connect_uri(f"nbd+unix:///disk?socket={s3}")
    assert not g.is_read_only(), "a standby is advertised read-write"
    assert "opened as a standby" in open(f"{work}/d3.log").read()
    g.flush()                      # nothing to flush on a standby: must not take the volume
    h.pwrite(b"E" * 4096, 3 << 20)  # d1 still writes
    h.flush()
    assert g.pread(4096, 3 << 20) == b"E" * 4096, "a standby read misses what the writer flushed"
    g.pwrite(b"F" * 4096, 4 << 20)  # takes the volume over
    assert g.pread(4096, 2 << 20) == b"D" * 4096, "the old writer's unflushed write was lost in the handover"
    try:
        h.pwrite(b"G" * 4096, 0)
        raise SystemExit("the old writer's client wrote after the handover")
    except nbd.Error:
        pass
    log1 = open(f"{work}/d1.log").read()
    assert "handed over to" in log1 and "this open writes no more" in log1, log1
    h.flush()                      # the old client's flush: fine, and does not take it back
    g.pwrite(b"H" * 4096, 5 << 20)
    g.flush()
    assert g.pread(4096, 0) != b"G" * 4096
    g.shutdown()
finally:
    d3.terminate()
    assert d3.wait(timeout=30) == 0, "third daemon did not stop cleanly"
assert "took the write lock" in open(f"{work}/d3.log").read()
h.shutdown()
# A new client of d1 gets a new open, which may take the volume back (the lock is free now).
h2 = nbd.NBD()
h2.connect_uri(f"nbd+unix:///disk?socket={s1}")
h2.pwrite(b"I" * 4096, 6 << 20)
assert h2.pread(4096, 5 << 20) == b"H" * 4096
h2.shutdown()
PY

step "SIGTERM with a client connected: flushed, closed, exit 0"
"$PY_NBD" - "$WORK/d1.sock" <<'PY' &
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///disk?socket={sys.argv[1]}")
h.pwrite(b"C" * 4096, 1 << 20)
time.sleep(30)
PY
client=$!
sleep 1
stop_daemon d1
kill $client 2>/dev/null || true
grep -q "stopped cleanly" "$WORK/d1.log" || fail "no clean stop in the log"
[ "$("$SKERRY" export disk - | dd bs=1 skip=$((1 << 20)) count=4 status=none)" = "CCCC" ] || fail "write before SIGTERM lost"
"$SKERRY" snap create disk@after-stop   # the lock was released
echo "daemon_lifecycle: ok"
