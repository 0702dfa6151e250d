// `offcore demo`, Service: two pods (namespaces wired by offcore-cni) serve
// HTTP behind a ClusterIP with a TCP NetworkProbe each; a client pod sends a
// request on a new connection every 20 ms while one backend is stopped, and
// the demo prints how long new requests kept failing and what they saw.
#include <signal.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "base/cpu_times.h"
#include "base/files.h"
#include "cli/demo_common.h"

namespace offcore::demo {

const char* const kPodHttpServer = R"(
import http.server, sys
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
)";

namespace {

using nlohmann::json;

// argv: VIP SECONDS STOP_AT VICTIM_PID. Stops the victim itself at STOP_AT,
// so the stop and the requests share one clock; one JSON line at the end.
const char* kClient = R"(
import http.client, json, os, signal, sys, time
vip, seconds, stop_at, victim = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
t0 = time.time(); stopped = None; log = []
while time.time() - t0 < seconds:
    if stopped is None and time.time() - t0 >= stop_at:
        os.kill(victim, signal.SIGTERM); stopped = time.time() - t0
    t = time.time() - t0
    try:
        c = http.client.HTTPConnection(vip, 80, timeout=0.5)
        c.request("GET", "/"); body = c.getresponse().read().decode().strip(); c.close()
        log.append([t, True, body])
    except Exception as e:
        log.append([t, False, type(e).__name__])
    time.sleep(0.02)
print(json.dumps({"stopped": stopped, "log": log}))
)";

// Prints what the client saw around the stop: answers by backend, errors
// by kind, and the failover time (stop -> last failed request).
void printFailover(const json& j) {
  double stopped = j["stopped"].get<double>();
  int before = 0, after_ok = 0, failed = 0;
  double last_fail = -1;
  bool last_ok = true;
  std::map<std::string, int> errors, answered_before, answered_after;
  for (const auto& e : j.value("log", json::array())) {
    if (!e.is_array() || e.size() < 3 || !e[0].is_number() || !e[1].is_boolean() || !e[2].is_string()) continue;
    double ts = e[0].get<double>();
    bool ok = e[1].get<bool>();
    std::string what = e[2].get<std::string>();
    if (ts < stopped) {
      before += ok;
      if (ok) answered_before[what]++;
      if (!ok) errors["before the stop: " + what]++;
      continue;
    }
    last_ok = ok;
    if (ok) {
      ++after_ok;
      answered_after[what]++;
    } else {
      ++failed;
      errors[what]++;
      last_fail = ts;
    }
  }
  std::string err_text;
  for (const auto& [k, v] : errors) err_text += (err_text.empty() ? "" : ", ") + std::to_string(v) + "x " + k;
  auto byBackend = [](const std::map<std::string, int>& m) {
    std::string t;
    for (const auto& [k, v] : m) t += (t.empty() ? "" : ", ") + k + " " + std::to_string(v);
    return t;
  };
  std::printf("before the stop: %d requests answered (%s); after: %d answered (%s), %d failed%s%s\n", before,
              byBackend(answered_before).c_str(), after_ok, byBackend(answered_after).c_str(), failed,
              err_text.empty() ? "" : ": ", err_text.c_str());
  double failover = last_fail < 0 ? 0 : last_fail - stopped;
  std::printf("failover: %.2f s from the stop to the last failed request (%d errors); %s\n", failover, failed,
              last_ok ? "every request after that was answered" : "STILL FAILING when the loop ended");
}

}  // namespace

