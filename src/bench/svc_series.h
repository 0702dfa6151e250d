// The svc suite's measurements (src/bench/svc_suite.cc): one Series per
// (case, path, mode) of the driver's JSON lines, medians and per-run pairs;
// and the rows comparing the cross-node paths with the routed baselines
// (svc_routed.cc).
#pragma once

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "base/stats.h"
#include "bench/report.h"

namespace offcore::svcbench {

using nlohmann::json;

struct Series {
  std::map<std::string, std::vector<double>> by_metric;
  std::vector<std::string> failures;  // runs whose wrk gave no result
  std::map<int, double> rps_by_run;   // for ratios paired within a run
  void add(const json& j) {
    if (j.contains("error")) {
      failures.push_back(j.value("error", ""));
      return;
    }
    if (j.contains("run") && j.value("rps", 0.0) > 0) rps_by_run[j.value("run", 0)] = j["rps"].get<double>();
    for (const char* k :
         {"rps", "p50_ms", "p99_ms", "errors", "host_cpu_s", "soc_cpu_s", "machine_cpu_s", "requests", "seconds",
          "resolution_s", "cli_cpu_s", "host_busy_s", "soc_busy_s", "soc_softirq_s", "host_softirq_s"}) {
      if (j.contains(k) && j[k].is_number()) by_metric[k].push_back(j[k].get<double>());
    }
    // Time per request on one connection, connect included: wrk's latency
    // histogram starts at the request write, so it misses the handshake
    // (where a new connection meets the service lookup).
    if (j.value("rps", 0.0) > 0) by_metric["cycle_ms"].push_back(1000.0 * j.value("conns", 1) / j["rps"].get<double>());
    // This machine is shared: what it burnt beyond our cgroups is other tenants' load.
    if (j.contains("machine_cpu_s"))
      by_metric["others_cpu_s"].push_back(j.value("machine_cpu_s", 0.0) - j.value("host_cpu_s", 0.0) -
                                          j.value("soc_cpu_s", 0.0));
    double req = j.value("requests", 0.0);
    if (req > 0) {
      by_metric["cpu_us_per_req"].push_back(1e6 * (j.value("host_cpu_s", 0.0) + j.value("soc_cpu_s", 0.0)) / req);
      by_metric["machine_us_per_req"].push_back(1e6 * j.value("machine_cpu_s", 0.0) / req);
      // Where the work ran (busy time of each domain's cpus, softirq included).
      if (j.contains("host_busy_s")) {
        by_metric["host_us_per_req"].push_back(1e6 * j.value("host_busy_s", 0.0) / req);
        by_metric["soc_us_per_req"].push_back(1e6 * j.value("soc_busy_s", 0.0) / req);
        by_metric["busy_us_per_req"].push_back(1e6 * (j.value("host_busy_s", 0.0) + j.value("soc_busy_s", 0.0)) / req);
      }
    }
    // The share of the dataplane's packets handled on the SoC's cpus.
    double rx = j.value("dp_rx_soc", 0.0) + j.value("dp_rx_other", 0.0);
    if (rx > 0) by_metric["dp_soc_share"].push_back(j.value("dp_rx_soc", 0.0) / rx);
  }
  bool has(const std::string& k) const { return by_metric.count(k) && !by_metric.at(k).empty(); }
  double med(const std::string& k) const { return has(k) ? median(by_metric.at(k)) : 0; }
  size_t n() const {
    return has("rps") ? by_metric.at("rps").size() : has("seconds") ? by_metric.at("seconds").size() : 0;
  }
};

struct Data {
  std::map<std::tuple<std::string, std::string, std::string>, Series> wrk;  // case, path, mode
  std::map<std::pair<std::string, int>, Series> program;                    // impl, services
  std::map<std::tuple<std::string, int, std::string>, Series> latency;      // impl, services, mode
  std::vector<json> checks;                                                 // correctness probes
  // Only series with at least one successful run; failures are reported apart.
  const Series* find(const std::string& c, const std::string& p, const std::string& m) const {
    auto it = wrk.find({c, p, m});
    return it == wrk.end() || it->second.n() == 0 ? nullptr : &it->second;
  }
  bool failed(const std::string& c, const std::string& p, const std::string& m) const {
    auto it = wrk.find({c, p, m});
    return it != wrk.end() && !it->second.failures.empty();
  }
};

inline std::string num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

inline std::string verdict(bool ok) { return ok ? "met" : "NOT met"; }

// a/b for every run both measured. The paths of one run follow each other
// within seconds, so a paired ratio cancels most of this machine's drift.
inline std::vector<double> pairedRatios(const Series& a, const Series& b) {
  std::vector<double> out;
  for (const auto& [run, v] : a.rps_by_run) {
    auto it = b.rps_by_run.find(run);
    if (it != b.rps_by_run.end() && it->second > 0) out.push_back(v / it->second);
  }
  return out;
}

// Cross-node rows per routing mode (tunnel: offcore/direct; native:
// offcore-native/direct-native) against the routed baselines (nft VIP for
// a ClusterIP, direct-router for pod to pod), and where the dataplane ran.
void routedRows(const Data& d, BenchReport& r, std::vector<std::string>& targets);

}  // namespace offcore::svcbench
