// Opening the catalog a command names: a directory (the embedded default),
// or the cluster's etcd ("etcd://host:port,..."), reached with the client
// options the config gives (kv/etcd_config.h: TLS files, etcd user).
#pragma once

#include <string>

#include "base/config.h"
#include "base/result.h"
#include "image/catalog.h"

namespace offcore {

// The location a command uses: its --catalog (non-empty), else the
// cluster store when that is etcd (the image catalog lives beside the rest
// of the cluster's state), else Catalog::defaultDir().
std::string catalogLocation(const Config& config, const std::string& flag);
// The --catalog option's help, for every command that takes it.
inline constexpr const char* kCatalogLocationHelp =
    "the image catalog: a directory or etcd://HOST:PORT[,...] (default: the cluster store when it is etcd, "
    "else /var/lib/offcore/images)";
Result<Catalog> openCatalog(const Config& config, const std::string& location);

}  // namespace offcore
