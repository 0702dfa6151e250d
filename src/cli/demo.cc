// `offcore demo`: a guided run of what the software DPU does today. It
// brings a node up and then runs, by default, every part:
//   foundation  accounting per domain, the host reaching the fabric through
//               its SoC, the agent restarting a crashed service
//   storage     NVMe/TCP volume attached by the SoC: mkfs, checksum, fio
//               (demo_storage.cc)
//   images      lazy image pull + run through containerd vs overlayfs
//               (demo_images.cc)
//   svc         ClusterIP failover while a backend stops (demo_svc.cc)
// `--only PART[,PART...]` picks parts; the node is always brought up first
// and removed last. Each step prints its duration; a closing table shows the
// CPU-seconds each step cost per domain. Every step undoes what it made on
// every exit path, SIGINT and SIGTERM included.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <sstream>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "cli/demo_common.h"
#include "dpu/fabric.h"
#include "dpu/netns.h"
#include "dpu/node.h"

namespace offcore {

using nlohmann::json;

namespace {

using demo::Clock;
using demo::CpuSample;
using demo::heading;
using demo::secondsSince;

const std::vector<std::string> kParts{"foundation", "storage", "images", "svc", "mesh", "vm"};

// A CPU-bound loop of `seconds`, run inside a domain.
std::vector<std::string> busyLoop(int seconds) {
  return {"timeout", std::to_string(seconds), "sh", "-c", "while :; do :; done"};
}

Result<std::set<std::string>> parseOnly(const std::string& only) {
  std::set<std::string> parts;
  if (only.empty()) return std::set<std::string>(kParts.begin(), kParts.end());
  std::stringstream in(only);
  std::string p;
  while (std::getline(in, p, ',')) {
    p = trim(p);
    if (p == "all") {
      parts.insert(kParts.begin(), kParts.end());
    } else if (std::find(kParts.begin(), kParts.end(), p) != kParts.end()) {
      parts.insert(p);
    } else if (!p.empty()) {
      return makeError("unknown part '" + p + "'; pass --only with foundation, storage, images, svc, mesh and/or vm");
    }
  }
  if (parts.empty()) return makeError("--only named no part; use foundation, storage, images and/or svc");
  return parts;
}

// The clients each part drives; a missing one is named with its package.
Status checkTools(const std::set<std::string>& parts) {
  std::vector<std::pair<std::string, std::string>> need{{"ping", "iputils-ping"}};
  if (parts.count("storage")) {
    need.insert(need.end(), {{"fio", "fio"}, {"mkfs.ext4", "e2fsprogs"}, {"losetup", "util-linux"}});
  }
  if (parts.count("images")) {
    need.insert(need.end(), {{"containerd", "containerd"},
                             {"ctr", "containerd"},
                             {"runc", "runc"},
                             {"docker-registry", "docker-registry"},
                             {"skopeo", "skopeo"},
                             {"umoci", "umoci"},
                             {"curl", "curl"}});
  }
  if (parts.count("svc") || parts.count("mesh")) need.push_back({"python3", "python3"});
  if (parts.count("vm")) {
    need.insert(need.end(), {{"qemu-system-x86_64", "qemu-system-x86"}, {"busybox", "busybox-static"}});
  }
  if (parts.count("mesh")) {
    need.push_back({"nft", "nftables"});
    need.push_back({"haproxy", "haproxy"});  // the sidecar baseline
    need.push_back({"openssl", "openssl"});
  }
  for (const auto& [tool, pkg] : need) {
    auto r = runCapture({"sh", "-c", "command -v " + tool});
    if (!r.ok() || r->exit_code != 0) {
      return makeError(tool + " is missing: run scripts/setup.sh (or apt-get install " + pkg + ")");
    }
  }
  return okStatus();
}

// A private copy of the config whose cluster store lives in the demo's work
// dir, so the demo's VPC and Service never meet anyone else's. Every
// offcore process the demo starts (the agent too) reads it.
Status usePrivateConfig(CliContext& ctx, const std::string& work) {
  Config& c = ctx.config;
  c.cluster_dir = work + "/cluster";
  json j{{"run_root", c.run_root},
         {"cgroup_root", c.cgroup_root},
         {"fabric_netns", c.fabric_netns},
         {"fabric_prefix", c.fabric_prefix},
         {"host_link_prefix", c.host_link_prefix},
         {"cluster_dir", c.cluster_dir},
         {"cluster_store", c.cluster_store},
         {"service_cidr", c.service_cidr},
         {"eip_pool", c.eip_pool},
         {"agent_ready_timeout_ms", c.agent_ready_timeout_ms},
         {"heartbeat_interval_ms", c.heartbeat_interval_ms},
         {"node_expiry_ms", c.node_expiry_ms},
         {"rx_steering", c.rx_steering},
         {"rx_steering_mode", c.rx_steering_mode},
         {"log_level", c.log_level}};
  OC_TRY(writeFileAtomic(work + "/config.json", dumpJson(j, 2) + "\n", 0644));
  ::setenv("OFFCORE_CONFIG", (work + "/config.json").c_str(), 1);
  return okStatus();
}

// `--cluster etcd`: one etcd member (Debian's etcd-server) on a fabric host
// of its own, data in the work dir; the demo's config points at it before
// the node comes up, so every agent and CLI call of the demo uses it.
struct EtcdMember {
  Config config;
  std::string host;
  pid_t pid = 0;
  ~EtcdMember() {
    if (pid > 0) demo::stopDaemon(pid, 1000);
    if (host.empty()) return;
    Fabric f(config);
    auto lock = f.lock();
    (void)f.deleteHost(host);
  }
  Status start(CliContext& ctx, const std::string& name, const std::string& work) {
    config = ctx.config;
    Fabric fabric(ctx.config);
    Result<FabricHost> h = makeError("unset");
    {
      auto lock = fabric.lock();
      h = fabric.addHost(name, "");
    }
    if (!h.ok()) return h.error();
    host = name;
    const std::string ip = h->ip.substr(0, h->ip.find('/')), url = "http://" + ip;
    OC_ASSIGN_OR_RETURN(pid, demo::startDaemon({selfExe(),
                                                "fabric",
                                                "exec",
                                                host,
                                                "--",
                                                "etcd",
                                                "--name",
                                                host,
                                                "--data-dir",
                                                work + "/etcd",
                                                "--listen-client-urls",
                                                url + ":2379",
                                                "--advertise-client-urls",
                                                url + ":2379",
                                                "--listen-peer-urls",
                                                url + ":2380",
                                                "--initial-advertise-peer-urls",
                                                url + ":2380",
                                                "--initial-cluster",
                                                host + "=" + url + ":2380",
                                                "--max-txn-ops",
                                                "20000"},
                                               work + "/etcd.log"));
    bool up = demo::waitFor(
        [&] {
          auto r = runCapture({selfExe(), "fabric", "exec", host, "--", "etcdctl", "--endpoints", url + ":2379",
                               "--command-timeout=1s", "put", "/offcore-probe", "x"});
          return r.ok() && r->exit_code == 0;
        },
        10000);
    if (!up) return makeError("etcd on fabric host " + host + " did not start; see " + work + "/etcd.log");
    ctx.config.cluster_store = "etcd://" + ip + ":2379";
    std::printf("cluster state: an etcd member on fabric host %s (%s:2379)\n", host.c_str(), ip.c_str());
    return okStatus();
  }
};

// Removes the demo's node, fabric host and work dir on every exit path.
struct DemoCleanup {
  NodeManager& nodes;
  Config config;
  std::string node, host, work;
  ~DemoCleanup() {
    (void)nodes.down(node);
    Fabric f(config);
    auto lock = f.lock();
    (void)f.deleteHost(host);
    (void)f.removeIfUnused();
    (void)removeTree(work);
  }
};

struct StepRecord {
  std::string name;
  double seconds = 0;
  CpuSample cpu;  // added during the step
  bool ok = false;
};

class Steps {
 public:
  explicit Steps(demo::Context& ctx) : ctx_(ctx) {}

