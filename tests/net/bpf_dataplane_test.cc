// BPF_PROG_TEST_RUN fixtures for the dataplane: an input frame, the
// interface it arrives on, the expected verdict and the expected output
// frame (built independently by packet_builder.h, checksums included).
//
// Runs as root in a private network namespace (main() below), where it
// creates the veths whose ifindexes the program classifies by.
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "net/bpf_dataplane.h"
#include "packet_builder.h"
#include "packet_run.h"

namespace offcore {
namespace {

using testing::buildArp;
using testing::buildFrame;
using testing::FrameSpec;
using testing::ip;
using testing::Mac;

constexpr uint32_t kVpc1 = 11, kVpc2 = 12, kDefaultVpc = 1;
const Mac kPod2Mac{0x02, 0x0c, 0, 0, 2, 1};
const Mac kPodOtherVpcMac{0x02, 0x0c, 0, 0, 3, 1};
const Mac kBackendMac{0x02, 0x0c, 0, 0, 4, 1};
const Mac kClientMac{0x02, 0x0c, 0, 0, 1, 1};

uint16_t be16(uint16_t v) { return htons(v); }

class BpfDataplaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dp = openBpfDataplane("");
    ASSERT_TRUE(dp.ok()) << dp.error().message;
    dp_ = std::move(*dp);
    rep1_ = ::if_nametoindex("rep1");
    rep2_ = ::if_nametoindex("rep2");
    rep3_ = ::if_nametoindex("rep3");
    rep4_ = ::if_nametoindex("rep4");
    uplink_ = ::if_nametoindex("upl0");
    host_ = ::if_nametoindex("hvf0");
    ASSERT_TRUE(rep1_ && rep2_ && rep3_ && rep4_ && uplink_ && host_);
    oc_config cfg{};
    cfg.node_ip = ip("10.77.0.10");
    cfg.tunnel_ifindex = 999;
    cfg.uplink_ifindex = uplink_;
    cfg.gateway_ip = ip("169.254.1.1");
    ASSERT_TRUE(dp_->setConfig(cfg).ok());
    // rep1: client pod 10.1.0.2 in vpc1; rep2: pod 10.1.0.3 in vpc1;
    // rep3: pod 10.1.0.3 in vpc2 (same address, other VPC);
    // rep4: backend pod 10.1.0.9 in vpc1.
    attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD});
    attach("rep2", {kVpc1, ip("10.1.0.3"), OC_IF_POD});
    attach("rep3", {kVpc2, ip("10.1.0.3"), OC_IF_POD});
    attach("rep4", {kVpc1, ip("10.1.0.9"), OC_IF_POD});
    attach("upl0", {OC_VPC_EXTERNAL, 0, OC_IF_UPLINK});
    attach("hvf0", {kDefaultVpc, 0, OC_IF_HOST});
    endpoint(kVpc1, "10.1.0.2", rep1_, kClientMac);
    endpoint(kVpc1, "10.1.0.3", rep2_, kPod2Mac);
    endpoint(kVpc2, "10.1.0.3", rep3_, kPodOtherVpcMac);
    endpoint(kVpc1, "10.1.0.9", rep4_, kBackendMac);
    oc_ep_val remote{};
    remote.node_ip = ip("10.77.0.11");
    remote.flags = OC_EP_REMOTE;
    ASSERT_TRUE(dp_->upsertEndpoint({kVpc1, ip("10.1.0.20")}, remote).ok());
  }

  void TearDown() override {
    for (int fd : sockets_) ::close(fd);
    for (const char* ifname : {"rep1", "rep2", "rep3", "rep4", "upl0", "hvf0"}) (void)dp_->detach(ifname);
  }

  void attach(const char* ifname, oc_iface_val role) { ASSERT_TRUE(dp_->attach(ifname, role).ok()) << ifname; }

  void endpoint(uint32_t vpc, const char* addr, uint32_t ifindex, const Mac& mac) {
    oc_ep_val v{};
    v.ifindex = ifindex;
    std::memcpy(v.mac, mac.data(), 6);
    v.flags = OC_EP_LOCAL;
    ASSERT_TRUE(dp_->upsertEndpoint({vpc, ip(addr)}, v).ok());
  }

  // A service with the given backends (ids 1..n), Maglev table = the ids
  // round robin (the table's content is the control plane's business).
  void service(uint32_t vpc, const char* vip, uint16_t port, uint8_t proto, std::vector<oc_backend_val> backends,
               uint32_t flags = 0, const char* snat = "0.0.0.0", uint32_t svc_id = 1) {
    std::vector<oc_ring_slot> ring(7);
    for (uint32_t i = 0; i < backends.size(); ++i) {
      ASSERT_TRUE(dp_->setBackend(next_backend_ + i, backends[i]).ok());
    }
    for (size_t s = 0; s < ring.size(); ++s) {
      ring[s].backend_id = backends.empty() ? 0 : next_backend_ + static_cast<uint32_t>(s % backends.size());
    }
    ASSERT_TRUE(dp_->writeRing(next_ring_, ring).ok());
    oc_svc_val v{svc_id, next_ring_, backends.empty() ? 0u : 7u, flags, ip(snat)};
    ASSERT_TRUE(dp_->upsertService({vpc, ip(vip), be16(port), proto, 0}, v).ok());
    next_backend_ += static_cast<uint32_t>(backends.size());
    next_ring_ += 7;
  }

  testing::PacketRunResult run(const std::vector<uint8_t>& frame, uint32_t ifindex) {
    auto r = testing::runPacket(*dp_, frame, ifindex);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : testing::PacketRunResult{};
  }

  // A socket of the "proxy" (the test's namespace stands for the SoC's):
  // bound to `local`, an address no interface here has (IP_TRANSPARENT, as
  // the proxy's upstream sockets), connecting to `remote`. Nothing answers,
  // so it stays in SYN_SENT, hashed like any connection. listen = true: a
  // listener on 0.0.0.0:lport instead. Closed at TearDown.
  void holdSocket(const char* local, uint16_t lport, const char* remote, uint16_t rport, bool listen = false) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockets_.push_back(fd);
    int one = 1;
    ASSERT_EQ(::setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one), 0) << std::strerror(errno);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(lport);
    a.sin_addr.s_addr = listen ? INADDR_ANY : ip(local);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    if (listen) {
      ASSERT_EQ(::listen(fd, 4), 0);
      return;
    }
    sockaddr_in r{};
    r.sin_family = AF_INET;
    r.sin_port = htons(rport);
    r.sin_addr.s_addr = ip(remote);
    ASSERT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&r), sizeof r), 0);
    ASSERT_EQ(errno, EINPROGRESS) << std::strerror(errno);
  }

  void meshEndpoint(uint32_t vpc, const char* addr, uint32_t ifindex, const Mac& mac) {
    oc_ep_val v{};
    v.ifindex = ifindex;
    std::memcpy(v.mac, mac.data(), 6);
    v.flags = OC_EP_LOCAL | OC_EP_MESH;
    ASSERT_TRUE(dp_->upsertEndpoint({vpc, ip(addr)}, v).ok());
  }

  uint64_t stat(oc_stat s) {
    auto st = dp_->stats();
    return st.ok() ? (*st)[s] : 0;
  }

  std::unique_ptr<Dataplane> dp_;
  uint32_t rep1_ = 0, rep2_ = 0, rep3_ = 0, rep4_ = 0, uplink_ = 0, host_ = 0;
  uint32_t next_backend_ = 1, next_ring_ = 0;
  std::vector<int> sockets_;
};

