#include "dpu/node.h"
#include "base/byte_size.h"
#include "base/cpu_times.h"
#include "base/json.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "dpu/agent_watchdog.h"
#include "dpu/fabric.h"
#include "dpu/mounts.h"
#include "dpu/netns.h"
#include "dpu/rx_steering.h"

namespace offcore {

using nlohmann::json;

Result<Domain> parseDomain(const std::string& text) {
  if (text == "soc") return Domain::kSoc;
  if (text == "host") return Domain::kHost;
  if (text == "host-infra") return Domain::kHostInfra;
  return makeError("unknown domain '" + text + "' (use soc or host)");
}

std::string socRuleset(const std::string& uplink_if, const std::string& host_link_cidr) {
  // One statement per line: nft 1.0.6 rejects a rule closed by "}" on its line.
  return "table ip offcore {\n"
         "  chain postrouting {\n"
         "    type nat hook postrouting priority srcnat; policy accept;\n"
         "    oifname \"" +
         uplink_if + "\" ip saddr " + host_link_cidr +
         " masquerade\n"
         "  }\n"
         // Default deny: the SoC serves nothing over IP but VXLAN from the
         // fabric (its APIs are unix sockets), so the host domain, pods and
         // fabric hosts reach no SoC socket; what the SoC itself opened
         // (probes, NVMe/TCP, registry fetches) comes back as established.
         "  chain input {\n"
         "    type filter hook input priority filter; policy drop;\n"
         "    iif \"lo\" accept\n"
         "    ct state established,related accept\n"
         "    iifname != \"" +
         uplink_if +
         "\" udp dport 4789 counter drop\n"
         "    iifname \"" +
         uplink_if +
         "\" udp dport 4789 accept\n"
         "    ip protocol icmp accept\n"
         "    counter drop\n"
         "  }\n"
         "}\n";
}

Status checkPrerequisites() {
  if (::geteuid() != 0) return makeError("offcore needs root for namespaces and cgroups (run it with sudo)");
  for (const char* tool : {"ip", "nft"}) {
    auto r = runCapture({tool, "-V"});
    if (!r.ok() || r->exit_code == 127) {
      return makeError(std::string("'") + tool + "' is missing; install it with scripts/setup.sh");
    }
  }
  return okStatus();
}

NodeManager::NodeManager(Config config, std::unique_ptr<CgroupDriver> cgroups)
    : config_(std::move(config)), cgroups_(std::move(cgroups)) {}

Result<NodeManager> NodeManager::create(const Config& config) {
  OC_ASSIGN_OR_RETURN(auto driver, makeCgroupDriver());
  return NodeManager(config, std::move(driver));
}

bool NodeManager::exists(const std::string& name) const {
  NodeLayout l = layout(name);
  return pathExists(l.run_dir) || netnsExists(l.soc_netns) || cgroups_->exists(l.cg_node);
}

std::vector<std::string> NodeManager::list() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(config_.run_root, ec)) {
    std::string n = e.path().filename().string();
    if (e.is_directory() && n != "fabric" && pathExists(e.path().string() + "/node.json")) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<NodeState> NodeManager::state(const std::string& name) const {
  OC_TRY(validateName("node", name));
  NodeLayout l = layout(name);
  if (!pathExists(l.state_file)) {
    return makeError("no node '" + name + "' (start one with `offcore dpu up --name " + name + "`)");
  }
  OC_ASSIGN_OR_RETURN(NodeState s, loadNodeState(l.state_file));
  // The watchdog replaces a dead agent without touching node.json.
  if (pid_t pid = recordedAgentPid(l); pid > 0) s.agent_pid = pid;
  return s;
}

Result<NodeState> NodeManager::plan(const NodeSpec& spec) const {
  OC_TRY(validateName("node", spec.name));
  NodeState s;
  s.name = spec.name;
  s.cgroup_version = cgroups_->version();
  OC_ASSIGN_OR_RETURN(CpuSet online, onlineCpus());
  if (spec.soc_cpus.empty()) {
    s.soc_cpus = {*online.rbegin()};
  } else {
    OC_ASSIGN_OR_RETURN(s.soc_cpus, parseCpuList(spec.soc_cpus));
  }
  if (spec.host_cpus.empty()) {
    for (int c : online) {
      if (!s.soc_cpus.count(c)) s.host_cpus.insert(c);
    }
    if (s.host_cpus.empty()) s.host_cpus = online;  // one-cpu machine: share it
  } else {
    OC_ASSIGN_OR_RETURN(s.host_cpus, parseCpuList(spec.host_cpus));
  }
  for (const auto* set : {&s.soc_cpus, &s.host_cpus}) {
    for (int c : *set) {
      if (!online.count(c)) {
        return makeError("cpu " + std::to_string(c) + " does not exist (online cpus: " + formatCpuList(online) + ")");
      }
    }
  }
  if (!spec.soc_cpus.empty() && !spec.host_cpus.empty()) {
    for (int c : s.soc_cpus) {
      if (s.host_cpus.count(c)) {
        return makeError("cpu " + std::to_string(c) +
                         " is in both --soc-cpus and --host-cpus; the SoC needs cores of its own");
      }
    }
  }
  if (!spec.soc_memory.empty()) {
    OC_ASSIGN_OR_RETURN(uint64_t bytes, parseByteSize(spec.soc_memory));
    if (bytes < (16ULL << 20)) return makeError("--mem " + spec.soc_memory + " is below the 16M the agent needs");
    s.soc_memory_limit = bytes;
  }
  s.host_netns = spec.host_netns;
  if (!s.host_netns.empty()) {
    if (s.host_netns.find('/') != std::string::npos || s.host_netns.size() > 64) {
      return makeError("bad --host-netns '" + s.host_netns + "' (a name from `ip netns list`)");
    }
    s.created_host_netns = !netnsExists(s.host_netns);
  }
  // A host namespace has one route to the fabric; a second node needs its own.
  if (s.host_netns.empty() || netnsExists(s.host_netns)) {
    Fabric fabric(config_);
    // Unicast only: the fabric's unreachable route (fabric.h) is no node's.
    auto routes = ipOutput(s.host_netns, {"route", "show", fabric.subnet(), "type", "unicast"});
    if (routes.ok() && !trim(*routes).empty()) {
      return makeError("host namespace '" + (s.host_netns.empty() ? std::string("root") : s.host_netns) +
                       "' already routes the fabric through another node; give this node its own with "
                       "--host-netns NAME");
    }
  }
  s.phase = "creating";
  return s;
}

Result<NodeState> NodeManager::up(const NodeSpec& spec) {
  OC_TRY(checkPrerequisites());
  OC_TRY(validateName("node", spec.name));
  Fabric fabric(config_);
  OC_ASSIGN_OR_RETURN(FileLock lock, fabric.lock());
  if (exists(spec.name)) {
    return makeError("node '" + spec.name + "' already exists (see `offcore dpu status --name " + spec.name +
                     "`, or remove it with `offcore dpu down --name " + spec.name + "`)");
  }
  OC_ASSIGN_OR_RETURN(NodeState state, plan(spec));
  Status built = build(state);
  if (!built.ok()) {
    teardown(spec.name);
    return built.error().wrap("dpu up " + spec.name + " (rolled back)");
  }
  return state;
}

Status NodeManager::build(NodeState& s) {
  NodeLayout l = layout(s.name);
  OC_TRY(makePrivateDir(l.run_dir));
  // Intent first: down must know the host namespace even if we stop half way.
  OC_TRY(saveNodeState(l.state_file, s));
  // The agent lives in the SoC namespace but programs a few host-side
  // routes (pod networking); it reaches the host domain's namespace through
  // this handle, as `ip netns` does. Removed by down's unmountBelow(run_dir).
  if (s.host_netns.empty()) {
    std::string handle = l.run_dir + "/host-netns";
    OC_TRY(writeFileAtomic(handle, ""));
    if (::mount("/proc/self/ns/net", handle.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return errnoError("bind the host namespace to " + handle);
    }
  }

  CgroupSettings soc{s.soc_cpus, s.soc_memory_limit};
  CgroupSettings host{s.host_cpus, std::nullopt};
  OC_TRY(cgroups_->create(l.cg_soc, soc));
  OC_TRY(cgroups_->create(l.cg_host, host));
  OC_TRY(cgroups_->create(l.cg_host_infra, host));

  Fabric fabric(config_);
  OC_TRY(fabric.ensure());
  OC_ASSIGN_OR_RETURN(s.fabric_index, fabric.allocateNode(s.name));
  s.uplink_ip = fabric.nodeUplinkIp(s.fabric_index);
  s.hostvf_soc_ip = ipv4(config_.host_link_prefix, s.fabric_index, 1) + "/30";
  s.hostvf_host_ip = ipv4(config_.host_link_prefix, s.fabric_index, 2) + "/30";
  OC_TRY(saveNodeState(l.state_file, s));

  OC_TRY(netnsAdd(l.soc_netns));
  OC_TRY(ipCmd(l.soc_netns, {"link", "set", "lo", "up"}));

  // Uplink: SoC <-> fabric bridge, the DPU's physical port.
  OC_TRY(ipCmd(fabric.netns(), {"link", "add", l.uplink_fabric_if, "type", "veth", "peer", "name", l.uplink_soc_if,
                                "netns", l.soc_netns}));
  OC_TRY(ipCmd(fabric.netns(), {"link", "set", l.uplink_fabric_if, "master", fabric.bridge(), "up"}));
  OC_TRY(ipCmd(l.soc_netns, {"addr", "add", s.uplink_ip, "dev", l.uplink_soc_if}));
  OC_TRY(ipCmd(l.soc_netns, {"link", "set", l.uplink_soc_if, "up"}));

  // Host-VF: the host's only network, through the SoC.
  if (s.created_host_netns) {
    OC_TRY(netnsAdd(s.host_netns));
    OC_TRY(ipCmd(s.host_netns, {"link", "set", "lo", "up"}));
  }
  OC_TRY(ipCmd(s.host_netns, {"link", "add", l.hostvf_host_if, "type", "veth", "peer", "name", l.hostvf_soc_if, "netns",
                              l.soc_netns}));
  OC_TRY(ipCmd(s.host_netns, {"addr", "add", s.hostvf_host_ip, "dev", l.hostvf_host_if}));
  OC_TRY(ipCmd(s.host_netns, {"link", "set", l.hostvf_host_if, "up"}));
  OC_TRY(ipCmd(l.soc_netns, {"addr", "add", s.hostvf_soc_ip, "dev", l.hostvf_soc_if}));
  OC_TRY(ipCmd(l.soc_netns, {"link", "set", l.hostvf_soc_if, "up"}));
  // Receive work lands where a card does it (rx_steering.h): the SoC's
  // ends on the SoC's cpus, the host's end of the host-VF on the host's.
  if (config_.rx_steering) {
    const std::string host_ns = s.host_netns.empty() ? "" : netnsPath(s.host_netns);
    if (config_.rx_steering_mode == "napi") {
      // The SoC's receiving ends by threaded NAPI; their senders do no TSO
      // (so what they send is GRO-eligible there).
      OC_TRY(disableTso(netnsPath(fabric.netns()), l.uplink_fabric_if));
      OC_TRY(disableTso(host_ns, l.hostvf_host_if));
      OC_TRY(steerRxNapi(netnsPath(l.soc_netns), l.uplink_soc_if, s.soc_cpus));
      OC_TRY(steerRxNapi(netnsPath(l.soc_netns), l.hostvf_soc_if, s.soc_cpus));
    } else {
      OC_TRY(steerRx(netnsPath(l.soc_netns), l.uplink_soc_if, s.soc_cpus));
      OC_TRY(steerRx(netnsPath(l.soc_netns), l.hostvf_soc_if, s.soc_cpus));
    }
    OC_TRY(steerRx(host_ns, l.hostvf_host_if, s.host_cpus));
  }
  std::string soc_gw = s.hostvf_soc_ip.substr(0, s.hostvf_soc_ip.find('/'));
  OC_TRY(ipCmd(s.host_netns, {"route", "add", fabric.subnet(), "via", soc_gw, "dev", l.hostvf_host_if}));

  // The SoC routes for the host and masquerades it onto the fabric, as a
  // DPU does for its server: fabric peers need no route back to host links.
  OC_TRY(runInNetns(l.soc_netns, {"sysctl", "-qw", "net.ipv4.ip_forward=1"}));
  std::string link_net = ipv4(config_.host_link_prefix, s.fabric_index, 0) + "/30";
  std::string nft = socRuleset(l.uplink_soc_if, link_net);
  OC_TRY(runInNetns(l.soc_netns, {"nft", "-f", "-"}, nft));

  OC_TRY(startAgent(s));
  OC_TRY(startWatchdog(s));
  s.phase = "up";
  return saveNodeState(l.state_file, s);
}

Status NodeManager::startAgent(NodeState& s) {
  NodeLayout l = layout(s.name);
  OC_ASSIGN_OR_RETURN(pid_t pid, spawnInSoc(s, "agent"));
  s.agent_pid = pid;
  OC_TRY(writeAgentPid(l, pid));
  OC_TRY(saveNodeState(l.state_file, s));

  ApiClient client(l.api_socket, 200);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.agent_ready_timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      auto log = readFile(l.agent_log).valueOr("");
      auto lines = splitLines(log);
      return makeError("the agent exited at start: " + (lines.empty() ? std::string("no log") : lines.back()));
    }
    auto reply = client.get("/v1/health");
    if (reply.ok() && reply->status == 200) return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return makeError("the agent did not answer within " + std::to_string(config_.agent_ready_timeout_ms) + " ms; see " +
                   l.agent_log);
}

namespace {

// Gone, or a zombie nobody has reaped yet: either way it serves nothing.
bool processGone(pid_t pid) {
  ::waitpid(pid, nullptr, WNOHANG);  // reaps it if it is our child
  return processStartTicks(pid) == 0;
}

}  // namespace

Result<NodeState> NodeManager::restartAgent(const std::string& name) {
  OC_TRY(checkPrerequisites());
  OC_TRY(validateName("node", name));
  Fabric fabric(config_);
  OC_ASSIGN_OR_RETURN(FileLock lock, fabric.lock());
  OC_ASSIGN_OR_RETURN(NodeState s, state(name));
  if (s.phase != "up") {
    return makeError("node '" + name + "' is " + s.phase +
                     ", not up (a killed `dpu up`?); remove it with "
                     "`offcore dpu down --name " +
                     name + "` and bring it up again");
  }
  // The watchdog goes first (it would replace the agent we stop), and comes
  // back from this binary: a restart is also how both are upgraded.
  stopWatchdog(s);
  OC_TRY(stopAgentKeepingServices(s));
  OC_TRY(startAgent(s));
  OC_TRY(startWatchdog(s));
  OC_TRY(saveNodeState(layout(name).state_file, s));
  return s;
}

Status NodeManager::stopAgentKeepingServices(const NodeState& s) {
  NodeLayout l = layout(s.name);
  // The recorded pid is only ours if that process is still `offcore agent
  // --name NAME`: after a crash the pid may belong to anything.
  if (!isNodeProcess(s.agent_pid, "agent", s.name)) return okStatus();

  ApiClient client(l.api_socket, 2000);
  auto reply = client.post("/v1/shutdown", "{\"keep_services\":true}");
  bool asked = reply.ok() && reply->status == 200;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(asked ? 5000 : 0);
  while (std::chrono::steady_clock::now() < deadline) {
    if (processGone(s.agent_pid)) return okStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Hung (or deaf): SIGKILL takes the agent alone; its services are in
  // their own processes and the next agent adopts them.
  spdlog::warn("agent {} of node {} did not exit when asked; killing it", s.agent_pid, s.name);
  if (::kill(s.agent_pid, SIGKILL) != 0 && errno != ESRCH)
    return errnoError("kill the agent " + std::to_string(s.agent_pid));
  for (int i = 0; i < 500 && !processGone(s.agent_pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return okStatus();
}

Status NodeManager::enterDomain(const NodeState& node, Domain domain) {
  NodeLayout l = layout(node.name);
  switch (domain) {
    case Domain::kSoc: OC_TRY(enterNetns(l.soc_netns)); return cgroups_->attach(l.cg_soc, ::getpid());
    case Domain::kHost:
    case Domain::kHostInfra:
      // From the SoC (an agent service starting host work) the root namespace
      // is not ours: join it through the handle build() pinned.
      if (node.host_netns.empty()) {
        OC_TRY(enterNetnsAt(l.run_dir + "/host-netns"));
      } else {
        OC_TRY(enterNetns(node.host_netns));
      }
      return cgroups_->attach(domain == Domain::kHost ? l.cg_host : l.cg_host_infra, ::getpid());
  }
  return okStatus();
}

Result<int> NodeManager::execInDomain(const std::string& name, Domain domain, const std::vector<std::string>& argv) {
  OC_ASSIGN_OR_RETURN(NodeState node, state(name));
  SpawnOptions opts;
  opts.in_child = [this, &node, domain]() { return enterDomain(node, domain); };
  // Not through spawn(): the workload keeps our stdout/stderr.
  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork");
  if (pid == 0) {
    Error e = execInPlace(argv, opts);
    std::fprintf(stderr, "offcore: %s\n", e.message.c_str());
    ::_exit(127);
  }
  return waitExit(pid);
}

void NodeManager::teardown(const std::string& name) {
  NodeLayout l = layout(name);
  auto st = state(name);

  // No watchdog may replace the agent we stop.
  if (st.ok()) stopWatchdog(*st);
  // Let the agent stop its services cleanly; then make sure with SIGKILL.
  if (pathExists(l.api_socket)) {
    ApiClient client(l.api_socket, 1000);
    (void)client.post("/v1/shutdown", "{}");
  }
  (void)killCgroupProcesses(*cgroups_, l.cg_node, 5000);
  // Reaps the agent when it is our child (a rolled-back up); ECHILD otherwise.
  if (st.ok() && st->agent_pid > 0) ::waitpid(st->agent_pid, nullptr, 0);

  (void)unmountBelow(l.run_dir);

  Fabric fabric(config_);
  std::string host_netns = st.ok() ? st->host_netns : "";
  if (host_netns.empty() || netnsExists(host_netns)) (void)linkDelete(host_netns, l.hostvf_host_if);
  (void)linkDelete(fabric.netns(), l.uplink_fabric_if);
  // Representors go one by one: a deleted namespace's devices are torn
  // down asynchronously (slower with BPF programs and VXLAN in it), and a
  // pod must not see its VF outlive the node.
  if (auto links = ipOutput(l.soc_netns, {"-o", "link", "show"}); links.ok()) {
    std::istringstream lines(*links);
    std::string line;
    while (std::getline(lines, line)) {
      auto start = line.find(": ");
      if (start == std::string::npos) continue;
      std::string ifname = line.substr(start + 2, line.find_first_of("@:", start + 2) - start - 2);
      if (ifname.rfind("pf0vf", 0) == 0) (void)linkDelete(l.soc_netns, ifname);
    }
  }
  (void)netnsDelete(l.soc_netns);
  if (st.ok() && st->created_host_netns) (void)netnsDelete(host_netns);

  // A process forked by an `up` that was killed part way can join the
  // node's cgroup after the sweep above, and rmdir then fails with EBUSY:
  // sweep and remove again until the tree is gone (bounded).
  for (int i = 0; i < 40 && !cgroups_->remove(l.cg_node).ok(); ++i) {
    (void)killCgroupProcesses(*cgroups_, l.cg_node, 500);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (void)fabric.releaseNode(name);
  (void)fabric.removeIfUnused();
  (void)removeTree(l.run_dir);
}

Status NodeManager::down(const std::string& name) {
  OC_TRY(checkPrerequisites());
  OC_TRY(validateName("node", name));
  Fabric fabric(config_);
  OC_ASSIGN_OR_RETURN(FileLock lock, fabric.lock());
  teardown(name);
  // Verify rather than trust: report anything that survived.
  NodeLayout l = layout(name);
  std::vector<std::string> left;
  if (netnsExists(l.soc_netns)) left.push_back("netns " + l.soc_netns);
  if (cgroups_->exists(l.cg_node)) left.push_back("cgroup " + l.cg_node);
  if (pathExists(l.run_dir)) left.push_back(l.run_dir);
  if (linkExists(fabric.netns(), l.uplink_fabric_if)) left.push_back("link " + l.uplink_fabric_if);
  if (!left.empty()) {
    std::string what;
    for (auto& w : left) what += (what.empty() ? "" : ", ") + w;
    return makeError("dpu down " + name + " left " + what + " behind; run it again, then check `ip netns`");
  }
  return okStatus();
}

Result<std::string> NodeManager::statusJson(const std::string& name, const std::string& services_json,
                                            const std::string& vfs_json, const std::string& agent_state) const {
  OC_ASSIGN_OR_RETURN(NodeState s, state(name));
  NodeLayout l = layout(name);
  auto usageOf = [&](const std::string& cg) -> CgroupUsage { return cgroups_->usage(cg).valueOr(CgroupUsage{}); };
  CgroupUsage soc = usageOf(l.cg_soc), host = usageOf(l.cg_host), infra = usageOf(l.cg_host_infra);
  // Softirq time is nobody's cgroup's: read it where it ran (cpu_times.h).
  auto cpu_times = readCpuTimes();
  auto domain = [&cpu_times](const CpuSet& cpus, const CgroupUsage& u, const std::string& netns,
                             const std::string& cg) {
    return json{{"cpus", formatCpuList(cpus)},
                {"cpu_seconds", u.cpu_seconds},
                {"cpus_softirq_seconds", cpu_times.ok() ? sumCpuTimes(*cpu_times, cpus).softirq : 0.0},
                // Everything those cpus ran, whoever it was charged to (NAPI
                // threads count as system time, not softirq).
                {"cpus_busy_seconds", cpu_times.ok() ? sumCpuTimes(*cpu_times, cpus).busy() : 0.0},
                {"memory_bytes", u.memory_bytes},
                {"memory_peak_bytes", u.memory_peak_bytes},
                {"pids", u.pids},
                {"netns", netns},
                {"cgroup", cg}};
  };
  double infra_total = soc.cpu_seconds + infra.cpu_seconds;
  json doc{
      {"name", name},
      {"phase", s.phase},
      {"cgroup_version", s.cgroup_version},
      {"agent", {{"pid", s.agent_pid}, {"state", agent_state}, {"socket", l.api_socket}}},
      {"watchdog",
       {{"pid", s.watchdog_pid}, {"state", isNodeProcess(s.watchdog_pid, "watchdog", name) ? "running" : "gone"}}},
      {"domains",
       {{"soc", domain(s.soc_cpus, soc, l.soc_netns, l.cg_soc)},
        {"host", domain(s.host_cpus, host, s.host_netns.empty() ? "root" : s.host_netns, l.cg_host)}}},
      {"infra",
       {{"soc_cpu_seconds", soc.cpu_seconds},
        {"host_cpu_seconds", infra.cpu_seconds},
        {"host_share", infra_total > 0 ? infra.cpu_seconds / infra_total : 0.0}}},
      {"network",
       {{"uplink", {{"soc_if", l.uplink_soc_if}, {"ip", s.uplink_ip}, {"fabric_if", l.uplink_fabric_if}}},
        {"host_vf",
         {{"host_if", l.hostvf_host_if},
          {"host_ip", s.hostvf_host_ip},
          {"soc_if", l.hostvf_soc_if},
          {"soc_ip", s.hostvf_soc_ip},
          {"mode", "nat"}}}}},
  };
  auto services = json::parse(services_json, nullptr, false);
  doc["services"] = services.is_array() ? services : json::array();
  auto vfs = json::parse(vfs_json, nullptr, false);
  doc["vfs"] = vfs.is_array() ? vfs : json::array();
  return dumpJson(doc, 2) + "\n";
}

}  // namespace offcore
