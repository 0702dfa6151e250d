// ClusterSnapshotSource: the node proxy's configuration from offcore's own
// cluster state (the one source besides xDS): Services, endpoints with their
// health, pods, and the applied mesh resources, from the store the node
// uses (the cluster directory or etcd; mesh_store.h). It watches the svc
// state and the mesh document and rebuilds the whole Snapshot on a change
// that can alter it (debounced), on the proxy's loop thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/config/mesh_store.h"
#include "mesh/config/snapshot.h"

namespace offcore::mesh {

class ClusterSnapshotSource {
 public:
  using OnSnapshot = std::function<void(std::shared_ptr<const Snapshot>)>;

  ClusterSnapshotSource(EventLoop& loop, MeshStore store, std::string node, std::string trust_domain);
  ~ClusterSnapshotSource();

  // Starts watching, then builds the first snapshot (an error if the state
  // cannot be read), then calls on_snapshot after every change.
  Status start(OnSnapshot on_snapshot);
  // Builds one snapshot from what the store holds now.
  Result<std::shared_ptr<Snapshot>> build() const;

 private:
  void schedule();
  void rebuild();

  EventLoop& loop_;
  MeshStore store_;
  std::string node_, trust_domain_;
  OnSnapshot on_snapshot_;
  std::unique_ptr<svc::StoreWatch> state_watch_, doc_watch_;
  EventLoop::TimerId timer_ = 0;  // the pending rebuild (0: none)
  bool pending_ = false;
  uint64_t version_ = 0;
};

}  // namespace offcore::mesh