Status runSvc(Context& ctx) {
  Cleanup undo("svc");
  const std::string dir = ctx.work + "/svc", self = ctx.self, cni = ctx.cni, node = ctx.node;
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });
  const std::string vpc = "dv" + ctx.id, subnet = "ds" + ctx.id, vip = "10.96.62.10";

  auto t = Clock::now();
  OC_TRY(writeFileAtomic(dir + "/net.yaml", "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: " + vpc +
                                                "}\n---\napiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: " +
                                                subnet + "}\nspec: {vpc: " + vpc + ", cidr: 10.62.0.0/24}\n"));
  undo.add("VPC and subnet", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/net.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/net.yaml"}));

  // Pods: a namespace each, eth0 from the CNI plugin (ADD now, DEL at exit).
  auto cniCall = [=](const std::string& cmd, const std::string& pod) {
    SpawnOptions o;
    o.stdin_data = R"({"cniVersion":"1.0.0","name":"demo","type":"offcore-cni","node":")" + node + R"(","vpc":")" +
                   vpc + R"(","subnet":")" + subnet + R"("})";
    return runCapture({"env", "CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + pod, "CNI_NETNS=/var/run/netns/" + pod,
                       "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin", "CNI_ARGS=K8S_POD_NAME=" + pod, cni},
                      o);
  };
  std::map<std::string, std::string> ips;
  const std::vector<std::string> pods{"db1-" + ctx.id, "db2-" + ctx.id, "dc-" + ctx.id};
  for (const auto& pod : pods) {
    OC_TRY(checkInterrupted());
    OC_TRY(run({"ip", "netns", "add", pod}));
    undo.add("pod " + pod, [pod] { (void)runCapture({"ip", "netns", "delete", pod}); });
    undo.add("CNI DEL " + pod, [cniCall, pod] { (void)cniCall("DEL", pod); });
    auto r = cniCall("ADD", pod);
    if (!r.ok()) return r.error();
    auto j = json::parse(r->out, nullptr, false);
    if (r->exit_code != 0 || !j.is_object() || !j.contains("ips") || j["ips"].empty()) {
      return makeError("CNI ADD for pod " + pod + " failed: " + trim(r->out + " " + r->err));
    }
    std::string ip = j["ips"][0].value("address", "");
    ips[pod] = ip.substr(0, ip.find('/'));
  }
  std::map<std::string, pid_t> servers;
  for (int i = 0; i < 2; ++i) {
    const std::string& pod = pods[static_cast<size_t>(i)];
    OC_ASSIGN_OR_RETURN(pid_t pid, startDaemon({"ip", "netns", "exec", pod, "python3", "-c", kPodHttpServer, pod},
                                               dir + "/" + pod + ".log", inDomain(ctx, Domain::kHost)));
    servers[pod] = pid;
    undo.add("server in " + pod, [pid] { stopDaemon(pid, 1000); });
  }
  for (int i = 0; i < 2; ++i) {
    const std::string& pod = pods[static_cast<size_t>(i)];
    if (!waitFor(
            [&] {
              auto r = runCapture({"ip", "netns", "exec", pod, "ss", "-Hltn", "sport = :8080"});
              return r.ok() && !trim(r->out).empty();
            },
            10000)) {
      OC_TRY(checkInterrupted());
      return makeError("the HTTP server in pod " + pod + " did not listen; see " + dir + "/" + pod + ".log");
    }
  }
  std::string svc = "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: dweb" + ctx.id +
                    "}\nspec: {type: ClusterIP, vpc: " + vpc + ", clusterIP: " + vip +
                    ", ports: [{port: 80, targetPort: 8080}], selector: {app: dweb" + ctx.id + "}}\n";
  for (int i = 0; i < 2; ++i) {
    std::string b = "b" + std::to_string(i + 1) + "-" + ctx.id;
    svc += "---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: " + b + ", labels: {app: dweb" + ctx.id +
           "}}\nspec: {kind: pod, vpc: " + vpc + ", pod: " + pods[static_cast<size_t>(i)] +
           "}\n---\napiVersion: offcore.io/v1\nkind: NetworkProbe\nmetadata: {name: " + b + "}\nspec: {backend: " + b +
           ", type: tcp, port: 8080, intervalMs: 200, timeoutMs: 150, failureThreshold: 2}\n";
  }
  OC_TRY(writeFileAtomic(dir + "/svc.yaml", svc));
  undo.add("Service", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/svc.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/svc.yaml"}));
  const std::string name = "dweb" + ctx.id;
  bool programmed = waitFor(
      [&] {
        auto r = runCapture({self, "svc", "get", name, "--json"});
        if (!r.ok() || r->exit_code != 0) return false;
        auto j = json::parse(r->out, nullptr, false);
        if (!j.is_object() || !j.contains("programmed") || j["programmed"].empty()) return false;
        auto gen = j.value("generation", 0LL);
        for (const auto& [k, v] : j["programmed"].items()) {
          if (!v.is_number() || v.get<long long>() < gen) return false;
        }
        auto eps = j.value("endpoints", json::array());
        int healthy = 0;
        for (const auto& e : eps) healthy += e.value("health", "") == "healthy";
        return healthy == 2;
      },
      15000);
  OC_TRY(checkInterrupted());
  if (!programmed) return makeError("Service " + name + " was not programmed with 2 healthy endpoints in 15 s");
  std::printf(
      "pods %s (%s) and %s (%s) behind ClusterIP %s:80, TCP probes every 200 ms (2 failures = down); "
      "client pod %s (%.1f s)\n",
      pods[0].c_str(), ips[pods[0]].c_str(), pods[1].c_str(), ips[pods[1]].c_str(), vip.c_str(), pods[2].c_str(),
      secondsSince(t));

  const double seconds = 6, stop_at = 2;
  pid_t victim = servers[pods[0]];
  std::printf("client: one request per new connection every 20 ms for %.0f s; %s stopped (SIGTERM) at +%.0f s\n",
              seconds, pods[0].c_str(), stop_at);
  // Where the dataplane's work ran (softirq and NAPI threads are in no
  // cgroup): its per-cpu packet counter, and the busy time of each domain's
  // cpus. With receive steering, the SoC's (src/dpu/rx_steering.h).
  auto node_state = ctx.nodes.state(ctx.node);
  auto rxByCpu = [&]() {
    std::vector<uint64_t> out;
    auto r = runCapture({self, "net", "status", "--node", node, "--json"});
    if (!r.ok() || r->exit_code != 0) return out;
    auto j = json::parse(r->out, nullptr, false);
    if (j.is_object() && j.contains("dataplane_rx_by_cpu") && j["dataplane_rx_by_cpu"].is_array()) {
      for (const auto& v : j["dataplane_rx_by_cpu"]) out.push_back(v.is_number_unsigned() ? v.get<uint64_t>() : 0);
    }
    return out;
  };
  auto rx0 = rxByCpu();
  auto times0 = readCpuTimes();
  OC_ASSIGN_OR_RETURN(std::string out,
                      output({"ip", "netns", "exec", pods[2], "python3", "-c", kClient, vip, std::to_string(seconds),
                              std::to_string(stop_at), std::to_string(victim)},
                             inDomain(ctx, Domain::kHost)));
  auto times1 = readCpuTimes();
  auto rx1 = rxByCpu();
  if (node_state.ok() && times0.ok() && times1.ok()) {
    auto busy = [&](const CpuSet& cpus) {
      return sumCpuTimes(*times1, cpus).busy() - sumCpuTimes(*times0, cpus).busy();
    };
    uint64_t on_soc = 0, all = 0;
    for (size_t c = 0; c < rx1.size() && c < rx0.size(); ++c) {
      uint64_t d = rx1[c] - rx0[c];
      all += d;
      if (node_state->soc_cpus.count(static_cast<int>(c))) on_soc += d;
    }
    std::printf(
        "where the dataplane ran during the client loop: %llu of %llu packets (%.0f%%) on the SoC's cpus %s; "
        "busy: SoC cpus +%.2f s, host cpus %s +%.2f s (receive steering %s)\n",
        static_cast<unsigned long long>(on_soc), static_cast<unsigned long long>(all),
        all ? 100.0 * static_cast<double>(on_soc) / static_cast<double>(all) : 0.0,
        formatCpuList(node_state->soc_cpus).c_str(), busy(node_state->soc_cpus),
        formatCpuList(node_state->host_cpus).c_str(), busy(node_state->host_cpus),
        ctx.cli.config.rx_steering ? ctx.cli.config.rx_steering_mode.c_str() : "off");
  }
  auto j = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  if (!j.is_object() || !j["stopped"].is_number()) return makeError("the client loop gave no result: " + trim(out));
  printFailover(j);
  auto doc = runCapture({self, "svc", "get", name, "--json"});
  if (doc.ok()) {
    auto g = json::parse(doc->out, nullptr, false);
    std::string health;
    if (g.is_object()) {
      for (const auto& e : g.value("endpoints", json::array())) {
        health +=
            (health.empty() ? "" : ", ") + e.value("backend", e.value("name", "?")) + " " + e.value("health", "?");
      }
    }
    std::printf("svc get %s: endpoints %s\n", name.c_str(), health.c_str());
  }
  std::printf("\n");
  return runSvcCrossNode(ctx, dir, vpc, subnet);
}

}  // namespace offcore::demo
