#include "mesh/route/cluster.h"

#include <algorithm>

#include "base/assert.h"

namespace offcore::mesh::route {

std::string endpointKey(const MeshEndpoint& ep) { return ep.ip + ":" + std::to_string(ep.port); }

uint64_t retryLimit(const ConnectionPool& pool, const std::optional<RetryBudget>& budget, uint64_t requests) {
  if (!budget) return pool.max_retries;
  double share = std::clamp(budget->percent, 0.0, 100.0) / 100.0 * static_cast<double>(requests);
  return std::max<uint64_t>(static_cast<uint64_t>(share), budget->min_retry_concurrency);
}

void RequestWindow::advance(TimePoint now, std::chrono::milliseconds interval) {
  OC_ASSERT(interval.count() > 0, "a request window needs an interval");
  auto slot_us = std::max<int64_t>(1, interval.count() * 1000 / kSlots);
  int64_t at = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() / slot_us;
  if (interval != interval_) {  // a new window: its slots are of another length
    interval_ = interval;
    std::fill(std::begin(slots_), std::end(slots_), 0);
    head_ = at;
    return;
  }
  if (at <= head_) return;  // the same slot (or a clock read out of order)
  for (int64_t i = head_ + 1; i <= at && i <= head_ + kSlots; ++i) slots_[i % kSlots] = 0;
  head_ = at;
}

void RequestWindow::add(TimePoint now, std::chrono::milliseconds interval) {
  advance(now, interval);
  ++slots_[head_ % kSlots];
}

uint64_t RequestWindow::count(TimePoint now, std::chrono::milliseconds interval) {
  advance(now, interval);
  uint64_t sum = 0;
  for (auto n : slots_) sum += n;
  return sum;
}

void ClusterRuntime::requestAdmitted(const std::optional<RetryBudget>& budget, TimePoint now) {
  if (budget && budget->budget_interval.count() > 0) window_.add(now, budget->budget_interval);
}

bool ClusterRuntime::startRetry(const ConnectionPool& pool, const std::optional<RetryBudget>& budget, TimePoint now) {
  uint64_t requests = counters_.active_requests;
  if (budget && budget->budget_interval.count() > 0) requests = window_.count(now, budget->budget_interval);
  if (counters_.active_retries >= retryLimit(pool, budget, requests)) {
    ++counters_.retry_overflows;
    return false;
  }
  ++counters_.active_retries;
  return true;
}

void ClusterRuntime::retryFinished() {
  OC_ASSERT(counters_.active_retries > 0, "a retry finished that never started");
  --counters_.active_retries;
}

std::optional<size_t> ClusterRuntime::pick(const std::vector<MeshEndpoint>& eps, const LoadBalancer& lb,
                                           const std::string* hash_value, Random& random, TimePoint now) {
  std::vector<size_t> live;
  live.reserve(eps.size());
  for (size_t i = 0; i < eps.size(); ++i)
    if (!ejected(endpointKey(eps[i]), now)) live.push_back(i);
  if (live.empty()) return std::nullopt;
  if (!lb.hash_header.empty() && hash_value) {
    // Rendezvous (highest random weight) hashing: the same key keeps its
    // endpoint, and only keys of a removed endpoint move.
    size_t best = live[0];
    uint64_t best_score = 0;
    for (size_t i : live) {
      std::string k = endpointKey(eps[i]);
      uint64_t s = fnv1a(k.data(), k.size(), fnv1a(hash_value->data(), hash_value->size()));
      s ^= s >> 33;
      s *= 0xff51afd7ed558ccdULL;
      s ^= s >> 33;
      if (i == live[0] || s > best_score) {
        best = i;
        best_score = s;
      }
    }
    return best;
  }
  switch (lb.simple) {
    case LoadBalancer::Simple::kRoundRobin: return live[rr_next_++ % live.size()];
    case LoadBalancer::Simple::kRandom: return live[random.below(live.size())];
    case LoadBalancer::Simple::kLeastRequest: {
      // Power of two choices.
      size_t a = live[random.below(live.size())];
      size_t b = live[random.below(live.size())];
      return activeRequests(endpointKey(eps[b])) < activeRequests(endpointKey(eps[a])) ? b : a;
    }
  }
  return live[0];
}

bool ClusterRuntime::onResult(const std::string& endpoint, bool server_error, const OutlierDetection& od,
                              size_t endpoint_count, TimePoint now) {
  Host& h = hosts_[endpoint];
  if (!server_error) {
    h.consecutive_errors = 0;
    return false;
  }
  ++h.consecutive_errors;
  if (od.consecutive_5xx_errors == 0 || h.consecutive_errors < od.consecutive_5xx_errors) return false;
  if (ejected(endpoint, now)) return false;
  // Envoy's rule: eject while under max_ejection_percent, and at least one.
  size_t max = std::max<size_t>(1, endpoint_count * od.max_ejection_percent / 100);
  if (ejectedCount(now) >= max) return false;
  ++h.times_ejected;
  h.ejected_until = now + od.base_ejection_time * h.times_ejected;
  h.consecutive_errors = 0;
  ++counters_.ejections;
  return true;
}

bool ClusterRuntime::ejected(const std::string& endpoint, TimePoint now) const {
  auto it = hosts_.find(endpoint);
  return it != hosts_.end() && it->second.ejected_until && now < *it->second.ejected_until;
}

size_t ClusterRuntime::ejectedCount(TimePoint now) const {
  size_t n = 0;
  for (const auto& [k, h] : hosts_)
    if (h.ejected_until && now < *h.ejected_until) ++n;
  return n;
}

void ClusterRuntime::requestFinished(const std::string& endpoint) {
  auto it = hosts_.find(endpoint);
  if (it != hosts_.end() && it->second.active > 0) --it->second.active;
}

uint32_t ClusterRuntime::activeRequests(const std::string& endpoint) const {
  auto it = hosts_.find(endpoint);
  return it == hosts_.end() ? 0 : it->second.active;
}

}  // namespace offcore::mesh::route
