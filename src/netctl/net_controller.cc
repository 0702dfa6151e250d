#include "netctl/net_controller.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "dpu/netns.h"
#include "net/bpf_dataplane.h"
#include "netctl/garp.h"
#include "svc/liveness.h"
#include "svc/resolve.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr long kBpfFsMagic = 0xcafe4a11;

std::string stripPrefix(const std::string& cidr) { return cidr.substr(0, cidr.find('/')); }

uint32_t ipNet(const std::string& s) {
  in_addr a{};
  return ::inet_pton(AF_INET, s.c_str(), &a) == 1 ? a.s_addr : 0;
}

uint64_t nowMs() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// The host domain's namespace: a named one, or the one `dpu up` ran in
// (bound to <run_dir>/host-netns by dpu up).
std::vector<std::string> hostIp(const NodeState& node, const NodeLayout& layout, std::vector<std::string> args) {
  std::string ns = node.host_netns.empty() ? layout.run_dir + "/host-netns" : netnsPath(node.host_netns);
  std::vector<std::string> argv{"nsenter", "--net=" + ns, "ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

Result<std::string> linkMac(const std::vector<std::string>& ip_argv) {
  OC_ASSIGN_OR_RETURN(auto out, runCapture(ip_argv));
  if (out.exit_code != 0) return makeError(joinArgv(ip_argv) + ": " + trim(out.err));
  auto pos = out.out.find("link/ether ");
  if (pos == std::string::npos) return makeError("no MAC in `" + joinArgv(ip_argv) + "`");
  return out.out.substr(pos + 11, 17);
}

}  // namespace

NetController::NetController(EventLoop& loop, Config config, NodeState node, NodeLayout layout, VfManager& vfs)
    : loop_(loop),
      config_(std::move(config)),
      node_(std::move(node)),
      layout_(std::move(layout)),
      vfs_(vfs),
      store_(svc::openStateStorageOrUnusable(config_), svc::AddressPlan(config_.service_cidr, config_.eip_pool)) {
  health_.node = node_.name;
}

NetController::~NetController() {
  if (heartbeat_armed_) loop_.cancelTimer(heartbeat_timer_);
  prober_.reset();
  store_watch_.reset();
}

Status NetController::setUpSoc() {
  // Pinned maps keep conntrack and NAT state across agent restarts; the
  // node's own bpffs instance goes away with `dpu down`.
  std::string pin_dir = layout_.run_dir + "/bpf";
  OC_TRY(makeDirs(pin_dir));
  struct statfs fs {};
  if (::statfs(pin_dir.c_str(), &fs) != 0 || fs.f_type != kBpfFsMagic) {
    if (::mount("bpffs", pin_dir.c_str(), "bpf", 0, nullptr) != 0) return errnoError("mount bpffs on " + pin_dir);
  }
  // Pins of another map layout (an upgrade) go first: libbpf cannot reuse
  // a pinned map whose sizes changed (dataplane_abi.h, OC_ABI_VERSION).
  const std::string maps = "maps-v" + std::to_string(OC_ABI_VERSION);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(pin_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("maps", 0) == 0 && name != maps) {
      spdlog::info("removing BPF maps of another layout: {}", e.path().string());
      (void)removeTree(e.path().string());
    }
  }
  OC_ASSIGN_OR_RETURN(dp_, openBpfDataplane(pin_dir + "/" + maps));

  if (!linkExists("", kTunnelIf)) {
    OC_TRY(ipCmd("", {"link", "add", kTunnelIf, "type", "vxlan", "external", "dstport", "4789"}));
  }
  OC_TRY(ipCmd("", {"link", "set", kTunnelIf, "up"}));

  oc_config cfg{};
  cfg.node_ip = ipNet(stripPrefix(node_.uplink_ip));
  cfg.tunnel_ifindex = ::if_nametoindex(kTunnelIf);
  cfg.uplink_ifindex = ::if_nametoindex(layout_.uplink_soc_if.c_str());
  cfg.gateway_ip = ipNet(VfManager::kPodGateway);
  OC_TRY(dp_->setConfig(cfg));

  OC_ASSIGN_OR_RETURN(auto stored, store_.load());
  uint32_t default_vni = stored.vpcs.count("default") ? stored.vpcs.at("default").vni : 1;
  OC_TRY(dp_->attach(layout_.hostvf_soc_if, {default_vni, 0, OC_IF_HOST}));
  OC_TRY(dp_->attach(layout_.uplink_soc_if, {OC_VPC_EXTERNAL, 0, OC_IF_UPLINK}));
  OC_TRY(dp_->attach(kTunnelIf, {0, 0, OC_IF_TUNNEL}));
  // Representors of pods that outlived an agent restart.
  for (const auto& [id, ep] : stored.endpoints) {
    if (ep.node != node_.name || ep.representor.empty() || !linkExists("", ep.representor)) continue;
    uint32_t vni = stored.vpcs.count(ep.vpc) ? stored.vpcs.at(ep.vpc).vni : 0;
    uint32_t role = ep.mesh ? (OC_IF_POD | OC_IF_MESH) : OC_IF_POD;
    if (auto s = dp_->attach(ep.representor, {vni, ipNet(ep.ip), role}); !s.ok()) {
      spdlog::warn("re-attach {}: {}", ep.representor, s.error().message);
    }
    if (auto s = ep.mesh ? ensureMeshReturnLink(vni) : okStatus(); !s.ok()) {
      spdlog::warn("mesh return link of VNI {}: {}", vni, s.error().message);
    }
  }

  svc::NodeIdentity self{node_.name, cfg.node_ip,
                         static_cast<uint32_t>(::if_nametoindex(layout_.hostvf_soc_if.c_str()))};
  programmer_ = std::make_unique<svc::ServiceProgrammer>(*dp_, self);
  OC_TRY(programmer_->adopt());
  return okStatus();
}

