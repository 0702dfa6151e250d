// DestinationRule retry limits in Istio YAML: connectionPool.http.maxRetries
// and trafficPolicy.retryBudget (Istio 1.27+), their defaults, checks and
// JSON round trip.
#include <gtest/gtest.h>

#include "mesh/config/istio_yaml.h"

namespace offcore::mesh {
namespace {

Result<MeshConfig> drYaml(const std::string& traffic_policy) {
  return parseMeshYaml(
      "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web}\n"
      "spec:\n  host: web\n  trafficPolicy:\n" +
          traffic_policy,
      "dr.yaml");
}

std::string drError(const std::string& traffic_policy) {
  auto r = drYaml(traffic_policy);
  return r.ok() ? "" : r.error().message;
}

TEST(RetryBudgetYaml, MaxRetriesAndRetryBudgetLandInTheModel) {
  auto r = drYaml(
      "    connectionPool: {http: {maxRetries: 1}}\n"
      "    retryBudget: {percent: 12.5, minRetryConcurrency: 4, budgetInterval: 10s}\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const TrafficPolicy& tp = r->destination_rules.at(0).traffic_policy;
  EXPECT_EQ(tp.connection_pool->max_retries, 1u);
  ASSERT_TRUE(tp.retry_budget);
  EXPECT_EQ(tp.retry_budget->percent, 12.5);
  EXPECT_EQ(tp.retry_budget->min_retry_concurrency, 4u);
  EXPECT_EQ(tp.retry_budget->budget_interval, Millis(10000));

  auto back = meshConfigFromJson(nlohmann::json::parse(toJson(*r).dump()), "config");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, *r);
}

TEST(RetryBudgetYaml, IstioDefaults) {
  // No maxRetries: no limit (Istio's 2^32-1); 0 also means the default, as in Istio.
  auto r = drYaml("    connectionPool: {http: {maxRetries: 0}}\n    retryBudget: {}\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const TrafficPolicy& tp = r->destination_rules.at(0).traffic_policy;
  EXPECT_EQ(tp.connection_pool->max_retries, UINT32_MAX);
  EXPECT_EQ(tp.retry_budget, (RetryBudget{20, 3}));
  auto zero = drYaml("    retryBudget: {percent: 0, minRetryConcurrency: 0}\n");
  ASSERT_TRUE(zero.ok()) << zero.error().message;
  EXPECT_EQ(zero->destination_rules.at(0).traffic_policy.retry_budget, (RetryBudget{0, 3}));
  auto none = drYaml("    loadBalancer: {simple: RANDOM}\n");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->destination_rules.at(0).traffic_policy.retry_budget);
}

TEST(RetryBudgetYaml, BadValuesAndUnsupportedFieldsNameTheLine) {
  EXPECT_NE(drError("    connectionPool: {http: {maxRetries: -1}}\n")
                .find("dr.yaml:7: DestinationRule \"web\": spec.trafficPolicy.connectionPool.http.maxRetries: must be "
                      "0-2147483647"),
            std::string::npos)
      << drError("    connectionPool: {http: {maxRetries: -1}}\n");
  EXPECT_NE(drError("    retryBudget: {percent: 120}\n")
                .find("spec.trafficPolicy.retryBudget.percent: must be a number 0-100"),
            std::string::npos);
  EXPECT_NE(drError("    retryBudget: {percent: \"20\"}\n").find("quoted"), std::string::npos);
  EXPECT_NE(drError("    retryBudget: {percent: {value: 20}}\n").find("retryBudget.percent: must be a number"),
            std::string::npos);
  EXPECT_NE(drError("    retryBudget:\n      percent: 20\n      budgetInterval: 10 s\n")
                .find("dr.yaml:9: DestinationRule \"web\": spec.trafficPolicy.retryBudget.budgetInterval: "),
            std::string::npos)
      << drError("    retryBudget:\n      percent: 20\n      budgetInterval: 10 s\n");
  EXPECT_NE(drError("    retryBudget: {budgetInterval: -1s}\n").find("budgetInterval"), std::string::npos);
  EXPECT_NE(drError("    retryBudget: {budgetWindow: 1s}\n").find("budgetWindow: not supported"), std::string::npos)
      << drError("    retryBudget: {budgetWindow: 1s}\n");
  EXPECT_NE(drError("    retryBudget: {minRetryConcurrency: 1.5}\n").find("must be an integer"), std::string::npos);
}

}  // namespace
}  // namespace offcore::mesh
