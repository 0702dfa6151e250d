// What the L7 proxy records per request: Prometheus series in a
// MetricsRegistry (counters and a latency histogram by route, cluster,
// source/destination workload and response code) and one JSON access-log
// line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <unordered_map>

#include "base/metrics.h"

namespace offcore::mesh::l7 {

struct RequestRecord {
  std::chrono::system_clock::time_point start;
  double duration_ms = 0;
  std::string source_workload, destination_workload;
  std::string method, path, authority;
  int status = 0;
  uint64_t request_bytes = 0, response_bytes = 0;  // bodies
  std::string upstream_host;                       // "ip:port", "" when none was reached
  uint32_t retries = 0;
  std::string grpc_status;  // gRPC requests: the grpc-status answered ("" otherwise)
  std::string route, cluster;
  // The retry policy asked for a retry but more than request_buffer_limit
  // of the body had gone upstream already (Envoy's retry_or_shadow_abandoned).
  bool retry_abandoned = false;
  uint64_t request_buffer_peak = 0;  // request body bytes the proxy held at most
  std::string flags;                 // why the proxy answered itself: "UO" overflow, "UH" no healthy, "UT" timeout,
                                     // "UF" connect failure, "UR" upstream reset, "FI" fault abort, "RBAC" denied,
                                     // "NR" no route, "DPE" bad request, "SI" stream idle timeout
};

using AccessLog = std::function<void(const RequestRecord&)>;

// One JSON object, no newline.
std::string accessLogJson(const RequestRecord& r);

// Histogram bucket bounds (ms) of offcore_mesh_request_duration_ms.
inline constexpr double kLatencyBucketsMs[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

class HttpStats {
 public:
  explicit HttpStats(MetricsRegistry& registry);
  void record(const RequestRecord& r);
  // Also counted: circuit-breaker overflows and outlier ejections by cluster.
  void overflow(const std::string& cluster);
  void ejection(const std::string& cluster);
  // A stream started on an HTTP/2 upstream connection with `active` streams
  // (this one included); new_conn: the connection's first stream.
  void upstreamH2Stream(const std::string& cluster, size_t active, bool new_conn);
  // A retry the cluster's retry budget refused (Envoy's upstream_rq_retry_overflow).
  void retryOverflow(const std::string& cluster);
  // A retry not attempted because the request body was no longer held whole.
  void retryAbandoned(const std::string& cluster);
  // A request stream cut by the stream idle timeout (Envoy's downstream_rq_idle_timeout).
  void streamIdleTimeout(const std::string& cluster);
  MetricsRegistry& registry() { return registry_; }

 private:
  // The series of one (route, cluster, source, destination), resolved on its
  // first request: later requests bump pointers instead of rendering labels.
  struct Series {
    MetricsRegistry::Labels labels;
    double* request_bytes = nullptr;
    double* response_bytes = nullptr;
    double* retries = nullptr;  // created by the first retry
    double* buckets[std::size(kLatencyBucketsMs) + 1] = {};
    double* sum = nullptr;
    double* count = nullptr;
    std::map<std::pair<int, std::string>, double*> by_code;  // (status, grpc-status)
  };
  Series& seriesFor(const RequestRecord& r);

  MetricsRegistry& registry_;
  std::unordered_map<std::string, Series> series_;
  // Per cluster: HTTP/2 upstream connections, streams, peak concurrent streams.
  struct H2Series {
    double* connections = nullptr;
    double* streams = nullptr;
    double* peak = nullptr;
  };
  std::unordered_map<std::string, H2Series> h2_series_;
};

}  // namespace offcore::mesh::l7
