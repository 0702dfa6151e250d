#include "cli/volume_replicated.h"
#include "cli/volume_replicated_internal.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "cli/disk_common.h"
#include "nexus/claim.h"
#include "nexus/nexus_journal.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/nvme_uri.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr int kMaxReplicas = 8;
constexpr int kMinReplicas = 1;

json recordJson(const ReplicatedVolume& v) {
  json reps = json::array();
  for (const auto& r : v.replicas) reps.push_back({{"target", r.target}, {"uri", r.uri}});
  json j{{"name", v.name}, {"size_bytes", v.size_bytes}, {"replicas", reps}, {"read_only", v.read_only}};
  if (!v.parent.empty()) j["parent"] = v.parent;
  if (v.created_unix_ns != 0) j["created_unix_ns"] = v.created_unix_ns;
  return j;
}

std::vector<std::string> replicaNames(const ReplicatedVolume& v) {
  std::vector<std::string> names;
  for (const auto& r : v.replicas) names.push_back(replicaNameOf(r.uri));
  return names;
}

// No nexus may write the replicas meanwhile: hold their claims.
Result<std::unique_ptr<nexus::ReplicaClaim>> claimDetached(const CliContext& ctx, const ReplicatedVolume& v,
                                                           const std::string& what) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  auto claim = stores.nexus->claim(replicaNames(v), {"offcore " + what + " of " + v.name, ::getpid()});
  if (!claim.ok()) {
    if (claim.error().code != EBUSY) return claim.error();
    return Error{EBUSY, "detach volume " + v.name + " first: " + claim.error().message};
  }
  return claim;
}

// Every replica in sync, by the journal (none: never attached, in sync).
Status checkInSync(const CliContext& ctx, const ReplicatedVolume& v) {
  OC_ASSIGN_OR_RETURN(auto saved, loadNexusRecord(ctx, v.name));
  if (!saved) return okStatus();
  const nexus::NexusRecord& rec = *saved;
  for (const auto& r : rec.replicas) {
    uint64_t bits = nexus::missedRegions(r);
    if (r.state != nexus::ReplicaState::kOnline || bits != 0) {
      return makeError("replica " + r.name + " is " + nexus::replicaStateName(r.state) + ", behind by " +
                           humanBytes(std::min(v.size_bytes, bits * rec.region_bytes)) +
                           ": attach the volume and let it rebuild (volume get shows online) first",
                       EBUSY);
    }
  }
  return okStatus();
}

// Makes `made` on every replica's gateway with `op`, all or none, and
// records it.
Result<ReplicatedVolume> makeOnEveryReplica(const CliContext& ctx, const ReplicatedVolume& from, ReplicatedVolume made,
                                            const std::function<Result<GatewayVolume>(const GatewayClient&)>& op) {
  OC_TRY(checkVolumeName(made.name));
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_ASSIGN_OR_RETURN(auto exists, stores.records->get(made.name));
  if (exists) return makeError("a replicated volume '" + made.name + "' exists", EEXIST);
  std::vector<GatewayClient> done;
  auto undo = [&] {
    for (auto& gw : done) (void)gw.remove(made.name, true);
  };
  for (const auto& r : from.replicas) {
    auto gw = GatewayClient::open(ctx.config.run_root, r.target, 30000);
    if (!gw.ok()) {
      undo();
      return gw.error().wrap("replica on " + r.target + " (nothing was made)");
    }
    auto v = op(*gw);
    if (!v.ok()) {
      undo();
      return v.error().wrap("replica on " + r.target + " (nothing was made)");
    }
    made.replicas.push_back({gw->name(), v->uri});
    done.push_back(std::move(*gw));
  }
  if (auto s = saveReplicatedVolume(ctx, made); !s.ok()) {
    undo();
    return s.error();
  }
  return made;
}

int printMade(const ReplicatedVolume& made, const ReplicatedVolume& from, bool as_json) {
  if (as_json) {
    std::printf("%s\n", dumpJson(recordJson(made), 2).c_str());
  } else {
    std::printf("%s %s of %s on %zu replicas\n", made.read_only ? "snapshot" : "clone", made.name.c_str(),
                from.name.c_str(), made.replicas.size());
  }
  return 0;
}