TEST_F(BpfDataplaneTest, PodToPodInOneVpcIsRedirectedWithTheDestinationMac) {
  FrameSpec in{.src = "10.1.0.2", .dst = "10.1.0.3", .dport = 5000};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec expected = in;
  expected.dst_mac = kPod2Mac;
  EXPECT_EQ(out.frame, buildFrame(expected));
}

TEST_F(BpfDataplaneTest, OverlappingAddressInAnotherVpcIsNotReachable) {
  // 10.1.0.3 exists in vpc2 too; a vpc1 pod reaches only vpc1's.
  FrameSpec from_vpc2{.src = "10.1.0.3", .dst = "10.1.0.2"};
  auto out = run(buildFrame(from_vpc2), rep3_);
  EXPECT_EQ(out.verdict, TC_ACT_SHOT);
  EXPECT_GE(stat(OC_STAT_DROP_NO_ROUTE), 1u);
}

TEST_F(BpfDataplaneTest, SpoofedSourceIsDropped) {
  FrameSpec in{.src = "10.1.0.99", .dst = "10.1.0.3"};
  EXPECT_EQ(run(buildFrame(in), rep1_).verdict, TC_ACT_SHOT);
  EXPECT_GE(stat(OC_STAT_DROP_SPOOF), 1u);
}

TEST_F(BpfDataplaneTest, ArpGoesToTheSocStackUnchanged) {
  auto arp = buildArp(kClientMac);
  auto out = run(arp, rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.frame, arp);
}

