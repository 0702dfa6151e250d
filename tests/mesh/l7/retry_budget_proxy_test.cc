// The retry budget through the L7 proxy: an upstream that answers 503 to
// everything, a route that retries 5xx five times, concurrent clients. With
// maxRetries 1 the upstream sees about one retry at a time; without it,
// every request is tried six times.
#include <gtest/gtest.h>

#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {
namespace {

constexpr int kClients = 10;
const std::string kCluster = "web:80";

// /prime goes to the same cluster without retries (it fills the budget's
// window); everything else retries 5xx five times.
Snapshot failingWeb(std::optional<ConnectionPool> pool, std::optional<RetryBudget> budget) {
  Snapshot s;
  s.services = {service("web", "10.96.0.10", {endpoint("10.1.0.1", 8080)})};
  HttpRoute prime = routeTo({dest("web")});
  HttpMatch m;
  m.uri = StringMatch{StringMatch::Kind::kPrefix, "/prime"};
  prime.match = {m};
  HttpRoute r = routeTo({dest("web")});
  r.retries = RetryPolicy{5, Millis(0), {"5xx"}};
  VirtualService vs;
  vs.name = "web";
  vs.hosts = {"web"};
  vs.http = {prime, r};
  s.config.virtual_services = {vs};
  DestinationRule dr;
  dr.host = "web";
  dr.traffic_policy.connection_pool = pool;
  dr.traffic_policy.retry_budget = budget;
  s.config.destination_rules = {dr};
  return s;
}

class RetryBudgetProxyTest : public ProxyTest {
 protected:
  // `primes` requests one after another (not retried), then kClients
  // concurrent ones; returns the upstream's hits for the concurrent ones.
  int storm(int primes = 0) {
    auto& web = server("10.1.0.1", 8080, "web", [](const http::MessageHead&, int) { return Reply{503, "down", 40}; });
    auto first = client();
    for (int i = 0; i < primes; ++i) EXPECT_EQ(first->request("/prime").status, 503);
    int primed = web.hits;
    EXPECT_EQ(primed, primes);
    std::vector<std::unique_ptr<Client>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(client());
    for (auto& c : clients) c->get("/");
    for (auto& c : clients) {
      EXPECT_TRUE(c->waitFor(1));
      if (!c->responses.empty()) {
        EXPECT_EQ(c->responses[0].status, 503);
        EXPECT_EQ(c->responses[0].body, "down");  // the upstream's own answer, over budget or not
      }
    }
    return web.hits - primed;
  }
  double overflowMetric() { return metrics.get("offcore_mesh_retry_overflow_total", {{"cluster", kCluster}}); }
};

TEST_F(RetryBudgetProxyTest, WithoutALimitEveryRequestIsTriedSixTimes) {
  apply(failingWeb(std::nullopt, std::nullopt));
  EXPECT_EQ(storm(), kClients * 6);
  EXPECT_EQ(ctx->cluster(kCluster).counters().retry_overflows, 0u);
  EXPECT_EQ(overflowMetric(), 0);
  uint32_t retries = 0;
  for (const auto& r : log) retries += r.retries;
  EXPECT_EQ(retries, kClients * 5u);
}

TEST_F(RetryBudgetProxyTest, MaxRetriesOneLetsOneRetryRunAtATime) {
  ConnectionPool pool;
  pool.max_retries = 1;
  apply(failingWeb(pool, std::nullopt));
  int hits = storm();
  // The first tries overlap; one request at a time gets the retry slot.
  EXPECT_GE(hits, kClients + 1);
  EXPECT_LE(hits, kClients + 5 + 5) << "the upstream saw more than about one retry at a time";
  const auto& c = ctx->cluster(kCluster).counters();
  EXPECT_GE(c.retry_overflows, kClients - 2u);
  EXPECT_EQ(overflowMetric(), static_cast<double>(c.retry_overflows));
  EXPECT_EQ(c.active_retries, 0u);  // every slot came back
  uint32_t retries = 0;
  for (const auto& r : log) retries += r.retries;
  EXPECT_EQ(static_cast<int>(retries), hits - kClients);
}

TEST_F(RetryBudgetProxyTest, ABudgetOverridesMaxRetries) {
  ConnectionPool pool;
  pool.max_retries = 1000;
  // 20% of 10 requests in flight is 2, the floor 3 wins: about 3 retries at a time.
  apply(failingWeb(pool, RetryBudget{20, 3}));
  int hits = storm();
  EXPECT_GE(hits, kClients + 3);
  EXPECT_LE(hits, kClients + 3 * 5 + 5);
  EXPECT_GE(ctx->cluster(kCluster).counters().retry_overflows, kClients - 4u);
  EXPECT_EQ(ctx->cluster(kCluster).counters().active_retries, 0u);
}

// budgetInterval: the requests of the last interval count, finished or not.
// 40 earlier requests and the 10 of the storm make 50; 20% of them is 10,
// so every request of the storm may retry at once. Without the interval
// only the 10 in flight count: 2, and the floor 1 does not lift it.
TEST_F(RetryBudgetProxyTest, WithAnIntervalTheRecentRequestsWidenTheBudget) {
  apply(failingWeb(std::nullopt, RetryBudget{20, 1, Millis(60000)}));
  EXPECT_EQ(storm(40), kClients * 6);
  EXPECT_EQ(ctx->cluster(kCluster).counters().retry_overflows, 0u);
  EXPECT_EQ(ctx->cluster(kCluster).counters().active_retries, 0u);
}

TEST_F(RetryBudgetProxyTest, WithoutTheIntervalTheSameLoadIsHeldToTheRequestsInFlight) {
  apply(failingWeb(std::nullopt, RetryBudget{20, 1}));
  int hits = storm(40);
  EXPECT_LE(hits, kClients + 2 * 5 + 5) << "more than about two retries ran at a time";
  EXPECT_GE(ctx->cluster(kCluster).counters().retry_overflows, kClients - 3u);
}

}  // namespace
}  // namespace offcore::mesh::l7::testing
