// `offcore demo`, mesh: a second node, the node proxies on both, and three
// mesh pods (a client and v1 beside it, v2 on the other node). An Istio
// VirtualService splits web 80/20 between v1 and v2; the client sends 2000
// requests on one keep-alive connection. Cross-node requests travel in mTLS
// HBONE tunnels between the SoCs; the host runs no mesh code. The step's
// CPU line (host vs SoC) is in the demo's closing table.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "cli/demo_common.h"

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
    auto cniCall = [=](const std::string& cmd) {
      SpawnOptions o;
      o.stdin_data = R"({"cniVersion":"1.0.0","name":"demo","type":"offcore-cni","mesh":true,"node":")" + pod.node +
                     R"(","subnet":")" + subnet + R"("})";
      return runCapture({"env", "CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + pod.name,
                         "CNI_NETNS=/var/run/netns/" + pod.name, "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin",
                         "CNI_ARGS=K8S_POD_NAME=" + pod.name + ";OFFCORE_SERVICE_ACCOUNT=" + pod.sa, cni},
                        o);
    };
    OC_TRY(run({"ip", "netns", "add", pod.name}));
    undo.add("pod " + pod.name, [name = pod.name] { (void)runCapture({"ip", "netns", "delete", name}); });
    undo.add("CNI DEL " + pod.name, [cniCall] { (void)cniCall("DEL"); });
    auto r = cniCall("ADD");
    if (!r.ok()) return r.error();
    auto j = json::parse(r->out, nullptr, false);
    if (r->exit_code != 0 || !j.is_object() || !j.contains("ips") || j["ips"].empty()) {
      return makeError("CNI ADD for mesh pod " + pod.name + " failed: " + trim(r->out + " " + r->err));
    }
    std::string ip = j["ips"][0].value("address", "");
    pod.ip = ip.substr(0, ip.find('/'));
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

  const int n = 2000;
  CpuSample before = sampleCpu(ctx);
  OC_ASSIGN_OR_RETURN(std::string out,
                      output({"ip", "netns", "exec", pods[0].name, "python3", "-c", kClient, vip, std::to_string(n)},
                             inDomain(ctx, Domain::kHost)));
  CpuSample after = sampleCpu(ctx);
  auto j = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  if (!j.is_object() || !j["answers"].is_object()) return makeError("the client gave no result: " + trim(out));
  int v1 = 0, v2 = 0, other = 0;
  for (const auto& [answer, count] : j["answers"].items()) {
    int c = count.get<int>();
    bool from_client = answer.find(" " + pods[0].ip) != std::string::npos;
    if (answer.rfind(pods[1].name, 0) == 0 && from_client)
      v1 += c;
    else if (answer.rfind(pods[2].name, 0) == 0 && from_client)
      v2 += c;
    else
      other += c;
  }
  double secs = j.value("seconds", 0.0);
  std::printf("%d requests in %.2f s (%.0f req/s) on one keep-alive connection: v1 %d (%.0f%%), v2 %d (%.0f%%)%s\n", n,
              secs, secs > 0 ? n / secs : 0, v1, 100.0 * v1 / n, v2, 100.0 * v2 / n,
              other ? (", " + std::to_string(other) + " unexpected").c_str() : "");
  std::printf("every server saw the client's own address %s (the proxy connects from it)\n", pods[0].ip.c_str());
  std::printf(
      "CPU during the requests: host domain %.2f s (client + v1 server), SoC %.2f s (node proxy); "
      "the host runs no mesh code\n",
      after.host - before.host, after.soc - before.soc);
  auto st = runCapture({self, "mesh", "status", "--node", node2, "--json"});
  auto sj = json::parse(st.ok() ? st->out : "", nullptr, false);
  if (sj.is_object()) {
    for (const auto& c : sj.value("certificates", json::array())) {
      std::printf("node %s: mTLS certificate %s, serial %s, expires in %lld s\n", node2.c_str(),
                  c.value("identity", "").c_str(), c.value("serial", "").substr(0, 12).c_str(),
                  static_cast<long long>(c.value("notAfter", 0LL) - static_cast<long long>(std::time(nullptr))));
    }
  }
  if (other != 0 || v1 == 0 || v2 == 0)
    return makeError("the split did not reach both subsets from the client's address");
  return okStatus();
}

}  // namespace offcore::demo
