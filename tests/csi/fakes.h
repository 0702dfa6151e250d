// In-memory ControllerOps / NodeOps with the contract of csi/ops.h: what the
// services are tested over, and what the conformance cases run against
// when no real plugin is given.
#pragma once

#include <cerrno>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "csi/ops.h"

namespace offcore::test {

class FakeController final : public csi::ControllerOps {
 public:
  std::set<std::string> nodes{"node-a", "node-b"};
  uint64_t free_bytes = 100ULL << 30;
  int hosts = 2;                    // storage hosts: more replicas than this cannot be placed
  std::function<void()> on_create;  // runs inside createVolume (tests block it there)

  Status checkParameters(const csi::StringMap& p) override {
    for (const auto& [k, v] : p) {
      if (k != "replicas" && k.rfind("csi.storage.k8s.io/", 0) != 0) return makeError("unknown parameter " + k, EINVAL);
      if (k == "replicas" && v != "1" && v != "2" && v != "3") return makeError("replicas=" + v, EINVAL);
    }
    return okStatus();
  }
  Status checkCapability(const csi::Capability& c) override {
    int m = static_cast<int>(c.mode);
    if (m != 1 && m != 2 && m != 6 && m != 7) return makeError("mode spans nodes", EINVAL);
    if (!c.fs_type.empty() && c.fs_type != "ext4") return makeError("fs " + c.fs_type, EINVAL);
    return okStatus();
  }
  Result<csi::VolumeInfo> createVolume(const csi::VolumeSpec& s) override {
    if (on_create) on_create();
    std::lock_guard l(mu_);
    if (auto it = vols_.find(s.name); it != vols_.end()) {
      const auto& have = it->second;
      bool fits = have.size >= s.required_bytes && (s.limit_bytes == 0 || have.size <= s.limit_bytes);
      if (!fits || have.spec.parameters != s.parameters || have.spec.source_snapshot != s.source_snapshot ||
          have.spec.source_volume != s.source_volume) {
        return makeError("exists differently", EEXIST);
      }
      return infoOf(have);
    }
    uint64_t size = s.size_bytes;
    if (auto r = s.parameters.find("replicas"); r != s.parameters.end() && std::stoi(r->second) > hosts) {
      return makeError(r->second + " replicas need as many storage hosts; there are " + std::to_string(hosts), ENOSPC);
    }
    if (!s.source_snapshot.empty()) {
      auto sn = snaps_.find(s.source_snapshot);
      if (sn == snaps_.end()) return makeError("no snapshot", ENOENT);
      if (size < sn->second.size_bytes) return makeError("smaller than snapshot", ERANGE);
    }
    if (!s.source_volume.empty()) {
      auto v = vols_.find(s.source_volume);
      if (v == vols_.end()) return makeError("no volume", ENOENT);
      if (size < v->second.size) return makeError("smaller than source", ERANGE);
    }
    if (size > free_bytes) return makeError("no space", ENOSPC);
    Vol v{s, size, {}};
    vols_[s.name] = v;
    return infoOf(v);
  }
  Status deleteVolume(const std::string& id) override {
    std::lock_guard l(mu_);
    auto it = vols_.find(id);
    if (it == vols_.end()) return okStatus();
    if (!it->second.published.empty()) return makeError("published", EBUSY);
    vols_.erase(it);
    return okStatus();
  }
  Result<csi::VolumeInfo> getVolume(const std::string& id) override {
    std::lock_guard l(mu_);
    auto it = vols_.find(id);
    if (it == vols_.end()) return makeError("no volume " + id, ENOENT);
    return infoOf(it->second);
  }
  Result<std::vector<csi::VolumeInfo>> listVolumes() override {
    std::lock_guard l(mu_);
    std::vector<csi::VolumeInfo> out;
    for (const auto& [k, v] : vols_) out.push_back(infoOf(v));
    return out;
  }
  Result<csi::StringMap> publish(const std::string& id, const std::string& node, bool ro,
                                 const csi::Capability& cap) override {
    std::lock_guard l(mu_);
    auto it = vols_.find(id);
    if (it == vols_.end()) return makeError("no volume", ENOENT);
    if (!nodes.count(node)) return makeError("no node", ENOENT);
    auto& pub = it->second.published;
    std::string want = std::to_string(ro) + "/" + std::to_string(static_cast<int>(cap.mode));
    if (auto p = pub.find(node); p != pub.end()) {
      if (p->second != want) return makeError("published differently", EEXIST);
    } else if (!pub.empty()) {
      return makeError("published on " + pub.begin()->first, EBUSY);
    }
    pub[node] = want;
    return csi::StringMap{{"node", node}};
  }
  Status unpublish(const std::string& id, const std::string& node) override {
    std::lock_guard l(mu_);
    auto it = vols_.find(id);
    if (it == vols_.end()) return okStatus();
    if (node.empty()) {
      it->second.published.clear();
    } else {
      it->second.published.erase(node);
    }
    return okStatus();
  }
  Result<csi::SnapshotInfo> createSnapshot(const std::string& src, const std::string& name) override {
    std::lock_guard l(mu_);
    if (auto it = snaps_.find(name); it != snaps_.end()) {
      if (it->second.source_volume_id != src) return makeError("snapshot of another volume", EEXIST);
      return it->second;
    }
    auto v = vols_.find(src);
    if (v == vols_.end()) return makeError("no volume", ENOENT);
    csi::SnapshotInfo s{name, src, v->second.size, 1700000000LL * 1000000000, true};
    snaps_[name] = s;
    return s;
  }
  Status deleteSnapshot(const std::string& id) override {
    std::lock_guard l(mu_);
    snaps_.erase(id);  // the fake keeps no store under it: gone at once
    return okStatus();
  }
  Result<std::vector<csi::SnapshotInfo>> listSnapshots() override {
    std::lock_guard l(mu_);
    std::vector<csi::SnapshotInfo> out;
    for (const auto& [k, v] : snaps_) out.push_back(v);
    return out;
  }
  Result<uint64_t> expandVolume(const std::string& id, uint64_t size, uint64_t) override {
    std::lock_guard l(mu_);
    auto it = vols_.find(id);
    if (it == vols_.end()) return makeError("no volume", ENOENT);
    if (!it->second.published.empty()) return makeError("published", EBUSY);
    it->second.size = std::max(it->second.size, size);
    return it->second.size;
  }
  Result<Capacity> capacity(const csi::StringMap&) override { return Capacity{free_bytes, free_bytes}; }

