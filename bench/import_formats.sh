#!/usr/bin/env bash
# Image format import/export (issue 22): skerry import of a 1 GiB qcow2 (768 MiB data,
# 256 MiB zeros in runs) beside qemu-img convert of the same file to a raw file, and skerry
# export to qcow2 beside qemu-img convert raw -> qcow2; plus a mostly empty 16 GiB qcow2,
# where what counts is that the holes cost nothing. Median of 3, one file system.
# Prints markdown tables (bench/results/).
#
# usage: bench/import_formats.sh [WORKDIR]   (default: a directory under build/; ~4 GiB free)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
WORK=${1:-build/bench-import-formats}
rm -rf "$WORK"; mkdir -p "$WORK"
WORK=$(realpath "$WORK")
trap 'rm -rf "$WORK"' EXIT
for tool in qemu-img qemu-io bc; do
  command -v "$tool" >/dev/null || { echo "import_formats: $tool is not installed" >&2; exit 1; }
done
[ -x "$BIN/skerry" ] || { echo "import_formats: $BIN/skerry not found (set BIN)" >&2; exit 1; }

raw="$WORK/image.raw" img="$WORK/image.qcow2" sparse="$WORK/sparse.qcow2"
for i in $(seq 0 15); do
  head -c 48M /dev/urandom
  head -c 16M /dev/zero
done > "$raw"
qemu-img convert -f raw -O qcow2 "$raw" "$img"
qemu-img create -q -f qcow2 "$sparse" 16G
for gib in 0 5 10 15; do qemu-io -f qcow2 -c "write -P 0x5a $((gib << 30)) 8M" "$sparse" >/dev/null; done
sync

source bench/lib.sh  # time_cmd, median3
sk() { "$BIN/skerry" --store "dir:$WORK/store" "$@"; }

declare -A t
for run in 1 2 3; do
  rm -f "$WORK/q.raw"; t[q$run]=$(time_cmd qemu-img convert -f qcow2 -O raw "$img" "$WORK/q.raw")
  rm -f "$WORK/q.raw"; t[qs$run]=$(time_cmd sh -c "qemu-img convert -f qcow2 -O raw '$img' '$WORK/q.raw' && sync '$WORK/q.raw'")
  rm -rf "$WORK/store"; t[sk$run]=$(time_cmd sk import "$img" img)
  rm -rf "$WORK/store"; t[skr$run]=$(time_cmd sk import "$raw" img)
  rm -f "$WORK/q.qcow2"; t[qe$run]=$(time_cmd sh -c "qemu-img convert -f raw -O qcow2 '$raw' '$WORK/q.qcow2' && sync '$WORK/q.qcow2'")
  rm -f "$WORK/e.qcow2"; t[ske$run]=$(time_cmd sk export img "$WORK/e.qcow2")
  rm -f "$WORK/q.raw"; t[sq$run]=$(time_cmd qemu-img convert -f qcow2 -O raw "$sparse" "$WORK/q.raw")
  rm -rf "$WORK/store2"; t[ss$run]=$(time_cmd "$BIN/skerry" --store "dir:$WORK/store2" import "$sparse" sparse)
done
med() { median3 "${t[${1}1]}" "${t[${1}2]}" "${t[${1}3]}"; }
q=$(med q) qs=$(med qs) skq=$(med sk) skr=$(med skr) qe=$(med qe) ske=$(med ske) sq=$(med sq) ss=$(med ss)
# The results are checked, not only timed.
sk export img "$WORK/check.raw" >/dev/null 2>&1
cmp "$raw" "$WORK/check.raw"
qemu-img compare -q "$raw" "$WORK/e.qcow2"
stored=$(du -sk "$WORK/store2" | cut -f1)

echo "## Import of a 1 GiB qcow2 (768 MiB data, 256 MiB zeros), median of 3"
echo
echo "| tool | seconds | MiB/s of disk | vs qemu-img convert |"
echo "|---|---|---|---|"
row() { printf '| %s | %.2f | %.0f | %.2f× |\n' "$1" "$2" "$(echo "1024 / $2" | bc -l)" "$(echo "$q / $2" | bc -l)"; }
row "qemu-img convert -O raw to a file (not durable)" "$q"
row "qemu-img convert -O raw to a file + sync (durable)" "$qs"
row "skerry import (qcow2, via private NBD; durable)" "$skq"
row "skerry import of the same disk as raw (no qemu-img; durable)" "$skr"
echo
echo "## Export of that volume to qcow2, median of 3"
echo
echo "| tool | seconds | MiB/s of disk |"
echo "|---|---|---|"
printf '| %s | %.2f | %.0f |\n' "qemu-img convert raw file -> qcow2 + sync" "$qe" "$(echo "1024 / $qe" | bc -l)"
printf '| %s | %.2f | %.0f |\n' "skerry export to .qcow2 (durable)" "$ske" "$(echo "1024 / $ske" | bc -l)"
echo
echo "## A 16 GiB qcow2 with 32 MiB of data, median of 3"
echo
echo "| tool | seconds |"
echo "|---|---|"
printf '| %s | %.2f |\n' "qemu-img convert -O raw to a file (sparse)" "$sq"
printf '| %s | %.2f |\n' "skerry import (store after: $((stored / 1024)) MiB)" "$ss"
