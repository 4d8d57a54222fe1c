#!/usr/bin/env bash
# Side-by-side fio benchmark of the NBD layer (not a ctest test; ~3 minutes).
#
#   tests/nbd/bench_fio.sh build-nbd/bin/nbd_test_server [runtime-seconds] [rounds]
#
# Servers, each exporting 1 GiB, prefilled with data so reads read data:
#   skerry      nbd_test_server, in-memory volume (the NBD layer alone)
#   nbdkit-mem  nbdkit's memory plugin (the other in-memory NBD server)
#   qemu-tmpfs  qemu-nbd on a raw file in /dev/shm (no disk below it either)
#   qemu-raw    qemu-nbd --cache=none --aio=native on a raw file on disk (the
#               BRIEF's reference configuration)
# Jobs run server after server for each row, and the whole set `rounds` times
# (default 3), so drift in machine load hits all columns alike; each cell is the
# median over the rounds. Prints IOPS (4K), MB/s (1M) and mean latency (QD1).
set -euo pipefail
SERVER_BIN=$(realpath "${1:?usage: $0 path/to/nbd_test_server [runtime]}")
RUNTIME=${2:-5}
ROUNDS=${3:-3}
export PATH=/usr/bin:/bin:$PATH
for tool in fio qemu-nbd nbdkit python3; do command -v $tool >/dev/null || { echo "needs $tool"; exit 2; }; done

TMP=$(mktemp -d /tmp/skerry-nbd-bench.XXXXXX)
DISKDIR=$(mktemp -d /var/tmp/skerry-nbd-bench.XXXXXX)
PIDS=()
cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$TMP" "$DISKDIR" /dev/shm/skerry-nbd-bench.raw
}
trap cleanup EXIT

"$SERVER_BIN" --quiet --listen "unix:$TMP/skerry.sock" --export disk:1G >"$TMP/skerry.log" 2>&1 &
PIDS+=($!)
nbdkit -f -U "$TMP/nbdkit-mem.sock" memory 1G >"$TMP/nbdkit.log" 2>&1 &
PIDS+=($!)
truncate -s 1G /dev/shm/skerry-nbd-bench.raw
qemu-nbd -t -e 8 -f raw -k "$TMP/qemu-tmpfs.sock" /dev/shm/skerry-nbd-bench.raw >"$TMP/q1.log" 2>&1 &
PIDS+=($!)
truncate -s 1G "$DISKDIR/disk.raw"
qemu-nbd -t -e 8 -f raw --cache=none --aio=native -k "$TMP/qemu-raw.sock" "$DISKDIR/disk.raw" >"$TMP/q2.log" 2>&1 &
PIDS+=($!)
SERVERS=(skerry nbdkit-mem qemu-tmpfs qemu-raw)
for s in "${SERVERS[@]}"; do
  for _ in $(seq 100); do [ -S "$TMP/$s.sock" ] && break; sleep 0.05; done
done
uri() { [ "$1" = skerry ] && echo "nbd+unix:///disk?socket=$TMP/$1.sock" || echo "nbd+unix:///?socket=$TMP/$1.sock"; }

for s in "${SERVERS[@]}"; do  # prefill
  fio --name=fill --ioengine=nbd --uri="$(uri $s)" --rw=write --bs=1M --iodepth=8 --size=1G >/dev/null
done

# name rw bs iodepth numjobs
JOBS=(
  "4k-randread-qd32 randread 4k 32 1"
  "4k-randwrite-qd32 randwrite 4k 32 1"
  "1m-read-qd8 read 1M 8 1"
  "1m-write-qd8 write 1M 8 1"
  "4k-randread-qd1 randread 4k 1 1"
  "4k-randwrite-qd1 randwrite 4k 1 1"
  "4k-randread-qd32-4conn randread 4k 32 4"
)
for round in $(seq "$ROUNDS"); do
  for job in "${JOBS[@]}"; do
    read -r name rw bs qd jobs <<<"$job"
    for s in "${SERVERS[@]}"; do
      fio --name="$name" --ioengine=nbd --uri="$(uri $s)" --rw="$rw" --bs="$bs" --iodepth="$qd" \
          --numjobs="$jobs" --group_reporting --size=1G --time_based --runtime="$RUNTIME" \
          --output-format=json --output="$TMP/$s.$name.$round.json" >/dev/null
    done
  done
  echo "round $round done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

python3 - "$TMP" "$ROUNDS" "${SERVERS[@]}" <<'PY'
import json, statistics, sys
tmp, rounds, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = ["4k-randread-qd32", "4k-randwrite-qd32", "1m-read-qd8", "1m-write-qd8",
        "4k-randread-qd1", "4k-randwrite-qd1", "4k-randread-qd32-4conn"]
def one(server, row, r):
    j = json.load(open(f"{tmp}/{server}.{row}.{r}.json"))["jobs"][0]
    side = j["read"] if j["read"]["io_bytes"] else j["write"]
    if "qd1" in row:
        return side["lat_ns"]["mean"] / 1000, "us"  # mean latency
    if row.startswith("1m"):
        return side["bw_bytes"] / 1e6, "MB/s"
    return side["iops"] / 1000, "K IOPS"
def value(server, row):
    samples = [one(server, row, r) for r in range(1, rounds + 1)]
    return statistics.median(v for v, _ in samples), samples[0][1]
print("| job | " + " | ".join(servers) + " | skerry/qemu-raw | skerry/qemu-tmpfs | skerry/nbdkit-mem |")
print("|---|" + "---|" * (len(servers) + 3))
for row in rows:
    vals = {s: value(s, row) for s in servers}
    unit = vals[servers[0]][1]
    cells = [f"{vals[s][0]:.1f} {unit}" for s in servers]
    def ratio(other):
        a, b = vals["skerry"][0], vals[other][0]
        return f"{(b / a if unit == 'us' else a / b):.2f}x"  # >1 is better for skerry
    print(f"| {row} | " + " | ".join(cells) + f" | {ratio('qemu-raw')} | {ratio('qemu-tmpfs')} | {ratio('nbdkit-mem')} |")
PY
