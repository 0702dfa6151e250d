#include "mesh/proxy/cluster_source.h"

#include <spdlog/spdlog.h>

#include "mesh/config/from_cluster.h"
#include "mesh/proxy/workloads.h"

namespace offcore::mesh {

namespace {

constexpr std::chrono::milliseconds kDebounce{20};
// A rebuild that failed (the store unreachable) is tried again after this,
// change or no change: on etcd the next change may be long in coming.
constexpr std::chrono::milliseconds kRetry{1000};

}  // namespace

ClusterSnapshotSource::ClusterSnapshotSource(EventLoop& loop, MeshStore store, std::string node,
                                             std::string trust_domain)
    : loop_(loop), store_(std::move(store)), node_(std::move(node)), trust_domain_(std::move(trust_domain)) {}

ClusterSnapshotSource::~ClusterSnapshotSource() {
  // The watches go first: nothing they posted runs on a half-destroyed source.
  state_watch_.reset();
  doc_watch_.reset();
  if (timer_ != 0) loop_.cancelTimer(timer_);
}

Result<std::shared_ptr<Snapshot>> ClusterSnapshotSource::build() const {
  const auto& cluster = store_.cluster();
  OC_ASSIGN_OR_RETURN(auto state, cluster->load());
  OC_ASSIGN_OR_RETURN(auto health, cluster->loadHealth());
  OC_ASSIGN_OR_RETURN(auto mesh, store_.load());
  auto snap = std::make_shared<Snapshot>();
  *snap = buildSnapshot(state, health, mesh.config, trust_domain_);
  snap->workloads = buildWorkloads(state, node_, trust_domain_);
  return snap;
}

Status ClusterSnapshotSource::start(OnSnapshot on_snapshot) {
  on_snapshot_ = std::move(on_snapshot);
  // Liveness and EIP claims do not shape a snapshot; objects and probe results do.
  OC_ASSIGN_OR_RETURN(state_watch_, store_.cluster()->watch(loop_, [this](const svc::StateDelta& d) {
    if (d.full || !d.objects.empty() || d.health) schedule();
  }));
  OC_ASSIGN_OR_RETURN(doc_watch_, store_.doc().watch(loop_, [this] { schedule(); }));
  OC_ASSIGN_OR_RETURN(auto first, build());
  first->version = ++version_;
  on_snapshot_(std::move(first));
  return okStatus();
}

void ClusterSnapshotSource::schedule() {
  if (pending_) return;
  pending_ = true;
  timer_ = loop_.addTimer(kDebounce, [this] { rebuild(); });
}

void ClusterSnapshotSource::rebuild() {
  pending_ = false;
  timer_ = 0;
  auto snap = build();
  if (!snap.ok()) {
    // Keep the last good one and try again shortly (or on the next change).
    spdlog::warn("mesh config: {}; keeping the last snapshot, retrying in {} ms", snap.error().message, kRetry.count());
    pending_ = true;
    timer_ = loop_.addTimer(kRetry, [this] { rebuild(); });
    return;
  }
  (*snap)->version = ++version_;
  on_snapshot_(std::move(*snap));
}

}  // namespace offcore::mesh
