#include "mesh/l7/stats.h"

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace offcore::mesh::l7 {

std::string accessLogJson(const RequestRecord& r) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.start.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[40];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
  nlohmann::json j = {{"time", std::string(when) + frac},
                      {"source_workload", r.source_workload},
                      {"destination_workload", r.destination_workload},
                      {"method", r.method},
                      {"path", r.path},
                      {"authority", r.authority},
                      {"status", r.status},
                      {"duration_ms", r.duration_ms},
                      {"request_bytes", r.request_bytes},
                      {"response_bytes", r.response_bytes},
                      {"upstream_host", r.upstream_host},
                      {"retries", r.retries},
                      {"route", r.route},
                      {"cluster", r.cluster},
                      {"flags", r.flags}};
  return dumpJson(j);
}

HttpStats::HttpStats(MetricsRegistry& registry) : registry_(registry) {
  registry_.describe("offcore_mesh_requests_total", "counter", "HTTP requests through the node proxy");
  registry_.describe("offcore_mesh_request_duration_ms", "histogram", "HTTP request duration through the proxy");
  registry_.describe("offcore_mesh_request_bytes_total", "counter", "HTTP request body bytes");
  registry_.describe("offcore_mesh_response_bytes_total", "counter", "HTTP response body bytes");
  registry_.describe("offcore_mesh_retries_total", "counter", "upstream retries");
  registry_.describe("offcore_mesh_overflow_total", "counter", "requests refused by a circuit breaker");
  registry_.describe("offcore_mesh_ejections_total", "counter", "outlier ejections");
  registry_.describe("offcore_mesh_retry_overflow_total", "counter", "retries refused by the retry budget");
}

void HttpStats::record(const RequestRecord& r) {
  MetricsRegistry::Labels base = {{"route", r.route},
                                  {"cluster", r.cluster},
                                  {"source_workload", r.source_workload},
                                  {"destination_workload", r.destination_workload}};
  auto with_code = base;
  with_code.emplace_back("response_code", std::to_string(r.status));
  registry_.add("offcore_mesh_requests_total", with_code, 1);
  registry_.add("offcore_mesh_request_bytes_total", base, static_cast<double>(r.request_bytes));
  registry_.add("offcore_mesh_response_bytes_total", base, static_cast<double>(r.response_bytes));
  if (r.retries) registry_.add("offcore_mesh_retries_total", base, r.retries);
  for (double le : kLatencyBucketsMs) {
    if (r.duration_ms > le) continue;
    auto l = base;
    char b[32];
    std::snprintf(b, sizeof b, "%g", le);
    l.emplace_back("le", b);
    registry_.add("offcore_mesh_request_duration_ms_bucket", l, 1);
  }
  auto inf = base;
  inf.emplace_back("le", "+Inf");
  registry_.add("offcore_mesh_request_duration_ms_bucket", inf, 1);
  registry_.add("offcore_mesh_request_duration_ms_sum", base, r.duration_ms);
  registry_.add("offcore_mesh_request_duration_ms_count", base, 1);
}

void HttpStats::overflow(const std::string& cluster) {
  registry_.add("offcore_mesh_overflow_total", {{"cluster", cluster}}, 1);
}

void HttpStats::ejection(const std::string& cluster) {
  registry_.add("offcore_mesh_ejections_total", {{"cluster", cluster}}, 1);
}

void HttpStats::retryOverflow(const std::string& cluster) {
  registry_.add("offcore_mesh_retry_overflow_total", {{"cluster", cluster}}, 1);
}

}  // namespace offcore::mesh::l7