TEST_F(BpfDataplaneTest, GatewayAnswersPingFromAPod) {
  FrameSpec req{.dst_mac = {0x02, 0, 0, 0, 0, 0x11},
                .src_mac = kClientMac,
                .src = "10.1.0.2",
                .dst = "169.254.1.1",
                .sport = 8 << 8,
                .dport = 0x0101,
                .proto = 1,
                .payload = "pingpong"};
  auto out = run(buildFrame(req), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec reply = req;
  std::swap(reply.dst_mac, reply.src_mac);
  std::swap(reply.src, reply.dst);
  reply.sport = 0;
  EXPECT_EQ(out.frame, buildFrame(reply));
}

TEST_F(BpfDataplaneTest, TruncatedFrameIsDropped) {
  // The kernel's test runner insists on a whole IP header; cut the TCP one.
  auto frame = buildFrame({});
  frame.resize(14 + 20 + 10);
  EXPECT_EQ(run(frame, rep1_).verdict, TC_ACT_SHOT);
}

TEST_F(BpfDataplaneTest, ClusterIpTcpIsDnatedAndTheReplyReverseNated) {
  service(kVpc1, "10.96.0.10", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.9"), be16(8080), 1}});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.10", .sport = 40001, .dport = 80};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT)
      << "malformed " << stat(OC_STAT_DROP_MALFORMED) << " nobackend " << stat(OC_STAT_DROP_NO_BACKEND) << " noroute "
      << stat(OC_STAT_DROP_NO_ROUTE);
  FrameSpec dnat = in;
  dnat.dst = "10.1.0.9";
  dnat.dport = 8080;
  dnat.dst_mac = kBackendMac;
  EXPECT_EQ(out.frame, buildFrame(dnat));

  FrameSpec reply{.src = "10.1.0.9", .dst = "10.1.0.2", .sport = 8080, .dport = 40001, .payload = "world"};
  auto back = run(buildFrame(reply), rep4_);
  EXPECT_EQ(back.verdict, TC_ACT_REDIRECT);
  FrameSpec restored = reply;
  restored.src = "10.96.0.10";
  restored.sport = 80;
  restored.dst_mac = kClientMac;
  EXPECT_EQ(back.frame, buildFrame(restored));
}

