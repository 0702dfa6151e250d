// `offcore bench svc`: Service load balancing. The same client and nginx
// backend namespaces are reached directly (pod network, and through a router
// namespace), through an offcore ClusterIP, and through a VIP DNATed by a
// kube-proxy nftables-mode ruleset; then offcore and nftables program 1k and
// 10k services, and request latency is compared at 10 services and at the
// largest count. The orchestration (nodes, CNI, nginx, the router, wrk, CPU
// accounting) is the shell driver scripts/bench/svc.sh; this suite runs it
// and turns its JSON lines into the report (medians over --runs) and a bar
// chart of req/s per path and mode.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "base/files.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/driver.h"
#include "bench/suite.h"
#include "bench/svc_series.h"

#ifndef OFFCORE_SOURCE_DIR
#define OFFCORE_SOURCE_DIR "."
#endif

namespace offcore {
namespace {

using nlohmann::json;
using namespace svcbench;

// Targets the report checks.
constexpr double kMinRpsVsDirect = 0.95;    // ClusterIP req/s >= 0.95 x direct
constexpr double kMaxProgramVsNft = 0.1;    // offcore programming <= 0.1 x nft
constexpr double kMaxLatencyGrowth = 1.10;  // "no growth": within 10% on this noisy machine

const char* kCases[] = {"same-node", "cross-node"};
const char* kModes[] = {"keepalive", "close"};
const char* kPaths[] = {"direct", "direct-router", "offcore", "nft", "direct-native", "offcore-native"};

class SvcSuite final : public BenchSuite {
 public:
  explicit SvcSuite(Config config) : config_(std::move(config)) {}
  std::string name() const override { return "svc"; }
  std::string summary() const override {
    return "Service load balancing: offcore ClusterIP vs direct vs kube-proxy nftables DNAT (wrk, programming time)";
  }

  Result<BenchReport> run(const BenchOptions& options) override {
    std::vector<std::string> args{"--runs", std::to_string(options.quick ? 1 : options.runs)};
    if (options.quick) args.push_back("--quick");
    // ocbs-: the prefix every name of this bench carries (see scripts/bench/svc.sh).
    OC_ASSIGN_OR_RETURN(auto lines, runBenchDriver({"scripts/bench/svc.sh", "svc driver", "ocbs-svc", args}));
    Data d;
    for (const json& j : lines) {
      std::string c = j.value("case", "");
      if (c == "check")
        d.checks.push_back(j);
      else if (c == "program")
        d.program[{j.value("impl", ""), j.value("services", 0)}].add(j);
      else if (c == "latency_vs_services")
        d.latency[{j.value("impl", ""), j.value("services", 0), j.value("mode", "")}].add(j);
      else
        d.wrk[{c, j.value("path", ""), j.value("mode", "")}].add(j);
    }
    if (d.wrk.empty()) return makeError("the svc driver produced no measurements");
    BenchReport r = buildReport(d, options);
    plot(d, options.out_dir, r);
    return r;
  }

