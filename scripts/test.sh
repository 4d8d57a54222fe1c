#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, and runs
#   1. the unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/),
#   2. the concurrency tests (NBD server, volumes) under ThreadSanitizer (build-tsan/),
#   3. every libFuzzer target for a bounded time (scripts/fuzz.sh, build-fuzz/),
#   4. everything with ctest on the normal build (build/): unit, model, crash, store
#      contract (directory, memory, RADOS on a throwaway Ceph cluster), NBD interop, e2e.
# SKERRY_QUICK=1 runs only step 4. Knobs: SKERRY_MODEL_RUNS, FUZZ_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export SKERRY_MODEL_RUNS=${SKERRY_MODEL_RUNS:-20}
jobs=$(nproc)

if [ -z "${SKERRY_QUICK:-}" ]; then
  echo "=== 1/4 unit tests under ASan+UBSan"
  BUILD_DIR=build-asan scripts/build.sh -DSKERRY_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug \
    --target util_test store_test volume_test nbd_test crash_test fault_store_test >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  for t in util_test store_test volume_test nbd_test fault_store_test; do
    SKERRY_MODEL_RUNS=3 build-asan/bin/$t --gtest_brief=1
  done
  # The crash runner under ASan: out-of-bounds map access shows only here (100 seeds).
  SKERRY_CRASH_RUNS=100 build-asan/bin/crash_test --gtest_brief=1

  echo "=== 2/4 concurrency tests under TSan"
  BUILD_DIR=build-tsan scripts/build.sh -DSKERRY_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug \
    --target volume_test nbd_test util_test >/dev/null
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  build-tsan/bin/volume_test --gtest_brief=1 --gtest_filter='*Concurrent*:*OneWriter*:*Fenced*:*Async*:IoGate*:Handoff*'
  build-tsan/bin/nbd_test --gtest_brief=1
  # The NBD server's memory budget (util's MemoryBudget, shared by threads) and FanIn.
  build-tsan/bin/util_test --gtest_brief=1 --gtest_filter='MemoryBudget*:FanIn*'

  echo "=== 3/4 fuzzing"
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/fuzz.sh
fi

echo "=== 4/4 everything (ctest)"
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$jobs" --timeout 900
