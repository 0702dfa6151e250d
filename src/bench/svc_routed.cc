// The cross-node rows of `offcore bench svc` per routing mode (issue 16's
// targets): req/s against the routed baselines, CPU per request where it
// ran, and the share of the dataplane's work on the SoC's cpus.
#include <algorithm>

#include "bench/svc_series.h"

namespace offcore::svcbench {

namespace {

constexpr double kMinRpsTunnel = 0.90;    // cross-node req/s >= 0.9 x routed, tunnel mode
constexpr double kMinRpsNative = 0.95;    // ... >= 0.95 x routed, native mode
constexpr double kMaxCpuVsRouted = 1.10;  // CPU per request <= 1.1 x routed
constexpr double kMinSocShare = 0.90;     // >= 90% of the dataplane's work on the SoC's cpus

// offcore / baseline req/s: the median of per-run ratios when there are two
// or more, else the ratio of the medians.
double rpsRatio(const Series& oc, const Series& base) {
  auto pr = pairedRatios(oc, base);
  return pr.size() >= 2 ? median(pr) : oc.med("rps") / std::max(1.0, base.med("rps"));
}

}  // namespace

void routedRows(const Data& d, BenchReport& r, std::vector<std::string>& targets) {
  const char* modes[] = {"keepalive", "close"};
  struct Routing {
    const char* name;
    const char* suffix;
    double min_rps;
  };
  for (const Routing& rt : {Routing{"tunnel", "", kMinRpsTunnel}, Routing{"native", "-native", kMinRpsNative}}) {
    for (const char* m : modes) {
      const std::string where = std::string("cross-node ") + m + ", " + rt.name;
      const Series* nft = d.find("cross-node", "nft", m);
      const Series* router = d.find("cross-node", "direct-router", m);
      const Series* oc = d.find("cross-node", std::string("offcore") + rt.suffix, m);
      const Series* pod = d.find("cross-node", std::string("direct") + rt.suffix, m);
      for (const auto& [what, mine, base, base_name] :
           {std::tuple{"ClusterIP", oc, nft, "nft VIP"}, std::tuple{"pod to pod", pod, router, "direct-router"}}) {
        if (!mine || !base) continue;
        double q = rpsRatio(*mine, *base);
        bool ok = q >= rt.min_rps;
        BenchRow b{
            where + ": req/s, " + what + " vs " + base_name, "req/s", mine->med("rps"), base->med("rps"), false, ""};
        b.detail = "ratio " + num("%.2f", q) + (pairedRatios(*mine, *base).size() >= 2 ? " (median of per-run)" : "") +
                   "; p50 " + num("%.2f", mine->med("p50_ms")) + " vs " + num("%.2f", base->med("p50_ms")) +
                   " ms; target >= " + num("%.2f", rt.min_rps) + "x: " + verdict(ok);
        r.rows.push_back(b);
        targets.push_back(where + " " + what + " req/s >= " + num("%.2f", rt.min_rps) + "x " + base_name + ": " +
                          verdict(ok) + " (" + num("%.2f", q) + "x)");
        if (!mine->has("busy_us_per_req") || !base->has("busy_us_per_req")) continue;
        double cpu = mine->med("busy_us_per_req"), base_cpu = base->med("busy_us_per_req");
        bool cpu_ok = cpu <= kMaxCpuVsRouted * base_cpu;
        r.rows.push_back({where + ": CPU per request, " + what + " vs " + base_name, "us", cpu, base_cpu, true,
                          "host cpus " + num("%.1f", mine->med("host_us_per_req")) + " + SoC cpus " +
                              num("%.1f", mine->med("soc_us_per_req")) + " us (baseline host " +
                              num("%.1f", base->med("host_us_per_req")) + " + " +
                              num("%.1f", base->med("soc_us_per_req")) +
                              "); target <= " + num("%.2f", kMaxCpuVsRouted) + "x: " + verdict(cpu_ok)});
        targets.push_back(where + " " + what + " CPU per request <= " + num("%.2f", kMaxCpuVsRouted) + "x " +
                          base_name + ": " + verdict(cpu_ok) + " (" + num("%.2f", cpu / std::max(1e-9, base_cpu)) +
                          "x)");
        bool host_ok = mine->med("host_us_per_req") <= base->med("host_us_per_req");
        targets.push_back(where + " " + what + " host-cpu time per request <= " + base_name +
                          "'s: " + verdict(host_ok) + " (" + num("%.1f", mine->med("host_us_per_req")) + " vs " +
                          num("%.1f", base->med("host_us_per_req")) + " us)");
      }
      if (oc && oc->has("dp_soc_share")) {
        double share = oc->med("dp_soc_share");
        bool ok = share >= kMinSocShare;
        r.rows.push_back(
            {where + ": dataplane packets handled on the SoC's cpus", "%", 100 * share, std::nullopt, false,
             "per-cpu RX counter of the BPF program, both nodes; SoC cpus' softirq " +
                 num("%.2f", oc->med("soc_softirq_s")) + " s, host cpus' " + num("%.2f", oc->med("host_softirq_s")) +
                 " s per run (tick-sampled); target >= " + num("%.0f", 100 * kMinSocShare) + "%: " + verdict(ok)});
        targets.push_back(where + ": dataplane on the SoC's cpus >= 90%: " + verdict(ok) + " (" +
                          num("%.1f", 100 * share) + "%)");
      }
    }
  }
}

}  // namespace offcore::svcbench
