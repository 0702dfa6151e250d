// ControllerOps over replicated volumes (csi_ops.h).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "cli/cluster_records.h"
#include "cli/csi_ops.h"
#include "cli/volume_replicated.h"
#include "dpu/node.h"
#include "gateway/client.h"
#include "image/digest.h"
#include "kv/etcd_client.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr const char* kK8sPrefix = "csi.storage.k8s.io/";
constexpr int kMaxCsiReplicas = 3;

// What CSI made, next to the volume record (which the `volume` commands own).
struct CatalogEntry {
  std::string kind;  // "volume" | "snapshot"
  std::string name, id;
  bool ready = false;  // false: a create in progress or cut short
  uint64_t size_bytes = 0;
  uint64_t required_bytes = 0, limit_bytes = 0;  // the capacity range as asked
  bool imported = false;  // a volume `volume create` made, published through CSI: not CSI's to delete
  std::map<std::string, std::string> parameters;
  std::string source_snapshot, source_volume, hidden_snapshot;
  int64_t created_ns = 0;
  json published = json::object();  // node -> {readonly, mode, block}
  // A snapshot CSI deleted while volumes still hang off it in the store
  // (its origin, or clones): gone for CSI, removed once nothing does.
  bool deleted = false;
};

class CsiController final : public csi::ControllerOps {
 public:
  CsiController(const CliContext& ctx, CsiControllerConfig cfg) : ctx_(ctx), cfg_(std::move(cfg)) {}

  Status checkParameters(const csi::StringMap& p) override {
    for (const auto& [k, v] : p) {
      if (k.rfind(kK8sPrefix, 0) == 0) continue;  // the provisioner's own metadata
      if (k == "replicas") {
        int n = std::atoi(v.c_str());
        if (std::to_string(n) != v || n < 1 || n > kMaxCsiReplicas) {
          return makeError("parameter replicas=" + v + ": 1 to " + std::to_string(kMaxCsiReplicas), EINVAL);
        }
      } else if (k == "pool") {
        if (!cfg_.pools.count(v))
          return makeError("parameter pool=" + v + ": no such pool (" + poolNames() + ")", EINVAL);
      } else {
        return makeError("unknown parameter '" + k + "' (known: replicas, pool)", EINVAL);
      }
    }
    return okStatus();
  }

  Status checkCapability(const csi::Capability& cap) override { return checkCsiCapability(cap); }

  Result<csi::VolumeInfo> createVolume(const csi::VolumeSpec& spec) override {
    const std::string id = csiVolumeIdFor(spec.name);
    auto params = effective(spec.parameters);
    std::lock_guard lock(mu_);  // creations place on shared hosts one at a time
    auto have = loadEntry(id);
    OC_TRY(presentOrAbsent(have));
    if (have.ok()) {
      const CatalogEntry& e = *have;  // NOLINT(bugprone-unchecked-optional-access): checked above
      if (e.kind != "volume" || e.name != spec.name) {
        return makeError("volume id " + id + " is taken by " + e.kind + " " + e.name, EEXIST);
      }
      // Compatible: its capacity within the range asked now, the same
      // parameters and source (the spec's CreateVolume idempotency).
      uint64_t cap = e.size_bytes;
      if (auto v = loadReplicatedVolume(ctx_, id); v.ok()) cap = v->size_bytes;
      bool fits = cap >= spec.required_bytes && (spec.limit_bytes == 0 || cap <= spec.limit_bytes);
      if (!fits || e.parameters != params || e.source_snapshot != spec.source_snapshot ||
          e.source_volume != spec.source_volume) {
        return makeError("volume " + spec.name + " exists with another size, parameters or source (" +
                             std::to_string(cap) + " bytes)",
                         EEXIST);
      }
      if (e.ready) return info(e);
      // A create cut short: whatever it made is finished or undone below.
    } else if (loadReplicatedVolume(ctx_, id).ok()) {
      return makeError("a volume '" + id + "' not made through CSI exists; pick another name", EEXIST);
    }
    CatalogEntry e;
    e.kind = "volume";
    e.name = spec.name;
    e.id = id;
    e.size_bytes = spec.size_bytes;
    e.required_bytes = spec.required_bytes;
    e.limit_bytes = spec.limit_bytes;
    e.parameters = params;
    e.source_snapshot = spec.source_snapshot;
    e.source_volume = spec.source_volume;
    e.created_ns = unixNowNs();
    OC_TRY(saveEntry(e));
    auto made = make(e, spec);
    if (!made.ok()) {
      if (!loadReplicatedVolume(ctx_, id).ok()) {  // nothing half-made
        removeEntry(id);
        if (!e.hidden_snapshot.empty()) dropLater(e.hidden_snapshot, e.source_volume);
        collectDeleted();
      }
      return made.error();
    }
    e.ready = true;
    OC_TRY(saveEntry(e));
    return info(e);
  }

