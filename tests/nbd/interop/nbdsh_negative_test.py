# Negative cases through libnbd with strict mode off, so bad requests reach the
# server: run by nbdsh_negative_test.sh against nbd_test_server and qemu-nbd.
# Environment: URI_RW (a writable export of at least 64 MiB), URI_RO, URI_MISSING,
# SERVER ("skerry" or "qemu-nbd"). Where qemu-nbd answers differently from what
# the spec recommends, the expectation for it is written next to ours.
import errno
import os

import nbd

server = os.environ["SERVER"]
failures = []


def expect(what, fn, want_errno):
    want = errno.errorcode[want_errno]
    try:
        fn()
        got = "success"
    except nbd.Error as e:
        # libnbd 1.14 gives the errno's name ("EINVAL"); later versions may give the number.
        got = e.errno if isinstance(e.errno, str) else errno.errorcode.get(e.errno, str(e.errno))
    if got != want:
        failures.append(f"{what}: {got}, want {want}")


def handle(uri, meta=True):
    h = nbd.NBD()
    h.set_strict_mode(0)  # let the server judge
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri)
    return h


h = handle(os.environ["URI_RW"])
size = h.get_size()
past = size - 256
# Past the end. The spec asks ENOSPC for writes; qemu-nbd 7.2 answers EINVAL.
write_past = errno.ENOSPC if server == "skerry" else errno.EINVAL
expect("read past the end", lambda: h.pread(512, past), errno.EINVAL)
expect("read far past the end", lambda: h.pread(512, 1 << 62), errno.EINVAL)
expect("write past the end", lambda: h.pwrite(b"x" * 512, past), write_past)
expect("zero past the end", lambda: h.zero(512, past), write_past)
expect("trim past the end", lambda: h.trim(512, past), errno.EINVAL)
expect("cache past the end", lambda: h.cache(512, past), errno.EINVAL)
expect("block status past the end", lambda: h.block_status(512, past, lambda *a: 0), errno.EINVAL)
# Flags that do not belong to the command, or no command at all.
expect("READ with REQ_ONE", lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE), errno.EINVAL)
expect("READ with an unknown flag", lambda: h.pread(512, 0, 1 << 10), errno.EINVAL)
expect("WRITE with NO_HOLE", lambda: h.pwrite(b"x" * 512, 0, nbd.CMD_FLAG_NO_HOLE), errno.EINVAL)
expect("TRIM with FAST_ZERO", lambda: h.trim(512, 0, nbd.CMD_FLAG_FAST_ZERO), errno.EINVAL)
# Longer than the maximum payload: EOVERFLOW (the spec's advice for structured
# replies) from skerry, EINVAL from qemu-nbd.
expect("READ of 33 MiB", lambda: h.pread(33 << 20, 0),
       errno.EOVERFLOW if server == "skerry" else errno.EINVAL)
# The connection survived all of that.
h.pwrite(b"a" * 4096, 8192, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b"a" * 4096
h.zero(1 << 20, 1 << 20, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE)
assert h.pread(65536, 0, nbd.CMD_FLAG_DF)[8192:12288] == b"a" * 4096
h.flush()
extents = []
h.block_status(4096, 8192, lambda ctx, off, e, err: extents.extend(e), nbd.CMD_FLAG_REQ_ONE)
assert len(extents) == 2 and extents[0] <= 4096, extents
h.shutdown()

# BLOCK_STATUS without a negotiated context.
h = handle(os.environ["URI_RW"], meta=False)
expect("block status without a context", lambda: h.block_status(512, 0, lambda *a: 0), errno.EINVAL)
h.shutdown()

# Read-only export: every kind of write is EPERM, as the spec asks; qemu-nbd 7.2
# answers EINVAL (it judges the command unadvertised before the export read-only).
r = handle(os.environ["URI_RO"])
write_ro = errno.EPERM if server == "skerry" else errno.EINVAL
expect("WRITE to read-only", lambda: r.pwrite(b"x" * 512, 0), write_ro)
expect("TRIM on read-only", lambda: r.trim(512, 0), write_ro)
expect("WRITE_ZEROES on read-only", lambda: r.zero(512, 0), write_ro)
r.pread(4096, 0)
r.shutdown()

# A missing export fails the handshake (NBD_REP_ERR_UNKNOWN: ENOENT in libnbd).
m = nbd.NBD()
expect("missing export", lambda: m.connect_uri(os.environ["URI_MISSING"]), errno.ENOENT)

# Option mode: INFO on a missing export, LIST, then ABORT.
o = nbd.NBD()
o.set_opt_mode(True)
o.connect_uri(os.environ["URI_RW"])
o.set_export_name("no-such-export")
expect("NBD_OPT_INFO on a missing export", lambda: o.opt_info(), errno.ENOENT)
names = []
o.opt_list(lambda name, desc: names.append(name))
assert names, "NBD_OPT_LIST returned nothing"
o.opt_abort()

if failures:
    raise SystemExit(f"{server}: " + "; ".join(failures))
print(f"{server}: all negative cases behave")
