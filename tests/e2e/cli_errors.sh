# Bad input gets a one-line error naming the problem, a non-zero exit, and leaves nothing behind.
source "$(dirname "$0")/lib.sh"

"$SKERRY" create a --size 16M
expect_fail "already exists" "$SKERRY" create a --size 1G
expect_fail "must not start" "$SKERRY" create --size 1G -- -bad
expect_fail "character other than" "$SKERRY" create 'sp ace' --size 1G
expect_fail "unknown suffix" "$SKERRY" create b --size 10X
expect_fail "multiple of 512" "$SKERRY" create b --size 1000
expect_fail "greater than zero" "$SKERRY" create b --size 0
expect_fail "power of two" "$SKERRY" create b --size 1G --block-size 3M
expect_fail "power of two" "$SKERRY" create b --size 1G --block-size 32K
expect_fail "does not exist" "$SKERRY" info nosuch
expect_fail "does not exist" "$SKERRY" info a@nosnap
expect_fail "does not exist" "$SKERRY" rm nosuch
expect_fail "names no snapshot" "$SKERRY" snap create a
expect_fail "does not exist" "$SKERRY" clone a@nosnap c
expect_fail "allow-shrink" "$SKERRY" resize a --size 8M
expect_fail "No such file" "$SKERRY" import "$WORK/missing.raw" b
expect_fail "larger than --size" "$SKERRY" import <(head -c 1M /dev/urandom) b --size 4K
head -c 1M /dev/urandom > "$WORK/onemeg"
expect_fail "smaller than" "$SKERRY" import "$WORK/onemeg" b --size 4K
head -c 1048576 /dev/urandom > "$WORK/one"
truncate -s 100M "$WORK/big"
before_a=$("$SKERRY" export a - | md5sum)
expect_fail "past the end" "$SKERRY" write a "$WORK/big"
[ "$("$SKERRY" export a - | md5sum)" = "$before_a" ] || fail "a refused write changed the volume"
# A stream's length is known only at its end: what fits up to the end of the volume is
# written, then the error says how much. Here 1000 bytes too many, at an unaligned offset.
head -c $((16 << 20)) /dev/urandom > "$WORK/stream"
expect_fail "the first $(((16 << 20) - 1000)) bytes of the input were written" \
  "$SKERRY" write a - --offset 1000 < <(cat "$WORK/stream")
cmp <("$SKERRY" export a -) <(head -c 1000 /dev/zero; head -c $(((16 << 20) - 1000)) "$WORK/stream") ||
  fail "a stream past the end did not leave exactly the part up to the end written"
expect_fail "nothing was written" "$SKERRY" write a - --offset 16M < <(echo x)
expect_fail "unknown store URI" "$SKERRY" --store nfs:/x ls
"$SKERRY" snap create a@s
"$SKERRY" clone a@s c
expect_fail "depend on it: c" "$SKERRY" snap rm a@s
expect_fail "clones" "$SKERRY" rm a
expect_fail "already exists" "$SKERRY" rename a c
[ "$("$SKERRY" ls | tr '\n' ' ')" = "a c " ] || fail "a failed command left a volume behind: $("$SKERRY" ls)"

# A corrupted map chunk: reading reports it by name and changes nothing, not even the
# file a failed export was to replace (last night's backup) or a path that was not there.
"$SKERRY" write c "$WORK/one"
"$SKERRY" export c "$WORK/out.raw"
backup=$(md5sum < "$WORK/out.raw")
id=$("$SKERRY" info c --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
chunk=$(find "$WORK/store" -type f -name "v.$id.map.*" | head -1)
[ -n "$chunk" ] || fail "no map chunk found"
printf 'garbage' | dd of="$chunk" bs=1 seek=100 conv=notrunc status=none
before=$(md5sum "$chunk")
expect_fail "checksum mismatch" "$SKERRY" export c "$WORK/out.raw"
[ "$(md5sum < "$WORK/out.raw")" = "$backup" ] || fail "a failed export destroyed the file it was to replace"
expect_fail "checksum mismatch" "$SKERRY" export c "$WORK/new.raw"
[ ! -e "$WORK/new.raw" ] || fail "a failed export left a partial new file"
leftover=$(find "$WORK" -maxdepth 1 -name '.*skerry*')
[ -z "$leftover" ] || fail "a failed export left its temporary file: $leftover"
[ "$(md5sum "$chunk")" = "$before" ] || fail "the corrupted chunk was changed"
out=$("$SKERRY" check --json) && fail "check passed a corrupt store"
echo "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin); assert not r["ok"] and r["problems"][0]["object"].startswith("v.'"$id"'.map."), r'
# A missing block object is a dangling reference.
"$SKERRY" write a "$WORK/one"
aid=$("$SKERRY" info a --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rm "$(find "$WORK/store" -type f -name "v.$aid.b.*" | head -1)"
out=$("$SKERRY" check 2>&1) && fail "check passed a store with a dangling entry"
grep -q "points at a missing object" <<<"$out" || fail "check missed a dangling entry: $out"
echo "cli_errors: ok"