 private:
  struct Vol {
    csi::VolumeSpec spec;
    uint64_t size = 0;
    std::map<std::string, std::string> published;
  };
  static csi::VolumeInfo infoOf(const Vol& v) {
    csi::VolumeInfo i;
    i.id = v.spec.name;
    i.capacity_bytes = v.size;
    i.source_snapshot = v.spec.source_snapshot;
    i.source_volume = v.spec.source_volume;
    for (const auto& [n, _] : v.published) i.published_nodes.push_back(n);
    return i;
  }
  std::mutex mu_;
  std::map<std::string, Vol> vols_;
  std::map<std::string, csi::SnapshotInfo> snaps_;
};

// Stages and publishes in memory: no mounts.
class FakeNode final : public csi::NodeOps {
 public:
  explicit FakeNode(FakeController& controller) : controller_(controller) {}
  Status checkCapability(const csi::Capability& c) override { return controller_.checkCapability(c); }
  csi::NodeInfo info() override { return {"node-a", 0, {{"topology.csi.offcore.io/node", "node-a"}}}; }

  Status stage(const csi::StageRequest& r) override {
    if (!controller_.getVolume(r.volume_id).ok()) return makeError("no volume", ENOENT);
    std::lock_guard l(mu_);
    if (auto it = staged_.find(r.volume_id); it != staged_.end()) {
      if (it->second.path != r.staging_path || !(it->second.cap == r.capability)) {
        return makeError("staged differently", EEXIST);
      }
      return okStatus();
    }
    staged_[r.volume_id] = {r.staging_path, r.capability, {}};
    return okStatus();
  }
  Status unstage(const std::string& id, const std::string& path) override {
    std::lock_guard l(mu_);
    auto it = staged_.find(id);
    if (it == staged_.end()) return okStatus();
    if (it->second.path != path) return makeError("staged elsewhere", EBUSY);
    if (!it->second.targets.empty()) return makeError("still published", EBUSY);
    staged_.erase(it);
    return okStatus();
  }
  Status publish(const csi::PublishRequest& r) override {
    std::lock_guard l(mu_);
    auto it = staged_.find(r.volume_id);
    if (it == staged_.end()) {
      if (!controller_.getVolume(r.volume_id).ok()) return makeError("no volume", ENOENT);
      return makeError("not staged", EBUSY);
    }
    auto& t = it->second.targets;
    std::string want = std::to_string(r.readonly) + "/" + std::to_string(static_cast<int>(r.capability.mode));
    if (auto p = t.find(r.target_path); p != t.end()) {
      if (p->second != want) return makeError("published differently", EEXIST);
      return okStatus();
    }
    if (!t.empty() && r.capability.mode != csi::AccessMode::kSingleNodeMultiWriter) {
      return makeError("one target", EBUSY);
    }
    t[r.target_path] = want;
    return okStatus();
  }
  Status unpublish(const std::string& id, const std::string& target) override {
    std::lock_guard l(mu_);
    if (auto it = staged_.find(id); it != staged_.end()) it->second.targets.erase(target);
    return okStatus();
  }
  Result<csi::VolumeStats> stats(const std::string& id, const std::string& path) override {
    std::lock_guard l(mu_);
    auto it = staged_.find(id);
    if (it == staged_.end() || (it->second.path != path && !it->second.targets.count(path))) {
      return makeError("not there", ENOENT);
    }
    csi::VolumeStats s;
    s.total_bytes = 1 << 30;
    s.available_bytes = 1 << 29;
    s.used_bytes = 1 << 29;
    s.total_inodes = 1000;
    return s;
  }
  Result<uint64_t> expand(const std::string& id, const std::string& path, uint64_t) override {
    auto st = stats(id, path);
    if (!st.ok()) return st.error();
    auto v = controller_.getVolume(id);
    if (!v.ok()) return v.error();
    return v->capacity_bytes;  // the file system fills the disk
  }

 private:
  struct Staged {
    std::string path;
    csi::Capability cap;
    std::map<std::string, std::string> targets;
  };
  FakeController& controller_;
  std::mutex mu_;
  std::map<std::string, Staged> staged_;
};

}  // namespace offcore::test
