// `offcore bench mesh`: the node proxy in the SoC against per-pod sidecars.
// At each pod count the same paced load (h2load, a fixed total request
// rate) runs four ways: direct (no mesh), haproxy sidecars with nftables
// REDIRECT in every pod (Istio's sidecar mode, mTLS between sidecars), and
// offcore's node proxies at L4 and at L7. The orchestration is the shell
// driver scripts/bench/mesh.sh; this suite runs it and turns its JSON lines
// into the report (medians over --runs, the mesh's cost paired with the
// direct run of the same round) and a chart of the mesh's CPU and memory
// against the pod count.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "base/files.h"
#include "base/stats.h"
#include "base/subprocess.h"
#include "bench/driver.h"
#include "bench/suite.h"

namespace offcore {
namespace {

using nlohmann::json;

// The targets.
constexpr double kMaxCpuVsSidecar = 0.6;  // offcore L7 CPU per request <= 0.6 x the sidecars'
constexpr double kMaxAddedP99 = 1.5;      // the p99 the mesh adds <= 1.5 x the direct p99 (the words)
constexpr double kHostCpuZero = 0.05;     // "host CPU of the mesh ~ 0": under 5% of the sidecars'
const char* kModes[] = {"direct", "sidecar", "l4", "l7"};

struct Run {
  double host = 0, soc = 0, wall = 0, rate = 0, p50 = 0, p99 = 0, requests = 0, bad = 0, rps = 0;
  // Cores the run used per 1,000 req/s it served (not offered: a deployment
  // that falls behind the pacing must not look cheap), in millicores.
  double mcores(double cpu) const { return wall > 0 && rps > 0 ? 1e6 * cpu / wall / rps : 0; }
};

struct Data {
  std::map<std::pair<int, std::string>, std::map<int, Run>> runs;  // (pods, mode) -> run -> measurement
  std::map<std::pair<int, std::string>, std::vector<double>> pss;  // (pods, sidecar|offcore) -> KiB
  std::set<int> pods;
  std::optional<bool> rx_steering;  // the nodes' receive steering (config rx_steering)
  int rt_priority = 0;              // the node proxies' SCHED_FIFO priority (0 = normal scheduler)
  std::vector<std::string> stalls;  // the machine's own stalls per cpu, before and after (stall_probe.py)
  const Run* find(int pods, const std::string& mode, int run) const {
    auto it = runs.find({pods, mode});
    if (it == runs.end()) return nullptr;
    auto r = it->second.find(run);
    return r == it->second.end() ? nullptr : &r->second;
  }
  // Medians over the runs of f(mode's run, the direct run of the same round).
  template <typename F>
  std::optional<double> paired(int pods, const std::string& mode, F f) const {
    auto it = runs.find({pods, mode});
    if (it == runs.end()) return std::nullopt;
    std::vector<double> v;
    for (const auto& [run, m] : it->second)
      if (const Run* d = find(pods, "direct", run)) v.push_back(f(m, *d));
    if (v.empty()) return std::nullopt;
    return median(v);
  }
};

std::string num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string verdict(bool ok) { return ok ? "met" : "NOT met"; }

// Least-squares slope of y over x.
double slope(const std::vector<std::pair<double, double>>& xy) {
  double n = static_cast<double>(xy.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : xy) sx += x, sy += y, sxx += x * x, sxy += x * y;
  double den = n * sxx - sx * sx;
  return xy.size() < 2 || den == 0 ? 0 : (n * sxy - sx * sy) / den;
}

class MeshSuite final : public BenchSuite {
 public:
  explicit MeshSuite(Config config) : config_(std::move(config)) {}
  std::string name() const override { return "mesh"; }
  std::string summary() const override {
    return "service mesh: offcore node proxy (L4, L7) vs haproxy sidecars per pod vs no mesh (h2load, paced)";
  }

