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
echo "cli_config: ok"
