// ClusterSnapshotSource: the node proxy's configuration from offcore's own
// cluster state (the one source besides xDS): Services, endpoints with their
// health, pods, and the applied mesh resources. It watches the cluster
// directory with inotify and rebuilds the whole Snapshot on any change
// (debounced), on the proxy's loop thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/config/snapshot.h"
#include "svc/cluster_store.h"

namespace offcore::mesh {

class ClusterSnapshotSource {
 public:
  using OnSnapshot = std::function<void(std::shared_ptr<const Snapshot>)>;

  ClusterSnapshotSource(EventLoop& loop, std::string cluster_dir, std::string node, std::string trust_domain);
  ~ClusterSnapshotSource();

  // Builds the first snapshot now (an error if the state cannot be read),
  // then calls on_snapshot after every change.
  Status start(OnSnapshot on_snapshot);
  // Builds one snapshot from what is on disk now.
  Result<std::shared_ptr<Snapshot>> build() const;

 private:
  void onEvents();
  void rebuild();

  EventLoop& loop_;
  std::string cluster_dir_, node_, trust_domain_;
  svc::ClusterStore store_;
  OnSnapshot on_snapshot_;
  int inotify_fd_ = -1;
  bool pending_ = false;
  uint64_t version_ = 0;
};

}  // namespace offcore::mesh
