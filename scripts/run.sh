#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs skerry on the embedded default
# store, a directory under the checkout (var/store). Shows a thin clone of an image.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
STORE="dir:$PWD/var/store"
export SKERRY_STORE=$STORE
skerry=build/bin/skerry
mkdir -p var
echo "store: $STORE"
if ! $skerry info demo-image >/dev/null 2>&1; then
  echo "importing a 256 MiB demo image (mostly holes) as 'demo-image'"
  truncate -s 256M var/demo-image.raw
  head -c 8M /dev/urandom | dd of=var/demo-image.raw conv=notrunc status=none
  $skerry import var/demo-image.raw demo-image
  rm -f var/demo-image.raw
  $skerry snap create demo-image@base
fi
vm="demo-vm-$(date +%s)"
start=$(date +%s%N)
$skerry clone demo-image@base "$vm" --size 1G
end=$(date +%s%N)
echo "thin clone '$vm' of demo-image@base made in $(( (end - start) / 1000000 )) ms (including process start)"
$skerry ls --long
$skerry info "$vm"
echo
echo "Use it: SKERRY_STORE=$STORE $skerry --help"
