# The store comes from --store, else SKERRY_STORE, else the config file.
source "$(dirname "$0")/lib.sh"
unset SKERRY_STORE
mkdir -p "$WORK/a" "$WORK/b"
cat > "$WORK/skerry.toml" <<TOML
store = "dir:$WORK/a"
TOML
"$SKERRY" --config "$WORK/skerry.toml" create from-config --size 1M
SKERRY_CONFIG="$WORK/skerry.toml" "$SKERRY" ls | grep -x from-config >/dev/null
SKERRY_STORE="dir:$WORK/b" "$SKERRY" create from-env --size 1M
"$SKERRY" --store "dir:$WORK/b" ls | grep -x from-env >/dev/null
"$SKERRY" --store "dir:$WORK/b" ls | grep -x from-config >/dev/null && fail "stores got mixed"
echo 'store = ' > "$WORK/bad.toml"
expect_fail "bad.toml" "$SKERRY" --config "$WORK/bad.toml" ls
expect_fail "does not exist" "$SKERRY" --config "$WORK/none.toml" ls
# A config path that cannot be looked at (a symlink loop; EACCES the same way for non-root)
# is an error naming it, exit 1, not an exception that aborts with a core dump.
ln -s loop "$WORK/loop"
expect_fail "config file $WORK/loop/x.toml: Too many levels of symbolic links" \
  "$SKERRY" --config "$WORK/loop/x.toml" ls
expect_fail "config file $WORK/loop: Too many levels" env SKERRY_CONFIG="$WORK/loop" "$SKERRY" ls
rc=0; "$SKERRY" --config "$WORK/loop/x.toml" ls 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "unreadable config path: exit $rc, want 1 as for a missing file"
expect_fail "is a directory" "$SKERRY" --config "$WORK/a" ls
echo "cli_config: ok"