  Status deleteVolume(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    auto v = loadReplicatedVolume(ctx_, id);
    if (!v.ok() && v.error().code != ENOENT) return v.error();
    if (!e.ok()) {
      if (!v.ok()) return okStatus();  // not there: deleted
      return makeError("volume " + id + " was not made through CSI; delete it with `offcore volume delete " + id + "`",
                       EBUSY);
    }
    if (e->kind != "volume") return okStatus();  // a snapshot's id names no volume
    if (e->imported) {
      return makeError(
          "volume " + id +
              " was made with `offcore volume create`, not through CSI; delete it with `offcore volume delete " + id +
              "`",
          EBUSY);
    }
    if (!e->published.empty()) {
      return makeError(
          "volume " + id + " is published on node " + e->published.begin().key() + "; ControllerUnpublishVolume first",
          EBUSY);
    }
    if (v.ok()) {
      if (auto at = replicatedAttachedAt(ctx_, *v)) {
        return makeError(
            "volume " + id + " is attached on node " + at->node + " as disk " + at->disk + "; NodeUnstageVolume first",
            EBUSY);
      }
      OC_TRY(removeReplicatedVolume(ctx_, *v, false));
    }
    // The snapshot only this clone used: removed with it, or when its
    // origin volume goes.
    if (!e->hidden_snapshot.empty()) dropLater(e->hidden_snapshot, e->source_volume);
    removeEntry(id);
    collectDeleted();
    return okStatus();
  }

  Result<csi::VolumeInfo> getVolume(const std::string& id) override {
    auto v = loadReplicatedVolume(ctx_, id);
    if (!v.ok()) return v.error().code == ENOENT ? Error{ENOENT, "no volume " + id} : v.error();
    if (v->read_only) return Error{ENOENT, id + " is a snapshot, not a volume"};
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    CatalogEntry entry = e.ok() ? *e : CatalogEntry{};
    if (!e.ok()) {
      entry.kind = "volume";
      entry.id = id;
    }
    entry.size_bytes = v->size_bytes;
    return info(entry, &*v);
  }

  Result<std::vector<csi::VolumeInfo>> listVolumes() override {
    std::vector<csi::VolumeInfo> out;
    OC_ASSIGN_OR_RETURN(auto names, replicatedVolumeNames(ctx_));
    for (const auto& n : names) {
      auto v = getVolume(n);
      if (v.ok()) {
        out.push_back(std::move(*v));
      } else if (v.error().code != ENOENT) {  // gone meanwhile, or a snapshot: not listed; else a real failure
        return v.error();
      }
    }
    return out;
  }

  Result<csi::StringMap> publish(const std::string& id, const std::string& node, bool readonly,
                                 const csi::Capability& cap) override {
    auto v = getVolume(id);
    if (!v.ok()) return v.error();
    auto nodes = NodeManager::create(ctx_.config);
    if (!nodes.ok()) return nodes.error();
    if (!nodes->state(node).ok()) return Error{ENOENT, "no node " + node + " (see `offcore dpu list`)"};
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    CatalogEntry entry;
    if (e.ok()) {
      entry = *e;
    } else {  // a volume made with `offcore volume create`, used by CSI (static provisioning)
      entry.kind = "volume";
      entry.name = entry.id = id;
      entry.ready = true;
      entry.imported = true;
      entry.size_bytes = v->capacity_bytes;
      entry.created_ns = unixNowNs();
    }
    json want{
        {"readonly", readonly}, {"mode", static_cast<int>(cap.mode)}, {"block", cap.type == csi::AccessType::kBlock}};
    if (entry.published.contains(node)) {
      if (entry.published[node] != want) {
        return makeError("volume " + id + " is published on node " + node + " with another capability or readonly flag",
                         EEXIST);
      }
    } else if (!entry.published.empty()) {
      return makeError("volume " + id + " is published on node " + entry.published.begin().key() +
                           " (one node at a time: its SoC runs the volume's nexus)",
                       EBUSY);
    }
    entry.published[node] = want;
    OC_TRY(saveEntry(entry));
    return csi::StringMap{{"node", node}};
  }

