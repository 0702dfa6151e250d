// The ordering rules of docs/CONCURRENCY.md, checked without root or BPF
// through a recording Dataplane: the program must never see a service entry
// that points at a ring slab not yet written, nor a slot naming a backend
// not yet written.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <set>

#include "../net/recording_dataplane.h"
#include "svc/service_programmer.h"

namespace offcore::svc {
namespace {

using offcore::testing::RecordingDataplane;
using Op = RecordingDataplane::Op;

ClusterState withBackends(int n) {
  ClusterState s = ClusterState::empty();
  s.vpcs["v1"] = Vpc{"v1", 7, "tunnel"};
  s.nodes["self"] = NodeRecord{"self", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:99", "02:00:00:00:01:10"};
  s.nodes["peer"] = NodeRecord{"peer", "10.77.0.11", "10.78.1.2", "02:00:00:00:00:98", "02:00:00:00:01:11"};
  for (int i = 0; i < n; ++i) {
    Backend b;
    b.name = "b" + std::to_string(i);
    b.labels = {{"app", "web"}};
    b.kind = "ip";
    b.vpc = "v1";
    b.ip = "10.1.1." + std::to_string(10 + i);
    b.node = "peer";
    s.backends[b.name] = b;
  }
  for (int p = 0; p < 3; ++p) {
    Service svc;
    svc.name = "web" + std::to_string(p);
    svc.vpc = "v1";
    svc.cluster_ip = "10.96.0." + std::to_string(10 + p);
    svc.ports = {ServicePort{"http", static_cast<uint16_t>(80 + p), 8080, "TCP", ""}};
    svc.selector = {{"app", "web"}};
    s.services[svc.name] = svc;
  }
  return s;
}

// Replays the calls and fails at the first service entry whose slab (or a
// slot's backend) was not written before it.
void expectOrdered(const RecordingDataplane& dp) {
  std::set<uint32_t> backends_written;
  std::map<uint32_t, uint32_t> ring_written;  // offset -> slots, in order of writing
  for (size_t i = 0; i < dp.calls.size(); ++i) {
    const auto& c = dp.calls[i];
    if (c.op == Op::kBackend) backends_written.insert(c.a);
    if (c.op == Op::kRing) {
      for (uint32_t s = c.a; s < c.a + c.b; ++s) {
        uint32_t id = dp.ring()[s].backend_id;
        ASSERT_TRUE(id == 0 || backends_written.count(id))
            << "call " << i << ": slot " << s << " names backend " << id << " before its entry was written";
      }
      ring_written[c.a] = c.b;
    }
    if (c.op == Op::kService && c.svc.ring_size > 0) {
      auto it = ring_written.find(c.svc.ring_offset);
      ASSERT_TRUE(it != ring_written.end() && it->second == c.svc.ring_size)
          << "call " << i << ": service " << c.svc.id << " points at slab " << c.svc.ring_offset << "+"
          << c.svc.ring_size << " before it was written";
    }
  }
}

TEST(ServiceProgrammerOrderTest, RingsAndBackendsAreWrittenBeforeTheServiceThatUsesThem) {
  RecordingDataplane dp;
  ServiceProgrammer programmer(dp, NodeIdentity{"self", 0x0A00004D, 0});
  ASSERT_TRUE(programmer.program(withBackends(5), {}).ok());
  ASSERT_EQ(dp.service_map.size(), 3u);
  expectOrdered(dp);
  // Growing past the table's 100x rule moves every service to a new slab:
  // still written before the entry moves (the replay covers both rounds).
  size_t mark = dp.calls.size();
  ASSERT_TRUE(programmer.program(withBackends(40), {}).ok());
  expectOrdered(dp);
  size_t service_writes = 0;
  for (size_t i = mark; i < dp.calls.size(); ++i) service_writes += dp.calls[i].op == Op::kService;
  EXPECT_EQ(service_writes, 3u);
}

TEST(ServiceProgrammerOrderTest, NodesAreProgrammedAndRemoved) {
  RecordingDataplane dp;
  ServiceProgrammer programmer(dp, NodeIdentity{"self", 0x0A00004D, 0});
  auto s = withBackends(1);
  ASSERT_TRUE(programmer.program(s, {}).ok());
  EXPECT_EQ(dp.node_map.size(), 2u);
  s.nodes.erase("peer");
  ASSERT_TRUE(programmer.program(s, {}).ok());
  EXPECT_EQ(dp.node_map.size(), 1u) << "a node that left still sends VXLAN the dataplane accepts";
}

}  // namespace
}  // namespace offcore::svc

namespace offcore::svc {
namespace {

// An agent restarted with the maps kept: a node (and its endpoints) that
// left while the agent was down must be removed by the first reconcile.
TEST(ServiceProgrammerOrderTest, AdoptedNodesAndEndpointsThatLeftAreRemoved) {
  RecordingDataplane dp;
  auto s = withBackends(2);
  {
    ServiceProgrammer before(dp, NodeIdentity{"self", 0x0A00004D, 0});
    ASSERT_TRUE(before.program(s, {}).ok());
  }
  ASSERT_EQ(dp.node_map.size(), 2u);
  size_t endpoints_before = dp.endpoint_map.size();
  s.nodes.erase("peer");
  ServiceProgrammer after(dp, NodeIdentity{"self", 0x0A00004D, 0});
  ASSERT_TRUE(after.adopt().ok());
  ASSERT_TRUE(after.program(s, {}).ok());
  EXPECT_EQ(dp.node_map.size(), 1u) << "a node that left while the agent was down is still trusted";
  EXPECT_LT(dp.endpoint_map.size(), endpoints_before) << "the peer's host endpoint stayed";
}

}  // namespace
}  // namespace offcore::svc

namespace offcore::svc {
namespace {

// Native routing: the VPC's prefixes are programmed (before any endpoint
// is sent natively), remote endpoints carry OC_EP_NATIVE, nodes their
// uplink MACs; back to the tunnel, all of it goes.
TEST(ServiceProgrammerOrderTest, NativeRoutingProgramsPrefixesMacsAndEndpointFlags) {
  RecordingDataplane dp;
  auto s = withBackends(0);
  s.subnets["sn"] = Subnet{"sn", "v1", "10.1.1.0/24", "10.1.1.1"};
  Endpoint e;
  e.id = "e1";
  e.vpc = "v1";
  e.subnet = "sn";
  e.ip = "10.1.1.20";
  e.node = "peer";
  s.endpoints[e.id] = e;
  s.vpcs["v1"].routing = "native";
  ServiceProgrammer programmer(dp, NodeIdentity{"self", 0x0A00004D, 0});
  ASSERT_TRUE(programmer.program(s, {}).ok());
  ASSERT_EQ(dp.native_map.size(), 1u);
  EXPECT_EQ(dp.native_map.begin()->second, 7u);
  EXPECT_EQ(dp.native_map.begin()->first.second, 24u);
  auto ep = dp.endpoint_map.find({7u, htonl(0x0A010114)});
  ASSERT_NE(ep, dp.endpoint_map.end());
  EXPECT_EQ(ep->second.flags, OC_EP_REMOTE | OC_EP_NATIVE);
  EXPECT_EQ(dp.node_map.at(htonl(0x0A4D000B)).mac[5], 0x11);
  size_t net = 0, endpoint = 0;
  for (size_t i = 0; i < dp.calls.size(); ++i) {
    if (dp.calls[i].op == Op::kNativeNet) net = i;
    if (dp.calls[i].op == Op::kEndpoint && dp.calls[i].b == htonl(0x0A010114)) endpoint = i;
  }
  EXPECT_LT(net, endpoint) << "an endpoint was sent natively before the prefixes were taken in";

  // A peer that never said its uplink MAC is tunnelled to.
  s.nodes["peer"].fabric_mac = "";
  ASSERT_TRUE(programmer.program(s, {}).ok());
  EXPECT_EQ(dp.endpoint_map.at({7u, htonl(0x0A010114)}).flags, OC_EP_REMOTE);

  s.vpcs["v1"].routing = "tunnel";
  ASSERT_TRUE(programmer.program(s, {}).ok());
  EXPECT_TRUE(dp.native_map.empty());
}

}  // namespace
}  // namespace offcore::svc
