#!/usr/bin/env bash
# `cmake --install` into a temporary prefix: the binaries, the public headers (with the
# generated version.h), the static libraries and skerry.pc are where they belong, and a
# program built only from the installed files (pkg-config skerry) creates and reads a
# volume. Proves include/skerry/ is self-contained: nothing in it reaches into src/.
#   install_test.sh BUILD_DIR CXX BINDIR SBINDIR INCLUDEDIR LIBDIR VERSION [LDFLAGS...]
# (the GNUInstallDirs relative dirs, and the sanitizer link flags of the build, if any)
set -euo pipefail
build=$1 cxx=$2 bindir=$3 sbindir=$4 includedir=$5 libdir=$6 version=$7
shift 7
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null

fail=0
for f in "$bindir/skerry" "$sbindir/skerryd" \
         "$includedir/skerry/"{check,done,object_store,status,sync,version,volume}.h \
         "$libdir/"libskerry_{util,store,volume}.a "$libdir/pkgconfig/skerry.pc"; do
  if [ ! -e "$prefix/$f" ]; then echo "FAIL: $f was not installed"; fail=1; fi
done
# Only the public headers: nothing from src/ (internal) or the version.h template.
extra=$(cd "$prefix/$includedir" && find . -type f | grep -vE '^\./skerry/[a-z_]+\.h$' || true)
if [ -n "$extra" ]; then echo "FAIL: unexpected files under include/: $extra"; fail=1; fi
[ "$fail" = 0 ] || exit 1

out=$("$prefix/$bindir/skerry" --version)
[ "$out" = "$version" ] || { echo "FAIL: skerry --version printed '$out', not '$version'"; exit 1; }
out=$("$prefix/$sbindir/skerryd" --version)
[ "$out" = "$version" ] || { echo "FAIL: skerryd --version printed '$out', not '$version'"; exit 1; }

cat > "$prefix/consumer.cc" <<'CC'
#include <skerry/version.h>
#include <skerry/volume.h>

#include <cstdio>
#include <string>

int main() {
  auto store = skerry::OpenStore("mem:");
  if (!store.ok()) return 1;
  auto catalog = skerry::Catalog::Open(*store);
  if (!catalog.ok() || !(*catalog)->Create("disk", 1 << 20, 64 * 1024).ok()) return 2;
  if (!(*catalog)->CreateSnapshot("disk", "s1").ok()) return 3;
  auto info = (*catalog)->Info("disk");
  if (!info.ok() || info->size != (1 << 20) || info->snapshots.size() != 1) return 4;
  std::printf("%s\n", SKERRY_VERSION_STRING);
  return 0;
}
CC
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
# shellcheck disable=SC2046  # pkg-config's output is a list of words
"$cxx" $(pkg-config --cflags skerry) "$prefix/consumer.cc" -o "$prefix/consumer" \
  $(pkg-config --libs skerry) "$@"
out=$("$prefix/consumer")
[ "$out" = "$version" ] || { echo "FAIL: the installed library's consumer printed '$out'"; exit 1; }
echo "installed into a temporary prefix; a program built from it alone works"
