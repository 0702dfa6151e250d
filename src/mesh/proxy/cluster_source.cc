#include "mesh/proxy/cluster_source.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "base/files.h"
#include "mesh/config/from_cluster.h"
#include "mesh/config/mesh_store.h"
#include "mesh/proxy/workloads.h"

namespace offcore::mesh {

namespace {

constexpr std::chrono::milliseconds kDebounce{20};

}  // namespace

ClusterSnapshotSource::ClusterSnapshotSource(EventLoop& loop, std::string cluster_dir, std::string node,
                                             std::string trust_domain)
    : loop_(loop),
      cluster_dir_(std::move(cluster_dir)),
      node_(std::move(node)),
      trust_domain_(std::move(trust_domain)),
      store_(cluster_dir_) {}

ClusterSnapshotSource::~ClusterSnapshotSource() {
  if (inotify_fd_ >= 0) {
    loop_.unwatchFd(inotify_fd_);
    ::close(inotify_fd_);
  }
}

Result<std::shared_ptr<Snapshot>> ClusterSnapshotSource::build() const {
  OC_ASSIGN_OR_RETURN(auto state, store_.load());
  OC_ASSIGN_OR_RETURN(auto health, store_.loadHealth());
  auto snap = std::make_shared<Snapshot>();
  OC_ASSIGN_OR_RETURN(auto mesh, MeshStore(cluster_dir_).load());
  *snap = buildSnapshot(state, health, mesh.config, trust_domain_);
  snap->workloads = buildWorkloads(state, node_, trust_domain_);
  return snap;
}

Status ClusterSnapshotSource::start(OnSnapshot on_snapshot) {
  on_snapshot_ = std::move(on_snapshot);
  for (const std::string& dir : {cluster_dir_ + "/health", cluster_dir_ + "/mesh"}) OC_TRY(makeDirs(dir));
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) return errnoError("inotify_init1");
  for (const std::string& dir : {cluster_dir_, cluster_dir_ + "/health", cluster_dir_ + "/mesh"}) {
    if (::inotify_add_watch(inotify_fd_, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE) < 0) {
      return errnoError("watch " + dir);
    }
  }
  OC_TRY(loop_.watchFd(inotify_fd_, EPOLLIN, [this](uint32_t) { onEvents(); }));
  OC_ASSIGN_OR_RETURN(auto first, build());
  first->version = ++version_;
  on_snapshot_(std::move(first));
  return okStatus();
}

void ClusterSnapshotSource::onEvents() {
  alignas(inotify_event) char buf[4096];
  while (::read(inotify_fd_, buf, sizeof buf) > 0) {}
  if (pending_) return;
  pending_ = true;
  loop_.addTimer(kDebounce, [this] { rebuild(); });
}

void ClusterSnapshotSource::rebuild() {
  pending_ = false;
  auto snap = build();
  if (!snap.ok()) {
    // Keep the last good one; the next change tries again.
    spdlog::warn("mesh config: {}", snap.error().message);
    return;
  }
  (*snap)->version = ++version_;
  on_snapshot_(std::move(*snap));
}

}  // namespace offcore::mesh
