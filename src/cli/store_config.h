// Which store the CLI (and later the daemon) works on: --store, else $SKERRY_STORE,
// else `store = "..."` in the config file (--config, $SKERRY_CONFIG, /etc/skerry/skerry.toml).
#pragma once

#include <string>

#include "skerry/status.h"

namespace skerry::cli {

struct StoreChoice {
  std::string uri;
  std::string from;  // where it came from, for messages: "--store", "SKERRY_STORE", a file path
};

Result<StoreChoice> ResolveStore(const std::string& flag_store, const std::string& flag_config);

}  // namespace skerry::cli
