#!/usr/bin/env bash
# Configures and builds skerry into build/ (binaries in build/bin/).
# BUILD_DIR and extra CMake arguments (e.g. -DSKERRY_SANITIZE=ON) may be given.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja "$@" >/dev/null
ninja -C "$BUILD_DIR" -j "$(nproc)"
