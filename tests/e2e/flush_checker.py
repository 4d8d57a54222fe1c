#!/usr/bin/python3
# A writer that knows exactly which of its writes a completed NBD FLUSH covers, and
# a checker that holds the server to it after a crash (tests/e2e/daemon_kill.sh).
#
#   flush_checker.py write URI STATE ROUND   random 4 KiB writes at queue depth 16, a
#       flush every 64 completions, until the connection dies (the daemon was killed);
#       after each completed flush, STATE records the newest version of every block
#       that had completed before that flush was sent.
#   flush_checker.py check URI STATE         reads every block and demands, per block:
#       a version at least the one in STATE (what a completed flush covered survives),
#       and bytes that are exactly some version this writer wrote (nothing torn, nothing
#       from elsewhere) or, for a block no flush covered yet, zeros. Then it flushes and
#       records what it read as the new baseline.
#
# fio cannot be the judge here: after a crash its verify cannot tell a write that was
# only completed (which may roll back) from one a flush covered (which must not).
# Each block carries its own identity, so the check needs nothing but STATE:
#   bytes 0..15 = block index, version (little-endian u64); the rest derive from both.
import errno
import hashlib
import os
import random
import struct
import sys
import time

import nbd

BLOCK = 4096
BLOCKS = 8192          # a 32 MiB region
QUEUE_DEPTH = 16
FLUSH_EVERY = 64


def content(block, version):
    seed = hashlib.sha256(struct.pack("<QQ", block, version)).digest()
    return (struct.pack("<QQ", block, version) + seed * (BLOCK // len(seed)))[:BLOCK]


def load_state(path):
    if not os.path.exists(path):
        return [0] * BLOCKS
    data = open(path, "rb").read()
    return list(struct.unpack(f"<{BLOCKS}Q", data))


def save_state(path, versions):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack(f"<{BLOCKS}Q", *versions))
    os.replace(tmp, path)  # the daemon dies, not the host: rename is enough


def connect(uri, deadline_s=30):
    # The volume's lock may still carry the killed daemon's lease: retry until it expires.
    end = time.monotonic() + deadline_s
    while True:
        h = nbd.NBD()
        try:
            h.connect_uri(uri)
            return h
        except nbd.Error as e:
            if time.monotonic() > end:
                raise SystemExit(f"cannot connect to {uri}: {e}")
            time.sleep(0.2)


def write(uri, state_path, round_no):
    durable = load_state(state_path)
    completed = list(durable)      # newest completed version per block
    busy = set()                   # blocks with a write in flight (one at a time per block)
    inflight = {}                  # cookie -> (block, version) or ("flush", snapshot)
    rng = random.Random(round_no)
    version = round_no << 32       # every round writes versions above all earlier ones
    since_flush = 0
    flushes = 0
    h = connect(uri)
    print(f"round {round_no}: writing", flush=True)
    try:
        while True:
            while len(inflight) < QUEUE_DEPTH:
                if since_flush >= FLUSH_EVERY:
                    since_flush = 0
                    inflight[h.aio_flush()] = ("flush", list(completed))
                    continue
                block = rng.randrange(BLOCKS)
                if block in busy:
                    continue
                version += 1
                busy.add(block)
                buf = nbd.Buffer.from_bytearray(bytearray(content(block, version)))
                inflight[h.aio_pwrite(buf, block * BLOCK)] = (block, version)
            h.poll(-1)
            for cookie in [c for c in inflight if h.aio_command_completed(c)]:
                what, arg = inflight.pop(cookie)
                if what == "flush":
                    save_state(state_path, arg)
                    flushes += 1
                else:
                    busy.discard(what)
                    completed[what] = max(completed[what], arg)
                    since_flush += 1
    except nbd.Error as e:
        # The daemon was killed under us: that is the test. An error reply from a live
        # server is a failure.
        gone = e.errnum in (errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN)
        if not (gone or h.aio_is_dead() or h.aio_is_closed()):
            raise SystemExit(f"round {round_no}: the server answered an error: {e}")
        print(f"round {round_no}: connection ended after {flushes} flushes: {e}", flush=True)
        return 0 if flushes > 0 else 1


def check(uri, state_path):
    durable = load_state(state_path)
    h = connect(uri)
    data = bytearray()
    for off in range(0, BLOCKS * BLOCK, 1 << 20):
        data += h.pread(1 << 20, off)
    found = list(durable)
    newer = 0
    for block in range(BLOCKS):
        b = bytes(data[block * BLOCK:(block + 1) * BLOCK])
        if b == bytes(BLOCK):
            if durable[block] != 0:
                raise SystemExit(f"block {block}: zeros, but version {durable[block]:#x} was flushed")
            continue
        got_block, got_version = struct.unpack_from("<QQ", b)
        if got_block != block or b != content(got_block, got_version):
            raise SystemExit(f"block {block}: bytes this writer never wrote there "
                             f"(header says block {got_block} version {got_version:#x})")
        if got_version < durable[block]:
            raise SystemExit(f"block {block}: version {got_version:#x} is older than the flushed "
                             f"{durable[block]:#x}: a flushed write was lost")
        newer += got_version > durable[block]
        found[block] = got_version
    h.flush()  # what was read is now durable: the next round's baseline
    h.shutdown()
    save_state(state_path, found)
    written = sum(1 for v in found if v)
    print(f"check: {written} blocks hold flushed data, {newer} hold later unflushed writes "
          f"that happened to survive; none lost", flush=True)
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "write":
        sys.exit(write(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    if mode == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    raise SystemExit(f"unknown mode {mode}")
