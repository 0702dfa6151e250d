// `offcore demo --cluster etcd`, the EIP step: the cluster state lives in an
// etcd member the demo started on a fabric host; a LoadBalancer Service's
// EIP is held by a second node (its claim is under that node's lease); the
// node dies (agent and watchdog SIGKILLed, its SoC cut from the fabric); a
// fabric client's requests to the EIP resume through the demo's node once
// the lease expires and that node claims it.
#include <signal.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/stats.h"
#include "base/strings.h"
#include "cli/demo_common.h"
#include "kv/etcd_client.h"
#include "kv/etcd_config.h"
#include "svc/state_storage.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

std::string eipHolder(const std::string& self, const std::string& svc) {
  auto out = runCapture({self, "svc", "list", "--kind", "Service", "--json"});
  if (!out.ok() || out->exit_code != 0) return "";
  auto j = json::parse(out->out, nullptr, false);
  if (!j.is_array()) return "";
  for (const auto& s : j) {
    if (s.is_object() && s.value("name", "") == svc) return s.value("eipOwner", "");
  }
  return "";
}

// What every agent's first listing and every writer's read costs: the whole
// state read over etcd's gRPC API (offcore's wire) and over its HTTP/JSON
// gateway (the baseline), medians of 9 alternating reads.
Status showWires(const Config& config) {
  OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::etcdOptionsFor(config, config.cluster_store));
  o.wire = kv::EtcdOptions::Wire::Grpc;
  auto grpc = kv::makeEtcdClient(o);
  o.wire = kv::EtcdOptions::Wire::Gateway;
  auto gateway = kv::makeEtcdClient(o);
  std::vector<double> g, h;
  size_t keys = 0;
  auto timed = [&](kv::KvClient& client, std::vector<double>& into) -> Status {
    auto t = Clock::now();
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, client.range("/offcore/", kv::prefixEnd("/offcore/")));
    into.push_back(secondsSince(t) * 1000);
    keys = r.kvs.size();
    return okStatus();
  };
  for (int i = 0; i < 9; ++i) {
    OC_TRY(timed(*grpc, g));
    OC_TRY(timed(*gateway, h));
  }
  std::printf(
      "the cluster state (%zu keys) read over etcd's gRPC API in %.2f ms, over its HTTP/JSON gateway in %.2f ms "
      "(baseline; medians of 9; offcore speaks gRPC)\n",
      keys, median(g), median(h));
  return okStatus();
}

}  // namespace