Status NetController::registerNode() {
  svc::NodeRecord rec;
  rec.name = node_.name;
  rec.fabric_ip = stripPrefix(node_.uplink_ip);
  rec.host_ip = stripPrefix(node_.hostvf_host_ip);
  OC_ASSIGN_OR_RETURN(rec.host_mac, linkMac(hostIp(node_, layout_, {"link", "show", layout_.hostvf_host_if})));
  OC_ASSIGN_OR_RETURN(rec.fabric_mac, linkMac({"ip", "link", "show", layout_.uplink_soc_if}));
  return store_.registerNode(rec);
}

Status NetController::watchClusterStore() {
  OC_ASSIGN_OR_RETURN(store_watch_, store_.watch(loop_, [this](const svc::StateDelta& d) { scheduleReconcile(d); }));
  return okStatus();
}

Status NetController::start() {
  prober_ =
      std::make_unique<svc::Prober>([this](const svc::ProbeResult& r) { loop_.post([this, r] { onProbeResult(r); }); });
  OC_TRY(setUpSoc());
  // A restarted agent carries on from the health its predecessor reported.
  if (auto previous = store_.loadHealth(); previous.ok() && previous->count(node_.name)) {
    health_.backends = previous->at(node_.name).backends;
  }
  OC_TRY(registerNode());
  OC_TRY(store_.heartbeat(node_.name, nowMs()));
  adoptEips();
  OC_TRY(watchClusterStore());
  ready_ = true;
  scheduleReconcile(svc::StateDelta());
  heartbeat_timer_ =
      loop_.addTimer(std::chrono::milliseconds(config_.heartbeat_interval_ms), [this] { onHeartbeatTimer(); });
  heartbeat_armed_ = true;
  return okStatus();
}

void NetController::adoptEips() {
  // EIPs a previous agent of this node configured: ours to keep or drop.
  auto out = runCapture({"ip", "-o", "-4", "addr", "show", "dev", layout_.uplink_soc_if});
  if (!out.ok() || out->exit_code != 0) return;
  for (const auto& line : splitLines(out->out)) {
    auto pos = line.find(" inet ");
    if (pos == std::string::npos) continue;
    std::string cidr = line.substr(pos + 6, line.find(' ', pos + 6) - pos - 6);
    if (cidr.size() > 3 && cidr.compare(cidr.size() - 3, 3, "/32") == 0) eips_.insert(stripPrefix(cidr));
  }
}

