#!/usr/bin/env python3
"""Sends one QMP command to a QEMU and prints its answer as JSON on one line.

    qmp.py SOCKET COMMAND ['{"argument": ...}']
    qmp.py SOCKET --events

Exits 1 with a one-line error when QEMU answers with an error, and 2 when the socket
cannot be reached or the answer does not come within --timeout seconds. Events QEMU sends
meanwhile are skipped. With --events it sends no command: it prints every event QEMU sends
(one JSON line each, with QEMU's timestamp) until QEMU closes the connection or it is
killed; QEMU serves one client per monitor, so that is a monitor of its own. Only the
Python standard library is used.
"""
import argparse
import json
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("command", nargs="?")
    ap.add_argument("arguments", nargs="?", default=None)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--events", action="store_true", help="print events until QEMU closes")
    a = ap.parse_args()
    if (a.command is None) != a.events:
        ap.error("give a COMMAND or --events")
    try:
        args = json.loads(a.arguments) if a.arguments else None
    except json.JSONDecodeError as e:
        print(f"qmp: error: arguments are not JSON: {e}", file=sys.stderr)
        return 2
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        s.connect(a.socket)
        f = s.makefile("rwb")

        def answer():
            while True:
                line = f.readline()
                if not line:
                    raise ConnectionError("QEMU closed the QMP connection")
                msg = json.loads(line)
                if "return" in msg or "error" in msg:
                    return msg

        def send(cmd, arguments=None):
            msg = {"execute": cmd}
            if arguments is not None:
                msg["arguments"] = arguments
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            return answer()

        greeting = json.loads(f.readline() or b"{}")
        if "QMP" not in greeting:
            raise ConnectionError(f"no QMP greeting: {greeting}")
        send("qmp_capabilities")
        if a.events:
            s.settimeout(None)
            for line in f:
                msg = json.loads(line)
                if "event" in msg:
                    print(json.dumps(msg), flush=True)
            return 0
        reply = send(a.command, args)
    except (OSError, ConnectionError, ValueError) as e:
        print(f"qmp: error: {a.command or '--events'} on {a.socket}: {e}", file=sys.stderr)
        return 2
    if "error" in reply:
        err = reply["error"]
        print(f"qmp: error: {a.command}: {err.get('class')}: {err.get('desc')}", file=sys.stderr)
        return 1
    print(json.dumps(reply["return"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