  // Runs one step with a heading, its duration and its CPU cost per domain.
  Status run(const std::string& name, const std::string& title, const std::function<Status()>& body) {
    OC_TRY(demo::checkInterrupted());
    heading(std::to_string(++n_) + ". " + title);
    CpuSample c0 = demo::sampleCpu(ctx_);
    auto t0 = Clock::now();
    Status s = body();
    StepRecord r{name, secondsSince(t0), {}, s.ok()};
    CpuSample c1 = demo::sampleCpu(ctx_);
    r.cpu = {c1.host - c0.host, c1.infra - c0.infra, c1.soc - c0.soc};
    records_.push_back(r);
    // The reason goes on this line too: a log cut to its first lines (CI's)
    // still says why.
    if (s.ok())
      std::printf("-- step %s: done in %.1f s\n", name.c_str(), r.seconds);
    else
      std::printf("-- step %s: FAILED in %.1f s: %s\n", name.c_str(), r.seconds, s.error().message.c_str());
    return s;
  }

  void table() const {
    heading("CPU seconds by domain, per step (from the node's cgroups)");
    std::vector<std::vector<std::string>> rows{
        {"STEP", "WALL-S", "HOST-CPU-S", "HOST-INFRA-CPU-S", "SOC-CPU-S", "SOC-SHARE"}};
    StepRecord total{"total", 0, {}, true};
    auto fmt = [](double v) {
      char b[32];
      std::snprintf(b, sizeof b, "%.2f", v);
      return std::string(b);
    };
    auto row = [&](const StepRecord& r) {
      double all = r.cpu.host + r.cpu.infra + r.cpu.soc;
      char share[32];
      std::snprintf(share, sizeof share, "%.0f%%", all > 0 ? 100.0 * r.cpu.soc / all : 0.0);
      return std::vector<std::string>{
          r.name + (r.ok ? "" : " (failed)"), fmt(r.seconds), fmt(r.cpu.host), fmt(r.cpu.infra), fmt(r.cpu.soc), share};
    };
    for (const auto& r : records_) {
      rows.push_back(row(r));
      total.seconds += r.seconds;
      total.cpu.host += r.cpu.host;
      total.cpu.infra += r.cpu.infra;
      total.cpu.soc += r.cpu.soc;
    }
    rows.push_back(row(total));
    std::printf("%s", renderTable(rows).c_str());
    std::printf(
        "HOST = tenant work (fio, mkfs, the containers, the pods' servers and client); HOST-INFRA = "
        "host-side offcore pieces (containerd and its shims, ctr, the snapshotter); SOC = the agent and its "
        "services (NVMe/TCP initiator, image service, probes). The fabric hosts (gateway, registry) stand for "
        "other machines and are not counted.\n");
  }

