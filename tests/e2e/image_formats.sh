# skerry import/export of qcow2, vmdk, vhdx, vdi and raw images with the real qemu-img:
# byte-exact both ways (qemu-img compare), sparse both ways, backing files, refusals of
# what cannot be read (and nothing left behind), --format over the probe, Ctrl-C.
source "$(dirname "$0")/lib.sh"
command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || { echo "SKIP: no qemu-img/qemu-io"; exit 0; }

FORMATS="qcow2 vmdk vhdx vdi raw"
MiB=$((1 << 20))
allocated() { "$SKERRY" info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["allocated_blocks"])'; }
volumes() { "$SKERRY" ls --json | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))'; }

# 1 GiB disks with data in three 4 MiB blocks (0, 75, 255) and holes everywhere else:
# the first 64 KiB, 1 MiB at 300 MiB, the last 4 KiB.
step "make a 1 GiB image in each format"
for f in $FORMATS; do
  qemu-img create -q -f "$f" "$WORK/src.$f" 1G
  qemu-io -f "$f" -c "write -P 0x11 0 64k" -c "write -P 0x22 300M 1M" -c "write -P 0x33 $((1024 * MiB - 4096)) 4k" \
    "$WORK/src.$f" >/dev/null
done

step "import each: probed, byte-exact, only the written blocks stored"
for f in $FORMATS; do
  "$SKERRY" import "$WORK/src.$f" "v-$f" --json > "$WORK/import.json"
  python3 - "$WORK/import.json" "$f" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == sys.argv[2] and j["bytes"] == 1 << 30, j
assert j["data_bytes"] == 3 * (4 << 20), j
EOF
  [ "$(allocated "v-$f")" = 3 ] || fail "$f import stored $(allocated "v-$f") blocks, not the 3 that hold data"
  "$SKERRY" export "v-$f" "$WORK/back.raw"
  qemu-img compare -q -f "$f" -F raw "$WORK/src.$f" "$WORK/back.raw" || fail "$f import differs from its source"
done
# Also read through skerryd, as a VM would.
start_daemon d
qemu-img compare -q -f qcow2 -F raw "$WORK/src.qcow2" "$(nbd_uri d v-qcow2)" || fail "qcow2 import differs through NBD"
stop_daemon d

step "export to each format: by extension, by --format; sparse; compare with the source"
for f in $FORMATS; do
  "$SKERRY" export v-qcow2 "$WORK/out.$f"
  [ "$(qemu-img info --output=json "$WORK/out.$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = "$f" ] ||
    fail "export to out.$f did not write $f"
  qemu-img compare -q -F "$f" "$WORK/src.qcow2" "$WORK/out.$f" || fail "export to $f differs from the source"
  [ "$(du -k "$WORK/out.$f" | cut -f1)" -lt 20000 ] || fail "export to $f allocates $(du -k "$WORK/out.$f" | cut -f1) KiB for 5 MiB of data"
done
"$SKERRY" export v-vdi "$WORK/forced.img" --format vmdk
qemu-img compare -q -F vmdk "$WORK/src.vdi" "$WORK/forced.img" || fail "--format vmdk export differs"
expect_fail "cannot go to standard output" "$SKERRY" export v-vdi - --format qcow2

step "a qcow2 over a backing file"
qemu-img create -q -f qcow2 -b "$WORK/src.qcow2" -F qcow2 "$WORK/over.qcow2"
qemu-io -f qcow2 -c "write -P 0x44 4k 8k" -c "write -P 0x55 700M 64k" "$WORK/over.qcow2" >/dev/null
"$SKERRY" import "$WORK/over.qcow2" over --json > "$WORK/over.json"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["backing"]==[sys.argv[2]] and j["format"]=="qcow2", j' \
  "$WORK/over.json" "$WORK/src.qcow2"
"$SKERRY" export over "$WORK/over.raw"
qemu-img compare -q "$WORK/over.qcow2" "$WORK/over.raw" || fail "import of a qcow2 with a backing file differs"
[ "$(allocated over)" = 4 ] || fail "backed import stored $(allocated over) blocks, not 4"