 private:
  BenchReport buildReport(const Data& d, const BenchOptions& options) const {
    bool have_oc = false;
    for (const auto& [k, s] : d.wrk) have_oc |= std::get<1>(k) == "offcore";
    BenchReport r;
    r.suite = "svc";
    r.title = "Service load balancing: offcore ClusterIP vs kube-proxy nftables DNAT";
    r.baseline_name = have_oc ? "direct to the backend (req/s rows) or the kube-proxy nftables-mode VIP (the rest)"
                              : "direct through the router (baseline-only run: the offcore column holds the nft VIP)";
    r.plot = false;  // our own chart, svc.png: req/s per path and mode
    r.method = "One nginx backend (one worker, access log off) per backend netns, wrk -t1 -c50 -d" +
               std::string(options.quick ? "2" : "5") +
               "s from a client netns, keep-alive and `Connection: close` "
               "(a new connection per request; backends keep no TIME_WAIT sockets, see src/bench/README.md). Paths: "
               "direct = the backend's pod IP over offcore's pod network; "
               "direct-router = the backend's second interface through a router netns; offcore = ClusterIP "
               "10.96.88.10; nft = VIP 10.97.0.10 DNATed in the router netns by a kube-proxy nftables-mode ruleset "
               "(`table ip kube-proxy`, `service-ips` verdict map on daddr . l4proto . dport, `numgen random mod N` "
               "to per-endpoint `dnat` chains; scripts/bench/svc_nft.py). The measured service has one endpoint, so "
               "every path ends at the same nginx; 10 services are installed. same-node: client and backends on node "
               "ocbsa; cross-node: client on ocbsb. wrk and nginx run in the nodes' host cgroups; CPU per request = "
               "(host + SoC cgroup CPU) / requests, machine = /proc/stat (shared with other tenants of this machine). "
               "Programming: offcore `svc apply` of N services (2 endpoints each) until both nodes report the store's "
               "generation (polled every 20 ms), nft one `nft -f` transaction of the same N services. Latency vs "
               "services: one connection (-c1) to the measured service with 10 and with the largest N installed. "
               "Medians over " +
               std::to_string(options.quick ? 1 : options.runs) + " runs.";
    std::vector<std::string> targets;
    auto rpsDetail = [](const Series& s, const char* label) {
      std::string t = std::string(label) + " p50 " + num("%.2f", s.med("p50_ms")) + " / p99 " +
                      num("%.2f", s.med("p99_ms")) + " ms";
      if (s.med("errors") > 0) t += " (" + num("%.0f", s.med("errors")) + " wrk errors)";
      if (!s.failures.empty()) t += " (" + std::to_string(s.failures.size()) + " run(s) failed)";
      return t;
    };
    for (const auto& [k, s] : d.wrk)
      if (!s.failures.empty())
        r.notes.push_back("FAILED: " + std::get<0>(k) + " " + std::get<1>(k) + " " + std::get<2>(k) + ": " +
                          std::to_string(s.failures.size()) + " of " + std::to_string(s.failures.size() + s.n()) +
                          " runs gave no result; first: " + s.failures.front());
    for (const char* c : kCases) {
      for (const char* m : kModes) {
        const Series* direct = d.find(c, "direct", m);
        const Series* router = d.find(c, "direct-router", m);
        const Series* oc = d.find(c, "offcore", m);
        const Series* nft = d.find(c, "nft", m);
        std::string where = std::string(c) + " " + m;
        if ((!oc || !direct) && (d.failed(c, "offcore", m) || d.failed(c, "direct", m)))
          targets.push_back("ClusterIP req/s >= 0.95x direct, " + where + ": not measured (a path failed, see above)");
        if (oc && direct) {
          BenchRow b{where + ": req/s, ClusterIP vs direct", "req/s", oc->med("rps"), direct->med("rps"), false, ""};
          // The verdict uses the per-run ratios when there are several.
          auto pr = pairedRatios(*oc, *direct);
          double q = pr.size() >= 2 ? median(pr) : b.offcore / std::max(1.0, *b.baseline);
          bool ok = q >= kMinRpsVsDirect;
          b.detail = rpsDetail(*oc, "offcore") + "; " + rpsDetail(*direct, "direct");
          if (pr.size() >= 2)
            b.detail += "; per-run ratio median " + num("%.2f", q) + " (" +
                        num("%.2f", *std::min_element(pr.begin(), pr.end())) + "-" +
                        num("%.2f", *std::max_element(pr.begin(), pr.end())) + ")";
          b.detail += "; target >= " + num("%.2f", kMinRpsVsDirect) + "x: " + verdict(ok);
          std::string runs;
          if (!oc->failures.empty() || !direct->failures.empty())
            runs = "; from " + std::to_string(oc->n()) + " offcore and " + std::to_string(direct->n()) +
                   " direct run(s) only";
          targets.push_back("ClusterIP req/s >= 0.95x direct, " + where + ": " + verdict(ok) + " (" + num("%.2f", q) +
                            "x" + (pr.size() >= 2 ? ", median of per-run ratios" : "") + runs + ")");
          r.rows.push_back(b);
        }
        if (nft) {
          const Series* top = oc ? oc : nft;
          BenchRow b{where + ": req/s, " + (oc ? "ClusterIP vs nft VIP" : "nft VIP vs direct-router"),
                     "req/s",
                     top->med("rps"),
                     oc ? nft->med("rps") : (router ? router->med("rps") : 0),
                     false,
                     ""};
          b.detail = rpsDetail(*nft, "nft");
          if (auto pr = pairedRatios(*top, oc ? *nft : router ? *router : *nft); pr.size() >= 2)
            b.detail += "; per-run ratio median " + num("%.2f", median(pr));
          if (router)
            b.detail += "; direct-router " + num("%.0f", router->med("rps")) + " req/s, " + rpsDetail(*router, "");
          r.rows.push_back(b);
          BenchRow cpu{where + ": CPU per request (host + SoC)",
                       "us",
                       top->med("cpu_us_per_req"),
                       nft->med("cpu_us_per_req"),
                       true,
                       ""};
          if (!oc) cpu.baseline = router ? router->med("cpu_us_per_req") : 0;
          cpu.detail = "host " + num("%.2f", top->med("host_cpu_s")) + " s, SoC " + num("%.2f", top->med("soc_cpu_s")) +
                       " s per run; machine " + num("%.1f", top->med("machine_us_per_req")) + " us/req (" +
                       (oc ? "nft " : "direct-router ") +
                       num("%.1f", (oc       ? nft
                                    : router ? router
                                             : nft)
                                       ->med("machine_us_per_req")) +
                       "); other tenants " + num("%.1f", top->med("others_cpu_s")) + " s per run";
          r.rows.push_back(cpu);
        } else if (oc && direct) {
          r.rows.push_back({where + ": CPU per request (host + SoC)", "us", oc->med("cpu_us_per_req"),
                            direct->med("cpu_us_per_req"), true,
                            "vs direct; SoC " + num("%.2f", oc->med("soc_cpu_s")) + " s per run"});
        }
      }
    }
    for (const auto& c : d.checks) {
      if (c.value("check", "") != "direct-after-clusterip") continue;
      int failed = c.value("failed", 0), probes = c.value("probes", 0);
      if (failed == 0) continue;
      r.notes.insert(r.notes.begin(),
                     "CHECK FAILED (" + c.value("client_case", "") + "): " + std::to_string(failed) + " of " +
                         std::to_string(probes) + " direct connections to " + c.value("target", "") +
                         " from client ports that earlier carried ClusterIP flows never completed. The backend's "
                         "SYN-ACK reaches the client and is answered with RST, consistent with it matching the old "
                         "flow's reverse-NAT entry (oc_rev_nat: keyed on the reply 5-tuple, not removed when the "
                         "flow ends) and arriving rewritten to the ClusterIP. The runs above keep the two kinds of "
                         "traffic on separate client port ranges so that both stay measurable.");
    }
    routedRows(d, r, targets);
    if (have_oc)
      r.notes.push_back(
          "Where the CPU ran: the SoC cgroup column counts only tasks, and the dataplane runs in softirq "
          "(in no cgroup), so the cross-node CPU rows count busy time of each domain's cpus (wall minus idle, "
          "exact under NO_HZ), and the dataplane row counts the BPF program's packets per cpu (its per-cpu RX "
          "counter). On this 2-cpu machine both nodes' host domains share one cpu and both SoCs the other.");
    if (have_oc && d.find("cross-node", "nft", "keepalive"))
      r.notes.push_back(
          "The routed baselines (nft VIP, direct-router) are one router hop from either client: the path "
          "a routed pod network would give without tunnel or dataplane. The tunnel rows pay VXLAN on both "
          "nodes, the native rows route on the fabric (the default VPC's spec.routing: native).");
    programRows(d, r, targets);
    latencyRows(d, r, targets);
    for (const auto& t : targets) r.notes.push_back("Target: " + t);
    r.notes.push_back(
        "req/s rows: higher is better (ratio above 1 favours offcore); CPU, programming and latency rows: "
        "lower is better.");
    r.notes.push_back(
        "Close-mode latency from wrk excludes the TCP handshake; the latency-vs-services rows therefore "
        "use time per request on one connection (1 / req/s), which includes it.");
    return r;
  }

