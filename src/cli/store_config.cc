#include "cli/store_config.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <toml++/toml.h>

namespace skerry::cli {

namespace {
constexpr const char* kSystemConfig = "/etc/skerry/skerry.toml";
}

Result<StoreChoice> ResolveStore(const std::string& flag_store, const std::string& flag_config) {
  if (!flag_store.empty()) return StoreChoice{flag_store, "--store"};
  if (const char* env = std::getenv("SKERRY_STORE"); env && *env) return StoreChoice{env, "SKERRY_STORE"};
  std::string path = flag_config;
  bool explicit_path = !path.empty();
  if (path.empty()) {
    if (const char* env = std::getenv("SKERRY_CONFIG"); env && *env) {
      path = env;
      explicit_path = true;
    }
  }
  if (path.empty()) path = kSystemConfig;
  // The error_code form: a symlink loop or an unreadable directory on the way is an error
  // naming the path, not a filesystem_error that aborts the CLI.
  std::error_code ec;
  auto type = std::filesystem::status(path, ec).type();
  if (type == std::filesystem::file_type::not_found) {
    if (explicit_path) return Status::NotFound(fmt::format("config file {} does not exist", path));
    return Status::InvalidArgument(
        fmt::format("no store given: use --store URI, SKERRY_STORE, or store = \"dir:/path\" in {}", kSystemConfig));
  }
  if (ec) return Status::FromErrno(ec.value(), "config file " + path);
  // toml++ reads a directory as an empty file: say what is wrong instead of "no store".
  if (type == std::filesystem::file_type::directory)
    return Status::InvalidArgument(fmt::format("config file {} is a directory", path));
  toml::table config;
  try {
    config = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}:{}: {}", path, e.source().begin.line, e.source().begin.column,
                                               std::string(e.description())));
  }
  auto store = config["store"].value<std::string>();
  if (!store) return Status::InvalidArgument(fmt::format("{}: no `store = \"URI\"` setting", path));
  return StoreChoice{*store, path};
}

}  // namespace skerry::cli