std::set<std::string> NetController::currentLiveNodes(const svc::ClusterState& state) const {
  auto beats = store_.loadHeartbeats();
  uint64_t now = nowMs();
  beats[node_.name] = now;  // this agent runs, so its node is live (when registered)
  return svc::liveNodes(svc::nodeLiveness(state, beats, now, static_cast<uint64_t>(config_.node_expiry_ms)));
}

Result<uint32_t> NetController::vniOf(const std::string& vpc) const {
  if (have_state_ && state_.vpcs.count(vpc)) return state_.vpcs.at(vpc).vni;
  OC_ASSIGN_OR_RETURN(auto state, store_.load());
  return state.vpcs.count(vpc) ? state.vpcs.at(vpc).vni : 0u;
}

void NetController::onHeartbeatTimer() {
  heartbeat_timer_ =
      loop_.addTimer(std::chrono::milliseconds(config_.heartbeat_interval_ms), [this] { onHeartbeatTimer(); });
  // A node that `dpu down` unregistered stops beating (its agent is going).
  // The nodes are the last reconcile's: a beat reads no state (a store on
  // the network costs a round trip per read).
  if (!state_.nodes.count(node_.name)) return;
  uint64_t now = nowMs();
  if (auto s = store_.heartbeat(node_.name, now); !s.ok()) spdlog::warn("net: heartbeat: {}", s.error().message);
  if (last_beat_ms_ != 0 && now - last_beat_ms_ >= static_cast<uint64_t>(config_.node_expiry_ms)) {
    spdlog::warn("net: no heartbeat for {} ms (this agent was stopped?); announcing this node's EIPs again",
                 now - last_beat_ms_);
    resumed_ = true;
    scheduleReconcile();
  }
  last_beat_ms_ = now;
  // Expiries produce no file event: notice them here. So are retries of
  // what failed last time (an EIP claim with etcd unreachable, a route).
  if (currentLiveNodes(state_) != live_ || eips_retry_ || host_routes_retry_) scheduleReconcile();
}

void NetController::failed(const Error& error) {
  last_error_ = error.message;
  spdlog::warn("pod networking is unavailable: {}", error.message);
}

void NetController::scheduleReconcile(const svc::StateDelta& delta) {
  pending_delta_.merge(delta);
  if (reconcile_pending_) return;
  reconcile_pending_ = true;
  // Coalesce a burst of writes (an apply, then several health files).
  loop_.addTimer(std::chrono::milliseconds(10), [this] {
    reconcile_pending_ = false;
    svc::StateDelta d = svc::StateDelta::none();
    std::swap(d, pending_delta_);
    if (auto s = reconcile(d); !s.ok()) {
      last_error_ = s.error().message;
      spdlog::warn("net: reconcile: {}", s.error().message);
      // What this one covered is still to do: everything, to be sure.
      loop_.addTimer(std::chrono::milliseconds(1000), [this] { scheduleReconcile(svc::StateDelta()); });
    } else {
      last_error_.clear();
    }
  });
}