Status runEipFailover(Context& ctx) {
  Cleanup undo("eip");
  const std::string dir = ctx.work + "/eip", self = ctx.self, node = ctx.node;
  const std::string node2 = node.substr(0, 6) + "-y", hostns = "deh" + ctx.id, client = node.substr(0, 6) + "-fc";
  const std::string vpc = "ev" + ctx.id, subnet = "es" + ctx.id, svc = "elb" + ctx.id;
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });
  std::printf("cluster state: %s (one key per object; every agent watches it, node liveness is a lease of %d s)\n",
              ctx.cli.config.cluster_store.c_str(), std::max(2, (ctx.cli.config.node_expiry_ms + 999) / 1000));

  undo.add("node " + node2, [self, node2, hostns] {
    (void)runCapture({self, "dpu", "down", "--name", node2});
    (void)runCapture({"ip", "netns", "delete", hostns});
  });
  OC_TRY(run({self, "dpu", "up", "--name", node2, "--host-netns", hostns}));
  OC_TRY(writeFileAtomic(dir + "/net.yaml", "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: " + vpc +
                                                "}\n---\napiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: " +
                                                subnet + "}\nspec: {vpc: " + vpc + ", cidr: 10.66.0.0/24}\n"));
  undo.add("VPC and subnet", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/net.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/net.yaml"}));
  std::string backends;
  for (const auto& [pod, on] : {std::pair{"dea-" + ctx.id, node}, std::pair{"deb-" + ctx.id, node2}}) {
    OC_TRY(checkInterrupted());
    OC_ASSIGN_OR_RETURN(std::string ip, addCniPod(ctx, undo, {pod, on, subnet, false, "default", vpc}));
    (void)ip;
    OC_ASSIGN_OR_RETURN(pid_t pid, startDaemon({"ip", "netns", "exec", pod, "python3", "-c", kPodHttpServer, pod},
                                               dir + "/" + pod + ".log", inDomain(ctx, Domain::kHost)));
    undo.add("server in " + pod, [pid] { stopDaemon(pid, 1000); });
    backends += "---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: " + pod + ", labels: {app: " + svc +
                "}}\nspec: {kind: pod, vpc: " + vpc + ", pod: " + pod + "}\n";
  }
  OC_ASSIGN_OR_RETURN(std::string client_ip, addFabricHost(ctx, undo, client));
  (void)client_ip;

  // The owner is a hash of the EIP over the live nodes: take an EIP the second node gets.
  std::string eip, holder;
  undo.add("Service", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/lb.yaml"}); });
  for (int i = 0; i < 40 && eip.empty(); ++i) {
    OC_TRY(checkInterrupted());
    std::string cand = "10.77.210." + std::to_string((std::stoi(ctx.id) + i) % 200 + 20);
    OC_TRY(writeFileAtomic(dir + "/lb.yaml", "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: " + svc +
                                                 "}\nspec: {type: LoadBalancer, vpc: " + vpc + ", eip: " + cand +
                                                 ", ports: [{port: 80, targetPort: 8080}], selector: {app: " + svc +
                                                 "}}\n" + backends));
    OC_TRY(run({self, "svc", "apply", "-f", dir + "/lb.yaml"}));
    waitFor([&] { return !(holder = eipHolder(self, svc)).empty(); }, 5000);
    if (holder == node2) {
      eip = cand;
    } else {
      OC_TRY(run({self, "svc", "delete", "Service", svc}));
    }
  }
  if (eip.empty()) return makeError("no EIP of 40 tried hashed to node " + node2 + " (last holder: " + holder + ")");
  auto curl = [&](const char* timeout) {
    auto r = runCapture({self, "fabric", "exec", client, "--", "curl", "-s", "-m", timeout, "http://" + eip + "/"});
    return r.ok() && r->exit_code == 0 ? trim(r->out) : std::string();
  };
  std::string answer;
  if (!waitFor([&] { return !(answer = curl("1")).empty(); }, 10000)) {
    return makeError("EIP " + eip + " did not answer the fabric client " + client + " within 10 s");
  }
  std::printf(
      "LoadBalancer %s: EIP %s held by node %s (claim /offcore/v1/owners/%s under its lease); fabric client "
      "%s gets '%s'\n",
      svc.c_str(), eip.c_str(), node2.c_str(), eip.c_str(), client.c_str(), answer.c_str());

  // The node dies: no `dpu down`, nothing to say goodbye.
  OC_ASSIGN_OR_RETURN(NodeState st, ctx.nodes.state(node2));
  if (st.watchdog_pid > 0) ::kill(st.watchdog_pid, SIGKILL);
  if (st.agent_pid > 0) ::kill(st.agent_pid, SIGKILL);
  OC_TRY(run({"ip", "-n", ctx.cli.config.fabric_netns, "link", "set", "ocu-" + node2, "down"}));
  auto t0 = Clock::now();
  std::printf("node %s killed (agent pid %d and its watchdog SIGKILLed, its SoC cut from the fabric)\n", node2.c_str(),
              st.agent_pid);
  double answered = -1, owned = -1;
  waitFor(
      [&] {
        if (answered < 0 && !(answer = curl("0.3")).empty()) answered = secondsSince(t0);
        if (owned < 0 && eipHolder(self, svc) == node) owned = secondsSince(t0);
        return answered >= 0 && owned >= 0;
      },
      10000);
  if (owned < 0) return makeError("node " + node + " did not take EIP " + eip + " within 10 s of " + node2 + " dying");
  if (answered < 0) return makeError("EIP " + eip + " did not answer within 10 s of " + node2 + " dying");
  std::printf(
      "EIP %s: node %s holds it %.1f s after the kill (the dead node's lease ran out; with the directory "
      "store the same waits for node_expiry_ms of missed heartbeats); the fabric client got '%s' again %.1f s "
      "after the kill%s\n",
      eip.c_str(), node.c_str(), owned, answer.c_str(), answered,
      answered < owned ? " (before the move: the fabric bridge floods frames for the dead node's MAC, and "
                         "every node's dataplane serves the EIP)"
                       : "");
  return showWires(ctx.cli.config);
}

}  // namespace offcore::demo
