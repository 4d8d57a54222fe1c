#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# Model test: a few dozen seeds per store in CI; SKERRY_MODEL_RUNS=1000 for a long run.
export SKERRY_MODEL_RUNS=${SKERRY_MODEL_RUNS:-20}
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 900