step "a relative path with a leading '-' and a ':' is a file to qemu-img, not an option or a protocol"
cp "$WORK/src.vmdk" "$WORK/-odd:name.vmdk"
(cd "$WORK" && "$SKERRY" import -- -odd:name.vmdk odd && "$SKERRY" export odd -- -odd:out.qcow2)
qemu-img compare -q "$WORK/src.vmdk" "$WORK/-odd:out.qcow2" || fail "odd names: the export differs from the source"

step "--format raw on a qcow2 stores the container's bytes; a wrong --format is refused"
"$SKERRY" import "$WORK/src.qcow2" container --format raw
"$SKERRY" export container "$WORK/container.raw"
cmp "$WORK/src.qcow2" "$WORK/container.raw" || fail "--format raw did not store the file's bytes"
expect_fail "cannot read" "$SKERRY" import "$WORK/src.qcow2" wrong --format vmdk
expect_fail "unknown format" "$SKERRY" import "$WORK/src.qcow2" wrong --format qed

step "truncated and corrupt images, and files that are no disk, are refused; nothing is left"
before=$(volumes)
for f in qcow2 vmdk vdi; do
  head -c $(( $(stat -c %s "$WORK/src.$f") - 600000 )) "$WORK/src.$f" > "$WORK/cut.$f"
  expect_fail "truncated" "$SKERRY" import "$WORK/cut.$f" cut
done
head -c $((12 * MiB)) "$WORK/src.vhdx" > "$WORK/cut.vhdx"
expect_fail "cannot read" "$SKERRY" import "$WORK/cut.vhdx" cut
head -c 100 "$WORK/src.qcow2" > "$WORK/stub.qcow2"
expect_fail "header too short" "$SKERRY" import "$WORK/stub.qcow2" cut
cp "$WORK/src.qcow2" "$WORK/bad.qcow2"
printf '\xff\xff\xff\xff\xff\xff\xff\xff' | dd of="$WORK/bad.qcow2" bs=1 seek=40 conv=notrunc status=none  # L1 table offset
expect_fail "cannot read" "$SKERRY" import "$WORK/bad.qcow2" cut
echo "not a disk" > "$WORK/notes.txt"
expect_fail "not a disk image" "$SKERRY" import "$WORK/notes.txt" cut
head -c $MiB "$WORK/src.raw" | gzip -c > "$WORK/src.raw.gz"
expect_fail "gzip-compressed" "$SKERRY" import "$WORK/src.raw.gz" cut
[ "$(volumes)" = "$before" ] || fail "a refused import left volumes behind: $(volumes)"
"$SKERRY" import "$WORK/notes.txt" notes --format raw
"$SKERRY" export notes - | head -c 11 | cmp - "$WORK/notes.txt" || fail "--format raw did not import the text file"

step "standard input is raw only; an import is invisible under its name until complete; SIGTERM leaves nothing"
expect_fail "raw only" "$SKERRY" import - piped --format qcow2 --size 1G < "$WORK/src.qcow2"
head -c $((64 * MiB)) "$WORK/src.raw" | "$SKERRY" import - piped --size 64M
"$SKERRY" export piped "$WORK/piped.raw"
cmp "$WORK/piped.raw" <(head -c $((64 * MiB)) "$WORK/src.raw")
mkfifo "$WORK/fifo"
"$SKERRY" import - slow --size 64M < "$WORK/fifo" 2> "$WORK/slow.err" &
pid=$!
exec 7> "$WORK/fifo"
head -c $((8 * MiB)) /dev/urandom >&7
for _ in $(seq 50); do [[ " $(volumes) " == *" slow.importing-"* ]] && break; sleep 0.1; done
[[ " $(volumes) " == *" slow.importing-"* ]] || fail "no staging volume while importing: $(volumes)"
[[ " $(volumes) " != *" slow "* ]] || fail "the volume is visible under its name before the import completed"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
exec 7>&-
[ "$rc" -eq 1 ] || fail "interrupted import exited $rc: $(cat "$WORK/slow.err")"
grep -q "interrupted: no volume was made" "$WORK/slow.err" || fail "interrupted import said: $(cat "$WORK/slow.err")"
[ "$(volumes)" = "$(echo $before notes piped | tr ' ' '\n' | sort | xargs)" ] || fail "an interrupted import left volumes: $(volumes)"

step "check finds nothing wrong, nothing unreferenced"
"$SKERRY" check --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["ok"] and not r["unreferenced"], r'
echo PASS