Status NetController::reconcile(const svc::StateDelta& delta) {
  if (!ready_) return makeError("pod networking did not start: " + last_error_);
  svc::StateDelta d = delta;
  if (!have_state_ || d.full) {
    d.full = true;
    OC_ASSIGN_OR_RETURN(state_, store_.load());
  } else {
    OC_ASSIGN_OR_RETURN(bool reloaded, store_.refresh(state_, d));
    d.full = d.full || reloaded;
  }
  have_state_ = true;
  if (d.full || d.health || health_seen_.empty()) {
    OC_ASSIGN_OR_RETURN(health_seen_, store_.loadHealth());
    d.health = true;
  }
  health_seen_[node_.name] = health_;  // ours is the freshest
  // A registered node that stopped beating (its lease expired) serves
  // nobody: its pods leave every Service until it is back.
  std::set<std::string> live = currentLiveNodes(state_);
  OC_ASSIGN_OR_RETURN(auto stats, programmer_->program(state_, health_seen_, live, d));
  counters_["reconciles"]++;
  counters_["map_writes"] += stats.writes;
  // What the objects of d reach (all of it when full): a change to one
  // Service costs that Service, not the cluster.
  auto touches = [&](const char* section) {
    if (d.full) return true;
    const std::string p = std::string(section) + "/";
    auto it = d.objects.lower_bound(p);
    return it != d.objects.end() && it->compare(0, p.size(), p) == 0;
  };
  if (d.full || touches("subnets") || touches("vpcs") || host_routes_retry_) {
    host_routes_retry_ = false;
    syncHostRoutes(state_);
  }
  bool live_changed = live != live_;
  if (live_changed) {
    spdlog::info("net: live nodes: {}", live.empty() ? std::string("none") : joinArgv({live.begin(), live.end()}));
  }
  bool announce = live_changed || resumed_;
  resumed_ = false;
  live_ = live;
  if (announce || d.owners || touches("services") || touches("nodes") || eips_retry_) syncEips(state_, live, announce);
  if (live_changed || touches("probes") || touches("backends") || (touches("endpoints") && !state_.probes.empty()))
    syncProbes(state_, live);
  if (touches("endpoints") || touches("vpcs")) syncMeshReturnLinks(state_);
  if (programmed_generation_ != state_.generation && state_.nodes.count(node_.name)) {
    programmed_generation_ = state_.generation;
    OC_TRY(writeHealth());
  }
  return okStatus();
}

Status NetController::writeHealth() {
  health_.programmed_generation = programmed_generation_;
  health_.updated_ms = nowMs();
  return store_.writeHealth(health_);
}

void NetController::syncHostRoutes(const svc::ClusterState& state) {
  // The host reaches ClusterIPs and the default VPC's pods through its
  // host-VF; the MTU leaves room for VXLAN when the other end is remote.
  std::set<std::string> want{config_.service_cidr};
  for (const auto& [name, subnet] : state.subnets) {
    if (subnet.vpc == "default") want.insert(subnet.cidr);
  }
  std::string via = stripPrefix(node_.hostvf_soc_ip);
  for (const auto& cidr : want) {
    if (host_routes_.count(cidr)) continue;
    auto s = runChecked(
        hostIp(node_, layout_,
               {"route", "replace", cidr, "via", via, "dev", layout_.hostvf_host_if, "mtu", std::to_string(kPodMtu)}));
    if (s.ok()) {
      host_routes_.insert(cidr);
    } else {
      spdlog::warn("net: host route {}: {}", cidr, s.error().message);
      host_routes_retry_ = true;
    }
  }
  for (auto it = host_routes_.begin(); it != host_routes_.end();) {
    if (want.count(*it)) {
      ++it;
      continue;
    }
    (void)runChecked(hostIp(node_, layout_, {"route", "del", *it, "via", via, "dev", layout_.hostvf_host_if}));
    it = host_routes_.erase(it);
  }
}

