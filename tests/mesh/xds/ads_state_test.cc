#include "mesh/xds/ads_state.h"

#include <gtest/gtest.h>

#include "xds_test_util.h"

namespace offcore::mesh::xds {
namespace {

using namespace testing;
const std::string kV1 = "outbound|80|v1|web.default.svc.cluster.local";
const std::string kV2 = "outbound|80|v2|web.default.svc.cluster.local";

envoy::config::core::v3::Node node() {
  envoy::config::core::v3::Node n;
  n.set_id("node-a");
  return n;
}

std::vector<std::string> names(const DiscoveryRequest& r) {
  return {r.resource_names().begin(), r.resource_names().end()};
}

DiscoveryResponse lds(const std::string& v, const std::string& nonce) {
  return response(kListenerType, v, nonce, httpListener("10.96.0.10", 80, "web:80"));
}
DiscoveryResponse cds(const std::string& v, const std::string& nonce, bool bad = false) {
  auto c1 = edsCluster(kV1), c2 = edsCluster(kV2);
  if (bad) c2.set_type(envoy::config::cluster::v3::Cluster::STRICT_DNS);
  return response(kClusterType, v, nonce, c1, c2);
}
DiscoveryResponse rds(const std::string& v, const std::string& nonce, uint32_t w) {
  return response(kRouteType, v, nonce, webRoutes(w));
}
DiscoveryResponse eds(const std::string& v, const std::string& nonce) {
  return response(kEndpointType, v, nonce, assignment(kV1, {{"10.1.0.2", 8080}}),
                  assignment(kV2, {{"10.1.0.3", 8080}}));
}

// Connect and take version 1 of everything; returns the update.
XdsUpdate bringUp(AdsState& s) {
  s.onConnect();
  s.onResponse(lds("1", "n1"));
  s.onResponse(cds("1", "n2"));
  s.onResponse(rds("1", "n3", 90));
  auto out = s.onResponse(eds("1", "n4"));
  EXPECT_TRUE(out.update);
  return out.update ? *out.update : XdsUpdate{};
}

TEST(AdsState, ConnectAsksForListenersAndClustersWildcard) {
  AdsState s(node());
  auto reqs = s.onConnect();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].type_url(), kListenerType);
  EXPECT_EQ(reqs[0].node().id(), "node-a");
  EXPECT_TRUE(reqs[0].resource_names().empty());
  EXPECT_TRUE(reqs[0].version_info().empty());
  EXPECT_EQ(reqs[1].type_url(), kClusterType);
  EXPECT_FALSE(reqs[1].has_node());
}

TEST(AdsState, AcksAndFollowsReferences) {
  AdsState s(node());
  s.onConnect();
  auto out = s.onResponse(lds("1", "n1"));
  ASSERT_EQ(out.requests.size(), 2u);
  EXPECT_EQ(out.requests[0].type_url(), kListenerType);  // the ACK
  EXPECT_EQ(out.requests[0].version_info(), "1");
  EXPECT_EQ(out.requests[0].response_nonce(), "n1");
  EXPECT_FALSE(out.requests[0].has_error_detail());
  EXPECT_EQ(out.requests[1].type_url(), kRouteType);  // then RDS for what the listener names
  EXPECT_EQ(names(out.requests[1]), std::vector<std::string>{"web:80"});
  EXPECT_FALSE(out.update);

  out = s.onResponse(cds("1", "n2"));
  ASSERT_EQ(out.requests.size(), 2u);
  EXPECT_EQ(out.requests[1].type_url(), kEndpointType);
  EXPECT_EQ(names(out.requests[1]), (std::vector<std::string>{kV1, kV2}));
  EXPECT_FALSE(out.update);
  EXPECT_EQ(s.incompleteReason(), "route configuration web:80");

  out = s.onResponse(rds("1", "n3", 90));
  EXPECT_FALSE(out.update);
  out = s.onResponse(eds("1", "n4"));
  ASSERT_EQ(out.requests.size(), 1u);  // names unchanged: just the ACK
  ASSERT_TRUE(out.update);
  EXPECT_EQ(out.update->snapshot.version, 1u);
  EXPECT_EQ(out.update->versions,
            (std::map<std::string, std::string>{{"lds", "1"}, {"rds", "1"}, {"cds", "1"}, {"eds", "1"}}));
  EXPECT_EQ(s.acks(), 4u);
  EXPECT_EQ(s.incompleteReason(), "");
}

