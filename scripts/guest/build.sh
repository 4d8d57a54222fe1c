#!/usr/bin/env bash
# Builds skerry's test guest: a Debian kernel and a busybox initramfs whose init
# (scripts/guest/init) writes numbered records to /dev/vda. Output, in $SKERRY_GUEST_DIR
# (default var/guest): vmlinuz, initramfs.cpio.gz, and cache/ with the kernel package.
#
# The kernel comes from Debian's archive as a package file (apt-get download of the
# linux-image-<abi>-amd64 package that linux-image-amd64 points to), unpacked with dpkg-deb -x
# into a temporary directory: nothing is installed, the host's /boot and /lib/modules are
# not touched, and no root is needed. The kernel and its modules are made once and kept;
# the initramfs is made again whenever init or this script is newer than it. Prints the
# output directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC="$ROOT/scripts/guest"
OUT=${SKERRY_GUEST_DIR:-$ROOT/var/guest}
BUSYBOX=/bin/busybox

die() { echo "guest/build.sh: error: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg-deb cpio gzip python3 flock; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/install-deps.sh)"
done
[ -x "$BUSYBOX" ] || die "$BUSYBOX is missing: install busybox-static (scripts/install-deps.sh)"
# A dynamically linked busybox (package busybox) would find no libc in the initramfs.
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked: install busybox-static"; fi

mkdir -p "$OUT/cache"
# Tests run in parallel (ctest -j) may all call this at once: one builds, the others wait.
exec 9>"$OUT/.lock"
flock 9
tmp=$(mktemp -d "${TMPDIR:-/tmp}/skerry-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- The kernel and the virtio modules, once.
if [ ! -s "$OUT/vmlinuz" ] || [ ! -s "$OUT/modules/order" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$pkg" ] || die "apt-cache knows no linux-image-amd64 (run apt-get update)"
  deb=$(ls "$OUT/cache/${pkg}"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    echo "guest/build.sh: downloading $pkg" >&2
    # As root apt-get drops to the _apt user for downloads, which cannot write here.
    sandbox=()
    [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$tmp" && apt-get -q "${sandbox[@]}" download "$pkg" >/dev/null) ||
      die "apt-get download $pkg failed"
    mv "$tmp/${pkg}"_*.deb "$OUT/cache/"
    deb=$(ls "$OUT/cache/${pkg}"_*.deb | head -n 1)
  fi
  dpkg-deb -x "$deb" "$tmp/kernel" || die "dpkg-deb -x $deb failed"
  kver=$(ls "$tmp/kernel/lib/modules" | head -n 1)
  [ -f "$tmp/kernel/boot/vmlinuz-$kver" ] || die "$deb holds no boot/vmlinuz-$kver"
  rm -rf "$OUT/modules.new" && mkdir -p "$OUT/modules.new"
  # virtio_pci (the transport) and virtio_blk (the disk), with what they depend on, in load
  # order. The package has no modules.dep (depmod makes it at install time): the dependencies
  # are read from each module's own "depends=" field. Compressed modules are unpacked here,
  # because busybox insmod loads only plain .ko files.
  python3 - "$tmp/kernel/lib/modules/$kver/kernel" "$OUT/modules.new" virtio_pci virtio_blk <<'PY'
import lzma, gzip, os, re, subprocess, sys
tree, out, roots = sys.argv[1], sys.argv[2], sys.argv[3:]
paths = {}
for d, _, files in os.walk(tree):
    for f in files:
        m = re.fullmatch(r"(.+)\.ko(\.xz|\.gz|\.zst)?", f)
        if m:
            paths[m.group(1).replace("-", "_")] = os.path.join(d, f)
def load(name):
    p = paths.get(name)
    if p is None:
        sys.exit(f"guest/build.sh: error: module {name} is not in the kernel package")
    if p.endswith(".xz"):
        return lzma.open(p).read()
    if p.endswith(".gz"):
        return gzip.open(p).read()
    if p.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", p], check=True, capture_output=True).stdout
    return open(p, "rb").read()
order, seen = [], set()
def visit(name):
    if name in seen:
        return
    seen.add(name)
    data = load(name)
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    for dep in (m.group(1).decode().split(",") if m and m.group(1) else []):
        visit(dep.replace("-", "_"))
    with open(os.path.join(out, name + ".ko"), "wb") as f:
        f.write(data)
    order.append(name)
for r in roots:
    visit(r)
with open(os.path.join(out, "order"), "w") as f:
    f.write("\n".join(order) + "\n")
PY
  rm -rf "$OUT/modules" && mv "$OUT/modules.new" "$OUT/modules"
  cp "$tmp/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz.new" && mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"
  echo "$kver" >"$OUT/kernel-version"
  rm -rf "$tmp/kernel"
fi

# --- The initramfs: busybox, init and the modules; remade when its sources change.
initrd="$OUT/initramfs.cpio.gz"
if [ ! -s "$initrd" ] || [ "$SRC/init" -nt "$initrd" ] || [ "$SRC/build.sh" -nt "$initrd" ] ||
   [ "$OUT/vmlinuz" -nt "$initrd" ]; then
  root="$tmp/root"
  mkdir -p "$root/bin" "$root/modules"
  cp "$BUSYBOX" "$root/bin/busybox"
  cp "$SRC/init" "$root/init" && chmod 755 "$root/init"
  cp "$OUT/modules/"* "$root/modules/"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$initrd.new"
  mv "$initrd.new" "$initrd"
fi
echo "$OUT"
