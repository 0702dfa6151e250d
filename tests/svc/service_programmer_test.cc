// ServiceProgrammer against the real BPF dataplane (private maps, in the
// BPF test binary's private network namespace): the cluster state goes in,
// packets go through BPF_PROG_TEST_RUN, and what the program does must match
// the Maglev table the programmer wrote.
#include "svc/service_programmer.h"

#include <linux/pkt_cls.h>
#include <net/if.h>

#include <gtest/gtest.h>
#include <map>
#include <set>

#include "../net/packet_builder.h"
#include "../net/packet_run.h"
#include "net/bpf_dataplane.h"

namespace offcore::svc {
namespace {

using offcore::testing::buildFrame;
using offcore::testing::FrameSpec;
using offcore::testing::ip;

constexpr int kBackends = 10;

ClusterState stateWith(int backends, int skip = -1) {
  ClusterState s = ClusterState::empty();
  s.vpcs["v1"] = Vpc{"v1", 7, "tunnel"};
  s.nodes["self"] = NodeRecord{"self", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:99", "02:00:00:00:01:10"};
  s.nodes["peer"] = NodeRecord{"peer", "10.77.0.11", "10.78.1.2", "02:00:00:00:00:98", "02:00:00:00:01:11"};
  Endpoint client;
  client.id = "self/c/eth0";
  client.node = "self";
  client.vpc = "v1";
  client.ip = "10.1.0.2";
  client.mac = "02:0c:00:00:00:01";
  client.representor = "rep1";
  s.endpoints[client.id] = client;
  for (int i = 0; i < backends; ++i) {
    if (i == skip) continue;
    Backend b;
    b.name = "b" + std::to_string(i);
    b.labels = {{"app", "web"}};
    b.kind = "ip";
    b.vpc = "v1";
    b.ip = "10.1.1." + std::to_string(10 + i);
    b.node = "peer";  // remote: the program tunnels to it
    s.backends[b.name] = b;
    Endpoint ep;
    ep.id = "peer/b" + std::to_string(i) + "/eth0";
    ep.node = "peer";
    ep.vpc = "v1";
    ep.ip = b.ip;
    s.endpoints[ep.id] = ep;
  }
  Service svc;
  svc.name = "web";
  svc.vpc = "v1";
  svc.cluster_ip = "10.96.0.10";
  svc.ports = {ServicePort{"http", 80, 8080, "TCP", ""}};
  svc.selector = {{"app", "web"}};
  s.services["web"] = svc;
  return s;
}

class ServiceProgrammerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dp = openBpfDataplane("");
    ASSERT_TRUE(dp.ok()) << dp.error().message;
    dp_ = std::move(*dp);
    rep1_ = ::if_nametoindex("rep1");
    ASSERT_NE(rep1_, 0u);
    oc_config cfg{};
    cfg.node_ip = ip("10.77.0.10");
    cfg.tunnel_ifindex = 999;
    cfg.gateway_ip = ip("169.254.1.1");
    ASSERT_TRUE(dp_->setConfig(cfg).ok());
    ASSERT_TRUE(dp_->attach("rep1", {7, ip("10.1.0.2"), OC_IF_POD}).ok());
    programmer_ = std::make_unique<ServiceProgrammer>(*dp_, NodeIdentity{"self", ip("10.77.0.10"), 0});
  }
  void TearDown() override { (void)dp_->detach("rep1"); }