void NetController::syncEips(const svc::ClusterState& state, const std::set<std::string>& live, bool announce) {
  // One live node answers ARP for an EIP on the fabric (rendezvous hash of
  // the EIP over the live nodes). Its dataplane DNATs (and, for scope
  // cluster, SNATs) it.
  // With etcd the choice is also a claim in the store, under this node's
  // lease: a node that still holds it (a dying one, until its lease
  // expires) keeps it, and no two nodes ever answer for one EIP.
  std::set<std::string> want;
  eips_retry_ = false;
  // Who holds what, once (the watch's cache on etcd): only a claim that
  // must change costs a transaction.
  auto holders = store_.claims();
  for (const auto& [name, svc] : state.services) {
    if (svc.type != "LoadBalancer" || svc.eip.empty()) continue;
    bool mine = svc::ownerOf(svc.eip, live) == node_.name;
    std::string now;  // the holder as last seen
    if (holders.ok()) {
      if (auto it = holders->find(svc.eip); it != holders->end()) now = it->second;
    }
    Result<std::string> holder = now;
    if (!holders.ok() || mine != (now == node_.name)) holder = store_.claim(svc.eip, node_.name, mine);
    if (!holder.ok()) {
      // The store is unreachable: keep what we have, take nothing new (retried with the heartbeat).
      spdlog::warn("net: EIP {}: {}", svc.eip, holder.error().message);
      if (eips_.count(svc.eip)) want.insert(svc.eip);
      eips_retry_ = true;
      continue;
    }
    if (mine && *holder == node_.name) want.insert(svc.eip);
    if (mine && *holder != node_.name) spdlog::info("net: EIP {} is ours once {} lets go", svc.eip, *holder);
  }
  for (const auto& eip : want) {
    if (eips_.count(eip)) {
      // Owners changed around us: clients may hold another node's MAC.
      if (announce) {
        if (auto g = sendGratuitousArp(layout_.uplink_soc_if, eip); !g.ok()) spdlog::warn("net: {}", g.error().message);
      }
      continue;
    }
    if (auto s = ipCmd("", {"addr", "replace", eip + "/32", "dev", layout_.uplink_soc_if}); s.ok()) {
      eips_.insert(eip);
      spdlog::info("net: this node now answers for EIP {}", eip);
      // Clients still hold the MAC of the previous owner.
      if (auto g = sendGratuitousArp(layout_.uplink_soc_if, eip); !g.ok()) spdlog::warn("net: {}", g.error().message);
    } else {
      spdlog::warn("net: EIP {}: {}", eip, s.error().message);
    }
  }
  for (auto it = eips_.begin(); it != eips_.end();) {
    if (want.count(*it)) {
      ++it;
      continue;
    }
    (void)ipCmd("", {"addr", "del", *it + "/32", "dev", layout_.uplink_soc_if});
    (void)store_.claim(*it, node_.name, false);  // a Service gone: let its claim go too
    it = eips_.erase(it);
  }
}

void NetController::syncProbes(const svc::ClusterState& state, const std::set<std::string>& live) {
  // A probe runs on the node hosting its backend (pods: where the pod is;
  // other kinds: spec.node; fabric-only backends: one live node, by
  // rendezvous hash of the backend's name).
  std::map<std::string, svc::ProbeTask> tasks;
  for (const auto& [name, probe] : state.probes) {
    auto b = state.backends.find(probe.backend);
    if (b == state.backends.end()) continue;
    svc::ProbeTask task{probe, "", ""};
    std::string host;
    if (b->second.kind == "pod") {
      for (const auto& [id, ep] : state.endpoints) {
        if (ep.pod_name == b->second.pod && ep.vpc == b->second.vpc) {
          task.address = ep.ip;
          host = ep.node;
          task.device = ep.node == node_.name ? ep.representor : "";
          break;
        }
      }
    } else {
      task.address = b->second.ip;
      host = b->second.node.empty() ? svc::ownerOf(b->first, live) : b->second.node;
      for (const auto& [id, ep] : state.endpoints) {
        if (ep.ip == b->second.ip && ep.vpc == b->second.vpc && ep.node == node_.name) task.device = ep.representor;
      }
    }
    if (task.address.empty() || host != node_.name) continue;
    tasks[probe.backend] = task;
  }
  // Forget results of backends we no longer probe.
  std::map<std::string, bool> last_known;
  for (auto it = health_.backends.begin(); it != health_.backends.end();) {
    if (!tasks.count(it->first)) {
      it = health_.backends.erase(it);
      continue;
    }
    last_known[it->first] = it->second.healthy;
    ++it;
  }
  prober_->set(tasks, last_known);
}

void NetController::onProbeResult(const svc::ProbeResult& r) {
  auto& h = health_.backends[r.backend];
  bool changed = h.healthy != r.healthy || h.probe.empty();
  h.healthy = r.healthy;
  h.probe = r.probe;
  h.last_error = r.error;
  if (changed) h.since_ms = nowMs();
  spdlog::info("net: backend {} is {}{}", r.backend, r.healthy ? "healthy" : "unhealthy",
               r.error.empty() ? "" : " (" + r.error + ")");
  if (auto s = writeHealth(); !s.ok()) spdlog::warn("net: health: {}", s.error().message);
  svc::StateDelta d = svc::StateDelta::none();
  d.health = true;
  scheduleReconcile(d);
}

}  // namespace offcore
