#!/usr/bin/python3
"""Opens one NBD connection to each of N exports, reads a few blocks of each, and reports
the server's resident memory while they are all open and after they are closed.

usage: open_exports.py SOCKET SERVER_PID LABEL EXPORT...

Prints markdown table rows: | LABEL | exports | VmRSS | VmHWM | threads | fds |.
Needs Debian's python3 (python3-libnbd), i.e. /usr/bin/python3.
"""
import os
import sys
import time

import nbd


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return fields["VmRSS"], fields["VmHWM"], fields["Threads"], fds


def row(label, n, pid):
    rss, hwm, threads, fds = status(pid)
    print(f"| {label} | {n} | {rss} | {hwm} | {threads} | {fds} |", flush=True)


def main():
    sock, pid, label, exports = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    row(f"{label}, idle", 0, pid)
    handles = []
    for name in exports:
        h = nbd.NBD()
        h.connect_uri(f"nbd+unix:///{name}?socket={sock}")
        size = h.get_size()
        # A few blocks: the start, the middle, the end (holes in a thin volume: the map
        # chunks covering them get loaded).
        for off in (0, 4 << 20, size // 2, size - 4096):
            h.pread(4096, off)
        handles.append(h)
    time.sleep(0.5)
    row(f"{label}, all open", len(handles), pid)
    for h in handles:
        h.shutdown()
    handles.clear()
    time.sleep(1.0)
    row(f"{label}, after closing", 0, pid)


if __name__ == "__main__":
    main()