TEST(AdsState, NackKeepsTheLastGoodVersion) {
  AdsState s(node());
  auto first = bringUp(s);
  auto out = s.onResponse(cds("2", "n5", /*bad=*/true));
  ASSERT_EQ(out.requests.size(), 1u);
  const auto& nack = out.requests[0];
  EXPECT_EQ(nack.type_url(), kClusterType);
  EXPECT_EQ(nack.version_info(), "1");     // the last accepted one
  EXPECT_EQ(nack.response_nonce(), "n5");  // the rejected response's
  ASSERT_TRUE(nack.has_error_detail());
  EXPECT_NE(nack.error_detail().message().find("STRICT_DNS is not supported"), std::string::npos)
      << nack.error_detail().message();
  EXPECT_FALSE(out.update);
  EXPECT_EQ(s.nacks(), 1u);
  EXPECT_EQ(s.acceptedVersion(kClusterType), "1");
  EXPECT_EQ(s.resources().clusters.at(kV2).type(), envoy::config::cluster::v3::Cluster::EDS);

  // The next good response is taken as usual.
  out = s.onResponse(rds("3", "n6", 50));
  ASSERT_TRUE(out.update);
  EXPECT_EQ(out.update->snapshot.version, first.snapshot.version + 1);
  EXPECT_EQ(out.update->versions.at("rds"), "3");
  EXPECT_EQ(out.update->versions.at("cds"), "1");
}

TEST(AdsState, AResponseThatContradictsTheRestIsNacked) {
  AdsState s(node());
  bringUp(s);
  // Endpoints of one cluster on two ports: each resource is fine alone, the
  // whole is not.
  auto out = s.onResponse(response(kEndpointType, "2", "n5", assignment(kV1, {{"10.1.0.2", 8080}, {"10.1.0.5", 9090}}),
                                   assignment(kV2, {{"10.1.0.3", 8080}})));
  EXPECT_FALSE(out.update);
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_TRUE(out.requests[0].has_error_detail());
  EXPECT_EQ(out.requests[0].version_info(), "1");
}

TEST(AdsState, UnknownTypesAndUndecodableResourcesAreNacked) {
  AdsState s(node());
  s.onConnect();
  auto out = s.onResponse(response("type.googleapis.com/envoy.config.core.v3.Node", "1", "n1", node()));
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_TRUE(out.requests[0].has_error_detail());
  auto mixed = lds("1", "n2");
  mixed.add_resources()->PackFrom(edsCluster(kV1));  // a Cluster in an LDS response
  out = s.onResponse(mixed);
  EXPECT_TRUE(out.requests[0].has_error_detail());
  EXPECT_TRUE(s.resources().listeners.empty());
}

TEST(AdsState, SameContentAcksWithoutAnUpdate) {
  AdsState s(node());
  bringUp(s);
  auto out = s.onResponse(lds("2", "n5"));
  EXPECT_FALSE(out.update);
  ASSERT_EQ(out.requests.size(), 1u);
  EXPECT_EQ(out.requests[0].version_info(), "2");
  EXPECT_EQ(s.acceptedVersion(kListenerType), "2");
}

TEST(AdsState, ReconnectResubscribesWithVersionsAndNoNonces) {
  AdsState s(node());
  bringUp(s);
  auto reqs = s.onConnect();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_TRUE(reqs[0].has_node());
  for (const auto& r : reqs) {
    EXPECT_EQ(r.version_info(), "1") << r.type_url();
    EXPECT_TRUE(r.response_nonce().empty()) << r.type_url();
  }
  EXPECT_EQ(reqs[2].type_url(), kRouteType);
  EXPECT_EQ(names(reqs[2]), std::vector<std::string>{"web:80"});
  EXPECT_EQ(reqs[3].type_url(), kEndpointType);
  EXPECT_EQ(names(reqs[3]).size(), 2u);
}

}  // namespace
}  // namespace offcore::mesh::xds