  void programRows(const Data& d, BenchReport& r, std::vector<std::string>& targets) const {
    std::set<int> sizes;
    for (const auto& [k, s] : d.program) sizes.insert(k.second);
    for (int n : sizes) {
      auto oc = d.program.find({"offcore", n});
      auto nft = d.program.find({"nft", n});
      if (nft == d.program.end()) continue;
      BenchRow b{"program " + std::to_string(n) + " services",
                 "s",
                 oc == d.program.end() ? nft->second.med("seconds") : oc->second.med("seconds"),
                 nft->second.med("seconds"),
                 true,
                 ""};
      if (oc == d.program.end()) {
        b.metric += " (nft only)";
        b.baseline.reset();
        b.detail = "nft CPU " + num("%.2f", nft->second.med("cli_cpu_s")) + " s";
      } else {
        bool ok = b.offcore <= kMaxProgramVsNft * *b.baseline;
        b.detail = "offcore until both nodes run it, poll resolution " + num("%.3f", oc->second.med("resolution_s")) +
                   " s; CPU: offcore CLI " + num("%.2f", oc->second.med("cli_cpu_s")) + " s + SoC " +
                   num("%.2f", oc->second.med("soc_cpu_s")) + " s, nft " + num("%.2f", nft->second.med("cli_cpu_s")) +
                   " s; target <= " + num("%.1f", kMaxProgramVsNft) + "x nft: " + verdict(ok);
        if (n == *sizes.rbegin())
          targets.push_back("offcore programs " + std::to_string(n) + " services in <= 0.1x nft's time: " +
                            verdict(ok) + " (" + num("%.3f", b.offcore / std::max(1e-9, *b.baseline)) + "x; " +
                            num("%.3f", (b.offcore - oc->second.med("resolution_s")) / std::max(1e-9, *b.baseline)) +
                            "x less the poll resolution)");
      }
      r.rows.push_back(b);
    }
  }