 private:
  demo::Context& ctx_;
  int n_ = 0;
  std::vector<StepRecord> records_;
};

Status foundationAccounting(NodeManager& nodes, const std::string& name) {
  auto before = fetchNodeStatus(nodes, name);
  if (!before.ok()) return before.error();
  std::thread soc_work([&] { (void)nodes.execInDomain(name, Domain::kSoc, busyLoop(2)); });
  std::thread host_work([&] { (void)nodes.execInDomain(name, Domain::kHost, busyLoop(1)); });
  soc_work.join();
  host_work.join();
  auto after = fetchNodeStatus(nodes, name);
  if (!after.ok()) return after.error();
  std::vector<std::vector<std::string>> rows{{"DOMAIN", "CPUS", "CPU-SECONDS ADDED", "MEMORY"}};
  for (const char* d : {"soc", "host"}) {
    char delta[32];
    std::snprintf(delta, sizeof delta, "%.2f",
                  (*after)["domains"][d].value("cpu_seconds", 0.0) - (*before)["domains"][d].value("cpu_seconds", 0.0));
    rows.push_back({d, (*after)["domains"][d].value("cpus", ""), delta,
                    humanBytes((*after)["domains"][d].value("memory_bytes", 0ULL))});
  }
  std::printf("%s", renderTable(rows).c_str());
  std::printf("host share of infrastructure cpu: %.1f%%\n", 100.0 * (*after)["infra"].value("host_share", 0.0));
  return okStatus();
}

Status foundationFabric(CliContext& ctx, NodeManager& nodes, const std::string& name, const std::string& ext) {
  Fabric fabric(ctx.config);
  Result<FabricHost> host = makeError("unset");
  {
    auto lock = fabric.lock();
    host = fabric.addHost(ext, "");
  }
  if (!host.ok()) return host.error();
  std::string ip = host->ip.substr(0, host->ip.find('/'));
  NodeLayout l = nodes.layout(name);
  auto c0 = linkCounters(l.soc_netns, l.uplink_soc_if);
  auto ping = nodes.execInDomain(name, Domain::kHost, {"ping", "-c", "3", "-i", "0.2", "-q", ip});
  auto c1 = linkCounters(l.soc_netns, l.uplink_soc_if);
  if (!ping.ok() || *ping != 0) return makeError("the host could not ping fabric host " + ip);
  if (c0.ok() && c1.ok()) {
    std::printf("SoC uplink %s carried %llu packets out while the host pinged %s\n", l.uplink_soc_if.c_str(),
                static_cast<unsigned long long>(c1->tx_packets - c0->tx_packets), ip.c_str());
  }
  return okStatus();
}

// The agent itself crashes: its watchdog (the SoC's init) starts a new one,
// which adopts the running services.
Status foundationAgentCrash(NodeManager& nodes, const std::string& name, pid_t svc_pid) {
  OC_ASSIGN_OR_RETURN(NodeState before, nodes.state(name));
  NodeLayout l = nodes.layout(name);
  std::printf("killing the agent (pid %d) with SIGKILL\n", before.agent_pid);
  auto t0 = Clock::now();
  if (::kill(before.agent_pid, SIGKILL) != 0) return errnoError("kill the agent");
  ApiClient agent(l.api_socket, 200);
  for (int i = 0; i < 100 && !demo::interrupted(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto now = nodes.state(name);
    if (!now.ok() || now->agent_pid == before.agent_pid) continue;
    auto svc = json::parse(agent.call("GET", "/v1/services/demo-svc").valueOr("{}"), nullptr, false);
    if (svc.value("state", "") != "running") continue;
    std::printf("its watchdog started agent pid %d, answering %.0f ms after the kill; demo-svc %s pid %d\n",
                now->agent_pid, secondsSince(t0) * 1000, svc.value("pid", 0) == svc_pid ? "kept" : "CHANGED to",
                svc.value("pid", 0));
    return okStatus();
  }
  return makeError("no new agent 2 s after killing the old one; see " + l.agent_log);
}

Status foundationRestart(NodeManager& nodes, const std::string& name) {
  NodeLayout l = nodes.layout(name);
  ApiClient agent(l.api_socket);
  auto added = agent.call("POST", "/v1/services", dumpJson(json{{"name", "demo-svc"}, {"argv", {"sleep", "3600"}}}));
  if (!added.ok()) return added.error();
  auto svc = json::parse(agent.call("GET", "/v1/services/demo-svc").valueOr("{}"), nullptr, false);
  pid_t pid = svc.value("pid", 0);
  std::printf("demo-svc running as pid %d; killing it with SIGKILL\n", pid);
  if (pid > 0) ::kill(pid, SIGKILL);
  for (int i = 0; i < 50 && !demo::interrupted(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    svc = json::parse(agent.call("GET", "/v1/services/demo-svc").valueOr("{}"), nullptr, false);
    if (svc.value("restarts", 0) > 0 && svc.value("state", "") == "running") break;
  }
  std::printf("demo-svc state %s, restarts %d, new pid %d\n", svc.value("state", "?").c_str(), svc.value("restarts", 0),
              svc.value("pid", 0));
  OC_TRY(foundationAgentCrash(nodes, name, svc.value("pid", 0)));
  (void)agent.call("DELETE", "/v1/services/demo-svc");
  auto final_status = fetchNodeStatus(nodes, name);
  if (final_status.ok()) {
    std::printf("dpu status --json (what benchmarks read), domains:\n%s\n",
                dumpJson((*final_status)["domains"], 2).c_str());
  }
  return okStatus();
}

int runDemo(CliContext& ctx, const std::string& name, const std::string& only, const std::string& cluster) {
  if (cluster != "dir" && cluster != "etcd") return fail("demo", makeError("--cluster is dir or etcd"));
  auto parts_r = parseOnly(only);
  if (!parts_r.ok()) return fail("demo", parts_r.error());
  const std::set<std::string> parts = *parts_r;
  auto nodes_r = NodeManager::create(ctx.config);
  if (!nodes_r.ok()) return fail("demo", nodes_r.error());
  NodeManager& nodes = *nodes_r;
  if (auto s = checkPrerequisites(); !s.ok()) return fail("demo", s.error());
  if (auto s = checkTools(parts); !s.ok()) return fail("demo", s.error());
  if (nodes.exists(name)) {
    return fail("demo", makeError("node '" + name + "' exists already; remove it with `offcore dpu down --name " +
                                  name + "` or pass --name"));
  }
  auto demo_start = Clock::now();
  // Line-buffered, so our lines and the children's (ping) interleave in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Ctrl-C and SIGTERM end the current step; the cleanups still run.
  demo::installSignalHandlers();
  const std::string id = std::to_string(::getpid() % 100000);
  const std::string work = "/var/tmp/offcore-demo-" + id;
  if (auto s = makeDirs(work); !s.ok()) return fail("demo", s.error());
  // The fabric host's name must fit the 10-character limit too.
  const std::string ext = name.substr(0, 6) + "-ext";
  DemoCleanup cleanup{nodes, ctx.config, name, ext, work};
  EtcdMember etcd;  // after cleanup: stopped before the work dir goes
  if (cluster == "etcd") {
    if (auto s = etcd.start(ctx, name.substr(0, 6) + "-etc", work); !s.ok()) return fail("demo", s.error());
  }
  if (auto s = usePrivateConfig(ctx, work); !s.ok()) return fail("demo", s.error());
  std::string self = selfExe();
  demo::Context dctx{ctx, nodes, name, id, work, self, self.substr(0, self.rfind('/') + 1) + "offcore-cni"};

  std::string list;
  for (const auto& p : kParts) {
    if (parts.count(p)) list += (list.empty() ? "" : ", ") + p;
  }
  std::printf("offcore demo: node '%s', parts: %s (scratch %s)\n", name.c_str(), list.c_str(), work.c_str());
  Steps steps(dctx);
  Status result = steps.run("node up", "dpu up: a SoC domain (own cpus + netns) and a host domain", [&]() -> Status {
    auto t0 = Clock::now();
    OC_ASSIGN_OR_RETURN(NodeState st, nodes.up(NodeSpec{name, "", "", "", ""}));
    std::printf("node %s up in %.0f ms: soc cpus %s, host cpus %s, agent pid %d (cgroup %s)\n", name.c_str(),
                secondsSince(t0) * 1000, formatCpuList(st.soc_cpus).c_str(), formatCpuList(st.host_cpus).c_str(),
                st.agent_pid, st.cgroup_version.c_str());
    return okStatus();
  });
  auto add = [&](const std::string& part, const std::string& step, const std::string& title,
                 const std::function<Status()>& body) {
    if (result.ok() && parts.count(part)) result = steps.run(step, title, body);
  };
  add("foundation", "accounting", "accounting: 2 s of busy loop in the SoC, 1 s on the host, at once",
      [&] { return foundationAccounting(nodes, name); });
  add("foundation", "fabric", "the host reaches the fabric only through its SoC",
      [&] { return foundationFabric(ctx, nodes, name, ext); });
  add("foundation", "agent restart", "the agent restarts a crashed SoC service; its watchdog restarts a crashed agent",
      [&] { return foundationRestart(nodes, name); });
  add("storage", "storage",
      "storage: a volume on a fabric storage host, attached by the SoC over NVMe/TCP; mkfs, checksum, fio",
      [&] { return demo::runStorage(dctx); });
  add("storage", "mirror",
      "mirrored storage: a 2-replica volume keeps taking writes while one storage host is killed, then rebuilds",
      [&] { return demo::runStorageMirror(dctx); });
  if (cluster == "etcd") {
    add("storage", "takeover",
        "cluster state on etcd: a mirrored volume taken over from a frozen node once its claims' lease ran out",
        [&] { return demo::runVolumeTakeover(dctx); });
  }
  add("storage", "csi",
      "Kubernetes storage: the CSI plugins provision a mirrored volume, the SoC attaches it, two pods mount it",
      [&] { return demo::runCsi(dctx); });
  add("images", "images", "images: a lazily loaded image through containerd and the offcore snapshotter vs overlayfs",
      [&] { return demo::runImages(dctx); });
  add("svc", "svc",
      "Service: two pods behind a ClusterIP with probes; one backend stops under requests; cross-node req/s "
      "vs routed",
      [&] { return demo::runSvc(dctx); });
  if (cluster == "etcd") {
    add("svc", "eip", "cluster state on etcd: an EIP moves off its node when the node dies (its lease runs out)",
        [&] { return demo::runEipFailover(dctx); });
  }
  add("mesh", "mesh",
      "mesh: one proxy per node in the SoC; mTLS between nodes and an 80/20 split, no sidecar, nothing on the host",
      [&] { return demo::runMesh(dctx); });
  add("vm", "vm",
      "vm: a VM's disk served by the SoC over vhost-user from an offcore volume; live migration to a second node",
      [&] { return demo::runVm(dctx); });
  if (!result.ok()) std::printf("\nstep failed: %s\n", result.error().message.c_str());
  steps.table();

  heading("dpu down: everything removed");
  auto t0 = Clock::now();
  NodeLayout l = nodes.layout(name);
  Status down = nodes.down(name);
  if (down.ok()) {
    std::printf("node %s down in %.1f s; netns %s %s\n", name.c_str(), secondsSince(t0), l.soc_netns.c_str(),
                netnsExists(l.soc_netns) ? "STILL PRESENT" : "gone");
  }
  std::printf("\ndemo total: %.1f s\n", secondsSince(demo_start));
  if (demo::interrupted()) {
    std::printf("demo interrupted; everything it made was removed\n");
    return 128 + demo::interruptSignal();
  }
  if (!result.ok()) return fail("demo", result.error());
  if (!down.ok()) return fail("demo", down.error());
  return 0;
}

}  // namespace

void registerDemoCommand(CLI::App& app, CliContext& ctx) {
  auto name = std::make_shared<std::string>("demo");
  auto only = std::make_shared<std::string>();
  auto cluster = std::make_shared<std::string>("dir");
  auto* demo = app.add_subcommand("demo", "a guided tour of the software DPU (needs root)");
  demo->add_option("--name", *name, "node name for the tour")->capture_default_str();
  demo->add_option(
      "--only", *only,
      "parts to run, comma-separated: foundation, storage, images, svc, mesh, vm (default: all; the node is "
      "always brought up and removed)");
  demo->add_option("--cluster", *cluster,
                   "where the cluster state lives: dir (a directory) or etcd (a member the demo starts on a fabric "
                   "host; adds the EIP failover step to the svc part)")
      ->capture_default_str();
  demo->callback([&ctx, name, only, cluster] {
    ctx.action = [&ctx, name, only, cluster] { return runDemo(ctx, *name, *only, *cluster); };
  });
}

}  // namespace offcore
