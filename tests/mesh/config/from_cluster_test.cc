#include "mesh/config/from_cluster.h"

#include <gtest/gtest.h>

namespace offcore::mesh {
namespace {

svc::ClusterState cluster() {
  auto s = svc::ClusterState::empty();
  s.generation = 7;
  s.nodes["n1"] = {"n1", "192.168.100.11", "", "", ""};
  s.nodes["n2"] = {"n2", "192.168.100.12", "", "", ""};
  s.subnets["net"] = {"net", "default", "10.1.0.0/24", "10.1.0.1"};
  s.backends["web-1"] = {"web-1", {{"app", "web"}, {"version", "v1"}}, "pod", "default", "web-1", "", ""};
  s.backends["web-2"] = {"web-2", {{"app", "web"}, {"version", "v2"}}, "pod", "default", "web-2", "", ""};
  s.backends["legacy"] = {"legacy", {{"app", "web"}}, "vm", "default", "", "10.1.0.200", "n2"};
  s.backends["pending"] = {"pending", {{"app", "web"}}, "pod", "default", "not-started", "", ""};
  s.endpoints["n1/c1/eth0"] = {"n1/c1/eth0", "n1",  "c1",       "eth0", "web-1", "/ns1",
                               "default",    "net", "10.1.0.5", 24,     "",      ""};
  s.endpoints["n2/c2/eth0"] = {"n2/c2/eth0", "n2",  "c2",       "eth0", "web-2", "/ns2",
                               "default",    "net", "10.1.0.6", 24,     "",      ""};
  svc::Service web;
  web.name = "web";
  web.vpc = "default";
  web.cluster_ip = "10.96.0.10";
  web.selector = {{"app", "web"}};
  web.ports = {svc::ServicePort{"http", 80, 8080, "TCP", "http"}, svc::ServicePort{"dns", 53, 53, "UDP", ""},
               svc::ServicePort{"raw", 9000, 9000, "TCP", ""}};
  s.services["web"] = web;
  return s;
}

TEST(FromClusterTest, ServicesPortsAndEndpointsResolveLikeTheDataplane) {
  MeshConfig cfg;
  cfg.destination_rules.push_back(DestinationRule{"web", "default", "web", {}, {}});
  std::map<std::string, svc::NodeHealth> health;
  health["n2"].backends["legacy"].healthy = false;
  auto snap = buildSnapshot(cluster(), health, cfg, "example.org");
  EXPECT_EQ(snap.version, 7u);
  EXPECT_EQ(snap.config, cfg);
  EXPECT_EQ(snap.trust_domain, "example.org");
  ASSERT_EQ(snap.services.size(), 1u);
  const MeshService& s = snap.services[0];
  EXPECT_EQ(s.name, "web");
  EXPECT_EQ(s.vip, "10.96.0.10");
  ASSERT_EQ(s.ports.size(), 2u) << "UDP ports are not the proxy's";
  EXPECT_EQ(s.ports[0], (MeshServicePort{"http", 80, 8080, "http"}));
  EXPECT_EQ(s.ports[1].app_protocol, "");
  ASSERT_EQ(s.endpoints.size(), 3u) << "the pod without an endpoint is left out";
  EXPECT_EQ(s.endpoints[0].ip, "10.1.0.5");
  EXPECT_EQ(s.endpoints[0].node, "n1");
  EXPECT_EQ(s.endpoints[0].node_ip, "192.168.100.11");
  EXPECT_EQ(s.endpoints[0].labels.at("version"), "v1");
  EXPECT_TRUE(s.endpoints[0].healthy);
  EXPECT_FALSE(s.endpoints[0].mesh) << "no pod is in the mesh until the CNI says so";
  EXPECT_EQ(s.endpoints[0].identity, "");
  EXPECT_EQ(s.endpoints[2].ip, "10.1.0.200");
  EXPECT_EQ(s.endpoints[2].node_ip, "192.168.100.12");
  EXPECT_FALSE(s.endpoints[2].healthy);
}

TEST(FromClusterTest, MeshPodsGetTheirSpiffeIdentity) {
  auto membership = [](const svc::Endpoint& e) {
    return e.pod_name == "web-2" ? Membership{true, "shop", "web-sa"} : Membership{};
  };
  auto snap = buildSnapshot(cluster(), {}, {}, "cluster.local", membership);
  const auto& eps = snap.services.at(0).endpoints;
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_FALSE(eps[0].mesh);
  EXPECT_TRUE(eps[1].mesh);
  EXPECT_EQ(eps[1].identity, "spiffe://cluster.local/ns/shop/sa/web-sa");
  EXPECT_FALSE(eps[2].mesh) << "a vm backend has no pod endpoint, so it is never in the mesh";
  EXPECT_EQ(spiffeId("td", "a", "b"), "spiffe://td/ns/a/sa/b");
}

}  // namespace
}  // namespace offcore::mesh