  Status unpublish(const std::string& id, const std::string& node) override {
    // A node that did not unstage (it died, or kubelet gave up on it and the
    // attach-detach controller force-detaches): fence it, so the volume can
    // be used on the next node. Its I/O, if it is alive, then fails.
    if (auto v = loadReplicatedVolume(ctx_, id); v.ok()) {
      if (auto at = replicatedAttachedAt(ctx_, *v); at && (node.empty() || at->node == node)) {
        spdlog::warn("csi: volume {} is still attached on node {} as disk {}: detaching it (fencing)", id, at->node,
                     at->disk);
        auto out = runCapture({selfExe(), "disk", "detach", at->disk, "--node", at->node, "--force"});
        if (!out.ok() || out->exit_code != 0) {
          return makeError("volume " + id + " is still attached on node " + at->node +
                           " and detaching it failed: " + (out.ok() ? trim(out->err) : out.error().message));
        }
      }
    }
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    if (!e.ok()) return okStatus();
    if (node.empty()) {
      e->published = json::object();
    } else {
      e->published.erase(node);
    }
    return saveEntry(*e);
  }

  Result<csi::SnapshotInfo> createSnapshot(const std::string& source, const std::string& name) override {
    const std::string id = csiVolumeIdFor(name);
    std::lock_guard lock(mu_);
    auto have = loadEntry(id);
    OC_TRY(presentOrAbsent(have));
    if (have.ok()) {
      if (have->kind != "snapshot" || have->name != name) {
        return makeError("snapshot id " + id + " is taken by " + have->kind + " " + have->name, EEXIST);
      }
      if (have->deleted) {
        return makeError("snapshot " + name + " was deleted and waits for volume " + have->source_volume +
                             " to go; retry later or use another name",
                         EAGAIN);
      }
      if (have->source_volume != source) {
        return makeError("snapshot " + name + " exists of another volume (" + have->source_volume + ")", EEXIST);
      }
      if (have->ready) return snapInfo(*have);
      // Cut short after the snapshot was made: it is there, finish the entry.
      if (auto made = loadReplicatedVolume(ctx_, id); made.ok() && made->read_only && made->parent == source) {
        CatalogEntry done = *have;
        done.ready = true;
        OC_TRY(saveEntry(done));
        return snapInfo(done);
      }
    } else if (loadReplicatedVolume(ctx_, id).ok()) {
      return makeError("a volume '" + id + "' not made through CSI exists; pick another snapshot name", EEXIST);
    }
    auto v = loadReplicatedVolume(ctx_, source);
    if (!v.ok() || v->read_only) return Error{ENOENT, "no volume " + source};
    CatalogEntry e;
    e.kind = "snapshot";
    e.name = name;
    e.id = id;
    e.size_bytes = v->size_bytes;
    e.source_volume = source;
    e.created_ns = unixNowNs();
    OC_TRY(saveEntry(e));
    auto made = snapshotReplicated(ctx_, *v, id);
    if (!made.ok()) {
      removeEntry(id);
      return made.error();
    }
    e.ready = true;
    OC_TRY(saveEntry(e));
    return snapInfo(e);
  }

