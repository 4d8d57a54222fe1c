#!/usr/bin/env bash
# Installs the Debian 12 packages skerry needs to build, run and test, if any are missing.
# Idempotent and quiet when everything is there.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config git
  # libraries (see CMakeLists.txt for why each)
  libgtest-dev libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  libtomlplusplus-dev liburing-dev libssl-dev libgnutls28-dev
  # real clients the tests and benchmarks drive
  qemu-utils libnbd-bin python3-libnbd nbdkit fio gnutls-bin python3 bc
  # RADOS store: librados C++ API, and a throwaway test cluster (scripts/ceph-cluster.sh)
  librados-dev libradospp-dev ceph-mon ceph-osd ceph-common
  # the real-QEMU test guest (scripts/guest/build.sh: busybox initramfs, kernel from the archive)
  qemu-system-x86 busybox-static cpio
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
