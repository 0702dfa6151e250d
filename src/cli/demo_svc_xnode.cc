// `offcore demo`, Service, cross-node: nginx in a pod on the demo's node, a
// client pod on a second node, wrk through the offcore ClusterIP and through
// the routed baseline (kube-proxy style: a router namespace DNATs a VIP with
// nftables, one hop, no encapsulation); req/s side by side, keep-alive and a
// new connection per request, and the machine's busy time per request with
// the share on the SoC's cpus. The same nginx answers both paths (a second
// interface, eth1, on the router), so only the path differs.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/cpu_times.h"
#include "base/files.h"
#include "base/stats.h"
#include "cli/demo_common.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

struct WrkRun {
  double rps = 0;
  long errors = 0;
  double busy = 0, soc_busy = 0;  // cpu-seconds over the run: every cpu, the SoC's
  long requests = 0;
};

// wrk's plain-text summary: "Requests/sec: N", "N requests in ...", and the
// "Socket errors: connect A, read B, write C, timeout D" line when any.
Result<WrkRun> parseWrk(const std::string& out) {
  WrkRun r;
  auto at = out.find("Requests/sec:");
  if (at == std::string::npos || std::sscanf(out.c_str() + at, "Requests/sec: %lf", &r.rps) != 1) {
    return makeError("wrk printed no rate: " + trim(out.substr(0, 300)));
  }
  auto req = out.find(" requests in ");
  if (req != std::string::npos) {
    auto line = out.rfind('\n', req);
    r.requests = std::atol(out.c_str() + (line == std::string::npos ? 0 : line + 1));
  }
  auto se = out.find("Socket errors:");
  if (se != std::string::npos) {
    long c = 0, rd = 0, w = 0, t = 0;
    if (std::sscanf(out.c_str() + se, "Socket errors: connect %ld, read %ld, write %ld, timeout %ld", &c, &rd, &w,
                    &t) == 4) {
      r.errors = c + rd + w + t;
    }
  }
  return r;
}

}  // namespace

