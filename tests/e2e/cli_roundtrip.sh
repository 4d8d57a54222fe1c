# Import a file, snapshot, clone, write to the clone, export both; compare with cmp and
# qemu-img compare; check thinness and sparseness along the way.
source "$(dirname "$0")/lib.sh"

step "import a 64 MiB image with holes"
make_image "$WORK/base.raw" 64
"$SKERRY" import "$WORK/base.raw" img
"$SKERRY" info img | grep "size:       64 MiB" >/dev/null
# The size checks look at the files of a dir: store (SKERRY_E2E_STORE may name another store).
store_is_dir() { [[ "$SKERRY_STORE" == dir:* ]]; }
if store_is_dir; then
  stored=$(du -sk "$WORK/store" | cut -f1)
  [ "$stored" -lt 20000 ] || fail "import stored ${stored} KiB for ~6 MiB of data: zero blocks were stored"
fi

step "snapshot and clone are thin"
"$SKERRY" snap create img@gold
"$SKERRY" clone img@gold vm1 --size 80M
"$SKERRY" info vm1 --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["parent"]=="img@gold", j; assert j["size"]==80<<20, j'
if store_is_dir; then
  after=$(du -sk "$WORK/store" | cut -f1)
  [ $((after - stored)) -lt 200 ] || fail "snapshot + clone grew the store by $((after - stored)) KiB"
fi

step "write to the clone"
head -c 1000000 /dev/urandom > "$WORK/patch"
"$SKERRY" write vm1 "$WORK/patch" --offset 5000
"$SKERRY" write vm1 "$WORK/patch" --offset $((70 << 20))

step "export both and compare"
"$SKERRY" export img@gold "$WORK/gold.raw"
"$SKERRY" export vm1 "$WORK/vm1.raw"
"$SKERRY" export img - > "$WORK/img-stdout.raw"
cmp "$WORK/base.raw" "$WORK/gold.raw"
cmp "$WORK/base.raw" "$WORK/img-stdout.raw"
cp "$WORK/base.raw" "$WORK/expect.raw"
truncate -s 80M "$WORK/expect.raw"
dd if="$WORK/patch" of="$WORK/expect.raw" bs=1 seek=5000 conv=notrunc status=none
dd if="$WORK/patch" of="$WORK/expect.raw" bs=1M seek=70 conv=notrunc status=none iflag=fullblock 2>/dev/null || \
  dd if="$WORK/patch" of="$WORK/expect.raw" bs=1 seek=$((70 << 20)) conv=notrunc status=none
cmp "$WORK/expect.raw" "$WORK/vm1.raw"
! cmp -s "$WORK/gold.raw" <(head -c $((64 << 20)) "$WORK/vm1.raw") || fail "clone write leaked into the snapshot"
if command -v qemu-img >/dev/null; then
  qemu-img compare -f raw -F raw "$WORK/expect.raw" "$WORK/vm1.raw"
fi

step "export over an existing file replaces it, through a symlink, keeping its mode"
chmod 600 "$WORK/vm1.raw"
ln -s vm1.raw "$WORK/link.raw"
"$SKERRY" export img@gold "$WORK/link.raw"
[ -L "$WORK/link.raw" ] || fail "export replaced the symlink instead of the file it points at"
cmp "$WORK/base.raw" "$WORK/vm1.raw"
[ "$(stat -c %a "$WORK/vm1.raw")" = 600 ] || fail "export changed the mode of the file it replaced"
"$SKERRY" export vm1 "$WORK/vm1.raw"
cmp "$WORK/expect.raw" "$WORK/vm1.raw"
# A pipe cannot be renamed over: written in place.
cmp "$WORK/base.raw" <("$SKERRY" export img /dev/stdout)

step "export is sparse"
alloc=$(du -k "$WORK/gold.raw" | cut -f1)
[ "$alloc" -lt 16000 ] || fail "exported file allocates ${alloc} KiB for ~6 MiB of data"

step "import from stdin"
cat "$WORK/base.raw" | "$SKERRY" import - piped --size 64M
"$SKERRY" export piped "$WORK/piped.raw"
cmp "$WORK/base.raw" "$WORK/piped.raw"

step "check finds nothing wrong"
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"] and r["volumes"]==3 and not r["unreferenced"], r'

step "ls, snap ls, rollback, rename, resize, rm"
"$SKERRY" ls | grep -x vm1 >/dev/null
"$SKERRY" ls --json | python3 -c 'import json,sys; assert sorted(json.load(sys.stdin))==["img","piped","vm1"]'
"$SKERRY" ls --long | grep '^vm1 .*img@gold' >/dev/null
"$SKERRY" snap ls img --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s[0]["name"]=="gold" and s[0]["children"]==["vm1"], s'
"$SKERRY" snap create vm1@before
"$SKERRY" write vm1 "$WORK/patch" --offset 0
"$SKERRY" snap rollback vm1@before
"$SKERRY" export vm1 "$WORK/vm1b.raw"
cmp "$WORK/expect.raw" "$WORK/vm1b.raw"
"$SKERRY" rename vm1 vm-renamed
"$SKERRY" info vm-renamed@before >/dev/null
"$SKERRY" resize vm-renamed --size 100M
[ "$("$SKERRY" info vm-renamed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')" = $((100 << 20)) ]
"$SKERRY" resize vm-renamed --size 10M --allow-shrink
"$SKERRY" rm piped
"$SKERRY" rm vm-renamed
"$SKERRY" snap rm img@gold
"$SKERRY" rm img
[ -z "$("$SKERRY" ls)" ] || fail "volumes left after rm"
if store_is_dir; then
  left=$(find "$WORK/store" -type f -name 'v.*' | wc -l)
  [ "$left" -eq 0 ] || fail "$left objects left after removing every volume"
fi
# On any store: nothing but the (empty) directory object is left.
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"] and r["volumes"]==0 and not r["unreferenced"], r'
echo "cli_roundtrip: ok"
