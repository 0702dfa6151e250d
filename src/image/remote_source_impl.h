// OffcoreRemoteSource: the snapshotter's RemoteSource for offcore images.
//  lookup      the Catalog, by chain ID;
//  layered     asks the node's image service (SoC) to attach the layer's
//              block file, then mounts it as EROFS (file-backed, read-only);
//  flat        clones the flat snapshot volume in the gateway, attaches the
//              clone as a node disk (`offcore disk attach`, served in the
//              SoC), and mounts its ext4 through a loop device.
// Mount points live under the snapshotter's root: layers/<id>, flat/<id>.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

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
  bool prefetch = true;          // prefetch each layer's list (measured profile, or derived at conversion)
  // Layers whose image is at most this big are fetched whole in the
  // background once attached (0: never): a small image then costs one
  // request, not one per first touch.
  uint64_t fill_below = 8u << 20;
};

class OffcoreRemoteSource final : public RemoteSource {
 public:
  // Starts the warm-up thread, which first makes sure the node's image
  // service runs (so the first pull does not wait for it).
  explicit OffcoreRemoteSource(RemoteSourceOptions o);
  ~OffcoreRemoteSource() override;

  Result<std::optional<RemoteLayerRef>> lookup(const std::string& chain_id, const SnapshotLabels& labels) override;
  Result<std::string> mountLayer(const RemoteLayerRef& layer) override;
  Result<std::string> prepareFlatRootfs(const std::string& snapshot_id, const RemoteLayerRef& top,
                                        bool read_only) override;
  Status removeFlatRootfs(const std::string& snapshot_id) override;
  Status releaseLayer(const RemoteLayerRef& layer) override;
  Result<std::optional<RemoteLayerRef>> adoptStub(const std::string& upper_dir, const std::string& name) override;
  // Attaches and mounts the layer on the warm-up thread.
  void warmLayer(const RemoteLayerRef& layer) override;

 private:
  void warmLoop();
  // mountLayer; warming: skip a layer released since it was queued.
  Result<std::string> mount(const RemoteLayerRef& layer, bool warming);
  Result<std::optional<RemoteLayerRef>> refFor(const ResolvedChain& chain);

  RemoteSourceOptions o_;
  Catalog catalog_;
  ImageServiceClient images_;
  std::mutex mu_;  // one attach/mount at a time: they are rare and touch shared state
  // Warm-up: layers committed by a pull, mounted ahead of the first container.
  std::mutex warm_mu_;
  std::condition_variable warm_cv_;
  std::deque<RemoteLayerRef> warm_queue_;
  std::set<std::string> released_;  // chain IDs released, not pulled or mounted again since
  bool warm_stop_ = false;
  std::thread warm_thread_;
};

}  // namespace offcore
