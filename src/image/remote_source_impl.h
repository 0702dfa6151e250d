// OffcoreRemoteSource: the snapshotter's RemoteSource for offcore images.
//  lookup      the Catalog, by chain ID;
//  layered     asks the node's image service (SoC) to attach the layer's
//              block file, then mounts it as EROFS (file-backed, read-only);
//  flat        clones the flat snapshot volume in the gateway, attaches the
//              clone as a node disk (`offcore disk attach`, served in the
//              SoC), and mounts its ext4 through a loop device; one such
//              rootfs per image is made ahead (a spare) for the next create.
// Mount points live under the snapshotter's root: layers/<id>, flat/<id>.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

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
  Catalog catalog;               // the one launch.catalog_dir names, opened
  bool prefetch = true;          // prefetch each layer's list (measured profile, or derived at conversion)
  // Flat mode: keep one spare rootfs per pulled image (a clone attached and
  // mounted ahead of use), made after the pull and again after each create,
  // so a create only claims it. Each spare holds a gateway clone and a disk
  // service in the SoC: at most this many images keep one (the latest
  // pulled or used; 0: none), and they go with the image and when the
  // snapshotter stops.
  int flat_spares = 4;
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
  // Layered: attaches and mounts the layer on the warm-up thread. Flat:
  // prepares the image's spare rootfs there.
  void warmLayer(const RemoteLayerRef& layer, const std::optional<RemoteLayerRef>& parent) override;

 private:
  struct WarmEntry {
    RemoteLayerRef ref;
    std::chrono::steady_clock::time_point not_before;
  };
  void warmLoop();
  void warmLater(const RemoteLayerRef& layer, std::chrono::milliseconds delay);
  // Flat rootfs (remote_source_flat.cc). Callers of the last four hold mu_.
  Status releaseFlat(const RemoteLayerRef& layer);
  Status dropSpareOf(const RemoteLayerRef& layer);
  void prepareSpare(const RemoteLayerRef& ref);
  void dropSpares(const char* why);
  std::vector<std::string> spareRecords() const;
  Result<nlohmann::json> buildFlat(const nlohmann::json& handle, const std::string& clone, const std::string& dir,
                                   const std::string& state_path, bool read_only);
  std::optional<std::string> claimSpare(const nlohmann::json& handle, const std::string& state_path);
  std::string spareStatePath(const nlohmann::json& handle) const;
  Status tearDownFlat(const nlohmann::json& state);
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
  std::deque<WarmEntry> warm_queue_;
  std::set<std::string> released_;          // chain IDs released, not pulled or mounted again since
  std::vector<RemoteLayerRef> superseded_;  // flat chains a pull built on: their spares go
  bool warm_stop_ = false;
  std::thread warm_thread_;
};

}  // namespace offcore
