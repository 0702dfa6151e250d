#include "image/catalog_open.h"

#include "image/catalog_storage.h"
#include "kv/etcd_config.h"

namespace offcore {

std::string catalogLocation(const Config& config, const std::string& flag) {
  if (!flag.empty()) return flag;
  if (kv::isEtcdUrl(config.cluster_store)) return config.cluster_store;
  return Catalog::defaultDir();
}

Result<Catalog> openCatalog(const Config& config, const std::string& location) {
  if (!kv::isEtcdUrl(location)) return Catalog::inDir(location);
  auto o = kv::etcdOptionsFor(config, location);
  if (!o.ok()) return o.error().wrap("image catalog " + location);
  return Catalog(makeKvCatalogStorage(kv::makeEtcdClient(std::move(*o))));
}

}  // namespace offcore
