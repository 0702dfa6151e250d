// Per-cluster runtime state that outlives config swaps: load-balancer
// state, per-endpoint active requests, outlier detection (consecutive 5xx
// ejection) and circuit-breaker counters. Pure logic: time and randomness
// come from the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mesh/config/snapshot.h"
#include "mesh/route/random.h"

namespace offcore::mesh::route {

using TimePoint = std::chrono::steady_clock::time_point;

std::string endpointKey(const MeshEndpoint& ep);  // "ip:port"

// The most retries a cluster may have outstanding at once (Envoy's retries
// circuit breaker): with a retry budget, max(min_retry_concurrency,
// percent% of `requests`), else the pool's max_retries. `requests` is the
// requests in flight, or those that arrived within the budget's interval.
uint64_t retryLimit(const ConnectionPool& pool, const std::optional<RetryBudget>& budget, uint64_t requests);

// Requests that arrived within the last `interval`, counted in ten slots
// of interval/10 (a slot leaves the window whole, as in Envoy). A change of
// interval starts the count afresh.
class RequestWindow {
 public:
  static constexpr int kSlots = 10;
  void add(TimePoint now, std::chrono::milliseconds interval);
  uint64_t count(TimePoint now, std::chrono::milliseconds interval);

 private:
  void advance(TimePoint now, std::chrono::milliseconds interval);
  std::chrono::milliseconds interval_{0};
  int64_t head_ = 0;  // index of the newest slot: time since epoch / slot length
  uint64_t slots_[kSlots] = {};
};

class ClusterRuntime {
 public:
  // An endpoint among `eps` per the policy, skipping ejected ones (when all
  // are ejected, none is picked: the caller answers 503). hash_value is the
  // consistent-hash header's value (nullptr = absent: falls back to random).
  std::optional<size_t> pick(const std::vector<MeshEndpoint>& eps, const LoadBalancer& lb,
                             const std::string* hash_value, Random& random, TimePoint now);

  // Outlier detection: a response (or connect failure) from `endpoint`.
  // server_error = 5xx, connect failure, reset or timeout. Returns true when
  // this result ejected the endpoint.
  bool onResult(const std::string& endpoint, bool server_error, const OutlierDetection& od, size_t endpoint_count,
                TimePoint now);
  bool ejected(const std::string& endpoint, TimePoint now) const;
  size_t ejectedCount(TimePoint now) const;

  // Least-request accounting.
  void requestStarted(const std::string& endpoint) { ++hosts_[endpoint].active; }
  void requestFinished(const std::string& endpoint);
  uint32_t activeRequests(const std::string& endpoint) const;

  // Circuit breaker (ConnectionPool limits). The proxy keeps the counters.
  struct Counters {
    uint32_t connections = 0;      // open upstream connections
    uint32_t pending = 0;          // requests waiting for a connection
    uint32_t active_requests = 0;  // requests in flight
    uint64_t overflows = 0;        // requests refused by a limit
    uint64_t ejections = 0;
    uint32_t active_retries = 0;   // retried attempts in flight
    uint64_t retry_overflows = 0;  // retries refused by the retry budget
  };
  Counters& counters() { return counters_; }
  const Counters& counters() const { return counters_; }
  bool requestAllowed(const ConnectionPool& pool) const { return counters_.active_requests < pool.http2_max_requests; }
  bool connectAllowed(const ConnectionPool& pool) const { return counters_.connections < pool.max_connections; }
  bool queueAllowed(const ConnectionPool& pool) const { return counters_.pending < pool.http1_max_pending_requests; }

  // Retry budget: a retry holds a slot for the duration of its attempt
  // (startRetry ... retryFinished). Over the limit, startRetry counts an
  // overflow and returns false: no retry, the failure goes to the client.
  // The requests in flight are counters().active_requests (which includes
  // the ones waiting for a connection); with a budget_interval, the
  // requests admitted (requestAdmitted) within it count instead.
  void requestAdmitted(const std::optional<RetryBudget>& budget, TimePoint now);
  bool startRetry(const ConnectionPool& pool, const std::optional<RetryBudget>& budget, TimePoint now);
  void retryFinished();

 private:
  struct Host {
    uint32_t active = 0;
    uint32_t consecutive_errors = 0;
    uint32_t times_ejected = 0;
    std::optional<TimePoint> ejected_until;
  };
  std::map<std::string, Host> hosts_;
  uint64_t rr_next_ = 0;
  Counters counters_;
  RequestWindow window_;
};

}  // namespace offcore::mesh::route
