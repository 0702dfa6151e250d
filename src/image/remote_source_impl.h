// OffcoreRemoteSource: the snapshotter's RemoteSource for offcore images.
//  lookup      the Catalog, by chain ID;
//  layered     asks the node's image service (SoC) to attach the layer's
//              block file, then mounts it as EROFS (file-backed, read-only);
//  flat        clones the flat snapshot volume in the gateway, attaches the
//              clone as a node disk (`offcore disk attach`, served in the
//              SoC), and mounts its ext4 through a loop device.
// Mount points live under the snapshotter's root: layers/<id>, flat/<id>.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "image/catalog.h"
#include "image/image_service_client.h"
#include "snapshotter/remote_source.h"

namespace offcore {

struct RemoteSourceOptions {
  std::string node;
  RemoteMode mode = RemoteMode::kLayered;
  std::string root;  // the snapshotter's --root
  std::string run_root = "/run/offcore";
  std::string backend = "auto";  // layered: auto, registry or gateway
  ImageServiceLaunch launch;     // how to start the image service
};

class OffcoreRemoteSource final : public RemoteSource {
 public:
  explicit OffcoreRemoteSource(RemoteSourceOptions o);

  Result<std::optional<RemoteLayerRef>> lookup(const std::string& chain_id, const SnapshotLabels& labels) override;
  Result<std::string> mountLayer(const RemoteLayerRef& layer) override;
  Result<std::string> prepareFlatRootfs(const std::string& snapshot_id, const RemoteLayerRef& top,
                                        bool read_only) override;
  Status removeFlatRootfs(const std::string& snapshot_id) override;
  Status releaseLayer(const RemoteLayerRef& layer) override;
  Result<std::optional<RemoteLayerRef>> adoptStub(const std::string& upper_dir, const std::string& name) override;

 private:
  Result<std::optional<RemoteLayerRef>> refFor(const ResolvedChain& chain);

  RemoteSourceOptions o_;
  Catalog catalog_;
  ImageServiceClient images_;
  std::mutex mu_;  // one attach/mount at a time: they are rare and touch shared state
};

}  // namespace offcore
