// `offcore demo`, mesh: a second node, the node proxies on both, and three
// mesh pods (a client and v1 beside it, v2 on the other node). An Istio
// VirtualService splits web 80/20 between v1 and v2; the client sends 2000
// requests on one keep-alive connection. Cross-node requests travel in mTLS
// HBONE tunnels between the SoCs; the host runs no mesh code. Then the same
// pods as plain pods with a haproxy sidecar each (demo_sidecar.h) serve the
// same requests, and the step prints both deployments' host and SoC CPU.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/files.h"
#include "cli/demo_common.h"
#include "cli/demo_sidecar.h"
#include "kv/etcd_client.h"
#include "kv/etcd_config.h"
#include "mesh/tls/ca_store.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

const char* kServer = R"(
import http.server, socket, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()  # head and body go out in two writes: no Nagle wait between them
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self):
        body = (name + " " + self.client_address[0] + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
)";

// argv: VIP N. One keep-alive connection, N requests; JSON counts by answer.
const char* kClient = R"(
import http.client, json, sys, time
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
n = {}; t0 = time.time()
for _ in range(int(sys.argv[2])):
    c.request("GET", "/"); body = c.getresponse().read().decode().strip()
    n[body] = n.get(body, 0) + 1
print(json.dumps({"seconds": time.time() - t0, "answers": n}))
)";

constexpr int kRequests = 2000;

// One client run against the split: answers by server, the peer addresses
// the servers saw, and both nodes' host and SoC CPU over the run.
struct Split {
  int v1 = 0, v2 = 0, other = 0;
  double seconds = 0, host = 0, soc = 0;
  std::set<std::string> peers;
  std::string peerList() const {
    std::string out;
    for (const auto& p : peers) out += (out.empty() ? "" : ", ") + p;
    return out;
  }
};

Result<Split> measureSplit(Context& ctx, const std::string& node2, const std::string& client, const std::string& vip,
                           const std::string& v1, const std::string& v2) {
  CpuSample a0 = sampleCpu(ctx), b0 = sampleCpu(ctx, node2);
  OC_ASSIGN_OR_RETURN(std::string out,
                      output({"ip", "netns", "exec", client, "python3", "-c", kClient, vip, std::to_string(kRequests)},
                             inDomain(ctx, Domain::kHost)));
  CpuSample a1 = sampleCpu(ctx), b1 = sampleCpu(ctx, node2);
  auto j = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  if (!j.is_object() || !j["answers"].is_object()) return makeError("the client gave no result: " + trim(out));
  Split s;
  for (const auto& [answer, count] : j["answers"].items()) {
    int c = count.get<int>();
    auto space = answer.find(' ');
    std::string name = answer.substr(0, space);
    if (space != std::string::npos) s.peers.insert(answer.substr(space + 1));
    (name == v1 ? s.v1 : name == v2 ? s.v2 : s.other) += c;
  }
  s.seconds = std::max(j.value("seconds", 0.0), 1e-3);
  s.host = (a1.host - a0.host) + (b1.host - b0.host);
  s.soc = (a1.soc - a0.soc) + (b1.soc - b0.soc);
  return s;
}

}  // namespace

