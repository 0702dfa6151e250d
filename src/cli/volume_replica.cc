// `offcore volume replica add|remove|move`: changing where a replicated
// volume's copies live, attached or not. A new replica is made empty on its
// storage host and rebuilt whole by the nexus (while the volume serves I/O
// when it is attached); a removed one leaves the nexus first, then its
// storage host. An attached disk takes its new replica list by a handover:
// the agent restarts its `disk serve` with the new argv (PUT
// /v1/services/disk-NAME, SIGHUP), the FUSE connection staying in the
// keeper, so the host sees a pause of a few hundred ms, no error.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/progress.h"
#include "base/subprocess.h"
#include "cli/disk_common.h"
#include "cli/volume_replicated.h"
#include "cli/volume_replicated_internal.h"
#include "dpu/node.h"
#include "gateway/client.h"
#include "nexus/nexus_journal.h"
#include "nvme/host/host_identity.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr uint64_t kRegionBytes = 1 << 20;  // the nexus's default write-intent region

json diskRecordOf(const CliContext& ctx, const AttachedAt& at) {
  auto j = json::parse(readFile(at.file + ".json").valueOr("{}"), nullptr, false);
  (void)ctx;
  return j.is_object() ? j : json::object();
}

// The storage host a gateway listens on (two replicas there fail together).
std::string listenOf(const GatewayClient& gw) {
  auto j = json::parse(gw.targetJson().valueOr("{}"), nullptr, false);
  return j.is_object() ? j.value("listen", "") : "";
}

// Whoever may connect to the volume's replicas, with the DH-HMAC-CHAP
// secrets the new replica needs (the same as the others': the node holds one).
Result<std::vector<HostAccess>> accessForNewReplica(const CliContext& ctx, const ReplicatedVolume& v,
                                                    const std::optional<AttachedAt>& at,
                                                    const std::string& secret_file) {
  OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(ctx.config.run_root, v.replicas[0].target, 30000));
  OC_ASSIGN_OR_RETURN(auto have, gw.find(v.name));
  if (!have) return makeError("replica on " + v.replicas[0].target + " has no volume " + v.name);
  std::vector<HostAccess> out;
  if (have->allowed_hosts.empty()) return out;  // any host, no authentication
  DiskSecrets given;
  if (!secret_file.empty()) {
    OC_ASSIGN_OR_RETURN(given, readSecretFile(secret_file));
  }
  for (const auto& nqn : have->allowed_hosts) {
    HostAccess h{nqn, given.secret, given.ctrl_secret};
    if (h.dhchap_secret.empty() && at && nvme::nodeHostNqn(at->node) == nqn) {
      // The attached node's own secret, as `disk attach` stored it.
      auto s = readSecretFile(secretsDir(ctx, at->node) + "/disk-" + at->disk + ".secret");
      if (s.ok()) h = {nqn, s->secret, s->ctrl_secret};
    }
    if (h.dhchap_secret.empty()) {
      return makeError("host " + nqn +
                       " authenticates to the replicas with DH-HMAC-CHAP and its secret is not known "
                       "here: give it with --secret-file FILE (dhchap_secret=...)");
    }
    if (h.dhchap_ctrl_secret.empty()) h.dhchap_ctrl_secret = "none";
    out.push_back(h);
  }
  return out;
}

// The argv of the disk's service with the volume's replicas now: the first
// as the URI, the others as --replica, a journal when there are several.
Result<std::vector<std::string>> argvWithReplicas(const CliContext& ctx, const std::vector<std::string>& argv,
                                                  const ReplicatedVolume& v) {
  if (argv.size() < 4 || argv[1] != "disk" || argv[2] != "serve") {
    return makeError("the disk's service does not run `disk serve` (" + joinArgv(argv) + ")");
  }
  std::vector<std::string> out{argv[0], "disk", "serve", v.replicas[0].uri};
  for (size_t i = 4; i < argv.size(); ++i) {
    if ((argv[i] == "--replica" || argv[i] == "--journal") && i + 1 < argv.size()) {
      ++i;
      continue;
    }
    out.push_back(argv[i]);
  }
  for (size_t i = 1; i < v.replicas.size(); ++i) out.insert(out.end(), {"--replica", v.replicas[i].uri});
  if (v.replicas.size() > 1) {
    OC_ASSIGN_OR_RETURN(std::string journal, nexusJournalRef(ctx, v.name));
    out.insert(out.end(), {"--journal", journal});
  }
  return out;
}

