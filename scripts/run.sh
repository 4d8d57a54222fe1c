#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs skerryd on the embedded default
# store, a directory under the checkout (var/store). Makes a demo image and a thin clone of it
# the first time, prints what to give QEMU, and serves until Ctrl-C (SIGTERM/SIGINT: clean stop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
mkdir -p var
STORE="dir:$PWD/var/store"
SOCK="$PWD/var/nbd.sock"
TCP=${SKERRY_TCP:-127.0.0.1:10809}
export SKERRY_STORE=$STORE
skerry=build/bin/skerry
if ! $skerry info demo-image --no-usage >/dev/null 2>&1; then
  echo "making a 1 GiB demo image (8 MiB of data, the rest holes) as 'demo-image'"
  truncate -s 1G var/demo-image.raw
  head -c 8M /dev/urandom | dd of=var/demo-image.raw conv=notrunc status=none
  $skerry import var/demo-image.raw demo-image
  rm -f var/demo-image.raw
  $skerry snap create demo-image@base
fi
vm="vm-$(date +%s)"
start=$(date +%s%N)
$skerry clone demo-image@base "$vm" --size 10G
end=$(date +%s%N)
echo "thin clone '$vm' of demo-image@base: $(( (end - start) / 1000000 )) ms, including starting the CLI"
$skerry ls --long
cat <<TEXT

Serving store $STORE over NBD. Give QEMU:
  -blockdev driver=nbd,node-name=disk0,server.type=unix,server.path=$SOCK,export=$vm
  -device virtio-blk-pci,drive=disk0
or a URI: nbd+unix:///$vm?socket=$SOCK   nbd://$TCP/$vm
Try:  qemu-img info 'nbd+unix:///$vm?socket=$SOCK'
      SKERRY_STORE=$STORE $skerry snap create $vm@now   (works while a client is connected)
Ctrl-C stops the daemon cleanly.

TEXT
exec build/bin/skerryd --store "$STORE" --listen "unix:$SOCK" --listen "tcp:$TCP" \
  --admin-socket "$PWD/var/admin.sock"