TEST_F(BpfDataplaneTest, ADirectConnectionReusingAnOldNatedTupleIsNotReverseNated) {
  service(kVpc1, "10.96.0.15", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.9"), be16(80), 1}});
  FrameSpec via_vip{.src = "10.1.0.2", .dst = "10.96.0.15", .sport = 40100, .dport = 80};
  ASSERT_EQ(run(buildFrame(via_vip), rep1_).verdict, TC_ACT_REDIRECT);
  // Later, the same client port opens a connection to the backend directly
  // (buildFrame sends SYNs); its reply must keep the backend's address.
  FrameSpec direct{.src = "10.1.0.2", .dst = "10.1.0.9", .sport = 40100, .dport = 80};
  ASSERT_EQ(run(buildFrame(direct), rep1_).verdict, TC_ACT_REDIRECT);
  FrameSpec reply{.src = "10.1.0.9", .dst = "10.1.0.2", .sport = 80, .dport = 40100};
  auto back = run(buildFrame(reply), rep4_);
  FrameSpec expected = reply;
  expected.dst_mac = kClientMac;
  EXPECT_EQ(back.frame, buildFrame(expected)) << "the reply was rewritten to the old VIP";
}

TEST_F(BpfDataplaneTest, UdpServiceIsDnated) {
  service(kVpc1, "10.96.0.11", 53, IPPROTO_UDP, {{kVpc1, ip("10.1.0.9"), be16(5353), 1}});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.11", .sport = 40002, .dport = 53, .proto = 17};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec dnat = in;
  dnat.dst = "10.1.0.9";
  dnat.dport = 5353;
  dnat.dst_mac = kBackendMac;
  EXPECT_EQ(out.frame, buildFrame(dnat));
}

TEST_F(BpfDataplaneTest, EstablishedFlowKeepsItsBackendWhenTheTableChanges) {
  service(kVpc1, "10.96.0.12", 80, IPPROTO_TCP,
          {{kVpc1, ip("10.1.0.9"), be16(8080), 1}, {kVpc1, ip("10.1.0.3"), be16(8080), 1}});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.12", .sport = 40003, .dport = 80};
  auto first = run(buildFrame(in), rep1_);
  ASSERT_EQ(first.verdict, TC_ACT_REDIRECT);
  // Point every slot at the other backend: new flows move, this one must not.
  uint32_t chosen = first.frame[14 + 19] == 9 ? 1 : 2;
  std::vector<oc_ring_slot> ring(7, oc_ring_slot{chosen == 1 ? 2u : 1u, 0});
  ASSERT_TRUE(dp_->writeRing(0, ring).ok());
  auto again = run(buildFrame(in), rep1_);
  EXPECT_EQ(again.frame, first.frame);
  EXPECT_GE(stat(OC_STAT_CT_HIT), 1u);
}

TEST_F(BpfDataplaneTest, ServiceWithoutHealthyBackendsDrops) {
  service(kVpc1, "10.96.0.13", 80, IPPROTO_TCP, {});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.13", .dport = 80};
  EXPECT_EQ(run(buildFrame(in), rep1_).verdict, TC_ACT_SHOT);
  EXPECT_GE(stat(OC_STAT_DROP_NO_BACKEND), 1u);
}

TEST_F(BpfDataplaneTest, ClusterIpOfAnotherVpcIsNotReachable) {
  service(kVpc2, "10.96.0.14", 80, IPPROTO_TCP, {{kVpc2, ip("10.1.0.3"), be16(8080), 1}});
  // From vpc1 the VIP is just an unknown address.
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.14", .dport = 80};
  EXPECT_EQ(run(buildFrame(in), rep1_).verdict, TC_ACT_SHOT);
}

TEST_F(BpfDataplaneTest, RemoteEndpointGoesToTheTunnel) {
  FrameSpec in{.src = "10.1.0.2", .dst = "10.1.0.20"};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(out.frame, buildFrame(in)) << "the inner frame travels unchanged";
  EXPECT_GE(stat(OC_STAT_TUNNEL), 1u);
}

TEST_F(BpfDataplaneTest, GatewayEipDnatsAndSnatsAcrossVpcs) {
  // Scope-cluster LoadBalancer: EIP on the fabric, backend in vpc2.
  service(OC_VPC_EXTERNAL, "10.77.100.1", 80, IPPROTO_TCP, {{kVpc2, ip("10.1.0.3"), be16(8080), 1}}, OC_SVC_SNAT,
          "10.77.0.10", 7);
  FrameSpec in{.src = "10.77.1.50", .dst = "10.77.100.1", .sport = 41000, .dport = 80};
  auto out = run(buildFrame(in), uplink_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec nat = in;
  nat.src = "10.77.0.10";
  nat.dst = "10.1.0.3";
  nat.dport = 8080;
  nat.dst_mac = kPodOtherVpcMac;
  EXPECT_EQ(out.frame, buildFrame(nat));

  // The reply comes back to the gateway address and leaves for the client.
  FrameSpec reply{.src = "10.1.0.3", .dst = "10.77.0.10", .sport = 8080, .dport = 41000, .payload = "ok"};
  auto back = run(buildFrame(reply), rep3_);
  EXPECT_EQ(back.verdict, TC_ACT_REDIRECT);
  FrameSpec restored = reply;
  restored.src = "10.77.100.1";
  restored.sport = 80;
  restored.dst = "10.77.1.50";
  EXPECT_EQ(back.frame, buildFrame(restored));
  EXPECT_GE(stat(OC_STAT_UPLINK), 1u);
}

// The fabric's bridge floods a frame to a MAC it has not learnt to every
// node: the EIP's owner answers it; any other node leaves it to its stack,
// which drops it, and translates nothing.
TEST_F(BpfDataplaneTest, AFloodedUplinkFrameIsLeftToTheNodeItIsFor) {
  service(OC_VPC_EXTERNAL, "10.77.100.1", 80, IPPROTO_TCP, {{kVpc2, ip("10.1.0.3"), be16(8080), 1}}, OC_SVC_SNAT,
          "10.77.0.10", 7);
  FrameSpec flooded{.src = "10.77.1.50", .dst = "10.77.100.1", .sport = 41001, .dport = 80};
  flooded.dst_mac = {0x02, 0, 0, 0, 0, 0xcc};  // another node's uplink
  auto out = run(buildFrame(flooded), uplink_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.frame, buildFrame(flooded)) << "a flooded frame is not translated";
  // No flow was made for it: the backend's reply is not turned into the EIP's.
  FrameSpec reply{.src = "10.1.0.3", .dst = "10.77.0.10", .sport = 8080, .dport = 41001};
  auto back = run(buildFrame(reply), rep3_);
  EXPECT_NE(back.frame, buildFrame(FrameSpec{.src = "10.77.100.1", .dst = "10.77.1.50", .sport = 80, .dport = 41001}));
  // The same frame to this node's MAC is served, and so is a broadcast.
  FrameSpec ours = flooded;
  ours.dst_mac = {0x02, 0, 0, 0, 0, 0xaa};
  EXPECT_EQ(run(buildFrame(ours), uplink_).verdict, TC_ACT_REDIRECT);
  FrameSpec broadcast = flooded;
  broadcast.sport = 41002;
  broadcast.dst_mac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(run(buildFrame(broadcast), uplink_).verdict, TC_ACT_REDIRECT);
}

TEST_F(BpfDataplaneTest, UplinkAndHostTrafficThatIsNotOursPassesToTheStack) {
  FrameSpec fabric{.src = "10.77.0.11", .dst = "10.77.0.10", .dport = 4420};
  auto out = run(buildFrame(fabric), uplink_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.frame, buildFrame(fabric));
  FrameSpec host{.src = "10.78.0.2", .dst = "10.77.1.10", .dport = 4420};
  EXPECT_EQ(run(buildFrame(host), host_).verdict, TC_ACT_OK);
}

TEST_F(BpfDataplaneTest, HostReachesADefaultVpcClusterIp) {
  endpoint(kDefaultVpc, "10.2.0.5", rep2_, kPod2Mac);
  service(kDefaultVpc, "10.96.0.20", 80, IPPROTO_TCP, {{kDefaultVpc, ip("10.2.0.5"), be16(80), 1}});
  FrameSpec in{.src = "10.78.0.2", .dst = "10.96.0.20", .sport = 42000, .dport = 80};
  auto out = run(buildFrame(in), host_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec dnat = in;
  dnat.dst = "10.2.0.5";
  dnat.dst_mac = kPod2Mac;
  EXPECT_EQ(out.frame, buildFrame(dnat));
}

// The service mesh: a mesh pod's TCP goes to the SoC's stack untranslated,
// marked for the proxy's TPROXY rules; UDP and plain remote pods do not.
TEST_F(BpfDataplaneTest, MeshPodTcpToAServiceGoesToTheProxyUntranslated) {
  attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD | OC_IF_MESH});
  service(kVpc1, "10.96.0.10", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.9"), be16(8080), 1}});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.96.0.10", .dport = 80};
  uint64_t before = stat(OC_STAT_MESH_OUT);
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.mark, OC_MARK_MESH_OUT);
  EXPECT_EQ(out.frame, buildFrame(in)) << "the proxy must see the VIP, not a DNATed backend";
  EXPECT_EQ(stat(OC_STAT_MESH_OUT), before + 1);
}

