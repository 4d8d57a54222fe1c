# skerry sync moves a whole store: volumes, snapshots and clones read the same on the target;
# an interrupted sync (simulated: the target lacks objects) resumes; an open volume is refused.
source "$(dirname "$0")/lib.sh"
SRC="dir:$WORK/src"
TARGET=${SKERRY_SYNC_TARGET:-dir:$WORK/dst}
export SKERRY_STORE=$SRC

make_image "$WORK/base.raw" 32
"$SKERRY" import "$WORK/base.raw" img
"$SKERRY" snap create img@gold
"$SKERRY" clone img@gold vm
head -c 300000 /dev/urandom > "$WORK/patch"
"$SKERRY" write vm "$WORK/patch" --offset 7777
for s in img img@gold vm; do "$SKERRY" export "$s" "$WORK/src-$s.raw"; done

step "first sync copies everything"
out=$("$SKERRY" sync --from "$SRC" --to "$TARGET" --json)
echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["copied"]==r["objects"] and r["skipped"]==0, r'
for s in img img@gold vm; do
  "$SKERRY" --store "$TARGET" export "$s" "$WORK/dst-$s.raw"
  cmp "$WORK/src-$s.raw" "$WORK/dst-$s.raw"
done
"$SKERRY" --store "$TARGET" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"] and r["volumes"]==2, r'

step "a second sync copies only what changed"
"$SKERRY" write vm "$WORK/patch" --offset 0
out=$("$SKERRY" sync --from "$SRC" --to "$TARGET" --json)
echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert 0 < r["copied"] < 8 and r["skipped"] > 0, r'
"$SKERRY" export vm "$WORK/src-vm2.raw"
"$SKERRY" --store "$TARGET" export vm "$WORK/dst-vm2.raw"
cmp "$WORK/src-vm2.raw" "$WORK/dst-vm2.raw"

step "a target with its own volumes is refused"
"$SKERRY" --store "dir:$WORK/other" create mine --size 1M
out=$("$SKERRY" sync --from "$SRC" --to "dir:$WORK/other" 2>&1) && fail "sync into a foreign store accepted"
grep -q "already has a volume 'mine'" <<<"$out" || fail "message: $out"

step "an open volume is refused"
start_daemon d
"$PY_NBD" - "$WORK/d.sock" "$SKERRY" "$SRC" "$TARGET" <<'PY'
import nbd, subprocess, sys
sock, skerry, src, dst = sys.argv[1:]
h = nbd.NBD()
h.connect_uri(f"nbd+unix:///vm?socket={sock}")
r = subprocess.run([skerry, "sync", "--from", src, "--to", dst], capture_output=True, text=True)
assert r.returncode != 0 and "open for writing" in r.stderr, r
h.shutdown()
PY
stop_daemon d
echo "cli_sync: ok"
