// The retry budget: the limit arithmetic (Envoy's max_retries circuit
// breaker and retry_budget) and ClusterRuntime's accounting of retries in
// flight.
#include <gtest/gtest.h>

#include "mesh/route/cluster.h"
#include "mesh/route/router.h"

namespace offcore::mesh::route {
namespace {

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

TEST(RetryBudget, WithoutABudgetTheLimitIsMaxRetries) {
  ConnectionPool pool;
  EXPECT_EQ(retryLimit(pool, std::nullopt, 0), UINT32_MAX);  // Istio's default: no limit
  pool.max_retries = 1;
  EXPECT_EQ(retryLimit(pool, std::nullopt, 0), 1u);
  EXPECT_EQ(retryLimit(pool, std::nullopt, 1000), 1u);  // not scaled by load
}

TEST(RetryBudget, ABudgetIsAShareOfTheRequestsInFlightWithAFloor) {
  ConnectionPool pool;
  pool.max_retries = 1;  // replaced by the budget
  RetryBudget b;         // Envoy's defaults: 20%, at least 3
  EXPECT_EQ(retryLimit(pool, b, 0), 3u);
  EXPECT_EQ(retryLimit(pool, b, 10), 3u);    // 2 < 3
  EXPECT_EQ(retryLimit(pool, b, 25), 5u);    // 20% of 25
  EXPECT_EQ(retryLimit(pool, b, 100), 20u);  // 20% of 100
  EXPECT_EQ(retryLimit(pool, b, 104), 20u);  // 20.8, rounded down
  b.percent = 25;
  b.min_retry_concurrency = 0;
  EXPECT_EQ(retryLimit(pool, b, 7), 1u);  // 1.75
  EXPECT_EQ(retryLimit(pool, b, 3), 0u);  // no floor: no retry at all
  b.percent = 100;
  EXPECT_EQ(retryLimit(pool, b, 40), 40u);
  b.percent = 0;
  b.min_retry_concurrency = 2;
  EXPECT_EQ(retryLimit(pool, b, 1000000), 2u);
}

TEST(RetryBudget, ARetryHoldsASlotUntilItFinishesAndOverflowsAreCounted) {
  ClusterRuntime c;
  ConnectionPool pool;
  pool.max_retries = 2;
  EXPECT_TRUE(c.startRetry(pool, std::nullopt, kT0));
  EXPECT_TRUE(c.startRetry(pool, std::nullopt, kT0));
  EXPECT_EQ(c.counters().active_retries, 2u);
  EXPECT_FALSE(c.startRetry(pool, std::nullopt, kT0));
  EXPECT_FALSE(c.startRetry(pool, std::nullopt, kT0));
  EXPECT_EQ(c.counters().retry_overflows, 2u);
  EXPECT_EQ(c.counters().active_retries, 2u);  // a refused retry takes nothing
  c.retryFinished();
  EXPECT_TRUE(c.startRetry(pool, std::nullopt, kT0));
  c.retryFinished();
  c.retryFinished();
  EXPECT_EQ(c.counters().active_retries, 0u);
  EXPECT_EQ(c.counters().retry_overflows, 2u);
}

TEST(RetryBudget, TheBudgetFollowsTheRequestsInFlight) {
  ClusterRuntime c;
  ConnectionPool pool;
  RetryBudget b{50, 1};
  c.counters().active_requests = 1;
  EXPECT_TRUE(c.startRetry(pool, b, kT0));  // floor 1
  EXPECT_FALSE(c.startRetry(pool, b, kT0));
  c.counters().active_requests = 6;  // 50% of 6 = 3
  EXPECT_TRUE(c.startRetry(pool, b, kT0));
  EXPECT_TRUE(c.startRetry(pool, b, kT0));
  EXPECT_FALSE(c.startRetry(pool, b, kT0));
  EXPECT_EQ(c.counters().active_retries, 3u);
  c.counters().active_requests = 2;  // load fell: no new retry until enough finish
  c.retryFinished();
  EXPECT_FALSE(c.startRetry(pool, b, kT0));
  c.retryFinished();
  c.retryFinished();
  EXPECT_TRUE(c.startRetry(pool, b, kT0));
  EXPECT_EQ(c.counters().retry_overflows, 3u);
}

TEST(RetryBudget, WithAnIntervalTheRequestsThatArrivedWithinItCount) {
  using std::chrono::milliseconds;
  ClusterRuntime c;
  ConnectionPool pool;
  RetryBudget b{20, 1, milliseconds(1000)};
  for (int i = 0; i < 20; ++i) c.requestAdmitted(b, kT0 + milliseconds(i * 10));  // 20 in 200 ms
  c.counters().active_requests = 0;  // none in flight any more: the window still counts them
  auto t = kT0 + milliseconds(500);
  EXPECT_TRUE(c.startRetry(pool, b, t));  // 20% of 20 = 4
  EXPECT_TRUE(c.startRetry(pool, b, t));
  EXPECT_TRUE(c.startRetry(pool, b, t));
  EXPECT_TRUE(c.startRetry(pool, b, t));
  EXPECT_FALSE(c.startRetry(pool, b, t));
  for (int i = 0; i < 4; ++i) c.retryFinished();
  // 1.25 s on, the slots of the first 200 ms have left the window: the floor.
  t = kT0 + milliseconds(1250);
  EXPECT_TRUE(c.startRetry(pool, b, t));
  EXPECT_FALSE(c.startRetry(pool, b, t));
  c.retryFinished();
  // Long idle: every slot cleared, not only those a loop visits.
  for (int i = 0; i < 10; ++i) c.requestAdmitted(b, kT0 + std::chrono::hours(5) + milliseconds(i));
  EXPECT_TRUE(c.startRetry(pool, b, kT0 + std::chrono::hours(5) + milliseconds(50)));  // 20% of 10 = 2
  EXPECT_TRUE(c.startRetry(pool, b, kT0 + std::chrono::hours(5) + milliseconds(50)));
  EXPECT_FALSE(c.startRetry(pool, b, kT0 + std::chrono::hours(5) + milliseconds(50)));
}

TEST(RetryBudget, WithoutAnIntervalAdmittedRequestsDoNotCount) {
  ClusterRuntime c;
  ConnectionPool pool;
  RetryBudget b{50, 1};
  for (int i = 0; i < 100; ++i) c.requestAdmitted(b, kT0);
  EXPECT_TRUE(c.startRetry(pool, b, kT0));  // in flight: 0, the floor
  EXPECT_FALSE(c.startRetry(pool, b, kT0));
}

TEST(RetryBudget, AChangedIntervalStartsTheCountAfresh) {
  using std::chrono::milliseconds;
  RequestWindow w;
  for (int i = 0; i < 5; ++i) w.add(kT0, milliseconds(1000));
  EXPECT_EQ(w.count(kT0 + milliseconds(900), milliseconds(1000)), 5u);
  EXPECT_EQ(w.count(kT0 + milliseconds(900), milliseconds(2000)), 0u);
  w.add(kT0 + milliseconds(950), milliseconds(2000));
  EXPECT_EQ(w.count(kT0 + milliseconds(2700), milliseconds(2000)), 1u);  // its slot is 9 back
  EXPECT_EQ(w.count(kT0 + milliseconds(3200), milliseconds(2000)), 0u);
}

TEST(RetryBudget, ASubsetBudgetOverridesTheRulesOne) {
  auto s = std::make_shared<Snapshot>();
  MeshService web;
  web.name = "web";
  web.vip = "10.96.0.10";
  web.ports = {{"http", 80, 8080, "http"}};
  s->services = {web};
  DestinationRule dr;
  dr.host = "web";
  dr.traffic_policy.retry_budget = RetryBudget{10, 1};
  TrafficPolicy sub;
  sub.retry_budget = RetryBudget{50, 2};
  dr.subsets = {{"v1", {{"version", "v1"}}, std::nullopt}, {"v2", {{"version", "v2"}}, sub}};
  s->config.destination_rules = {dr};
  auto table = RouteTable::build(s);
  EXPECT_EQ(table->policy(ClusterKey{"web", "v1", 80}).retry_budget, (RetryBudget{10, 1}));
  EXPECT_EQ(table->policy(ClusterKey{"web", "v2", 80}).retry_budget, (RetryBudget{50, 2}));
}

}  // namespace
}  // namespace offcore::mesh::route
