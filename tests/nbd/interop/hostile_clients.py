# Hostile clients for hostile_clients_test.sh: for `seconds`, open connections to
# the Unix socket and misbehave in every way the protocol allows a client to:
# garbage, bad magic, giant lengths, half messages, vanishing mid-request.
# Prints the seed so a failure can be replayed.
import os
import random
import socket
import struct
import sys
import time

path, seconds = sys.argv[1], float(sys.argv[2])
seed = int(os.environ.get("NBD_FUZZ_SEED", random.randrange(1 << 32)))
print(f"hostile clients: NBD_FUZZ_SEED={seed}", flush=True)
rng = random.Random(seed)

OPT_MAGIC = 0x49484156454F5054
REQ_MAGIC = 0x25609513


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(path)
    s.recv(18)  # greeting
    return s


def handshake(s, export=b"disk"):
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    s.sendall(struct.pack(">QII", OPT_MAGIC, 7, 4 + len(export) + 2) +
              struct.pack(">I", len(export)) + export + struct.pack(">H", 0))


def attack(kind):
    s = connect()
    try:
        if kind == "garbage":
            s.sendall(rng.randbytes(rng.randrange(1, 8192)))
        elif kind == "bad-client-flags":
            s.sendall(struct.pack(">I", 0xFFFFFFFF))
        elif kind == "giant-option":
            s.sendall(struct.pack(">I", 3) + struct.pack(">QII", OPT_MAGIC, 7, 0xFFFFFFFF))
        elif kind == "half-option":
            s.sendall(struct.pack(">I", 3) + struct.pack(">QII", OPT_MAGIC, 7, 1000) + b"x" * 10)
        elif kind == "option-storm":
            s.sendall(struct.pack(">I", 3))
            for _ in range(200):
                s.sendall(struct.pack(">QII", OPT_MAGIC, rng.randrange(1 << 32), 0))
        elif kind == "bad-request-magic":
            handshake(s)
            time.sleep(0.01)
            s.sendall(rng.randbytes(28))
        elif kind == "giant-write":
            handshake(s)
            time.sleep(0.01)
            s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 1, 1, 0, 0xFFFFFFFF))
        elif kind == "half-write":
            handshake(s)
            time.sleep(0.01)
            s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 1, 1, 0, 1 << 20) + b"y" * 1000)
        elif kind == "random-requests":
            handshake(s)
            time.sleep(0.01)
            for _ in range(50):
                flags, cmd = rng.randrange(1 << 16), rng.randrange(12)
                length = rng.choice([0, 1, 512, 4096, 1 << 25, 1 << 31, rng.randrange(1 << 32)])
                offset = rng.choice([0, rng.randrange(1 << 64), (256 << 20) - 512])
                msg = struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, rng.randrange(1 << 64), offset, length)
                if cmd == 1 and length <= 4096:
                    msg += b"z" * length
                s.sendall(msg)
                if cmd == 1 and length > 4096:
                    break  # the server now waits for a payload we never send
        elif kind == "read-and-vanish":
            handshake(s)
            time.sleep(0.01)
            for i in range(64):  # big reads whose replies nobody collects
                s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, 0, i, 0, 1 << 24))
    except OSError:
        pass  # the server hung up on us: that is an allowed answer
    finally:
        s.close()


kinds = ["garbage", "bad-client-flags", "giant-option", "half-option", "option-storm",
         "bad-request-magic", "giant-write", "half-write", "random-requests", "read-and-vanish"]
end = time.time() + seconds
count = 0
while time.time() < end:
    attack(rng.choice(kinds))
    count += 1
print(f"hostile clients: {count} attacks", flush=True)
