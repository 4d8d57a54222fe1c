#!/usr/bin/env bash
# Configures and builds skerry into build/ (binaries in build/bin/).
# BUILD_DIR, extra CMake arguments (e.g. -DSKERRY_SANITIZE=address) and, after
# --target, the targets to build (default: all) may be given.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake_args=() targets=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--target" ]; then shift; targets=("$@"); break; fi
  cmake_args+=("$1"); shift
done
cmake -S . -B "$BUILD_DIR" -G Ninja "${cmake_args[@]}" >/dev/null
ninja -C "$BUILD_DIR" -j "$(nproc)" "${targets[@]}"
