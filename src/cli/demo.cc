// `offcore demo`: a guided run of what the software DPU does today. It
// brings a node up, places work in each domain and shows the accounting,
// shows the host reaching the fabric only through its SoC, shows the agent
// restarting a crashed service, and removes everything again.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "api/api_client.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "dpu/fabric.h"
#include "dpu/netns.h"
#include "dpu/node.h"

namespace offcore {

using nlohmann::json;

namespace {

void heading(const std::string& text) { std::printf("\n\033[1m== %s\033[0m\n", text.c_str()); }

// Removes the demo's node and fabric host on every exit path.
struct DemoCleanup {
  NodeManager& nodes;
  Config config;
  std::string node, host;
  ~DemoCleanup() {
    (void)nodes.down(node);
    Fabric f(config);
    auto lock = f.lock();
    (void)f.deleteHost(host);
    (void)f.removeIfUnused();
  }
};

// A CPU-bound loop of `seconds`, run inside a domain.
std::vector<std::string> busyLoop(int seconds) {
  return {"timeout", std::to_string(seconds), "sh", "-c", "while :; do :; done"};
}

int runDemo(CliContext& ctx, const std::string& name) {
  auto nodes_r = NodeManager::create(ctx.config);
  if (!nodes_r.ok()) return fail("demo", nodes_r.error());
  NodeManager& nodes = *nodes_r;
  if (auto s = checkPrerequisites(); !s.ok()) return fail("demo", s.error());
  if (nodes.exists(name)) {
    return fail("demo", makeError("node '" + name + "' exists already; remove it with `offcore dpu down --name " +
                                  name + "` or pass --name"));
  }
  // The fabric host's name must fit the 10-character limit too.
  const std::string ext = name.substr(0, 6) + "-ext";
  // Line-buffered, so our lines and the children's (ping) interleave in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // Ctrl-C must still run the cleanup: turn it into an orderly return.
  signal(SIGINT, SIG_IGN);
  DemoCleanup cleanup{nodes, ctx.config, name, ext};

  heading("1. dpu up: a SoC domain (own cpus + netns) and a host domain");
  auto t0 = std::chrono::steady_clock::now();
  auto st = nodes.up(NodeSpec{name, "", "", "", ""});
  if (!st.ok()) return fail("demo", st.error());
  double up_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("node %s up in %.0f ms: soc cpus %s, host cpus %s, agent pid %d (cgroup %s)\n", name.c_str(), up_ms,
              formatCpuList(st->soc_cpus).c_str(), formatCpuList(st->host_cpus).c_str(), st->agent_pid,
              st->cgroup_version.c_str());

  heading("2. accounting: 2 s of busy loop in the SoC, 1 s on the host, at once");
  auto before = fetchNodeStatus(nodes, name);
  if (!before.ok()) return fail("demo", before.error());
  std::thread soc_work([&] { (void)nodes.execInDomain(name, Domain::kSoc, busyLoop(2)); });
  std::thread host_work([&] { (void)nodes.execInDomain(name, Domain::kHost, busyLoop(1)); });
  soc_work.join();
  host_work.join();
  auto after = fetchNodeStatus(nodes, name);
  if (!after.ok()) return fail("demo", after.error());
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

  heading("3. the host reaches the fabric only through its SoC");
  Fabric fabric(ctx.config);
  Result<FabricHost> host = makeError("unset");
  {
    auto lock = fabric.lock();
    host = fabric.addHost(ext, "");
  }
  if (!host.ok()) return fail("demo", host.error());
  std::string ip = host->ip.substr(0, host->ip.find('/'));
  NodeLayout l = nodes.layout(name);
  auto c0 = linkCounters(l.soc_netns, l.uplink_soc_if);
  auto ping = nodes.execInDomain(name, Domain::kHost, {"ping", "-c", "3", "-i", "0.2", "-q", ip});
  auto c1 = linkCounters(l.soc_netns, l.uplink_soc_if);
  if (!ping.ok() || *ping != 0) return fail("demo", makeError("the host could not ping fabric host " + ip));
  if (c0.ok() && c1.ok()) {
    std::printf("SoC uplink %s carried %llu packets out while the host pinged %s\n", l.uplink_soc_if.c_str(),
                static_cast<unsigned long long>(c1->tx_packets - c0->tx_packets), ip.c_str());
  }

  heading("4. the agent supervises SoC services and restarts a crashed one");
  ApiClient agent(l.api_socket);
  auto added = agent.call("POST", "/v1/services", dumpJson(json{{"name", "demo-svc"}, {"argv", {"sleep", "3600"}}}));
  if (!added.ok()) return fail("demo", added.error());
  auto svc = json::parse(agent.call("GET", "/v1/services/demo-svc").valueOr("{}"));
  pid_t pid = svc.value("pid", 0);
  std::printf("demo-svc running as pid %d; killing it with SIGKILL\n", pid);
  if (pid > 0) ::kill(pid, SIGKILL);
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    svc = json::parse(agent.call("GET", "/v1/services/demo-svc").valueOr("{}"));
    if (svc.value("restarts", 0) > 0 && svc.value("state", "") == "running") break;
  }
  std::printf("demo-svc state %s, restarts %d, new pid %d\n", svc.value("state", "?").c_str(), svc.value("restarts", 0),
              svc.value("pid", 0));

  heading("5. dpu status --json (what benchmarks read)");
  auto final_status = fetchNodeStatus(nodes, name);
  if (final_status.ok()) {
    json brief{{"name", (*final_status)["name"]},
               {"domains", (*final_status)["domains"]},
               {"services", (*final_status)["services"]}};
    std::printf("%s\n", dumpJson(brief, 2).c_str());
  }

  heading("6. dpu down: everything removed");
  if (auto s = nodes.down(name); !s.ok()) return fail("demo", s.error());
  std::printf("node %s down; netns %s %s\n", name.c_str(), l.soc_netns.c_str(),
              netnsExists(l.soc_netns) ? "STILL PRESENT" : "gone");
  return 0;
}

}  // namespace

void registerDemoCommand(CLI::App& app, CliContext& ctx) {
  auto name = std::make_shared<std::string>("demo");
  auto* demo = app.add_subcommand("demo", "a guided tour of the software DPU (needs root)");
  demo->add_option("--name", *name, "node name for the tour")->capture_default_str();
  demo->callback([&ctx, name] { ctx.action = [&ctx, name] { return runDemo(ctx, *name); }; });
}

}  // namespace offcore