  Result<BenchReport> run(const BenchOptions& options) override {
    std::vector<std::string> args{"--runs", std::to_string(options.quick ? 1 : options.runs)};
    if (options.quick) args.push_back("--quick");
    // ocbm-: the prefix every name of this bench carries (see scripts/bench/mesh.sh).
    OC_ASSIGN_OR_RETURN(auto lines, runBenchDriver({"scripts/bench/mesh.sh", "mesh driver", "ocbm-mesh", args}));
    Data d;
    for (const json& j : lines) {
      int pods = j.value("pods", 0);
      if (j.value("case", "") == "machine") {
        d.stalls.push_back("cpu " + std::to_string(j.value("cpu", -1)) + " " + j.value("when", "") + ": " +
                           std::to_string(j.value("stalls", 0)) + " stalls over 1 ms in " +
                           num("%.1f", j.value("seconds", 0.0)) + " s, longest " + num("%.1f", j.value("max_ms", 0.0)) +
                           " ms");
      } else if (j.value("case", "") == "memory") {
        d.pss[{pods, j.value("mode", "")}].push_back(j.value("pss_kib", 0.0));
      } else if (j.value("case", "") == "paced") {
        Run r{j.value("host_cpu_s", 0.0), j.value("soc_cpu_s", 0.0),
              j.value("wall_s", 0.0),     j.value("rate", 0.0),
              j.value("p50_ms", 0.0),     j.value("p99_ms", 0.0),
              j.value("requests", 0.0),   j.value("failed", 0.0) + j.value("errored", 0.0) + j.value("non2xx", 0.0),
              j.value("rps", 0.0)};
        d.runs[{pods, j.value("mode", "")}][j.value("run", 0)] = r;
        if (j.contains("rx_steering")) d.rx_steering = j.value("rx_steering", true);
        d.rt_priority = j.value("rt_priority", 0);
        d.pods.insert(pods);
      }
    }
    if (d.runs.empty()) return makeError("the mesh driver produced no measurements");
    BenchReport r = buildReport(d, options);
    plot(d, options.out_dir, r);
    return r;
  }