// Where the volume is attached: the disk record whose journal is ours (a
// mirror), or, for one replica (a plain disk), whose URI is that replica's.
json attachedDisk(const CliContext& ctx, const ReplicatedVolume& v) {
  const std::string journal = nexusJournalRef(ctx, v.name).valueOr("");
  const std::string single = v.replicas.size() == 1 ? v.replicas[0].uri : "";
  std::error_code ec;
  for (const auto& node : std::filesystem::directory_iterator(ctx.config.run_root, ec)) {
    std::error_code ec2;
    for (const auto& e : std::filesystem::directory_iterator(node.path() / "disks", ec2)) {
      if (e.path().extension() != ".json") continue;
      auto j = json::parse(readFile(e.path().string()).valueOr("{}"), nullptr, false);
      if (!j.is_object()) continue;
      if (j.value("journal", "") == journal ||
          (!single.empty() && !j.contains("nexus") && j.value("uri", "") == single)) {
        j["node"] = node.path().filename().string();
        j["disk"] = e.path().stem().string();
        return j;
      }
    }
  }
  return nullptr;
}

}  // namespace

int64_t unixNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<volumes::VolumeStores> volumeStores(const CliContext& ctx) {
  // One client per process (the CSI controller calls from its gRPC threads).
  static std::mutex mu;
  static std::string key;
  static std::optional<Result<volumes::VolumeStores>> opened;
  std::lock_guard<std::mutex> l(mu);
  std::string k = ctx.config.cluster_store + "\n" + ctx.config.cluster_dir;
  if (!opened || key != k) {
    opened = volumes::openVolumeStores(ctx.config);
    key = k;
  }
  return *opened;
}

Status checkVolumeName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.');
  }
  if (!ok) return makeError("bad volume name '" + name + "' (1-64 of a-z, 0-9, '-', '_', '.')");
  return okStatus();
}

std::string replicaNameOf(const std::string& uri) {
  auto u = nvme::parseNvmeUri(uri);
  return u.ok() ? replicaName(*u) : uri;
}

Result<std::unique_ptr<volumes::RecordLock>> lockVolumes(const CliContext& ctx, const std::string& what) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  return stores.records->lock("offcore " + what);
}

Status saveReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  return stores.records->put(v.name, dumpJson(recordJson(v), 2) + "\n");
}

Result<std::optional<nexus::NexusRecord>> loadNexusRecord(const CliContext& ctx, const std::string& id) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_ASSIGN_OR_RETURN(auto journal, stores.nexus->journal(id, nullptr));
  return journal->load();
}

Status saveNexusRecord(const CliContext& ctx, const std::string& id, const nexus::NexusRecord& rec,
                       const nexus::ReplicaClaim* claim) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_ASSIGN_OR_RETURN(auto journal, stores.nexus->journal(id, claim));
  return journal->save(rec);
}

std::optional<AttachedAt> replicatedAttachedAt(const CliContext& ctx, const ReplicatedVolume& v) {
  json d = attachedDisk(ctx, v);
  if (!d.is_object()) return std::nullopt;
  AttachedAt at{d.value("node", ""), d.value("disk", ""), d.value("file", ""), "online", ""};
  if (d.contains("nexus") && d["nexus"].is_object()) {
    at.state = d["nexus"].value("state", "online");
    for (const auto& r : d["nexus"].value("replicas", json::array())) {
      if (r.value("state", "online") != "online") {
        at.problem += (at.problem.empty() ? "" : "; ") + std::string("replica ") + r.value("uri", "?") + " is " +
                      r.value("state", "?");
      }
    }
  } else if (d.value("state", "live") != "live") {
    at.state = d.value("state", "");
    at.problem = "the storage path is " + at.state;
  }
  return at;
}

Result<std::vector<std::string>> replicatedVolumeNames(const CliContext& ctx) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  return stores.records->names();
}