Status runMesh(Context& ctx) {
  Cleanup undo("mesh");
  const std::string dir = ctx.work + "/mesh", self = ctx.self, cni = ctx.cni, node = ctx.node;
  const std::string node2 = node.substr(0, 6) + "-m", subnet = "dm" + ctx.id, vip = "10.96.68.10";
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });

  auto t = Clock::now();
  undo.add("node " + node2, [self, node2] { (void)runCapture({self, "dpu", "down", "--name", node2}); });
  OC_TRY(run({self, "dpu", "up", "--name", node2, "--host-netns", "dmh" + ctx.id}));
  for (const auto& n : {node, node2}) {
    undo.add("mesh on " + n, [self, n] { (void)runCapture({self, "mesh", "down", "--node", n, "--force"}); });
    OC_TRY(run({self, "mesh", "up", "--node", n}));
  }
  std::printf("second node %s; node proxies up on %s and %s (%.1f s)\n", node2.c_str(), node.c_str(), node2.c_str(),
              secondsSince(t));
  OC_TRY(writeFileAtomic(dir + "/net.yaml", "apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: " + subnet +
                                                "}\nspec: {vpc: default, cidr: 10.68.0.0/24}\n"));
  undo.add("subnet", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/net.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/net.yaml"}));

  struct Pod {
    std::string name, node, sa, ip;
  };
  std::vector<Pod> pods{
      {"dmc-" + ctx.id, node, "frontend", ""}, {"dm1-" + ctx.id, node, "web", ""}, {"dm2-" + ctx.id, node2, "web", ""}};
  for (auto& pod : pods) {
    OC_TRY(checkInterrupted());
    OC_ASSIGN_OR_RETURN(pod.ip, addCniPod(ctx, undo, {pod.name, pod.node, subnet, true, pod.sa}));
  }
  for (size_t i = 1; i < pods.size(); ++i) {
    const std::string& pod = pods[i].name;
    OC_ASSIGN_OR_RETURN(pid_t pid, startDaemon({"ip", "netns", "exec", pod, "python3", "-c", kServer, pod},
                                               dir + "/" + pod + ".log", inDomain(ctx, Domain::kHost)));
    undo.add("server in " + pod, [pid] { stopDaemon(pid, 1000); });
    if (!waitFor(
            [&] {
              auto s = runCapture({"ip", "netns", "exec", pod, "ss", "-Hltn", "sport = :8080"});
              return s.ok() && !trim(s->out).empty();
            },
            10000)) {
      OC_TRY(checkInterrupted());
      return makeError("the HTTP server in pod " + pod + " did not listen; see " + dir + "/" + pod + ".log");
    }
  }
  const std::string svc_name = "dmweb" + ctx.id;
  std::string svc = "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: " + svc_name +
                    "}\nspec: {clusterIP: " + vip +
                    ", ports: [{port: 80, targetPort: 8080}], selector: {app: " + svc_name + "}}\n";
  for (size_t i = 1; i < pods.size(); ++i) {
    svc += "---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: " + pods[i].name +
           ", labels: {app: " + svc_name + ", version: v" + std::to_string(i) +
           "}}\nspec: {kind: pod, pod: " + pods[i].name + "}\n";
  }
  OC_TRY(writeFileAtomic(dir + "/svc.yaml", svc));
  undo.add("Service", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/svc.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/svc.yaml"}));
  std::string mesh = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: " + svc_name +
                     "}\nspec:\n  host: " + svc_name +
                     "\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
                     "---\napiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: " +
                     svc_name + "}\nspec:\n  hosts: [" + svc_name + "]\n  http:\n  - name: split\n    route:\n" +
                     "    - {destination: {host: " + svc_name + ", subset: v1}, weight: 80}\n" +
                     "    - {destination: {host: " + svc_name + ", subset: v2}, weight: 20}\n";
  OC_TRY(writeFileAtomic(dir + "/mesh.yaml", mesh));
  undo.add("mesh config", [self, svc_name] {
    (void)runCapture({self, "mesh", "delete", "virtualservice", svc_name});
    (void)runCapture({self, "mesh", "delete", "destinationrule", svc_name});
  });
  OC_TRY(run({self, "mesh", "apply", "-f", dir + "/mesh.yaml"}));
  bool ready = waitFor(
      [&] {
        auto r = runCapture({self, "mesh", "status", "--node", node, "--json"});
        auto j = json::parse(r.ok() ? r->out : "", nullptr, false);
        if (!j.is_object()) return false;
        for (const auto& s : j.value("services", json::array())) {
          if (s.value("name", "") == svc_name) return s.value("endpoints", json::array()).size() == 2;
        }
        return false;
      },
      10000);
  OC_TRY(checkInterrupted());
  if (!ready) return makeError("the node proxy of " + node + " did not learn Service " + svc_name + " in 10 s");
  std::printf("mesh pods: client %s (%s), v1 %s (%s) on %s, v2 %s (%s) on %s; VirtualService: 80%% v1, 20%% v2\n",
              pods[0].name.c_str(), pods[0].ip.c_str(), pods[1].name.c_str(), pods[1].ip.c_str(), node.c_str(),
              pods[2].name.c_str(), pods[2].ip.c_str(), node2.c_str());

  OC_ASSIGN_OR_RETURN(Split mesh_run, measureSplit(ctx, node2, pods[0].name, vip, pods[1].name, pods[2].name));
  std::printf("%d requests in %.2f s (%.0f req/s) on one keep-alive connection: v1 %d (%.0f%%), v2 %d (%.0f%%)%s\n",
              kRequests, mesh_run.seconds, kRequests / mesh_run.seconds, mesh_run.v1, 100.0 * mesh_run.v1 / kRequests,
              mesh_run.v2, 100.0 * mesh_run.v2 / kRequests,
              mesh_run.other ? (", " + std::to_string(mesh_run.other) + " unexpected").c_str() : "");
  bool own_ip = mesh_run.peers.size() == 1 && *mesh_run.peers.begin() == pods[0].ip;
  std::printf("the servers saw %s\n",
              own_ip ? ("the client's own address " + pods[0].ip + " (the proxy connects from it)").c_str()
                     : ("peer addresses other than the client's: " + mesh_run.peerList()).c_str());
  auto st = runCapture({self, "mesh", "status", "--node", node2, "--json"});
  auto sj = json::parse(st.ok() ? st->out : "", nullptr, false);
  if (sj.is_object()) {
    for (const auto& c : sj.value("certificates", json::array())) {
      std::printf("node %s: mTLS certificate %s, serial %s, expires in %lld s\n", node2.c_str(),
                  c.value("identity", "").c_str(), c.value("serial", "").substr(0, 12).c_str(),
                  static_cast<long long>(c.value("notAfter", 0LL) - static_cast<long long>(std::time(nullptr))));
    }
  }
  if (mesh_run.other != 0 || mesh_run.v1 == 0 || mesh_run.v2 == 0 || !own_ip)
    return makeError("the split did not reach both subsets from the client's address");
  if (kv::isEtcdUrl(ctx.cli.config.cluster_store)) {
    // Both nodes' keepers signed with one CA: the key in etcd, not a file per machine.
    OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::etcdOptionsFor(ctx.cli.config, ctx.cli.config.cluster_store));
    OC_ASSIGN_OR_RETURN(kv::RangeResult r, kv::makeEtcdClient(o)->range(mesh::tls::kMeshCaKey, ""));
    if (r.kvs.empty()) return makeError(std::string("no mesh CA at ") + mesh::tls::kMeshCaKey + " in etcd");
    std::printf(
        "the mesh CA both nodes' keepers sign with is one key in etcd (%s, made by the first keeper, read by the "
        "next; with authentication on, only the mesh CA's own etcd user reads it): nodes on other machines get "
        "certificates the same peers trust\n",
        mesh::tls::kMeshCaKey);
  }

  std::printf(
      "\nthe same pods as Istio's sidecar mode would run them: a haproxy sidecar in each (mTLS between "
      "sidecars, nftables REDIRECT in the pod, the same 80/20 split)\n");
  SidecarSpec sc{dir + "/sidecar",
                 subnet,
                 "10.96.68.11",
                 kServer,
                 {{"dsc-" + ctx.id, node, "", 0}, {"ds1-" + ctx.id, node, "", 80}, {"ds2-" + ctx.id, node2, "", 20}}};
  OC_TRY(makeDirs(sc.dir));
  OC_TRY(deploySidecars(ctx, undo, sc));
  OC_ASSIGN_OR_RETURN(Split sc_run,
                      measureSplit(ctx, node2, sc.pods[0].name, sc.vip, sc.pods[1].name, sc.pods[2].name));
  std::printf("%d requests in %.2f s (%.0f req/s): v1 %d, v2 %d; the servers saw %s\n", kRequests, sc_run.seconds,
              kRequests / sc_run.seconds, sc_run.v1, sc_run.v2, sc_run.peerList().c_str());
  std::printf("\n  %-28s %10s %12s %12s %12s\n", "CPU for 2000 requests", "req/s", "host domain", "SoC", "per request");
  for (const auto& [label, r] : {std::pair<const char*, const Split&>{"offcore node proxies", mesh_run},
                                 std::pair<const char*, const Split&>{"haproxy sidecars (3)", sc_run}}) {
    std::printf("  %-28s %10.0f %10.2f s %10.2f s %9.0f us\n", label, kRequests / r.seconds, r.host, r.soc,
                1e6 * (r.host + r.soc) / kRequests);
  }
  std::printf(
      "  (both nodes; host = clients, servers and sidecars; SoC = node proxies. The host runs no mesh code "
      "with offcore.)\n");
  if (sc_run.v1 + sc_run.v2 != kRequests) return makeError("the sidecar deployment lost requests");
  return okStatus();
}

}  // namespace offcore::demo
