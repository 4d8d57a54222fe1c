#!/usr/bin/env bash
# Two skerryd on one store take a volume from each other in a loop while fio verify workloads
# alternate between them: each round's fio writes (and verifies) through one daemon while the
# other still holds the volume open, so every round is a handoff; the next round first
# verifies the previous round's data through the other daemon. The open that handed over must
# refuse its client's writes (never two writers), and `skerry check` must find the store sound.
#
# On RADOS (SKERRY_E2E_STORE=rados:...) a last step pauses the holder (SIGSTOP) past its lease:
# the other daemon takes over, fencing it (blocklist); resumed, it writes nothing.
#
# SKERRY_HANDOFF_ROUNDS sets the rounds (default 6).
source "$(dirname "$0")/lib.sh"
command -v fio >/dev/null || fail "fio is not installed (scripts/install-deps.sh)"
rounds=${SKERRY_HANDOFF_ROUNDS:-6}
cd "$WORK"

"$SKERRY" create -s 64M vm >/dev/null
printf 'lock_lease_seconds = 3\n' >"$WORK/short.toml"
start_daemon a --config "$WORK/short.toml"
start_daemon b --config "$WORK/short.toml"

# holder DAEMON: a client of DAEMON's open of vm that reads once and stays connected, so the
# open (and, once it writes, the lock) outlives each fio run. Prints its pid.
holder() {
  $PY_NBD - "$WORK/$1.sock" >"$WORK/holder.$1.out" 2>&1 <<'PY' &
import nbd, sys, time
h = nbd.NBD(); h.connect_uri(f"nbd+unix:///vm?socket={sys.argv[1]}")
h.pread(512, 0)
print("ready", flush=True)
# On SIGUSR1: try a write, report whether it was refused.
import signal
def try_write(*_):
    try:
        h.pwrite(b"X" * 4096, 60 << 20); print("WROTE", flush=True)
    except nbd.Error as e:
        print("REFUSED", e, flush=True)
signal.signal(signal.SIGUSR1, try_write)
while True: time.sleep(1)
PY
  local pid=$!
  for _ in $(seq 100); do grep -q ready "$WORK/holder.$1.out" && break; sleep 0.05; done
  grep -q ready "$WORK/holder.$1.out" || fail "holder on $1: $(cat "$WORK/holder.$1.out")"
  echo $pid
}

# fio_round DAEMON MODE SEED: MODE write (write, then verify) or verify (verify_only of the
# data SEED's write round left), on the first 48 MiB.
fio_round() {
  local extra=()
  [ "$2" = verify ] && extra=(--verify_only)
  fio --name="r$3" --ioengine=nbd --uri="$(nbd_uri "$1" vm)" --rw=randwrite --bs=4k --size=48M \
      --iodepth=8 --randseed="$3" --verify=crc32c --verify_fatal=1 --number_ios=3000 "${extra[@]}" \
      >"$WORK/fio.$1.$3.$2.out" 2>&1 || fail "fio $2 round $3 on $1: $(tail -n 20 "$WORK/fio.$1.$3.$2.out")"
  grep -q "err= 0" "$WORK/fio.$1.$3.$2.out" || fail "fio $2 round $3 on $1: $(cat "$WORK/fio.$1.$3.$2.out")"
}

prev_daemon="" prev_holder=""
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) = 1 ]; then d=a; else d=b; fi
  h=$(holder "$d")
  [ -z "$prev_daemon" ] || fio_round "$d" verify $((round - 1))   # a standby reads the last round's data
  fio_round "$d" write "$round"
  if [ -n "$prev_holder" ]; then
    # The previous daemon's open handed over: its client's write must be refused.
    kill -USR1 "$prev_holder"
    for _ in $(seq 100); do grep -qE "WROTE|REFUSED" "$WORK/holder.$prev_daemon.out" && break; sleep 0.05; done
    grep -q REFUSED "$WORK/holder.$prev_daemon.out" ||
      fail "round $round: the open $prev_daemon handed over let its client write: $(cat "$WORK/holder.$prev_daemon.out")"
    kill "$prev_holder"; wait "$prev_holder" 2>/dev/null || true
  fi
  echo "round $round on $d: $(grep -h 'handoff:' "$WORK/$d.log" | tail -n 1 | sed 's/.*handoff: //')"
  prev_daemon=$d prev_holder=$h
done
grep -c "handoff: handed over" "$WORK/a.log" "$WORK/b.log"
[ "$(cat "$WORK/a.log" "$WORK/b.log" | grep -c 'handoff: handed over')" -ge $((rounds - 1)) ] ||
  fail "fewer handovers than rounds"

if [[ "$SKERRY_STORE" == rados:* ]]; then
  step "RADOS: the holder paused past its lease is fenced by the daemon that takes over"
  holder_d=$prev_daemon other=$([ "$prev_daemon" = a ] && echo b || echo a)
  pid_var="${holder_d}_pid"
  h2=$(holder "$other")
  conf=$(sed -n 's/.*conf=\([^&]*\).*/\1/p' <<<"$SKERRY_STORE")
  before=$(ceph -c "$conf" osd blocklist ls 2>/dev/null | grep -c . || true)
  kill -STOP "${!pid_var}"
  t0=$(date +%s%N)
  # The standby's write waits (handoff_wait 10 s) for the paused holder's 3 s lease to lapse.
  $PY_NBD -c "import nbd; h=nbd.NBD(); h.connect_uri('$(nbd_uri "$other" vm)'); h.pwrite(b'T'*4096, 62<<20); h.flush()" ||
    fail "no takeover from a paused holder: $(tail -n 20 "$WORK/$other.log")"
  echo "takeover from the paused holder after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  kill -CONT "${!pid_var}"
  kill -USR1 "$prev_holder"
  for _ in $(seq 200); do grep -qE "WROTE|REFUSED" "$WORK/holder.$holder_d.out" && break; sleep 0.05; done
  grep -q REFUSED "$WORK/holder.$holder_d.out" ||
    fail "the resumed holder wrote: $(cat "$WORK/holder.$holder_d.out")"
  # The takeover fenced the paused daemon's RADOS client: the monitors list one more entry.
  after=$(ceph -c "$conf" osd blocklist ls 2>/dev/null | grep -c . || true)
  [ "$after" -gt "$before" ] || fail "no client was blocklisted by the takeover ($before entries before, $after after)"
  $PY_NBD -c "import nbd; h=nbd.NBD(); h.connect_uri('$(nbd_uri "$other" vm)'); assert h.pread(4096, 62<<20)==b'T'*4096; assert h.pread(4096, 60<<20)!=b'X'*4096"
  kill "$h2" "$prev_holder" 2>/dev/null || true
fi

stop_daemon a
stop_daemon b
"$SKERRY" check --json >"$WORK/check.json" || fail "skerry check: $(cat "$WORK/check.json")"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"], r' "$WORK/check.json"
echo "handoff_loop: ok"