Result<std::string> nexusJournalRef(const CliContext& ctx, const std::string& id) {
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  return stores.nexus->journalRef(id);
}

Result<ReplicatedVolume> loadReplicatedVolume(const CliContext& ctx, const std::string& name) {
  // A name no replicated volume can have is some gateway's plain volume.
  if (!checkVolumeName(name).ok()) return makeError("no replicated volume '" + name + "'", ENOENT);
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_ASSIGN_OR_RETURN(auto found, stores.records->get(name));
  if (!found) return makeError("no replicated volume '" + name + "'", ENOENT);
  const std::string path = "'" + name + "' in " + stores.records->location();
  auto j = json::parse(*found, nullptr, false);
  if (!j.is_object() || !j.contains("replicas") || !j["replicas"].is_array() || !j["size_bytes"].is_number_unsigned()) {
    return makeError("replicated volume record " + path + " is damaged");
  }
  ReplicatedVolume v;
  v.name = name;
  v.size_bytes = j["size_bytes"].get<uint64_t>();
  v.read_only = j.value("read_only", false);
  if (j.contains("parent") && j["parent"].is_string()) v.parent = j["parent"].get<std::string>();
  if (j.contains("created_unix_ns") && j["created_unix_ns"].is_number_integer()) {
    v.created_unix_ns = j["created_unix_ns"].get<int64_t>();
  }
  for (const auto& r : j["replicas"]) {
    if (!r.is_object() || !r.contains("uri") || !r["uri"].is_string())
      return makeError("record " + path + ": bad replica");
    v.replicas.push_back({r.value("target", ""), r["uri"].get<std::string>()});
  }
  if (v.replicas.size() < kMinReplicas || v.replicas.size() > kMaxReplicas)
    return makeError("record " + path + ": bad replica count");
  return v;
}

Result<ReplicatedVolume> makeReplicatedVolume(const CliContext& ctx, const std::string& name, uint64_t size,
                                              int replicas, const std::vector<std::string>& targets,
                                              std::vector<HostAccess> hosts, json* new_secrets) {
  OC_TRY(checkVolumeName(name));
  if (replicas < kMinReplicas || replicas > kMaxReplicas) {
    return makeError("--replicas takes " + std::to_string(kMinReplicas) + " to " + std::to_string(kMaxReplicas),
                     EINVAL);
  }
  if (static_cast<int>(targets.size()) < replicas) {
    return makeError(std::to_string(replicas) + " replicas need " + std::to_string(replicas) +
                         " storage hosts; --targets names " + std::to_string(targets.size()),
                     ENOSPC);
  }
  // One replica per storage host: two on one host would fail together.
  std::vector<GatewayClient> gws;
  std::vector<std::string> listens;
  for (int i = 0; i < replicas; ++i) {
    auto gw = GatewayClient::open(ctx.config.run_root, targets[static_cast<size_t>(i)], 30000);
    if (!gw.ok()) return gw.error().wrap("replica " + std::to_string(i + 1));
    auto info = gw->targetJson();
    auto j = json::parse(info.valueOr("{}"), nullptr, false);
    std::string listen = j.is_object() ? j.value("listen", "") : "";
    for (size_t k = 0; k < gws.size(); ++k) {
      if (gws[k].name() == gw->name() || (!listen.empty() && listen == listens[k])) {
        return makeError("--targets " + gws[k].name() + " and " + gw->name() + " are one storage host (" + listen +
                             "): two replicas there would fail together; name another",
                         EINVAL);
      }
    }
    gws.push_back(std::move(*gw));
    listens.push_back(listen);
  }
  // A secret the gateways would each generate differs per replica, but the
  // node holds one: make it here, the same for all.
  json made = json::array();
  for (auto& h : hosts) {
    json m{{"nqn", h.nqn}};
    if (h.dhchap_secret.empty()) {
      OC_ASSIGN_OR_RETURN(auto k, nvme::auth::generateDhchapKey(nvme::auth::kHashSha256));
      h.dhchap_secret = nvme::auth::formatDhchapKey(k);
      m["dhchap_secret"] = h.dhchap_secret;
    }
    if (h.dhchap_ctrl_secret == "generate") {
      OC_ASSIGN_OR_RETURN(auto k, nvme::auth::generateDhchapKey(nvme::auth::kHashSha256));
      h.dhchap_ctrl_secret = nvme::auth::formatDhchapKey(k);
      m["dhchap_ctrl_secret"] = h.dhchap_ctrl_secret;
    }
    if (m.size() > 1) made.push_back(std::move(m));
  }
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume create " + name));
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_ASSIGN_OR_RETURN(auto exists, stores.records->get(name));
  if (exists) {
    return makeError("a replicated volume '" + name + "' exists (see `offcore volume get " + name + "`)", EEXIST);
  }
  ReplicatedVolume v{name, size, "", false, {}, unixNowNs()};
  auto undo = [&] {
    for (size_t k = 0; k < v.replicas.size(); ++k) (void)gws[k].remove(name, true);
  };
  for (auto& gw : gws) {
    auto made_vol = gw.create(name, size, hosts);
    if (!made_vol.ok()) {
      undo();  // nothing half-made
      Error e = made_vol.error().wrap("replica on " + gw.name() + " (the others were removed)");
      if (made_vol.error().message.find("capacity") != std::string::npos ||
          made_vol.error().message.find("space") != std::string::npos) {
        e.code = ENOSPC;
      }
      return e;
    }
    v.replicas.push_back({gw.name(), made_vol->uri});
  }
  if (auto s = saveReplicatedVolume(ctx, v); !s.ok()) {
    undo();
    return s.error();
  }
  if (new_secrets) *new_secrets = made;
  return v;
}