TEST_F(BpfDataplaneTest, MeshPodTcpToARemotePlainPodIsNotCaptured) {
  attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD | OC_IF_MESH});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.1.0.20", .dport = 80};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_NE(out.mark, OC_MARK_MESH_OUT);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);  // VXLAN, as without the mesh
}

TEST_F(BpfDataplaneTest, MeshPodUdpIsNotCaptured) {
  attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD | OC_IF_MESH});
  FrameSpec in{.src = "10.1.0.2", .dst = "10.1.0.3", .dport = 53, .proto = 17};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(out.mark, 0u);
}

TEST_F(BpfDataplaneTest, PlainPodTcpToALocalMeshPodIsCapturedInbound) {
  oc_ep_val v{};
  v.ifindex = rep2_;
  std::memcpy(v.mac, kPod2Mac.data(), 6);
  v.flags = OC_EP_LOCAL | OC_EP_MESH;
  ASSERT_TRUE(dp_->upsertEndpoint({kVpc1, ip("10.1.0.3")}, v).ok());
  FrameSpec in{.src = "10.1.0.9", .dst = "10.1.0.3", .dport = 8080};
  auto out = run(buildFrame(in), rep4_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.mark, OC_MARK_MESH_IN);
  // Through a Service (DNATed here) it is not: the reply must be reverse-NATed.
  service(kVpc1, "10.96.0.11", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.3"), be16(8080), 1}});
  FrameSpec via_vip{.src = "10.1.0.9", .dst = "10.96.0.11", .dport = 80};
  auto dnat = run(buildFrame(via_vip), rep4_);
  EXPECT_EQ(dnat.verdict, TC_ACT_REDIRECT);
  EXPECT_NE(dnat.mark, OC_MARK_MESH_IN);
}

// A plain pod on another node connects to a local mesh pod (captured over
// the tunnel, not runnable here: BPF_PROG_TEST_RUN carries no tunnel key);
// the proxy connects to the mesh pod from that plain pod's address. The mesh
// pod's replies go to the proxy only for a connection the proxy holds.
TEST_F(BpfDataplaneTest, MeshPodReplyToTheProxysUpstreamSocketGoesToTheProxy) {
  attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD | OC_IF_MESH});
  holdSocket("10.1.0.20", 41000, "10.1.0.2", 8080);
  FrameSpec reply{.src = "10.1.0.2", .dst = "10.1.0.20", .sport = 8080, .dport = 41000, .tcp_flags = 0x12};
  uint64_t before = stat(OC_STAT_MESH_OUT);
  auto out = run(buildFrame(reply), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_OK);
  EXPECT_EQ(out.mark, OC_MARK_MESH_OUT);
  EXPECT_EQ(out.frame, buildFrame(reply));
  EXPECT_EQ(stat(OC_STAT_MESH_OUT), before + 1);
}