  // The backend address (last octet) a flow from sport is DNATed to.
  int backendOf(uint16_t sport) {
    FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.10", .sport = sport, .dport = 80};
    auto r = offcore::testing::runPacket(*dp_, buildFrame(in), rep1_);
    if (!r.ok() || r->verdict != TC_ACT_REDIRECT) return -1;
    return r->frame[14 + 19];
  }

  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<ServiceProgrammer> programmer_;
  uint32_t rep1_ = 0;
};

TEST_F(ServiceProgrammerTest, FlowsSpreadOverEveryBackend) {
  auto st = programmer_->program(stateWith(kBackends), {});
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(st->services, 1u);
  EXPECT_EQ(st->backends, static_cast<size_t>(kBackends));
  std::map<int, int> hits;
  for (uint16_t sport = 20000; sport < 21000; ++sport) hits[backendOf(sport)]++;
  EXPECT_EQ(hits.count(-1), 0u);
  EXPECT_EQ(hits.size(), static_cast<size_t>(kBackends));
  for (auto [b, n] : hits) EXPECT_NEAR(n, 1000 / kBackends, 45) << "backend .." << b;
}

TEST_F(ServiceProgrammerTest, RemovingOneBackendMovesOnlyItsShareAndKeepsEstablishedFlows) {
  ASSERT_TRUE(programmer_->program(stateWith(kBackends), {}).ok());
  std::map<uint16_t, int> before;
  for (uint16_t sport = 30000; sport < 32000; ++sport) before[sport] = backendOf(sport);

  // The backend goes unhealthy (a probe says so): out of the table.
  std::map<std::string, NodeHealth> health;
  health["peer"].backends["b3"] = BackendHealth{false, 0, "connection refused", "b3"};
  ASSERT_TRUE(programmer_->program(stateWith(kBackends), health).ok());

  // Established flows (conntrack) keep their backend unless it is the dead one.
  int dead_moved = 0, live_moved = 0;
  for (auto [sport, b] : before) {
    int now = backendOf(sport);
    if (b == 13) {
      dead_moved += now != 13;
    } else {
      live_moved += now != b;
    }
  }
  EXPECT_EQ(live_moved, 0) << "an established flow on a healthy backend moved";
  EXPECT_GT(dead_moved, 0);
}

// The backend a new flow would get: the program's own hash over the
// service's slots in the ring map, as they are now.
std::vector<uint32_t> newFlowBackends(const Dataplane& dp, int flows) {
  auto services = dp.services();
  EXPECT_TRUE(services.ok() && services->size() == 1);
  const oc_svc_val v = (*services)[0].second;
  auto ring = dp.ring();
  std::vector<uint32_t> out;
  for (int i = 0; i < flows; ++i) {
    uint32_t h = oc_flow_hash(ip("10.1.0.2") + static_cast<uint32_t>(i / 60000), ip("10.96.0.10"),
                              htons(static_cast<uint16_t>(1024 + i % 60000)), htons(80), IPPROTO_TCP);
    out.push_back(ring[v.ring_offset + h % v.ring_size].backend_id);
  }
  return out;
}

TEST_F(ServiceProgrammerTest, NewFlowDisruptionIsAtMostOnePointFiveOverN) {
  for (int n : {3, 10, 50}) {
    auto dp = openBpfDataplane("");
    ASSERT_TRUE(dp.ok());
    ServiceProgrammer programmer(**dp, NodeIdentity{"self", ip("10.77.0.10"), 0});
    ASSERT_TRUE(programmer.program(stateWith(n), {}).ok());
    auto before = newFlowBackends(**dp, 100000);
    std::map<std::string, NodeHealth> health;
    health["peer"].backends["b" + std::to_string(n / 2)] = BackendHealth{false, 0, "timeout", "p"};
    ASSERT_TRUE(programmer.program(stateWith(n), health).ok());
    auto after = newFlowBackends(**dp, 100000);
    int moved = 0;
    for (size_t i = 0; i < before.size(); ++i) moved += before[i] != after[i];
    double share = static_cast<double>(moved) / before.size();
    std::printf("N=%d: %.4f of new flows moved (1/N = %.4f)\n", n, share, 1.0 / n);
    EXPECT_LE(share, 1.5 / n) << "N=" << n;
    EXPECT_GE(share, 0.5 / n) << "N=" << n;
    // And adding it back moves about 1/N again.
    ASSERT_TRUE(programmer.program(stateWith(n), {}).ok());
    auto again = newFlowBackends(**dp, 100000);
    moved = 0;
    for (size_t i = 0; i < after.size(); ++i) moved += after[i] != again[i];
    EXPECT_LE(static_cast<double>(moved) / after.size(), 1.5 / n) << "N=" << n << " (re-add)";
  }
}

TEST_F(ServiceProgrammerTest, AdoptedStateKeepsIdsAndTables) {
  ASSERT_TRUE(programmer_->program(stateWith(kBackends), {}).ok());
  auto before = newFlowBackends(*dp_, 5000);
  // A restarted agent: a new programmer over the same maps.
  ServiceProgrammer restarted(*dp_, NodeIdentity{"self", ip("10.77.0.10"), 0});
  ASSERT_TRUE(restarted.adopt().ok());
  auto st = restarted.program(stateWith(kBackends), {});
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(newFlowBackends(*dp_, 5000), before);
  // Everything (endpoints and nodes too) is adopted: an unchanged state
  // after a restart rewrites nothing.
  EXPECT_GT(st->nodes, 0u);
  EXPECT_GT(st->endpoints, 0u);
  EXPECT_EQ(st->writes, 0u);
}

}  // namespace
}  // namespace offcore::svc