// Hands the attached disk over to a `disk serve` with the volume's replicas
// and waits until the new process serves it.
Status handOver(const CliContext& ctx, const ReplicatedVolume& v, const AttachedAt& at) {
  OC_ASSIGN_OR_RETURN(NodeManager nodes, NodeManager::create(ctx.config));
  ApiClient agent(nodes.layout(at.node).api_socket, 15000);
  const std::string svc = "disk-" + at.disk;
  OC_ASSIGN_OR_RETURN(std::string text, agent.call("GET", "/v1/services/" + svc));
  auto j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("argv") || !j["argv"].is_array()) {
    return makeError("the agent of node " + at.node + " describes service " + svc + " oddly: " + text);
  }
  OC_ASSIGN_OR_RETURN(auto argv, argvWithReplicas(ctx, j["argv"].get<std::vector<std::string>>(), v));
  int old_pid = diskRecordOf(ctx, at).value("pid", 0);
  auto put = agent.call("PUT", "/v1/services/" + svc, dumpJson(json{{"name", svc}, {"argv", argv}}));
  if (!put.ok()) return put.error().wrap("node " + at.node + ": hand the disk over");
  for (int i = 0; i < 300; ++i) {  // 30 s
    json rec = diskRecordOf(ctx, at);
    int pid = rec.value("pid", 0);
    if (pid != 0 && pid != old_pid) {
      size_t serving = rec.contains("nexus") ? rec["nexus"].value("replicas", json::array()).size() : 1;
      if (serving == v.replicas.size()) return okStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string log = ctx.config.run_root + "/" + at.node + "/" + svc + ".log";
  auto lines = splitLines(readFile(log).valueOr(""));
  return makeError("the disk did not come back with the new replicas within 30 s: " +
                   (lines.empty() ? std::string("no log") : lines.back()));
}

// Waits for the replica at `index` of the attached disk to be online,
// drawing the rebuild's progress.
Status waitOnline(const CliContext& ctx, const AttachedAt& at, size_t index, const std::string& what) {
  constexpr int kSteps = 20;  // 5% each (one line each when stderr is not a terminal)
  ProgressBar bar("rebuild " + what, kSteps);
  int shown = 0;
  for (;;) {
    json rec = diskRecordOf(ctx, at);
    if (!rec.contains("nexus")) return makeError("the disk no longer runs a nexus");
    const json& reps = rec["nexus"]["replicas"];
    if (!reps.is_array() || index >= reps.size()) return makeError("the disk no longer lists the replica");
    const json& r = reps[index];
    std::string state = r.value("state", "");
    if (state == "online") {
      while (shown < kSteps) {
        bar.step("online");
        ++shown;
      }
      bar.finish();
      return okStatus();
    }
    if (r.contains("rebuild") && r["rebuild"].is_object()) {
      uint64_t total = r["rebuild"].value("total_bytes", 0ULL), done = r["rebuild"].value("done_bytes", 0ULL);
      int part = total ? static_cast<int>(std::min<uint64_t>(kSteps - 1, kSteps * done / total)) : 0;
      while (shown < part) {
        bar.step(humanBytes(done) + " of " + humanBytes(total));
        ++shown;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// The journal of a volume no nexus holds: a new replica is all behind, and
// a journal is made if there is none (without one every replica would be
// taken as in sync).
Status journalAdd(const CliContext& ctx, const ReplicatedVolume& before, const std::string& added) {
  uint64_t regions = (before.size_bytes + kRegionBytes - 1) / kRegionBytes;
  OC_ASSIGN_OR_RETURN(auto saved, loadNexusRecord(ctx, before.name));
  nexus::NexusRecord rec;
  if (saved) {
    rec = std::move(*saved);
  } else {
    rec.region_bytes = kRegionBytes;
    rec.size_bytes = before.size_bytes;
    for (const auto& r : before.replicas) {
      rec.replicas.push_back(
          {replicaNameOf(r.uri), nexus::ReplicaState::kOnline, std::vector<uint64_t>((regions + 63) / 64, 0)});
    }
  }
  regions = (rec.size_bytes + rec.region_bytes - 1) / rec.region_bytes;
  std::vector<uint64_t> all((regions + 63) / 64, ~uint64_t{0});
  if (regions % 64) all.back() = (uint64_t{1} << (regions % 64)) - 1;
  rec.replicas.push_back({replicaNameOf(added), nexus::ReplicaState::kFaulted, all});
  return saveNexusRecord(ctx, before.name, rec, nullptr);
}

// Some replica other than `index` holds everything (by the live nexus when
// attached, else by the journal; no journal: never attached, all in sync).
Status checkAnotherInSync(const CliContext& ctx, const ReplicatedVolume& v, size_t index,
                          const std::optional<AttachedAt>& at) {
  if (at) {
    json rec = diskRecordOf(ctx, *at);
    if (!rec.contains("nexus")) return okStatus();  // a plain disk: nothing is behind
    const json& reps = rec["nexus"]["replicas"];
    for (size_t i = 0; i < reps.size(); ++i) {
      if (i != index && reps[i].value("state", "") == "online") return okStatus();
    }
    return makeError("no other replica of " + v.name + " is online: let it rebuild first (volume get)", EBUSY);
  }
  OC_ASSIGN_OR_RETURN(auto saved, loadNexusRecord(ctx, v.name));
  if (!saved) return okStatus();
  const std::string gone = replicaNameOf(v.replicas[index].uri);
  for (const auto& r : saved->replicas) {
    if (r.name != gone && r.state == nexus::ReplicaState::kOnline && nexus::missedRegions(r) == 0) return okStatus();
  }
  return makeError(
      "no other replica of " + v.name + " is in sync by its journal: attach it and let it rebuild first (volume get)",
      EBUSY);
}

}  // namespace

Result<ReplicatedVolume> addReplica(const CliContext& ctx, const ReplicatedVolume& v, const std::string& target,
                                    const std::string& secret_file, bool wait) {
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume replica add " + v.name));
  OC_ASSIGN_OR_RETURN(ReplicatedVolume cur, loadReplicatedVolume(ctx, v.name));
  if (cur.read_only) return makeError(v.name + " is a snapshot: its replicas follow its volume's", EINVAL);
  if (cur.replicas.size() >= 8) return makeError("volume " + v.name + " has 8 replicas, the most a nexus takes");
  OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(ctx.config.run_root, target, 30000));
  const std::string listen = listenOf(gw);
  for (const auto& r : cur.replicas) {
    auto other = GatewayClient::open(ctx.config.run_root, r.target, 5000);
    if (r.target == gw.name() || (other.ok() && !listen.empty() && listenOf(*other) == listen)) {
      return makeError("storage host " + gw.name() + " already holds a replica of " + v.name + " (on " + r.target +
                           "): two replicas there would fail together; name another",
                       EEXIST);
    }
  }
  auto at = replicatedAttachedAt(ctx, cur);
  OC_ASSIGN_OR_RETURN(auto hosts, accessForNewReplica(ctx, cur, at, secret_file));
  OC_ASSIGN_OR_RETURN(GatewayVolume made, gw.create(v.name, cur.size_bytes, hosts));
  auto undo = [&] { (void)gw.remove(v.name, true); };
  ReplicatedVolume next = cur;
  next.replicas.push_back({gw.name(), made.uri});
  // The journal says it is behind everywhere (so `volume get` shows it and
  // no read goes to it). A running nexus owns its journal and may save over
  // this before its handover: a replica its record does not know is
  // rebuilt whole all the same. A plain disk (one replica) has no journal:
  // this one makes the nexus it becomes start with the right record.
  auto at_nexus = at && diskRecordOf(ctx, *at).contains("nexus");
  if (!at_nexus) {
    if (auto s = journalAdd(ctx, cur, made.uri); !s.ok()) {
      undo();
      return s.error();
    }
  }
  if (auto s = saveReplicatedVolume(ctx, next); !s.ok()) {
    undo();
    return s.error();
  }
  if (at) {
    if (auto s = handOver(ctx, next, *at); !s.ok()) {
      return s.error().wrap("the replica on " + gw.name() + " is recorded; the disk on node " + at->node +
                            " takes it at its next start");
    }
    if (wait) OC_TRY(waitOnline(ctx, *at, next.replicas.size() - 1, "of " + v.name + " on " + gw.name()));
  }
  return next;
}

Result<ReplicatedVolume> removeReplica(const CliContext& ctx, const ReplicatedVolume& v, const std::string& target) {
  OC_ASSIGN_OR_RETURN(auto lock, lockVolumes(ctx, "volume replica remove " + v.name));
  OC_ASSIGN_OR_RETURN(ReplicatedVolume cur, loadReplicatedVolume(ctx, v.name));
  auto it =
      std::find_if(cur.replicas.begin(), cur.replicas.end(), [&](const ReplicaPlace& r) { return r.target == target; });
  if (it == cur.replicas.end()) {
    std::string on;
    for (const auto& r : cur.replicas) on += (on.empty() ? "" : ", ") + r.target;
    return makeError("volume " + v.name + " has no replica on " + target + " (it has: " + on + ")", ENOENT);
  }
  if (cur.replicas.size() == 1) {
    return makeError("that is the last replica of " + v.name + "; delete the volume instead", EBUSY);
  }
  size_t index = static_cast<size_t>(it - cur.replicas.begin());
  auto at = replicatedAttachedAt(ctx, cur);
  OC_TRY(checkAnotherInSync(ctx, cur, index, at));
  ReplicatedVolume next = cur;
  next.replicas.erase(next.replicas.begin() + static_cast<std::ptrdiff_t>(index));
  OC_TRY(saveReplicatedVolume(ctx, next));
  if (at) {
    OC_TRY(handOver(ctx, next, *at));
  } else {
    OC_ASSIGN_OR_RETURN(auto saved, loadNexusRecord(ctx, v.name));
    if (saved) {
      nexus::NexusRecord rec = std::move(*saved);
      const std::string gone = replicaNameOf(cur.replicas[index].uri);
      rec.replicas.erase(std::remove_if(rec.replicas.begin(), rec.replicas.end(),
                                        [&](const nexus::ReplicaRecord& r) { return r.name == gone; }),
                         rec.replicas.end());
      OC_TRY(saveNexusRecord(ctx, v.name, rec, nullptr));
    }
  }
  // No nexus writes it now: its storage host may drop it.
  auto gw = GatewayClient::open(ctx.config.run_root, target, 30000);
  if (!gw.ok()) {
    return gw.error().wrap("replica removed from " + v.name + "; its copy on " + target +
                           " is left (delete it there with `volume delete " + v.name + " --target " + target + "`)");
  }
  if (auto s = gw->remove(v.name, true); !s.ok()) {
    return s.error().wrap("replica removed from " + v.name + "; its copy on " + target + " is left");
  }
  return next;
}

void registerVolumeReplicaCommands(CLI::App* volume, CliContext& ctx) {
  struct Opts {
    std::string name, target, from, to, secret_file;
    bool no_wait = false;
  };
  auto* rep = volume->add_subcommand("replica", "add, remove or move a replicated volume's replicas (in use too)");
  rep->require_subcommand(1);
  auto a = std::make_shared<Opts>();
  auto* add = rep->add_subcommand("add", "a new replica on another storage host, rebuilt whole by the nexus");
  add->add_option("volume", a->name, "replicated volume")->required();
  add->add_option("--target", a->target, "the storage host (gateway) for the new replica")->required();
  add->add_option("--secret-file", a->secret_file,
                  "the volume's DH-HMAC-CHAP secret for its allowed host (dhchap_secret=...; default: the attached "
                  "node's)");
  add->add_flag("--no-wait", a->no_wait, "return once the disk serves the new replica, before its rebuild ends");
  add->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      auto v = loadReplicatedVolume(ctx, a->name);
      if (!v.ok()) return fail("volume replica add", v.error().wrap("see `offcore volume list --replicated`"));
      auto next = addReplica(ctx, *v, a->target, a->secret_file, !a->no_wait);
      if (!next.ok()) return fail("volume replica add", next.error());
      std::printf("volume %s: replica added on %s (%zu replicas)\n", a->name.c_str(), a->target.c_str(),
                  next->replicas.size());
      return 0;
    };
  });
  auto r = std::make_shared<Opts>();
  auto* remove = rep->add_subcommand("remove", "take a replica out of the volume and delete its copy");
  remove->add_option("volume", r->name, "replicated volume")->required();
  remove->add_option("--target", r->target, "the storage host whose replica goes")->required();
  remove->callback([&ctx, r] {
    ctx.action = [&ctx, r] {
      auto v = loadReplicatedVolume(ctx, r->name);
      if (!v.ok()) return fail("volume replica remove", v.error().wrap("see `offcore volume list --replicated`"));
      auto next = removeReplica(ctx, *v, r->target);
      if (!next.ok()) return fail("volume replica remove", next.error());
      std::printf("volume %s: replica on %s removed (%zu replicas)\n", r->name.c_str(), r->target.c_str(),
                  next->replicas.size());
      return 0;
    };
  });
  auto m = std::make_shared<Opts>();
  auto* move = rep->add_subcommand("move", "a replica to another storage host: add there, rebuild, then remove");
  move->add_option("volume", m->name, "replicated volume")->required();
  move->add_option("--from", m->from, "the storage host whose replica goes")->required();
  move->add_option("--to", m->to, "the storage host of the new replica")->required();
  move->add_option("--secret-file", m->secret_file, "as for `replica add`");
  move->callback([&ctx, m] {
    ctx.action = [&ctx, m] {
      auto v = loadReplicatedVolume(ctx, m->name);
      if (!v.ok()) return fail("volume replica move", v.error().wrap("see `offcore volume list --replicated`"));
      if (std::none_of(v->replicas.begin(), v->replicas.end(),
                       [&](const ReplicaPlace& p) { return p.target == m->from; })) {
        return fail("volume replica move", makeError("volume " + m->name + " has no replica on " + m->from));
      }
      auto added = addReplica(ctx, *v, m->to, m->secret_file, true);
      if (!added.ok()) return fail("volume replica move", added.error());
      if (!replicatedAttachedAt(ctx, *added)) {
        // Detached: the copy happens at the next attach; the old replica
        // stays until then, or the volume would have no copy of its data.
        std::printf(
            "volume %s: replica added on %s; detached, so it is rebuilt at the next attach: remove the one "
            "on %s after that (`volume replica remove %s --target %s`)\n",
            m->name.c_str(), m->to.c_str(), m->from.c_str(), m->name.c_str(), m->from.c_str());
        return 0;
      }
      auto removed = removeReplica(ctx, *added, m->from);
      if (!removed.ok())
        return fail("volume replica move", removed.error().wrap("the new replica on " + m->to + " is in"));
      std::printf("volume %s: replica moved from %s to %s while in use\n", m->name.c_str(), m->from.c_str(),
                  m->to.c_str());
      return 0;
    };
  });
}

}  // namespace offcore
