# Store faults through the real daemon (docs/faults.md): with skerryd on a fault: store, an NBD
# client gets ENOSPC / EIO on the failing request only; other volumes and later requests work;
# nothing acknowledged is lost. With skerryd on a nondurable: store, a power cut loses only what
# was not flushed, and the store checks clean.
source "$(dirname "$0")/lib.sh"
plain="$SKERRY_STORE"

step "faults on one volume's objects, switched by trigger files"
"$SKERRY" create vm1 --size 8M
"$SKERRY" create vm2 --size 8M
id1=$("$SKERRY" info vm1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export SKERRY_STORE="fault:error=enospc&ops=write|copy|zero|truncate&trigger=$WORK/full&prefix=v.$id1.,error=eio&ops=read&trigger=$WORK/bad&prefix=v.$id1.+$plain"
start_daemon d1
"$PY_NBD" - "$WORK" <<'PY'
import errno, os, sys
import nbd
work = sys.argv[1]
def connect(name):
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{name}?socket={work}/d1.sock")
    return h
def expect_errno(want, fn, *args):
    try:
        fn(*args)
    except nbd.Error as e:
        assert e.errnum == want, f"{fn.__name__}: errno {e.errnum} ({e}), wanted {want}"
        return
    raise SystemExit(f"{fn.__name__} succeeded; wanted errno {want}")
h1, h2 = connect("vm1"), connect("vm2")
A, B, C = b"A" * 65536, b"B" * 65536, b"C" * 65536
MiB = 1 << 20
h1.pwrite(A, 0)
h1.flush()

open(f"{work}/full", "w").close()
expect_errno(errno.ENOSPC, h1.pwrite, B, 5 * MiB)          # a hole: a new object
expect_errno(errno.ENOSPC, h1.pwrite, B, 100)              # in place
expect_errno(errno.ENOSPC, h1.zero, 4096, 6 * MiB, nbd.CMD_FLAG_NO_HOLE)
assert h1.pread(65536, 0) == A, "a read failed while only writes do"
h1.flush()
h2.pwrite(C, 0)                                            # another volume is not affected
h2.flush()
assert h2.pread(65536, 0) == C
os.remove(f"{work}/full")
h1.pwrite(B, 5 * MiB)                                      # the same connection works again
h1.pwrite(B, 100)
h1.flush()

open(f"{work}/bad", "w").close()
expect_errno(errno.EIO, h1.pread, 4096, 0)
assert h2.pread(4096, 0) == C[:4096]
os.remove(f"{work}/bad")
assert h1.pread(100 + 65536, 0) == b"A" * 100 + B
h1.shutdown()
h2.shutdown()
PY
stop_daemon d1

step "nothing acknowledged was lost"
export SKERRY_STORE="$plain"
"$SKERRY" export vm1 "$WORK/vm1.raw"
python3 - "$WORK/vm1.raw" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
MiB = 1 << 20
assert d[:100] == b"A" * 100 and d[100:100 + 65536] == b"B" * 65536, "vm1 head"
assert d[5 * MiB:5 * MiB + 65536] == b"B" * 65536, "vm1 second block"
assert d[6 * MiB:6 * MiB + 4096] == bytes(4096)
PY
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"], r'

step "power cut under the daemon: flushed data survives, the store checks clean"
"$SKERRY" create pc --size 16M --block-size 64K
export SKERRY_STORE="nondurable:crash=$WORK/power&mode=tear&seed=5+$plain"
start_daemon d2
"$PY_NBD" - "$WORK" <<'PY'
import errno, os, sys
import nbd
work = sys.argv[1]
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///pc?socket={work}/d2.sock")
for i in range(64):
    h.pwrite(bytes([65 + i % 26]) * 65536, i * 65536)
h.flush()
for i in range(0, 64, 3):                                  # not flushed: old or new after the cut
    h.pwrite(b"z" * 70000, i * 65536 + 1000)
h.trim(4 * 65536, 20 * 65536)
open(f"{work}/power", "w").close()
try:
    h.flush()
    raise SystemExit("flush succeeded after the power cut")
except nbd.Error as e:
    assert e.errnum == errno.EIO, e
PY
kill -9 "$d2_pid"
wait "$d2_pid" 2>/dev/null || true
export SKERRY_STORE="$plain"
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"], r'
"$SKERRY" export pc "$WORK/pc.raw"
python3 - "$WORK/pc.raw" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
for i in range(64):
    block = d[i * 65536:(i + 1) * 65536]
    old = bytes([65 + i % 26])
    for j, b in enumerate(block):
        ok = b == old[0] or b == ord("z") or (4 <= i < 24 and b == 0)
        assert ok, f"block {i} byte {j} is {b!r}: neither flushed nor written since"
PY
echo "OK"