  Status deleteSnapshot(const std::string& id) override {
    std::lock_guard lock(mu_);
    auto v = loadReplicatedVolume(ctx_, id);
    if (!v.ok() && v.error().code != ENOENT) return v.error();
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    if (!v.ok()) {
      if (e.ok() && e->kind == "snapshot") removeEntry(id);
      return okStatus();
    }
    if (!v->read_only) return okStatus();  // a volume's id names no snapshot
    if (!e.ok()) {
      return makeError(
          "snapshot " + id +
              " was made with `offcore volume snapshot`, not through CSI; delete it with `offcore volume delete " + id +
              "`",
          EBUSY);
    }
    if (e->deleted) return okStatus();
    if (auto s = removeReplicatedVolume(ctx_, *v, false); !s.ok()) {
      if (s.error().code != EBUSY) return s;
      // Its origin volume (or a clone) still hangs off it in the store:
      // gone for CSI now, removed when they are.
      CatalogEntry gone = e.ok() ? *e : CatalogEntry{};
      gone.kind = "snapshot";
      gone.id = id;
      if (gone.name.empty()) gone.name = id;
      gone.deleted = true;
      OC_TRY(saveEntry(gone));
      return okStatus();
    }
    removeEntry(id);
    collectDeleted();
    return okStatus();
  }

  Result<std::vector<csi::SnapshotInfo>> listSnapshots() override {
    std::vector<csi::SnapshotInfo> out;
    OC_ASSIGN_OR_RETURN(auto names, replicatedVolumeNames(ctx_));
    for (const auto& n : names) {
      auto v = loadReplicatedVolume(ctx_, n);
      if (!v.ok() || !v->read_only) continue;
      auto e = loadEntry(n);
      OC_TRY(presentOrAbsent(e));
      if (e.ok() && e->kind == "snapshot") {
        if (!e->ready || e->deleted) continue;
        out.push_back(snapInfo(*e));
        continue;
      }
      if (isHidden(n)) continue;
      csi::SnapshotInfo s;
      s.id = n;
      s.source_volume_id = v->parent;
      s.size_bytes = v->size_bytes;
      s.created_unix_ns = v->created_unix_ns;
      struct stat st {};  // a directory record from before the field: its file's mtime
      if (s.created_unix_ns == 0 && !kv::isEtcdUrl(ctx_.config.cluster_store) &&
          ::stat((ctx_.config.cluster_dir + "/" + volumes::kVolumeRecords.folder + "/" + n + ".json").c_str(), &st) ==
              0) {
        s.created_unix_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      }
      out.push_back(s);
    }
    return out;
  }

  Result<uint64_t> expandVolume(const std::string& id, uint64_t size, uint64_t limit) override {
    auto v = loadReplicatedVolume(ctx_, id);
    if (!v.ok() || v->read_only) return Error{ENOENT, "no volume " + id};
    if (v->size_bytes >= size) return v->size_bytes;  // already that big
    if (limit > 0 && size > limit) return makeError("the size rounds above limit_bytes", ERANGE);
    auto e = loadEntry(id);
    OC_TRY(presentOrAbsent(e));
    if (e.ok() && !e->published.empty()) {
      return makeError("volume " + id + " is published on node " + e->published.begin().key() +
                           "; offcore grows volumes offline (unpublish first)",
                       EBUSY);
    }
    if (auto at = replicatedAttachedAt(ctx_, *v)) {
      return makeError("volume " + id + " is attached on node " + at->node + "; offcore grows volumes offline", EBUSY);
    }
    OC_TRY(growReplicated(ctx_, *v, size));
    if (e.ok()) {
      e->size_bytes = size;  // what a CreateVolume retry with the old size no longer matches; that is right
      OC_TRY(saveEntry(*e));
    }
    return size;
  }

  Result<Capacity> capacity(const csi::StringMap& parameters) override {
    auto params = effective(parameters);
    int replicas = std::stoi(params["replicas"]);
    std::vector<uint64_t> free;
    for (const auto& host : cfg_.pools.at(params["pool"])) {
      auto f = freeOn(host);
      if (f.ok()) free.push_back(*f);
    }
    Capacity c;
    if (static_cast<int>(free.size()) < replicas) return c;
    std::sort(free.rbegin(), free.rend());
    c.available = free[static_cast<size_t>(replicas) - 1];
    c.maximum_volume = c.available;
    return c;
  }

 private:
  std::string poolNames() const {
    std::string s;
    for (const auto& [k, v] : cfg_.pools) s += (s.empty() ? "" : ", ") + k;
    return s.empty() ? "none configured" : s;
  }