TEST_F(BpfDataplaneTest, MeshPodsOwnConnectionToARemotePlainPodStaysDirect) {
  attach("rep1", {kVpc1, ip("10.1.0.2"), OC_IF_POD | OC_IF_MESH});
  holdSocket("10.1.0.20", 41000, "10.1.0.2", 8080);
  // Another connection of the same pair: no socket of the proxy's.
  FrameSpec ack{.src = "10.1.0.2", .dst = "10.1.0.20", .sport = 8080, .dport = 41001, .tcp_flags = 0x10};
  auto out = run(buildFrame(ack), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);  // VXLAN
  EXPECT_EQ(out.mark, 0u);
  // A listener on the destination port holds no connection.
  holdSocket("0.0.0.0", 41002, nullptr, 0, true);
  FrameSpec to_listener = ack;
  to_listener.dport = 41002;
  auto l = run(buildFrame(to_listener), rep1_);
  EXPECT_EQ(l.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(l.mark, 0u);
  // The pod's own new connection with the tuple of a held one is still its
  // own (a SYN is never a reply): no lookup, not captured.
  FrameSpec syn{.src = "10.1.0.2", .dst = "10.1.0.20", .sport = 8080, .dport = 41000};
  auto s = run(buildFrame(syn), rep1_);
  EXPECT_EQ(s.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(s.mark, 0u);
}

TEST_F(BpfDataplaneTest, InboundCaptureIsNewConnectionsAndTheProxysOwn) {
  meshEndpoint(kVpc1, "10.1.0.3", rep2_, kPod2Mac);
  // An ACK of a connection the proxy does not hold goes to the pod (which
  // resets it), not through the SoC's stack.
  FrameSpec ack{.src = "10.1.0.9", .dst = "10.1.0.3", .sport = 42000, .dport = 8080, .tcp_flags = 0x10};
  auto direct = run(buildFrame(ack), rep4_);
  EXPECT_EQ(direct.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(direct.mark, 0u);
  // The proxy's accepted socket (TPROXY keeps the pod's address as local).
  holdSocket("10.1.0.3", 8080, "10.1.0.9", 42000);
  auto held = run(buildFrame(ack), rep4_);
  EXPECT_EQ(held.verdict, TC_ACT_OK);
  EXPECT_EQ(held.mark, OC_MARK_MESH_IN);
  EXPECT_EQ(held.frame, buildFrame(ack));
}

// The mesh return link: what the proxy's sockets send to a plain pod on
// another node enters the dataplane there and is tunnelled; nothing else.
TEST_F(BpfDataplaneTest, ProxyReturnLinkTunnelsOnlyTheProxysTcpToRemotePlainPods) {
  uint32_t prx = ::if_nametoindex("prx1");
  ASSERT_NE(prx, 0u);
  attach("prx1", {kVpc1, 0, OC_IF_PROXY});
  meshEndpoint(kVpc1, "10.1.0.3", rep2_, kPod2Mac);
  oc_ep_val remote_mesh{};
  remote_mesh.node_ip = ip("10.77.0.11");
  remote_mesh.flags = OC_EP_REMOTE | OC_EP_MESH;
  ASSERT_TRUE(dp_->upsertEndpoint({kVpc1, ip("10.1.0.21")}, remote_mesh).ok());

  FrameSpec synack{.src = "10.1.0.3", .dst = "10.1.0.20", .sport = 8080, .dport = 41000, .tcp_flags = 0x12};
  uint64_t tunnelled = stat(OC_STAT_TUNNEL);
  auto out = run(buildFrame(synack), prx);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(out.frame, buildFrame(synack)) << "the inner frame travels unchanged";
  EXPECT_EQ(stat(OC_STAT_TUNNEL), tunnelled + 1);

  uint64_t spoof = stat(OC_STAT_DROP_SPOOF);
  FrameSpec from_plain = synack;  // 10.1.0.9 is a plain local pod
  from_plain.src = "10.1.0.9";
  EXPECT_EQ(run(buildFrame(from_plain), prx).verdict, TC_ACT_SHOT);
  FrameSpec udp = synack;
  udp.proto = 17;
  EXPECT_EQ(run(buildFrame(udp), prx).verdict, TC_ACT_SHOT);
  EXPECT_EQ(stat(OC_STAT_DROP_SPOOF), spoof + 2);
  FrameSpec to_mesh = synack;  // mesh pods elsewhere are HBONE's
  to_mesh.dst = "10.1.0.21";
  EXPECT_EQ(run(buildFrame(to_mesh), prx).verdict, TC_ACT_SHOT);
  FrameSpec to_local = synack;
  to_local.dst = "10.1.0.9";
  EXPECT_EQ(run(buildFrame(to_local), prx).verdict, TC_ACT_SHOT);
  (void)dp_->detach("prx1");
}

}  // namespace
}  // namespace offcore

namespace offcore {
namespace {

// Native routing (a VPC's spec.routing: native): no encapsulation; the
// receiver takes a frame in only for a native VPC's prefix and only from a
// node's uplink MAC.
class NativeRoutingTest : public BpfDataplaneTest {
 protected:
  const Mac kPeerUplinkMac{0x02, 0x0f, 0, 0, 0, 0x11};
  void SetUp() override {
    BpfDataplaneTest::SetUp();
    if (HasFatalFailure()) return;
    oc_node_val peer{};
    std::memcpy(peer.mac, kPeerUplinkMac.data(), 6);
    ASSERT_TRUE(dp_->upsertNode(ip("10.77.0.11"), peer).ok());
    ASSERT_TRUE(dp_->upsertNativeNet({24, ip("10.1.0.0")}, {kVpc1, 0}).ok());
    oc_ep_val remote{};
    remote.node_ip = ip("10.77.0.11");
    remote.flags = OC_EP_REMOTE | OC_EP_NATIVE;
    ASSERT_TRUE(dp_->upsertEndpoint({kVpc1, ip("10.1.0.21")}, remote).ok());
  }
  FrameSpec fromPeer(const char* src, const char* dst) {
    FrameSpec f{.src = src, .dst = dst};
    f.src_mac = kPeerUplinkMac;
    return f;
  }
};

TEST_F(NativeRoutingTest, ARemoteEndpointLeavesOnTheUplinkUnencapsulated) {
  uint64_t tunnelled = stat(OC_STAT_TUNNEL), native = stat(OC_STAT_NATIVE);
  FrameSpec in{.src = "10.1.0.2", .dst = "10.1.0.21"};
  auto out = run(buildFrame(in), rep1_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(out.frame, buildFrame(in)) << "the packet travels as it is (the neighbour table fills in the MACs)";
  EXPECT_EQ(stat(OC_STAT_NATIVE), native + 1);
  EXPECT_EQ(stat(OC_STAT_TUNNEL), tunnelled) << "a native VPC's packet went to the VXLAN device";
}

TEST_F(NativeRoutingTest, AFrameFromAPeersUplinkIsDeliveredInItsVpc) {
  auto out = run(buildFrame(fromPeer("10.1.0.21", "10.1.0.3")), uplink_);
  EXPECT_EQ(out.verdict, TC_ACT_REDIRECT);
  FrameSpec delivered = fromPeer("10.1.0.21", "10.1.0.3");
  delivered.dst_mac = kPod2Mac;  // rep2's pod (vpc1), never rep3's (vpc2, same address)
  EXPECT_EQ(out.frame, buildFrame(delivered));
}

TEST_F(NativeRoutingTest, AFrameFromAnUnknownMacIsDropped) {
  uint64_t dropped = stat(OC_STAT_DROP_TUNNEL);
  FrameSpec stranger = fromPeer("10.1.0.21", "10.1.0.3");
  stranger.src_mac = Mac{0x02, 0x0f, 0, 0, 0, 0x99};
  EXPECT_EQ(run(buildFrame(stranger), uplink_).verdict, TC_ACT_SHOT);
  EXPECT_EQ(stat(OC_STAT_DROP_TUNNEL), dropped + 1);
}

TEST_F(NativeRoutingTest, APeerCannotSendAsAnotherNodesPod) {
  // 10.1.0.2 is a pod of this node: no other node sends from it.
  EXPECT_EQ(run(buildFrame(fromPeer("10.1.0.2", "10.1.0.3")), uplink_).verdict, TC_ACT_SHOT);
}

TEST_F(NativeRoutingTest, WhatAPeerRoutedHereIsNeverRoutedOn) {
  // Two nodes that disagree about where 10.1.0.21 is must not bounce it.
  EXPECT_EQ(run(buildFrame(fromPeer("10.1.0.22", "10.1.0.21")), uplink_).verdict, TC_ACT_SHOT);
}

TEST_F(NativeRoutingTest, FabricTrafficOutsideNativePrefixesStillGoesToTheStack) {
  FrameSpec fabric = fromPeer("10.77.0.11", "10.77.0.10");
  EXPECT_EQ(run(buildFrame(fabric), uplink_).verdict, TC_ACT_OK);
}

// An EIP whose backend is a native pod on a peer: the reply comes back on
// the uplink from the peer's MAC, addressed to the client (no native
// address), and is translated here, where the flow was NATed.
TEST_F(NativeRoutingTest, AnEipReplyFromAPeersPodIsReverseNated) {
  service(OC_VPC_EXTERNAL, "10.77.100.2", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.21"), be16(8080), 1}});
  uint64_t native = stat(OC_STAT_NATIVE);
  FrameSpec in{.src = "10.77.1.50", .dst = "10.77.100.2", .sport = 41000, .dport = 80};
  EXPECT_EQ(run(buildFrame(in), uplink_).verdict, TC_ACT_REDIRECT);
  EXPECT_EQ(stat(OC_STAT_NATIVE), native + 1);
  FrameSpec reply = fromPeer("10.1.0.21", "10.77.1.50");
  reply.sport = 8080;
  reply.dport = 41000;
  reply.tcp_flags = 0x12;
  auto back = run(buildFrame(reply), uplink_);
  EXPECT_EQ(back.verdict, TC_ACT_REDIRECT);
  FrameSpec restored = reply;
  restored.src = "10.77.100.2";
  restored.sport = 80;
  EXPECT_EQ(back.frame, buildFrame(restored));
}

// A service gateway here (EIP into several VPCs) translates the client to
// this node's own fabric address; a native backend on a peer answers that
// address, on the uplink, from the peer's MAC: the reply is the gateway's to
// translate back, not the SoC's own traffic.
TEST_F(NativeRoutingTest, AGatewaysReplyToThisNodesOwnAddressIsReverseNated) {
  service(OC_VPC_EXTERNAL, "10.77.100.3", 80, IPPROTO_TCP, {{kVpc1, ip("10.1.0.21"), be16(8080), 1}}, OC_SVC_SNAT,
          "10.77.0.10");
  FrameSpec in{.src = "10.77.1.50", .dst = "10.77.100.3", .sport = 41000, .dport = 80};
  auto fwd = run(buildFrame(in), uplink_);
  ASSERT_EQ(fwd.verdict, TC_ACT_REDIRECT);
  FrameSpec sent = in;
  sent.src = "10.77.0.10";
  sent.dst = "10.1.0.21";
  sent.dport = 8080;
  EXPECT_EQ(fwd.frame, buildFrame(sent)) << "DNAT to the backend and SNAT to this node's address";
  FrameSpec reply = fromPeer("10.1.0.21", "10.77.0.10");
  reply.sport = 8080;
  reply.dport = 41000;
  reply.tcp_flags = 0x12;
  auto back = run(buildFrame(reply), uplink_);
  EXPECT_EQ(back.verdict, TC_ACT_REDIRECT) << "the reply went to the SoC's stack, which holds no such connection";
  FrameSpec restored = reply;
  restored.src = "10.77.100.3";
  restored.sport = 80;
  restored.dst = "10.77.1.50";
  EXPECT_EQ(back.frame, buildFrame(restored));
}

TEST_F(NativeRoutingTest, APeersOwnTrafficFromANativeAddressGoesToTheStack) {
  // Not a reply of a flow translated here: the peer's own (its host domain
  // talking to this SoC, say), handed to the stack as before.
  FrameSpec own = fromPeer("10.1.0.21", "10.77.0.10");
  EXPECT_EQ(run(buildFrame(own), uplink_).verdict, TC_ACT_OK);
}

// A node back under a new fabric address with the same uplink MAC: the
// programmer removes the old record, which must not take the MAC the new
// one holds (in either order).
TEST_F(NativeRoutingTest, ANodeBackUnderANewAddressKeepsItsMac) {
  oc_node_val peer{};
  std::memcpy(peer.mac, kPeerUplinkMac.data(), 6);
  ASSERT_TRUE(dp_->upsertNode(ip("10.77.0.12"), peer).ok());
  ASSERT_TRUE(dp_->removeNode(ip("10.77.0.11")).ok());
  oc_ep_val moved{};
  moved.node_ip = ip("10.77.0.12");
  moved.flags = OC_EP_REMOTE | OC_EP_NATIVE;
  ASSERT_TRUE(dp_->upsertEndpoint({kVpc1, ip("10.1.0.21")}, moved).ok());
  EXPECT_EQ(run(buildFrame(fromPeer("10.1.0.21", "10.1.0.3")), uplink_).verdict, TC_ACT_REDIRECT)
      << "the MAC entry went with the old address";
}

TEST_F(NativeRoutingTest, FramesToThisNodesFabricAddressAreNeverANativeVpcs) {
  // Even if a native prefix covered it (apply refuses that), the SoC's own
  // fabric address stays the SoC's.
  ASSERT_TRUE(dp_->upsertNativeNet({16, ip("10.77.0.0")}, {kVpc1, 0}).ok());
  EXPECT_EQ(run(buildFrame(fromPeer("10.77.0.11", "10.77.0.10")), uplink_).verdict, TC_ACT_OK);
}

TEST_F(NativeRoutingTest, RemovingANodeForgetsItsMac) {
  ASSERT_TRUE(dp_->removeNode(ip("10.77.0.11")).ok());
  EXPECT_EQ(run(buildFrame(fromPeer("10.1.0.21", "10.1.0.3")), uplink_).verdict, TC_ACT_SHOT);
  auto nets = dp_->nativeNets();
  ASSERT_TRUE(nets.ok());
  ASSERT_EQ(nets->size(), 1u);
  EXPECT_EQ((*nets)[0].first.prefixlen, 24u);
  EXPECT_EQ((*nets)[0].second.vpc, kVpc1);
}

}  // namespace
}  // namespace offcore

// A private network namespace with the veths the fixtures classify by.
int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bpf dataplane tests need root (BPF, a network namespace)\n");
    return 1;
  }
  if (::unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET)");
    return 1;
  }
  const char* setup =
      "ip link add rep1 type veth peer name pod1 && ip link add rep2 type veth peer name pod2 && "
      "ip link add rep3 type veth peer name pod3 && ip link add rep4 type veth peer name pod4 && "
      "ip link add upl0 type veth peer name fab0 && ip link add hvf0 type veth peer name hst0 && "
      // The uplink has the MAC frames are addressed to by default
      // (packet_builder.h): a frame to any other is one the fabric flooded.
      "ip link set upl0 address 02:00:00:00:00:aa && "
      "ip link add prx0 type veth peer name prx1 && "
      // A route for the held sockets' SYNs (no one answers on sk1); without
      // lo up, connect() drops a transparent socket's bound address.
      "ip link set lo up && ip link add sk0 type veth peer name sk1 && ip link set sk0 up && ip link set sk1 up && "
      "ip route add 10.1.0.0/24 dev sk0";
  if (std::system(setup) != 0) {
    std::fprintf(stderr, "could not create the test veths\n");
    return 1;
  }
  return RUN_ALL_TESTS();
}
