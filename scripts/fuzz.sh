#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a bounded time on
# a copy of its seed corpus. Any crash, leak, sanitizer report or hang (>10 s on one input)
# fails the run; the reproducer is left in build-fuzz/findings/.
#   FUZZ_SECONDS=30 scripts/fuzz.sh          # CI default
#   FUZZ_SECONDS=3600 scripts/fuzz.sh        # a long run
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-30}
BUILD=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DSKERRY_FUZZ=ON -DSKERRY_RADOS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(ls fuzz/*_fuzz.cc | xargs -n1 basename | sed 's/\.cc$//')
ninja -C "$BUILD" -j "$(nproc)" $targets
mkdir -p "$BUILD/findings"
failed=0
for t in $targets; do
  name=${t%_fuzz}
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  echo "fuzzing $t for ${SECONDS_EACH}s"
  if ! "$BUILD/bin/$t" "$work" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$BUILD/findings/$t-" -print_final_stats=1 > "$BUILD/findings/$t.log" 2>&1; then
    echo "FAIL: $t found a problem; see $BUILD/findings/$t.log"
    tail -30 "$BUILD/findings/$t.log"
    failed=1
  else
    grep -E "stat::number_of_executed_units|cov:" "$BUILD/findings/$t.log" | tail -2 || true
  fi
  rm -rf "$work"
done
exit $failed
