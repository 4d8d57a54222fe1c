# The layers of src/ and which internal headers each may include: the one place this
# is written down (docs/architecture.md, "Layers", explains it; cmake/check_layers.cmake,
# run as the `layers` test, enforces it).
#
# Every folder src/LAYER is a layer. Any file may include the public headers
# ("skerry/...", include/skerry/) and its own layer's headers. Another layer's internal
# headers ("store/dir/dir_store.h") only when that layer is listed here:
#   SKERRY_LAYER_DEPS_<layer>       for the layer's code
#   SKERRY_LAYER_TEST_DEPS_<layer>  in addition, for its tests (*_test.cc, *_test.h,
#                                   test_*.h), which may build on another layer's
#                                   fixtures (in-memory and fault-injecting stores)
# The public headers include nothing but each other.
#
# The order, bottom up: util <- store <- volume <- nbd <- daemon <- cli. The NBD server
# serves the public Volume interface and the daemon opens volumes through the public
# Catalog, so neither needs the volume layer's internals; the CLI speaks the daemon's
# admin protocol (src/daemon/admin_client.h) and serves a volume to qemu-img through a
# private NBD export of its own (src/cli/qemu_img.cc).
set(SKERRY_LAYERS util store volume nbd daemon cli)

set(SKERRY_LAYER_DEPS_util "")
set(SKERRY_LAYER_DEPS_store util)
set(SKERRY_LAYER_DEPS_volume util)
set(SKERRY_LAYER_DEPS_nbd util)
set(SKERRY_LAYER_DEPS_daemon nbd util)
set(SKERRY_LAYER_DEPS_cli daemon nbd util)

set(SKERRY_LAYER_TEST_DEPS_volume store)