  void latencyRows(const Data& d, BenchReport& r, std::vector<std::string>& targets) const {
    int largest = 0;
    for (const auto& [k, s] : d.latency) largest = std::max(largest, std::get<1>(k));
    if (largest <= 10) return;
    for (const char* m : kModes) {
      auto get = [&](const char* impl, int n) -> const Series* {
        auto it = d.latency.find({impl, n, m});
        return it == d.latency.end() || it->second.n() == 0 ? nullptr : &it->second;
      };
      const Series *oc10 = get("offcore", 10), *ocN = get("offcore", largest);
      const Series *nft10 = get("nft", 10), *nftN = get("nft", largest);
      if (!nftN || !nft10) continue;
      const Series* top = ocN ? ocN : nftN;
      BenchRow b{std::string("time per request, 1 connection, ") + m + ", " + std::to_string(largest) + " services",
                 "ms",
                 top->med("cycle_ms"),
                 nftN->med("cycle_ms"),
                 true,
                 ""};
      if (!ocN) b.baseline.reset(), b.metric += " (nft only)";
      auto growth = [](const Series* a, const Series* b, const char* k) {
        return b->med(k) / std::max(1e-9, a->med(k));
      };
      b.detail = "at 10: nft " + num("%.3f", nft10->med("cycle_ms")) + " ms (growth " +
                 num("%.2f", growth(nft10, nftN, "cycle_ms")) + "x, p99 " + num("%.2f", nft10->med("p99_ms")) + " -> " +
                 num("%.2f", nftN->med("p99_ms")) + " ms)";
      for (const auto& [impl, a, z] : {std::tuple{"offcore", oc10, ocN}, std::tuple{"nft", nft10, nftN}}) {
        if (!a || !z) continue;
        bool ok = growth(a, z, "cycle_ms") <= kMaxLatencyGrowth && growth(a, z, "p50_ms") <= kMaxLatencyGrowth;
        targets.push_back(std::string("no latency growth 10 -> ") + std::to_string(largest) + " services, " + impl +
                          " " + m + ": " + verdict(ok) + " (time/request " + num("%.2f", growth(a, z, "cycle_ms")) +
                          "x, p50 " + num("%.2f", growth(a, z, "p50_ms")) + "x; within 10% counts as none)");
        if (std::string(impl) == "offcore")
          b.detail += "; offcore at 10: " + num("%.3f", a->med("cycle_ms")) + " ms (growth " +
                      num("%.2f", growth(a, z, "cycle_ms")) + "x, p99 " + num("%.2f", a->med("p99_ms")) + " -> " +
                      num("%.2f", z->med("p99_ms")) + " ms)";
      }
      r.rows.push_back(b);
    }
  }

  // Clustered bars: one cluster per case and mode, one bar per path.
  void plot(const Data& d, const std::string& dir, BenchReport& r) const {
    std::string data;
    int clusters = 0;
    for (const char* c : kCases)
      for (const char* m : kModes) {
        std::string line = "\"" + std::string(c) + " " + m + "\"";
        bool any = false;
        for (const char* p : kPaths) {
          const Series* s = d.find(c, p, m);
          line += " " + (s ? num("%.0f", s->med("rps")) : std::string("-"));
          any |= s != nullptr;
        }
        if (any) data += line + "\n", ++clusters;
      }
    if (data.empty() || !makeDirs(dir).ok()) return;
    std::string data_file = dir + "/svc.dat";
    if (!writeFileAtomic(data_file, data).ok()) return;
    std::string script =
        "set terminal pngcairo size 900,520 font ',10'\nset output '" + dir +
        "/svc.png'\n"
        "set title 'Service load balancing: req/s per path (wrk -t1 -c50, median)' noenhanced\n"
        "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
        "set datafile missing '-'\nset grid ytics\nset yrange [0:*]\nset key outside bottom center horizontal\n"
        "set xtics noenhanced\nset ylabel 'req/s'\nset xrange [-0.6:" +
        std::to_string(clusters) +
        "-0.4]\n"
        "plot '" +
        data_file +
        "' using 2:xtic(1) title 'direct (pod network)' lc rgb '#808080', "
        "'' using 3 title 'direct via router' lc rgb '#c0c0c0', '' using 4 title 'offcore ClusterIP' lc rgb '#4060c0', "
        "'' using 5 title 'nftables DNAT VIP' lc rgb '#d08030', '' using 6 title 'direct, native routing' lc rgb "
        "'#60a060', '' using 7 title 'offcore ClusterIP, native routing' lc rgb '#2040a0'\n";
    plotChart(script, data_file, "req/s per path and mode", "svc.png", r);
  }

  Config config_;
};

}  // namespace

std::unique_ptr<BenchSuite> makeSvcSuite(const Config& config) { return std::make_unique<SvcSuite>(config); }

}  // namespace offcore