  std::map<std::string, std::string> effective(const csi::StringMap& p) const {
    std::map<std::string, std::string> out{{"replicas", std::to_string(cfg_.default_replicas)}, {"pool", "default"}};
    for (const auto& [k, v] : p) {
      if (k.rfind(kK8sPrefix, 0) != 0) out[k] = v;
    }
    return out;
  }

  Result<uint64_t> freeOn(const std::string& host) const {
    OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(ctx_.config.run_root, host, 5000));
    OC_ASSIGN_OR_RETURN(std::string text, gw.targetJson());
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object()) return makeError("gateway " + host + ": bad target document");
    if (!j.contains("free_bytes") || !j["free_bytes"].is_number_unsigned()) {
      return makeError("gateway " + host + " does not report free_bytes (upgrade it)");
    }
    return j["free_bytes"].get<uint64_t>();
  }

  // Makes the volume of a new entry: from a snapshot, from a volume (through
  // a snapshot only it uses), or new on the pool's emptiest hosts.
  Status make(CatalogEntry& e, const csi::VolumeSpec& spec) {
    if (auto v = loadReplicatedVolume(ctx_, e.id); v.ok()) {  // made before a crash: finish it
      if (v->size_bytes < spec.size_bytes) OC_TRY(growReplicated(ctx_, *v, spec.size_bytes));
      return okStatus();
    }
    std::string snap = spec.source_snapshot;
    if (!spec.source_volume.empty()) {
      auto src = loadReplicatedVolume(ctx_, spec.source_volume);
      if (!src.ok() || src->read_only) return Error{ENOENT, "no source volume " + spec.source_volume};
      if (spec.size_bytes < src->size_bytes) {
        return makeError("the source volume is " + std::to_string(src->size_bytes) + " bytes, more than asked", ERANGE);
      }
      e.hidden_snapshot = hiddenSnapshotFor(e.id);
      OC_TRY(saveEntry(e));
      if (!loadReplicatedVolume(ctx_, e.hidden_snapshot).ok()) {
        OC_TRY(snapshotReplicated(ctx_, *src, e.hidden_snapshot));
      }
      snap = e.hidden_snapshot;
    }
    if (!snap.empty()) {
      auto s = loadReplicatedVolume(ctx_, snap);
      if (!s.ok() || !s->read_only) return Error{ENOENT, "no snapshot " + snap};
      auto se = loadEntry(snap);
      OC_TRY(presentOrAbsent(se));
      if (se.ok() && se->deleted) return Error{ENOENT, "snapshot " + snap + " was deleted"};
      if (spec.size_bytes < s->size_bytes) {
        return makeError("the snapshot is " + std::to_string(s->size_bytes) + " bytes, more than asked", ERANGE);
      }
      OC_ASSIGN_OR_RETURN(ReplicatedVolume made, cloneReplicated(ctx_, *s, e.id));
      if (spec.size_bytes > made.size_bytes) OC_TRY(growReplicated(ctx_, made, spec.size_bytes));
      return okStatus();
    }
    int replicas = std::stoi(e.parameters["replicas"]);
    const auto& pool = cfg_.pools.at(e.parameters["pool"]);
    // The emptiest reachable hosts first; a host that does not answer is
    // left out (and named if that leaves too few).
    std::vector<std::pair<uint64_t, std::string>> hosts;
    std::string down;
    for (const auto& h : pool) {
      auto f = freeOn(h);
      if (f.ok()) {
        hosts.emplace_back(*f, h);
      } else {
        down += (down.empty() ? "" : ", ") + h;
      }
    }
    std::stable_sort(hosts.begin(), hosts.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    if (static_cast<int>(hosts.size()) < replicas) {
      return makeError(std::to_string(replicas) + " replicas need " + std::to_string(replicas) +
                           " storage hosts; pool " + e.parameters["pool"] + " has " + std::to_string(hosts.size()) +
                           " answering" + (down.empty() ? "" : " (down: " + down + ")"),
                       ENOSPC);
    }
    std::vector<std::string> targets;
    for (int i = 0; i < replicas; ++i) {
      if (hosts[static_cast<size_t>(i)].first < e.size_bytes) {
        return makeError("storage host " + hosts[static_cast<size_t>(i)].second + " has " +
                             std::to_string(hosts[static_cast<size_t>(i)].first) + " bytes free, less than the volume",
                         ENOSPC);
      }
      targets.push_back(hosts[static_cast<size_t>(i)].second);
    }
    auto made = makeReplicatedVolume(ctx_, e.id, e.size_bytes, replicas, targets, {});
    if (!made.ok()) return made.error();
    return okStatus();
  }

  // The snapshot a volume-from-volume clone is made from: named after the
  // clone, kept within a volume name's 64 characters.
  static std::string hiddenSnapshotFor(const std::string& id) {
    return id.size() <= 60 ? id + ".src" : "csi-" + oci::sha256Digest(id).substr(7, 24) + ".src";
  }

  // Marks a snapshot deleted (if it is there): removed by collectDeleted()
  // once no volume hangs off it.
  void dropLater(const std::string& snap, const std::string& source) {
    if (!loadReplicatedVolume(ctx_, snap).ok()) return;
    CatalogEntry gone;
    gone.kind = "snapshot";
    gone.name = gone.id = snap;
    gone.source_volume = source;
    gone.deleted = true;
    if (auto s = saveEntry(gone); !s.ok()) spdlog::warn("csi: snapshot {} left behind: {}", snap, s.error().message);
  }

  // Removes the snapshots CSI deleted that nothing hangs off any more
  // (a snapshot's removal can free its own parent: repeat until none goes).
  void collectDeleted() {
    for (bool removed = true; removed;) {
      removed = false;
      auto store = catalog();
      if (!store.ok()) return;
      auto names = store.value()->names();
      if (!names.ok()) {
        spdlog::warn("csi: deleted snapshots not collected: {}", names.error().message);
        return;
      }
      for (const auto& n : *names) {
        auto e = loadEntry(n);
        if (!e.ok() || !e->deleted) continue;
        auto v = loadReplicatedVolume(ctx_, e->id);
        if (v.ok() && !removeReplicatedVolume(ctx_, *v, false).ok()) continue;
        removed = removeEntry(e->id) || removed;  // a pass that removes nothing ends the loop
      }
    }
  }

  // ".src" ends only the snapshots of volume-from-volume clones
  // (csiVolumeIdFor never makes such a name).
  static bool isHidden(const std::string& snap) {
    return snap.size() > 4 && snap.compare(snap.size() - 4, 4, ".src") == 0;
  }

  csi::VolumeInfo info(const CatalogEntry& e, const ReplicatedVolume* rv = nullptr) const {
    csi::VolumeInfo i;
    i.id = e.id;
    i.capacity_bytes = e.size_bytes;
    auto loaded = rv ? Result<ReplicatedVolume>(*rv) : loadReplicatedVolume(ctx_, e.id);
    if (loaded.ok()) {
      i.capacity_bytes = loaded->size_bytes;
      i.context["replicas"] = std::to_string(loaded->replicas.size());
      if (auto at = replicatedAttachedAt(ctx_, *loaded)) {
        i.abnormal = !at->problem.empty();
        i.condition = at->problem.empty() ? "attached on node " + at->node + ", " + at->state : at->problem;
      }
    }
    if (e.parameters.count("pool")) i.context["pool"] = e.parameters.at("pool");
    i.source_snapshot = e.source_snapshot;
    i.source_volume = e.source_volume;
    for (const auto& [node, _] : e.published.items()) i.published_nodes.push_back(node);
    return i;
  }

  static csi::SnapshotInfo snapInfo(const CatalogEntry& e) {
    return {e.id, e.source_volume, e.size_bytes, e.created_ns, true};
  }

  // OK when the entry was read or is absent (ENOENT); the error otherwise.
  static Status presentOrAbsent(const Result<CatalogEntry>& e) {
    if (e.ok() || e.error().code == ENOENT) return okStatus();
    return e.error();
  }

  Result<std::shared_ptr<volumes::RecordStore>> catalog() const { return clusterRecords(ctx_, volumes::kCsiRecords); }

  // ENOENT: no entry; any other error (the store unreachable, a damaged
  // entry) is not "absent" and the callers pass it on.
  Result<CatalogEntry> loadEntry(const std::string& id) const {
    // An id no entry can have (not one path segment) names none.
    if (!volumes::checkRecordName(id, volumes::kCsiRecords).ok()) return Error{ENOENT, "no CSI catalog entry " + id};
    OC_ASSIGN_OR_RETURN(auto store, catalog());
    OC_ASSIGN_OR_RETURN(auto text, store->get(id));
    if (!text) return Error{ENOENT, "no CSI catalog entry " + id};
    auto j = json::parse(*text, nullptr, false);
    if (!j.is_object()) return makeError("CSI catalog entry " + id + " in " + store->location() + " is damaged", EIO);
    CatalogEntry e;
    e.kind = j.value("kind", "");
    e.name = j.value("name", "");
    e.id = id;
    e.ready = j.value("ready", false);
    e.size_bytes = j.value("size_bytes", 0ULL);
    if (j.contains("parameters") && j["parameters"].is_object()) {
      for (const auto& [k, v] : j["parameters"].items()) {
        if (v.is_string()) e.parameters[k] = v.get<std::string>();
      }
    }
    e.source_snapshot = j.value("source_snapshot", "");
    e.source_volume = j.value("source_volume", "");
    e.hidden_snapshot = j.value("hidden_snapshot", "");
    e.created_ns = j.value("created_ns", 0LL);
    e.deleted = j.value("deleted", false);
    e.imported = j.value("imported", false);
    e.required_bytes = j.value("required_bytes", 0ULL);
    e.limit_bytes = j.value("limit_bytes", 0ULL);
    if (j.contains("published") && j["published"].is_object()) e.published = j["published"];
    return e;
  }

  Status saveEntry(const CatalogEntry& e) const {
    OC_ASSIGN_OR_RETURN(auto store, catalog());
    json j{{"kind", e.kind},
           {"name", e.name},
           {"ready", e.ready},
           {"size_bytes", e.size_bytes},
           {"parameters", e.parameters},
           {"source_snapshot", e.source_snapshot},
           {"source_volume", e.source_volume},
           {"hidden_snapshot", e.hidden_snapshot},
           {"created_ns", e.created_ns},
           {"deleted", e.deleted},
           {"imported", e.imported},
           {"required_bytes", e.required_bytes},
           {"limit_bytes", e.limit_bytes},
           {"published", e.published}};
    return store->put(e.id, dumpJson(j, 2) + "\n");
  }

  // False (and a warning) when the entry stays.
  bool removeEntry(const std::string& id) const {
    auto store = catalog();
    Status s = store.ok() ? store.value()->remove(id) : Status(store.error());
    if (!s.ok()) spdlog::warn("csi: catalog entry {} left behind: {}", id, s.error().message);
    return s.ok();
  }

  const CliContext& ctx_;
  CsiControllerConfig cfg_;
  std::mutex mu_;
};

}  // namespace

