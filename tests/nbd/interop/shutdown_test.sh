#!/usr/bin/env bash
# SIGTERM while clients are busy: the server stops accepting, answers what is in
# flight, flushes, releases every export and exits 0 within seconds.
source "$(dirname "$0")/lib.sh"
requires fio nbdsh

start_server s --export disk:256M --export other:16M
fio --name=busy --ioengine=nbd --uri="$(uri s disk)" --rw=randrw --bs=64k --iodepth=32 --numjobs=2 \
    --size=128M --time_based --runtime=30 >"$TMP/fio.out" 2>&1 &
fio_pid=$!
# An idle client in the transmission phase, and one parked in the handshake.
nbdsh -u "$(uri s other)" -c 'import time; time.sleep(30)' >/dev/null 2>&1 &
idle_pid=$!
python3 -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(30)' \
  "$TMP/s.sock" &
parked_pid=$!
sleep 1.5

start=$(date +%s%N)
stop_server s
# From SIGTERM to the process gone; the store check stop_server runs after that is not shutdown.
elapsed_ms=$(( (STOPPED_AT_NS - start) / 1000000 ))
[ "$elapsed_ms" -lt 5000 ] || fail "shutdown took $elapsed_ms ms"
grep -q 'shutting down, ending' "$TMP/s.log" || fail "shutdown did not end the connections"

# The clients see the connection end; none of them may hang.
for pid in $fio_pid $idle_pid $parked_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
echo "PASS (shutdown in $elapsed_ms ms)"