int createReplicatedVolume(const CliContext& ctx, const std::string& name, uint64_t size, int replicas,
                           const std::vector<std::string>& targets, std::vector<HostAccess> hosts, bool as_json) {
  json made = json::array();
  auto v = makeReplicatedVolume(ctx, name, size, replicas, targets, std::move(hosts), &made);
  if (!v.ok()) return fail("volume create", v.error());
  json out = recordJson(*v);
  if (!made.empty()) out["new_secrets"] = made;
  if (as_json) {
    std::printf("%s\n", dumpJson(out, 2).c_str());
    return 0;
  }
  std::printf("replicated volume %s: %s on %zu storage hosts (", name.c_str(), humanBytes(size).c_str(),
              v->replicas.size());
  for (size_t i = 0; i < v->replicas.size(); ++i) std::printf("%s%s", i ? ", " : "", v->replicas[i].target.c_str());
  std::printf(")\nattach it with: offcore disk attach --volume %s --node NODE\n", name.c_str());
  for (const auto& m : made) {
    std::printf("DH-HMAC-CHAP secret for %s (shown once; the same on every replica):\n  dhchap_secret      %s\n",
                m.value("nqn", "").c_str(), m.value("dhchap_secret", "").c_str());
    if (m.contains("dhchap_ctrl_secret")) {
      std::printf("  dhchap_ctrl_secret %s\n", m.value("dhchap_ctrl_secret", "").c_str());
    }
  }
  return 0;
}

int getReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool as_json) {
  json out = recordJson(v);
  // The live state comes from the disk serving it; the journal says what
  // was last saved (after a stop too).
  json disk = attachedDisk(ctx, v);
  json live = disk.is_object() && disk.contains("nexus") ? disk["nexus"] : json(nullptr);
  auto loaded = loadNexusRecord(ctx, v.name);
  if (!loaded.ok()) return fail("volume get", loaded.error());
  const std::optional<nexus::NexusRecord>& saved = *loaded;
  std::string state = "online";
  for (size_t i = 0; i < v.replicas.size(); ++i) {
    json& r = out["replicas"][i];
    r["state"] = "online";
    r["missed_bytes"] = 0;
    if (live.is_object() && live.contains("replicas") && live["replicas"].is_array() && i < live["replicas"].size()) {
      const json& l = live["replicas"][i];
      for (const char* k : {"state", "missed_bytes", "rebuild", "last_error"}) {
        if (l.contains(k)) r[k] = l[k];
      }
    } else if (saved) {
      std::string want = replicaNameOf(v.replicas[i].uri);
      for (const auto& rr : saved->replicas) {
        if (rr.name != want) continue;
        uint64_t bits = nexus::missedRegions(rr);
        r["state"] = nexus::replicaStateName(rr.state);
        r["missed_bytes"] = std::min(v.size_bytes, bits * saved->region_bytes);
      }
    }
    if (r["state"] != "online") state = "degraded";
  }
  out["state"] = live.is_object() ? live.value("state", state) : state;
  out["attached"] = disk.is_object() ? json{{"node", disk["node"]}, {"disk", disk["disk"]}} : json(nullptr);
  if (as_json) {
    std::printf("%s\n", dumpJson(out, 2).c_str());
    return 0;
  }
  std::printf("volume %s: %s, %zu replicas, %s%s\n", v.name.c_str(), humanBytes(v.size_bytes).c_str(),
              v.replicas.size(), out["state"].get<std::string>().c_str(),
              disk.is_object() ? (", attached on node " + disk["node"].get<std::string>() + " as disk " +
                                  disk["disk"].get<std::string>())
                                     .c_str()
                               : ", not attached");
  std::vector<std::vector<std::string>> rows{{"REPLICA", "STATE", "BEHIND", "URI"}};
  for (const auto& r : out["replicas"]) {
    std::string st = r.value("state", "?");
    if (r.contains("rebuild") && r["rebuild"].is_object() && r["rebuild"].value("total_bytes", 0ULL) > 0) {
      st += " " +
            std::to_string(100 * r["rebuild"].value("done_bytes", 0ULL) / r["rebuild"].value("total_bytes", 1ULL)) +
            "%";
    }
    rows.push_back({r.value("target", ""), st, humanBytes(r.value("missed_bytes", 0ULL)), r.value("uri", "")});
  }
  std::printf("%s", renderTable(rows).c_str());
  return 0;
}

int listReplicatedVolumes(const CliContext& ctx, bool as_json) {
  json arr = json::array();
  auto names = replicatedVolumeNames(ctx);
  if (!names.ok()) return fail("volume list", names.error());
  for (const auto& n : *names) {
    auto v = loadReplicatedVolume(ctx, n);
    if (v.ok()) arr.push_back(recordJson(*v));
  }
  if (as_json) {
    std::printf("%s\n", dumpJson(arr, 2).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"VOLUME", "SIZE", "REPLICAS", "ON"}};
  for (const auto& v : arr) {
    std::string on;
    for (const auto& r : v["replicas"]) on += (on.empty() ? "" : ",") + r.value("target", "");
    rows.push_back(
        {v.value("name", ""), humanBytes(v.value("size_bytes", 0ULL)), std::to_string(v["replicas"].size()), on});
  }
  std::printf("%s", renderTable(rows).c_str());
  return 0;
}

Status removeReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool force) {
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume delete " + v.name));
  // A nexus writing it holds its replicas' claims: refuse (its disk first).
  OC_ASSIGN_OR_RETURN(auto claim, claimDetached(ctx, v, "volume delete"));
  for (const auto& r : v.replicas) {
    auto gw = GatewayClient::open(ctx.config.run_root, r.target, 30000);
    if (!gw.ok()) return gw.error().wrap("replica on " + r.target + " (start its gateway, then delete again)");
    auto there = gw->find(v.name);
    if (there.ok() && !*there) continue;  // a delete run again after a partial one
    if (there.ok() && !(*there)->clones.empty()) {
      std::string list;
      for (const auto& c : (*there)->clones) list += (list.empty() ? "" : ", ") + c;
      return makeError("'" + v.name + "' has clones: " + list + "; delete them first", EBUSY);
    }
    if (auto s = gw->remove(v.name, force); !s.ok()) return s.error().wrap("replica on " + r.target);
  }
  OC_ASSIGN_OR_RETURN(auto stores, volumeStores(ctx));
  OC_TRY(stores.nexus->removeJournal(v.name));
  return stores.records->remove(v.name);
}

int deleteReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, bool force) {
  if (auto s = removeReplicatedVolume(ctx, v, force); !s.ok()) return fail("volume delete", s.error());
  std::printf("ok\n");
  return 0;
}

}  // namespace offcore

namespace offcore {

Result<ReplicatedVolume> snapshotReplicated(const CliContext& ctx, const ReplicatedVolume& v, const std::string& snap) {
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume snapshot " + v.name));
  OC_ASSIGN_OR_RETURN(auto claim, claimDetached(ctx, v, "volume snapshot"));
  OC_TRY(checkInSync(ctx, v));
  ReplicatedVolume made{snap, v.size_bytes, v.name, true, {}, unixNowNs()};
  return makeOnEveryReplica(ctx, v, made, [&](const GatewayClient& gw) { return gw.snapshot(v.name, snap); });
}

Result<ReplicatedVolume> cloneReplicated(const CliContext& ctx, const ReplicatedVolume& snap, const std::string& name) {
  if (!snap.read_only) return makeError(snap.name + " is not a snapshot (take one with `volume snapshot`)", EINVAL);
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume clone " + snap.name));
  // The clones start from identical snapshots: in sync, no journal needed.
  ReplicatedVolume made{name, snap.size_bytes, snap.name, false, {}, unixNowNs()};
  return makeOnEveryReplica(ctx, snap, made, [&](const GatewayClient& gw) { return gw.clone(snap.name, name); });
}

int snapshotReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, const std::string& snap, bool as_json) {
  auto made = snapshotReplicated(ctx, v, snap);
  if (!made.ok()) return fail("volume snapshot", made.error());
  return printMade(*made, v, as_json);
}

int cloneReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& snap, const std::string& name, bool as_json) {
  auto made = cloneReplicated(ctx, snap, name);
  if (!made.ok()) return fail("volume clone", made.error());
  return printMade(*made, snap, as_json);
}

Status growReplicated(const CliContext& ctx, const ReplicatedVolume& v, uint64_t size) {
  if (size < v.size_bytes) return makeError("volumes only grow (" + humanBytes(v.size_bytes) + " now)", ERANGE);
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume resize " + v.name));
  OC_ASSIGN_OR_RETURN(auto claim, claimDetached(ctx, v, "volume resize"));
  for (const auto& r : v.replicas) {
    auto gw = GatewayClient::open(ctx.config.run_root, r.target, 30000);
    if (!gw.ok()) return gw.error().wrap("replica on " + r.target + " (run the resize again once it is up)");
    auto cur = gw->find(v.name);
    if (cur.ok() && *cur && (*cur)->size_bytes == size) continue;  // a resize run again after a partial one
    auto grown = gw->resize(v.name, size);
    if (!grown.ok()) return grown.error().wrap("replica on " + r.target + " (run the resize again)");
  }
  // The journal's bitmaps grow with the volume: new regions are missed by
  // nobody (thin, zero on every replica).
  OC_ASSIGN_OR_RETURN(auto rec, loadNexusRecord(ctx, v.name));
  if (rec) {
    rec->size_bytes = size;
    uint64_t regions = (size + rec->region_bytes - 1) / rec->region_bytes;
    for (auto& r : rec->replicas) r.missed.resize((regions + 63) / 64, 0);
    OC_TRY(saveNexusRecord(ctx, v.name, *rec, claim.get()));
  }
  ReplicatedVolume grown = v;
  grown.size_bytes = size;
  return saveReplicatedVolume(ctx, grown);
}

int resizeReplicatedVolume(const CliContext& ctx, const ReplicatedVolume& v, uint64_t size) {
  if (auto s = growReplicated(ctx, v, size); !s.ok()) return fail("volume resize", s.error());
  std::printf("volume %s: %s on %zu replicas\n", v.name.c_str(), humanBytes(size).c_str(), v.replicas.size());
  return 0;
}

}  // namespace offcore
