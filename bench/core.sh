#!/usr/bin/env bash
# Core benchmark (issue: core): snapshot/clone time at 1 GiB, 100 GiB, 1 TiB with fully
# populated maps, and import of a 1 GiB image against cp --sparse=always and qemu-img convert,
# in one run on the same file system. Prints markdown tables for docs/benchmarks.md.
#
# usage: bench/core.sh [WORKDIR]   (default: a directory under build/; needs ~3 GiB free)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
WORK=${1:-build/bench-core}
rm -rf "$WORK"; mkdir -p "$WORK"
WORK=$(realpath "$WORK")
trap 'rm -rf "$WORK"' EXIT

echo "## Snapshot and clone (directory store on $(df --output=fstype "$WORK" | tail -1), fully populated maps)"
echo
"$BIN/snapshot_clone_bench" "dir:$WORK/meta-store" ${SIZES:-1G 100G 1T}
rm -rf "$WORK/meta-store"
echo

# A 1 GiB image: 768 MiB of random data, 256 MiB of zeros in runs (as a real image has).
img="$WORK/image.raw"
for i in $(seq 0 15); do
  head -c 48M /dev/urandom
  head -c 16M /dev/zero
done > "$img"
sync

source bench/lib.sh  # time_cmd, median3

declare -A t
for run in 1 2 3; do
  rm -f "$WORK/cp.raw"; t[cp$run]=$(time_cmd cp --sparse=always "$img" "$WORK/cp.raw")
  rm -f "$WORK/cp.raw"; t[cps$run]=$(time_cmd sh -c "cp --sparse=always '$img' '$WORK/cp.raw' && sync '$WORK/cp.raw'")
  rm -f "$WORK/q.raw"; t[qemu$run]=$(time_cmd qemu-img convert -f raw -O raw "$img" "$WORK/q.raw")
  rm -rf "$WORK/store"; t[sk$run]=$(time_cmd "$BIN/skerry" --store "dir:$WORK/store" import "$img" img)
done
cp_t=$(median3 "${t[cp1]}" "${t[cp2]}" "${t[cp3]}")
cps_t=$(median3 "${t[cps1]}" "${t[cps2]}" "${t[cps3]}")
q_t=$(median3 "${t[qemu1]}" "${t[qemu2]}" "${t[qemu3]}")
sk_t=$(median3 "${t[sk1]}" "${t[sk2]}" "${t[sk3]}")
"$BIN/skerry" --store "dir:$WORK/store" export img "$WORK/check.raw" 2>/dev/null
cmp "$img" "$WORK/check.raw"

echo "## Import of a 1 GiB raw image (768 MiB data, 256 MiB zeros), median of 3"
echo
echo "| tool | seconds | MiB/s | skerry import is N× faster |"
echo "|---|---|---|---|"
row() { printf '| %s | %.2f | %.0f | %.2f× |\n' "$1" "$2" "$(echo "1024 / $2" | bc -l)" "$(echo "$2 / $sk_t" | bc -l)"; }
row "cp --sparse=always (page cache, not durable)" "$cp_t"
row "cp --sparse=always + sync (durable)" "$cps_t"
row "qemu-img convert -O raw (not durable)" "$q_t"
row "skerry import (durable: fdatasync before it returns)" "$sk_t"