Status runSvcCrossNode(Context& ctx, const std::string& dir, const std::string& vpc, const std::string& subnet) {
  Cleanup undo("svc cross-node");
  const std::string self = ctx.self, node = ctx.node, node2 = node.substr(0, 6) + "-x";
  const std::string server = "dxs-" + ctx.id, client = "dxc-" + ctx.id, router = "dxr" + ctx.id;
  const std::string vip = "10.96.63.10", nft_vip = "10.97.63.10";
  auto t = Clock::now();
  undo.add("node " + node2, [self, node2] { (void)runCapture({self, "dpu", "down", "--name", node2}); });
  OC_TRY(run({self, "dpu", "up", "--name", node2, "--host-netns", "dxh" + ctx.id}));
  OC_ASSIGN_OR_RETURN(std::string server_ip, addCniPod(ctx, undo, {server, node, subnet, false, "default", vpc}));
  OC_ASSIGN_OR_RETURN(std::string client_ip, addCniPod(ctx, undo, {client, node2, subnet, false, "default", vpc}));
  (void)client_ip;
  // Connection-per-request runs open thousands of connections a second:
  // wide client ports, and no TIME_WAIT left on the server (nginx closes
  // first; a reused port would land on one and stall for a SYN retransmit).
  OC_TRY(run({"ip", "netns", "exec", client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000",
              "net.ipv4.tcp_tw_reuse=1"}));
  OC_TRY(run({"ip", "netns", "exec", server, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0"}));

  // The routed baseline: a router namespace, eth1 in both pods, the VIP
  // DNATed by nftables in the router's prerouting.
  OC_TRY(run({"ip", "netns", "add", router}));
  undo.add("router " + router, [router] { (void)runCapture({"ip", "netns", "delete", router}); });
  OC_TRY(run({"ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1"}));
  const std::vector<std::pair<std::string, int>> legs{{client, 1}, {server, 2}};
  for (const auto& [pod, i] : legs) {
    const std::string k = "k" + std::to_string(i), net = "172.31." + std::to_string(i);
    OC_TRY(run({"ip", "-n", router, "link", "add", k, "type", "veth", "peer", "name", "eth1", "netns", pod}));
    OC_TRY(run({"ip", "-n", router, "addr", "add", net + ".1/24", "dev", k}));
    OC_TRY(run({"ip", "-n", router, "link", "set", k, "up"}));
    OC_TRY(run({"ip", "-n", pod, "addr", "add", net + ".2/24", "dev", "eth1"}));
    OC_TRY(run({"ip", "-n", pod, "link", "set", "eth1", "up"}));
    OC_TRY(run({"ip", "-n", pod, "route", "add", "172.31.0.0/16", "via", net + ".1", "dev", "eth1"}));
  }
  OC_TRY(run({"ip", "-n", client, "route", "add", nft_vip + "/32", "via", "172.31.1.1", "dev", "eth1"}));
  OC_TRY(writeFileAtomic(dir + "/router.nft",
                         "table ip demo {\n  chain pre {\n    type nat hook prerouting priority "
                         "dstnat;\n    ip daddr " +
                             nft_vip + " tcp dport 80 dnat to 172.31.2.2:80\n  }\n}\n"));
  OC_TRY(run({"ip", "netns", "exec", router, "nft", "-f", dir + "/router.nft"}));

  // nginx: one worker, no access log, keep-alive without a request limit.
  const std::string nd = dir + "/nginx";
  OC_TRY(makeDirs(nd + "/tmp"));
  OC_TRY(writeFileAtomic(nd + "/nginx.conf",
                         "worker_processes 1;\ndaemon off;\npid " + nd + "/nginx.pid;\nerror_log " + nd +
                             "/error.log warn;\nevents { worker_connections 4096; }\nhttp {\n  access_log off;\n"
                             "  keepalive_requests 100000000;\n  client_body_temp_path " +
                             nd + "/tmp/body; proxy_temp_path " + nd + "/tmp/proxy; fastcgi_temp_path " + nd +
                             "/tmp/fcgi;\n  uwsgi_temp_path " + nd + "/tmp/uwsgi; scgi_temp_path " + nd +
                             "/tmp/scgi;\n  server { listen 80 backlog=4096; default_type text/plain; location / "
                             "{ return 200 \"" +
                             server + "\\n\"; } }\n}\n"));
  OC_ASSIGN_OR_RETURN(pid_t nginx, startDaemon({"ip", "netns", "exec", server, "nginx", "-p", nd + "/", "-e",
                                                nd + "/error.log", "-c", nd + "/nginx.conf"},
                                               nd + "/stdout.log", inDomain(ctx, Domain::kHost)));
  undo.add("nginx", [nginx] { stopDaemon(nginx, 1000); });

  std::string svc = "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: dx" + ctx.id +
                    "}\nspec: {type: ClusterIP, vpc: " + vpc + ", clusterIP: " + vip +
                    ", ports: [{port: 80, targetPort: 80}], selector: {app: dx" + ctx.id +
                    "}}\n---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: dxb" + ctx.id +
                    ", labels: {app: dx" + ctx.id + "}}\nspec: {kind: pod, vpc: " + vpc + ", pod: " + server + "}\n";
  OC_TRY(writeFileAtomic(dir + "/xsvc.yaml", svc));
  undo.add("Service", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/xsvc.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/xsvc.yaml"}));
  // Both paths answer before any run (programming is asynchronous).
  for (const std::string& ip : {vip, nft_vip}) {
    if (!waitFor(
            [&] {
              auto r = runCapture(
                  {"ip", "netns", "exec", client, "curl", "-sf", "-m", "1", "-o", "/dev/null", "http://" + ip + "/"});
              return r.ok() && r->exit_code == 0;
            },
            15000)) {
      OC_TRY(checkInterrupted());
      return makeError("nginx in pod " + server + " did not answer on " + ip + ":80 from pod " + client +
                       " within 15 s; see " + nd + "/error.log and `offcore svc get dx" + ctx.id + "`");
    }
  }
  std::printf(
      "cross-node: nginx in pod %s (%s) on node %s, wrk in pod %s on a second node %s (%.1f s); routed baseline: "
      "the same nginx through a router namespace that DNATs %s with nftables (one hop, kube-proxy style)\n",
      server.c_str(), server_ip.c_str(), node.c_str(), client.c_str(), node2.c_str(), secondsSince(t), nft_vip.c_str());

  auto node_state = ctx.nodes.state(node);
  if (!node_state.ok()) return node_state.error();
  const CpuSet soc = node_state->soc_cpus;
  auto wrk = [&](const std::string& ip, bool close) -> Result<WrkRun> {
    std::vector<std::string> argv{"ip", "netns", "exec", client, "wrk", "-t1", "-c50", "-d2s"};
    if (close) argv.insert(argv.end(), {"-H", "Connection: close"});
    argv.push_back("http://" + ip + "/");
    OC_ASSIGN_OR_RETURN(auto t0, readCpuTimes());
    OC_ASSIGN_OR_RETURN(std::string out, output(argv, inDomain(ctx, Domain::kHost)));
    OC_ASSIGN_OR_RETURN(auto t1, readCpuTimes());
    OC_ASSIGN_OR_RETURN(WrkRun r, parseWrk(out));
    CpuSet all;
    for (const auto& [c, v] : t1) all.insert(c);
    r.busy = sumCpuTimes(t1, all).busy() - sumCpuTimes(t0, all).busy();
    r.soc_busy = sumCpuTimes(t1, soc).busy() - sumCpuTimes(t0, soc).busy();
    return r;
  };
  std::printf("wrk -t1 -c50, 2 s per run, the two paths alternating, 3 runs each, medians:\n");
  std::printf("  %-26s %12s %12s %7s   %s\n", "", "offcore", "routed", "ratio", "busy cpu per request");
  for (bool close : {false, true}) {
    std::vector<double> oc_rps, base_rps, oc_us, base_us, oc_soc;
    long errors = 0;
    for (int i = 0; i < 3; ++i) {
      OC_TRY(checkInterrupted());
      OC_ASSIGN_OR_RETURN(WrkRun o, wrk(vip, close));
      OC_ASSIGN_OR_RETURN(WrkRun b, wrk(nft_vip, close));
      if (o.requests <= 0 || b.requests <= 0) return makeError("a wrk run completed no request");
      oc_rps.push_back(o.rps);
      base_rps.push_back(b.rps);
      oc_us.push_back(1e6 * o.busy / static_cast<double>(o.requests));
      base_us.push_back(1e6 * b.busy / static_cast<double>(b.requests));
      oc_soc.push_back(o.busy > 0 ? o.soc_busy / o.busy : 0);
      errors += o.errors;
    }
    const double o = median(oc_rps), b = median(base_rps);
    const std::string err_text = errors ? " (" + std::to_string(errors) + " socket errors on offcore)" : "";
    std::printf("  %-26s %12s %12s %6.2fx   offcore %.0f us (%.0f%% on the SoC's cpus), routed %.0f us%s\n",
                close ? "new connection per request" : "keep-alive req/s", groupThousands(o).c_str(),
                groupThousands(b).c_str(), b > 0 ? o / b : 0.0, median(oc_us), 100 * median(oc_soc), median(base_us),
                err_text.c_str());
  }
  std::printf(
      "  (one 2-core machine: wrk, nginx, both SoCs and the router share it; the routed baseline does all its "
      "work on the sending cpu, offcore hands the dataplane to the SoC's cpu: bench/results/svc.md)\n");
  return okStatus();
}

}  // namespace offcore::demo
