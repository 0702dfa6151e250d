// `offcore mesh up|down|status|serve`: the node proxy's lifecycle.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/mesh_node.h"
#include "dpu/node.h"
#include "mesh/proxy/interception.h"
#include "svc/cluster_store.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr const char* kService = "mesh";

Result<json> proxyStatus(const NodeLayout& l, long timeout_ms = 2000) {
  ApiClient proxy(l.run_dir + "/mesh.sock", timeout_ms);
  OC_ASSIGN_OR_RETURN(auto body, proxy.call("GET", "/v1/mesh/status"));
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return makeError("the mesh proxy answered something that is not JSON");
  return j;
}

std::string lastLogLine(const std::string& path) {
  auto lines = splitLines(readFile(path).valueOr(""));
  return lines.empty() ? "no output" : lines.back();
}

int up(CliContext& ctx, const std::string& node, const std::string& trust_domain, int cert_ttl_s,
       const std::string& xds_server, int rt_priority) {
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("mesh up", nodes.error());
  if (!nodes->state(node).ok()) {
    return fail("mesh up",
                makeError("node " + node + " is not up; start it with `offcore dpu up --name " + node + "`"));
  }
  NodeLayout l = nodes->layout(node);
  if (cert_ttl_s < 2) return fail("mesh up", makeError("--cert-ttl must be at least 2 seconds"));
  if (rt_priority < 0 || rt_priority > 99) return fail("mesh up", makeError("--rt-priority takes 0 (off) to 99"));
  json settings{{"trustDomain", trust_domain}, {"certTtlSeconds", cert_ttl_s}, {"rtPriority", rt_priority}};
  if (!xds_server.empty()) {
    if (xds_server.find(':') == std::string::npos) {
      return fail("mesh up", makeError("--xds wants HOST:PORT of an ADS server, got '" + xds_server + "'"));
    }
    settings["xdsServer"] = xds_server;
  }
  if (auto s = writeFileAtomic(l.mesh_file, dumpJson(settings) + "\n", 0600); !s.ok())
    return fail("mesh up", s.error());
  ApiClient agent(l.api_socket, 10000);
  if (!agent.call("GET", std::string("/v1/services/") + kService).ok()) {
    json body{{"name", kService}, {"argv", {selfExe(), "mesh", "serve", "--node", node}}};
    if (auto added = agent.call("POST", "/v1/services", dumpJson(body)); !added.ok()) {
      return fail("mesh up", added.error());
    }
  }
  for (int i = 0; i < 100; ++i) {
    if (auto st = proxyStatus(l, 500); st.ok()) {
      std::printf("mesh proxy running on node %s (trust domain %s)\n", node.c_str(), trust_domain.c_str());
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail("mesh up", makeError("the mesh proxy did not come up: " + lastLogLine(l.run_dir + "/mesh.log")));
}

int down(CliContext& ctx, const std::string& node, bool force) {
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("mesh down", nodes.error());
  NodeLayout l = nodes->layout(node);
  auto store = svc::ClusterStore::open(ctx.config);
  if (auto st = store.ok() ? store->load() : Result<svc::ClusterState>(store.error()); st.ok() && !force) {
    std::string pods;
    for (const auto& [id, ep] : st->endpoints) {
      if (ep.node == node && ep.mesh) pods += (pods.empty() ? "" : ", ") + ep.pod_name;
    }
    if (!pods.empty()) {
      return fail("mesh down", makeError("mesh pods still run on node " + node + " (" + pods +
                                         "); delete them first or pass --force (their connections then fail)"));
    }
  }
  ApiClient agent(l.api_socket, 15000);
  (void)agent.call("DELETE", std::string("/v1/services/") + kService);
  if (auto s = mesh::removeInterception(l.soc_netns); !s.ok()) return fail("mesh down", s.error());
  std::remove(l.mesh_file.c_str());
  std::printf("mesh stopped on node %s\n", node.c_str());
  return 0;
}

// Hot restart / upgrade: the keeper starts a new epoch from the binary now on
// disk; the old one drains. Returns once the new epoch answers.
int restart(CliContext& ctx, const std::string& node) {
  NodeLayout l = NodeLayout::forNode(ctx.config, node);
  auto before = proxyStatus(l);
  if (!before.ok()) {
    return fail("mesh restart",
                before.error().wrap("node " + node + " runs no mesh proxy (`offcore mesh up --node " + node + "`)"));
  }
  int old_epoch = before->value("epoch", 0);
  ApiClient agent(l.api_socket, 5000);
  auto svc = json::parse(agent.call("GET", std::string("/v1/services/") + kService).valueOr("{}"), nullptr, false);
  pid_t keeper = svc.is_discarded() ? 0 : svc.value("pid", 0);
  if (keeper <= 0 || ::kill(keeper, SIGHUP) != 0) {
    return fail("mesh restart", makeError("the mesh service of node " + node +
                                          " has no running keeper; see `offcore dpu status --name " + node + "`"));
  }
  for (int i = 0; i < 200; ++i) {
    auto now = proxyStatus(l, 500);
    if (now.ok() && now->value("epoch", 0) > old_epoch) {
      std::printf("mesh proxy of node %s: epoch %d took over from epoch %d (which drains %d connections)\n",
                  node.c_str(), now->value("epoch", 0), old_epoch, (*before)["connections"].value("active", 0));
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return fail("mesh restart",
              makeError("the new proxy epoch did not come up: " + lastLogLine(l.run_dir + "/mesh.log")));
}

int status(CliContext& ctx, const std::string& node, bool as_json) {
  NodeLayout l = NodeLayout::forNode(ctx.config, node);
  auto st = proxyStatus(l);
  if (!st.ok()) {
    return fail(
        "mesh status",
        st.error().wrap("node " + node + " runs no mesh proxy (start it with `offcore mesh up --node " + node + "`)"));
  }
  if (as_json) {
    std::printf("%s\n", dumpJson(*st, 2).c_str());
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"LISTENER", "PORT"}};
  for (const auto& li : (*st)["listeners"]) rows.push_back({li.value("name", ""), std::to_string(li.value("port", 0))});
  std::printf("%s", renderTable(rows).c_str());
  const auto& c = (*st)["connections"];
  std::printf("epoch %d; connections: %d active, %d connecting (max %d); config version %llu\n", st->value("epoch", 0),
              c.value("active", 0), c.value("connecting", 0), c.value("max", 0),
              static_cast<unsigned long long>(st->value("configVersion", 0ULL)));
  std::vector<std::vector<std::string>> srows{{"SERVICE", "VIP", "ENDPOINTS"}};
  for (const auto& s : (*st)["services"]) {
    std::string eps;
    for (const auto& e : s["endpoints"]) {
      eps += (eps.empty() ? "" : " ") + e.value("ip", "") + (e.value("healthy", true) ? "" : "(unhealthy)") +
             (e.value("mesh", false) ? "(mesh)" : "");
    }
    srows.push_back({s.value("name", ""), s.value("vip", ""), eps});
  }
  std::printf("%s", renderTable(srows).c_str());
  return 0;
}

}  // namespace

void addMeshNodeCommands(CLI::App& mesh, CliContext& ctx) {
  struct Opts {
    std::string node, trust_domain = "cluster.local", xds;
    int cert_ttl_s = 3600, rt_priority = 0;
    bool force = false, json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* upc = mesh.add_subcommand(
      "up", "start the node's mesh proxy in its SoC (pods join with \"mesh\": true in their CNI config)");
  upc->add_option("--node", o->node, "the node")->required();
  upc->add_option("--trust-domain", o->trust_domain, "SPIFFE trust domain of the identities")->capture_default_str();
  upc->add_option("--cert-ttl", o->cert_ttl_s, "lifetime of workload certificates in seconds (rotated at half)")
      ->capture_default_str();
  upc->add_option("--xds", o->xds, "HOST:PORT of an xDS (ADS v3) server to take Services and routes from");
  upc->add_option("--rt-priority", o->rt_priority,
                  "SCHED_FIFO priority of the proxy (1-99, 0 = normal scheduler): its wakeups preempt the SoC's "
                  "other work")
      ->capture_default_str();
  upc->callback([&ctx, o] {
    ctx.action = [&ctx, o] { return up(ctx, o->node, o->trust_domain, o->cert_ttl_s, o->xds, o->rt_priority); };
  });

  auto* downc = mesh.add_subcommand("down", "stop the node's mesh proxy and remove its interception");
  downc->add_option("--node", o->node, "the node")->required();
  downc->add_flag("--force", o->force, "even while mesh pods run there");
  downc->callback([&ctx, o] { ctx.action = [&ctx, o] { return down(ctx, o->node, o->force); }; });

  auto* st = mesh.add_subcommand("status", "the node proxy's listeners, connections, services and endpoints");
  st->add_option("--node", o->node, "the node")->required();
  st->add_flag("--json", o->json, "machine-readable");
  st->callback([&ctx, o] { ctx.action = [&ctx, o] { return status(ctx, o->node, o->json); }; });

  auto* rs =
      mesh.add_subcommand("restart", "hot restart (or upgrade to the binary now on disk) without dropping connections");
  rs->add_option("--node", o->node, "the node")->required();
  rs->callback([&ctx, o] { ctx.action = [&ctx, o] { return restart(ctx, o->node); }; });

  auto* serve = mesh.add_subcommand("serve", "run the node's mesh keeper (the agent's service, started by `mesh up`)");
  serve->add_option("--node", o->node, "the node")->required();
  serve->callback([&ctx, o] { ctx.action = [&ctx, o] { return serveMesh(ctx, o->node); }; });

  struct WorkerOpts {
    std::string node, fds;
    int epoch = 1;
  };
  auto w = std::make_shared<WorkerOpts>();
  auto* worker = mesh.add_subcommand("worker", "one proxy epoch (started by the keeper)");
  worker->add_option("--node", w->node, "the node")->required();
  worker->add_option("--epoch", w->epoch, "this epoch's number")->required();
  worker->add_option("--fds", w->fds, "inherited listeners, NAME=FD,...")->required();
  worker->callback([&ctx, w] { ctx.action = [&ctx, w] { return runMeshWorker(ctx, w->node, w->epoch, w->fds); }; });
}

}  // namespace offcore