Status checkCsiCapability(const csi::Capability& cap) {
  using M = csi::AccessMode;
  switch (cap.mode) {
    case M::kSingleNodeWriter:
    case M::kSingleNodeReaderOnly:
    case M::kSingleNodeSingleWriter:
    case M::kSingleNodeMultiWriter: break;
    default:
      return makeError("access mode " + std::to_string(static_cast<int>(cap.mode)) +
                           " spans nodes; offcore volumes attach to one node at a time (its SoC runs the nexus)",
                       EINVAL);
  }
  if (cap.type == csi::AccessType::kMount && !cap.fs_type.empty() && cap.fs_type != "ext4") {
    return makeError("fs_type " + cap.fs_type + " is not offered (ext4, or a block volume)", EINVAL);
  }
  return okStatus();
}

std::string csiVolumeIdFor(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
  }
  // ".src" ends the hidden snapshots of volume-from-volume clones.
  if (ok && name.size() > 4 && name.compare(name.size() - 4, 4, ".src") == 0) ok = false;
  if (ok) return name;
  return "csi-" + oci::sha256Digest(name).substr(7, 24);
}

std::string csiDiskNameFor(const std::string& volume_id) {
  if (volume_id.size() <= 48) return volume_id;
  return "csi-" + oci::sha256Digest(volume_id).substr(7, 24);
}

std::unique_ptr<csi::ControllerOps> makeCsiController(const CliContext& ctx, CsiControllerConfig config) {
  return std::make_unique<CsiController>(ctx, std::move(config));
}

}  // namespace offcore
