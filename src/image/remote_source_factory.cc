// makeRemoteSource() for the `offcore` binary: offcore's lazily loaded
// images (see remote_source_impl.h). Tests that want a plain overlayfs
// snapshotter link snapshotter/no_remote_source.cc instead.
#include "snapshotter/remote_source_factory.h"
#include "image/catalog_open.h"
#include "image/remote_source_impl.h"

namespace offcore {

Result<std::unique_ptr<RemoteSource>> makeRemoteSource(const RemoteSourceConfig& c) {
  if (c.node.empty()) return makeError("the snapshotter needs --node");
  RemoteSourceOptions o;
  o.node = c.node;
  o.mode = c.mode;
  o.root = c.root;
  o.run_root = c.run_root;
  o.backend = c.backend;
  o.launch = ImageServiceLaunch{c.catalog_dir, c.cache_dir,  c.cache_size, c.fetch_timeout_s,
                                c.plain_http,  c.creds_file, c.ca_file};
  OC_ASSIGN_OR_RETURN(o.catalog, openCatalog(c.config, c.catalog_dir));
  o.prefetch = c.prefetch;
  o.flat_spares = c.flat_spares;
  o.fill_below = c.fill_below;
  return std::unique_ptr<RemoteSource>(new OffcoreRemoteSource(std::move(o)));
}

}  // namespace offcore