 private:
  BenchReport buildReport(const Data& d, const BenchOptions& options) const {
    BenchReport r;
    r.suite = "mesh";
    r.title = "Service mesh: one node proxy in the SoC vs a sidecar per pod";
    r.baseline_name = "haproxy sidecars (CPU, memory rows) or no mesh (latency rows)";
    r.plot = false;  // our own chart: the mesh's CPU and memory against the pod count
    int runs = options.quick ? 1 : options.runs;
    r.method =
        "Two software DPUs; at each pod count N, N plain pods and N mesh pods (half nginx servers, half clients, "
        "alternating over the two nodes, so about half the requests cross nodes). Every client runs h2load --h1 -c1 "
        "--rps (one keep-alive connection, the rates adding up to 1000 req/s) for " +
        std::string(options.quick ? "3" : "10") +
        " s to a Service over 2..N/2 endpoints: direct = the plain pods through offcore's ClusterIP; sidecar = the "
        "plain pods, each with a haproxy 2.6 sidecar (one thread, HTTP mode, round robin, keep-alive, mTLS "
        "between sidecars with P-256 certificates and TLS 1.3) and nftables REDIRECT in its own namespace, outbound "
        "VIP:80 to 15001, inbound :80 to 15006, as Istio's sidecar mode does; l4 / l7 = the mesh pods through the "
        "node proxies in the SoCs (appProtocol tcp / http with a VirtualService carrying a timeout and retries; "
        "HBONE mTLS between nodes). CPU: busy time of the host cpus and of the SoC cpus over the run (wall time minus "
        "/proc/stat idle and iowait, which the kernel measures exactly), where the work ran: receive steering (RPS) "
        "runs the pod network's receive "
        "work on the SoC's cpus, often while they are idle, which no cgroup is charged for (the cgroup figures are "
        "in the driver's JSON lines as cg_host_cpu_s / cg_soc_cpu_s). In millicores per 1,000 req/s served; the "
        "mesh's share is the run minus the direct run of the same round (clients, servers and the pod network are "
        "the same). Latency: every request's time from the h2load log. Memory: PSS of the "
        "sidecars, or of the node proxies (keeper + worker, both nodes), after the run. Medians over " +
        std::to_string(runs) + " run(s); modes alternate order between runs.";
    for (int pods : d.pods) {
      auto added = [&](const std::string& mode, bool host, bool soc) {
        return d.paired(pods, mode, [&](const Run& m, const Run& dir) {
          double cm = (host ? m.host : 0) + (soc ? m.soc : 0), cd = (host ? dir.host : 0) + (soc ? dir.soc : 0);
          return m.mcores(cm) - dir.mcores(cd);
        });
      };
      std::string p = std::to_string(pods) + " pods: ";
      auto l7 = added("l7", true, true), l4 = added("l4", true, true), sc = added("sidecar", true, true);
      auto l7_host = added("l7", true, false), l7_soc = added("l7", false, true);
      auto sc_host = added("sidecar", true, false);
      if (l7 && sc) {
        double ratio_v = *sc > 0 ? *l7 / *sc : 0;
        r.rows.push_back({p + "mesh CPU, offcore L7 vs sidecars", "mcores per 1k req/s", *l7, *sc, true,
                          "offcore L7: host " + num("%.0f", l7_host.value_or(0)) + " + SoC " +
                              num("%.0f", l7_soc.value_or(0)) + "; sidecars: host " + num("%.0f", sc_host.value_or(0)) +
                              "; target <= " + num("%.1f", kMaxCpuVsSidecar) +
                              "x: " + verdict(*sc > 0 && ratio_v <= kMaxCpuVsSidecar)});
      }
      if (l4 && sc) {
        r.rows.push_back({p + "mesh CPU, offcore L4 vs sidecars", "mcores per 1k req/s", *l4, *sc, true,
                          "host " + num("%.0f", added("l4", true, false).value_or(0)) + " + SoC " +
                              num("%.0f", added("l4", false, true).value_or(0))});
      }
      if (l7_host && sc_host) {
        r.rows.push_back({p + "host-domain CPU of the mesh, offcore L7 vs sidecars", "mcores per 1k req/s", *l7_host,
                          *sc_host, true,
                          "target ~ 0 (under " + num("%.0f", 100 * kHostCpuZero) +
                              "% of the sidecars'): " + verdict(*sc_host > 0 && *l7_host <= kHostCpuZero * *sc_host)});
      }
      for (const char* mode : {"l7", "l4", "sidecar"}) {
        auto p99 = d.paired(pods, mode, [](const Run& m, const Run&) { return m.p99; });
        auto p99d = d.paired(pods, mode, [](const Run&, const Run& dir) { return dir.p99; });
        auto p50 = d.paired(pods, mode, [](const Run& m, const Run&) { return m.p50; });
        auto p50d = d.paired(pods, mode, [](const Run&, const Run& dir) { return dir.p50; });
        auto ratio99 =
            d.paired(pods, mode, [](const Run& m, const Run& dir) { return dir.p99 > 0 ? m.p99 / dir.p99 : 0; });
        auto added99 = d.paired(
            pods, mode, [](const Run& m, const Run& dir) { return dir.p99 > 0 ? (m.p99 - dir.p99) / dir.p99 : 0; });
        if (!p99 || !p99d) continue;
        std::string label =
            std::string(mode) == "sidecar" ? "sidecars" : std::string("offcore ") + (mode[1] == '7' ? "L7" : "L4");
        std::string detail = "p50 " + num("%.3f", *p50) + " ms vs " + num("%.3f", *p50d) + " (added p50 " +
                             num("%.3f", *p50 - *p50d) + ", p99 " + num("%.3f", *p99 - *p99d) +
                             " ms); per-run p99 ratio " + num("%.2f", ratio99.value_or(0));
        if (std::string(mode) == "l7")
          detail += "; added p99 per run " + num("%.2f", added99.value_or(0)) +
                    "x the direct p99, target <= " + num("%.1f", kMaxAddedP99) +
                    "x: " + verdict(added99.value_or(99) <= kMaxAddedP99);
        r.rows.push_back({p + "p99 latency at 1k req/s, " + label + " vs direct", "ms", *p99, *p99d, true, detail});
      }
      // A deployment that cannot keep the pace: its latency is queueing.
      for (const char* mode : kModes) {
        auto served = d.paired(pods, mode, [](const Run& m, const Run&) { return m.rps; });
        auto offered = d.paired(pods, mode, [](const Run& m, const Run&) { return m.rate; });
        if (served && offered && *served < 0.95 * *offered)
          r.notes.push_back(p + std::string(mode) + " served " + num("%.0f", *served) + " of " + num("%.0f", *offered) +
                            " req/s offered (median): it could not keep the pace on this machine, so its latency "
                            "rows measure queueing; its CPU rows are per request served.");
      }
      auto oc_mem = d.pss.find({pods, "offcore"}), sc_mem = d.pss.find({pods, "sidecar"});
      if (oc_mem != d.pss.end() && sc_mem != d.pss.end()) {
        r.rows.push_back({p + "memory of the mesh (PSS)", "MiB", median(oc_mem->second) / 1024,
                          median(sc_mem->second) / 1024, true, "offcore: 2 node proxies; sidecars: one per pod"});
      }
      double bad = 0, total = 0;
      for (const char* mode : kModes) {
        auto it = d.runs.find({pods, mode});
        if (it == d.runs.end()) continue;
        for (const auto& [run, m] : it->second) bad += m.bad, total += m.requests;
      }
      r.notes.push_back(std::to_string(pods) + " pods: " + num("%.0f", total) + " requests over all modes and runs, " +
                        num("%.0f", bad) + " failed or non-2xx.");
    }
    std::vector<std::pair<double, double>> oc_xy, sc_xy;
    for (const auto& [k, v] : d.pss) (k.second == "offcore" ? oc_xy : sc_xy).push_back({k.first, median(v) / 1024});
    if (oc_xy.size() >= 2 && sc_xy.size() >= 2) {
      r.rows.push_back({"memory slope", "MiB per pod", slope(oc_xy), slope(sc_xy), true,
                        "least squares over the pod counts; the sidecars grow with every pod, the node proxies "
                        "only with connections and config"});
    }
    r.notes.push_back(
        "What is left of the host-domain CPU added by offcore's mesh is the pod network's, not the proxy's: a veth "
        "hands a packet over in the sender's context, and with receive steering the sending host cpu still queues "
        "it and sends the IPI that wakes the SoC's cpu (src/dpu/rx_steering.h).");
    if (d.rx_steering)
      r.notes.push_back(
          std::string("Receive steering (RPS to the SoC's cpus, src/dpu/rx_steering.h): ") +
          (*d.rx_steering ? "on" : "off (scripts/bench/mesh.sh --no-rx-steering)") + "; node proxies at " +
          (d.rt_priority > 0 ? "SCHED_FIFO " + std::to_string(d.rt_priority) : "the normal scheduler") + ".");
    if (!d.stalls.empty()) {
      std::string all;
      for (const auto& s : d.stalls) all += (all.empty() ? "" : "; ") + s;
      r.notes.push_back(
          "The machine's own stalls (scripts/bench/stall_probe.py: a SCHED_FIFO spinner per cpu, no load running; "
          "what still stops it is interrupts, kernel work and the hypervisor descheduling the vcpu, which this guest "
          "does not see as steal time): " +
          all + ". A request in flight waits out a stall of any cpu it needs; the p99 rows are read against these.");
    }
    r.notes.push_back("CPU, memory rows: lower is better; a ratio under 1 favours offcore.");
    return r;
  }

  void plot(const Data& d, const std::string& dir, BenchReport& r) const {
    std::string data;
    for (int pods : d.pods) {
      auto added = [&](const std::string& mode) {
        auto v = d.paired(pods, mode, [](const Run& m, const Run& dir) {
          return m.mcores(m.host + m.soc) - dir.mcores(dir.host + dir.soc);
        });
        return v ? num("%.1f", *v) : std::string("-");
      };
      auto mem = [&](const std::string& mode) {
        auto it = d.pss.find({pods, mode});
        return it == d.pss.end() ? std::string("-") : num("%.1f", median(it->second) / 1024);
      };
      data += std::to_string(pods) + " " + added("sidecar") + " " + added("l4") + " " + added("l7") + " " +
              mem("sidecar") + " " + mem("offcore") + "\n";
    }
    if (data.empty() || !makeDirs(dir).ok()) return;
    std::string data_file = dir + "/mesh.dat";
    if (!writeFileAtomic(data_file, data).ok()) return;
    std::string script =
        "set terminal pngcairo size 1000,420 font ',10'\nset output '" + dir +
        "/mesh.png'\nset multiplot layout 1,2 title 'Service mesh at 1k req/s (medians)' noenhanced\n"
        "set datafile missing '-'\nset grid\nset key top left\nset xlabel 'pods'\nset yrange [0:*]\n"
        "set ylabel 'mesh CPU, millicores per 1k req/s'\nplot '" +
        data_file +
        "' using 1:2 with linespoints lw 2 title 'haproxy sidecars', '' using 1:3 with linespoints lw 2 title "
        "'offcore L4', '' using 1:4 with linespoints lw 2 title 'offcore L7'\n"
        "set ylabel 'mesh memory, MiB PSS'\nplot '" +
        data_file +
        "' using 1:5 with linespoints lw 2 title 'haproxy sidecars', '' using 1:6 with linespoints lw 2 title "
        "'offcore node proxies'\nunset multiplot\n";
    plotChart(script, data_file, "mesh CPU and memory against pods", "mesh.png", r);
  }

  Config config_;
};

}  // namespace

std::unique_ptr<BenchSuite> makeMeshSuite(const Config& config) { return std::make_unique<MeshSuite>(config); }

}  // namespace offcore
