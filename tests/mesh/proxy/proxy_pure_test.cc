// The node proxy's pure pieces: protocol sniffing, PeerAuthentication
// resolution, the xDS/cluster merge, the interception ruleset, and the L4
// pump over fake transports.
#include <gtest/gtest.h>

#include "mesh/proxy/interception.h"
#include "mesh/proxy/peer_auth.h"
#include "mesh/proxy/pump.h"
#include "mesh/proxy/sniff.h"
#include "mesh/proxy/workloads.h"
#include "mesh/proxy/xds_merge.h"
#include "net/bpf/dataplane_abi.h"
#include "net/dataplane.h"

namespace offcore::mesh {
namespace {

TEST(Sniff, HttpMethodsPrefaceAndOthers) {
  EXPECT_EQ(sniffProtocol(""), Sniffed::kNeedMore);
  EXPECT_EQ(sniffProtocol("GE"), Sniffed::kNeedMore);
  EXPECT_EQ(sniffProtocol("GET / HTTP/1.1\r\n"), Sniffed::kHttp1);
  EXPECT_EQ(sniffProtocol("DELETE /x"), Sniffed::kHttp1);
  EXPECT_EQ(sniffProtocol("PRI * HTTP/2.0\r\n"), Sniffed::kNeedMore);
  EXPECT_EQ(sniffProtocol("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Sniffed::kHttp2);
  EXPECT_EQ(sniffProtocol("\x16\x03\x01\x02"), Sniffed::kOther);  // a TLS ClientHello: L4
  EXPECT_EQ(sniffProtocol("GETX"), Sniffed::kOther);
  EXPECT_EQ(sniffProtocol("hello-mesh"), Sniffed::kOther);
}

TEST(PeerAuth, WorkloadBeatsNamespaceBeatsMeshAndPortLevelBeatsAll) {
  MeshWorkload w;
  w.ns = "shop";
  w.labels = {{"app", "web"}};
  MeshConfig c;
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kPermissive);
  c.peer_authentications.push_back({"mesh", "istio-system", {}, MtlsMode::kStrict, {}});
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kStrict);
  c.peer_authentications.push_back({"ns", "shop", {}, MtlsMode::kPermissive, {}});
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kPermissive);
  c.peer_authentications.push_back({"other", "shop", {{"app", "db"}}, MtlsMode::kStrict, {}});
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kPermissive) << "a selector that does not match";
  c.peer_authentications.push_back(
      {"web", "shop", {{"app", "web"}}, MtlsMode::kStrict, {{8080, MtlsMode::kPermissive}}});
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kStrict);
  EXPECT_EQ(mtlsModeFor(c, w, 8080), MtlsMode::kPermissive);
  // Unset in the workload's policy: inherited from the namespace's.
  c.peer_authentications.back().mode = MtlsMode::kUnset;
  EXPECT_EQ(mtlsModeFor(c, w, 80), MtlsMode::kPermissive);
}

TEST(XdsMerge, KnownPodsGetTheirNodeAndIdentityAndSecurityComesFromTheCluster) {
  Snapshot xds;
  xds.version = 7;
  xds.services.push_back({"web", "10.96.0.10", {{"http", 80, 8080, "http"}}, {}});
  MeshEndpoint known, unknown;
  known.ip = "10.1.0.5";
  unknown.ip = "10.9.9.9";
  xds.services[0].endpoints = {known, unknown};
  xds.config.authorization_policies.push_back({});  // the xDS subset carries none: must not win
  Snapshot cluster;
  cluster.trust_domain = "td";
  MeshWorkload w;
  w.ip = "10.1.0.5";
  w.node = "b";
  w.node_ip = "10.77.0.11";
  w.mesh = true;
  w.identity = "spiffe://td/ns/default/sa/web";
  cluster.workloads = {w};
  AuthorizationPolicy deny;
  deny.name = "deny";
  deny.action = AuthorizationPolicy::Action::kDeny;
  cluster.config.authorization_policies = {deny};
  Snapshot m = mergeXdsSnapshot(xds, cluster);
  EXPECT_EQ(m.version, 7u);
  ASSERT_EQ(m.services.size(), 1u);
  EXPECT_EQ(m.services[0].endpoints[0].node, "b");
  EXPECT_EQ(m.services[0].endpoints[0].node_ip, "10.77.0.11");
  EXPECT_TRUE(m.services[0].endpoints[0].mesh);
  EXPECT_EQ(m.services[0].endpoints[0].identity, w.identity);
  EXPECT_FALSE(m.services[0].endpoints[1].mesh);
  EXPECT_TRUE(m.services[0].endpoints[1].node.empty());
  ASSERT_EQ(m.config.authorization_policies.size(), 1u);
  EXPECT_EQ(m.config.authorization_policies[0].name, "deny");
  EXPECT_EQ(m.trust_domain, "td");
}

TEST(Interception, RulesetMatchesTheDataplaneMarksAndPorts) {
  InterceptionPorts p;
  p.outbound = 15001;
  p.inbound = 15006;
  std::string r = interceptionRuleset(p);
  char mark[32];
  std::snprintf(mark, sizeof mark, "0x%x", OC_MARK_MESH_OUT);
  EXPECT_NE(r.find(std::string("meta mark ") + mark + " tcp flags & (syn | ack) == syn tproxy to :15001"),
            std::string::npos)
      << r;
  std::snprintf(mark, sizeof mark, "0x%x", OC_MARK_MESH_IN);
  EXPECT_NE(r.find(std::string("meta mark ") + mark + " tcp flags & (syn | ack) == syn tproxy to :15006"),
            std::string::npos);
  EXPECT_NE(r.find("socket transparent 1"), std::string::npos);
  // Nothing forwarded may enter a mesh return link (it would be tunnelled).
  EXPECT_NE(r.find("hook forward"), std::string::npos);
  EXPECT_EQ(meshReturnLink(7).rfind("ocm", 0), 0u) << "the forward rule matches ocm*";
  EXPECT_NE(r.find("oifname \"ocm*\" counter drop"), std::string::npos) << r;
}

TEST(Interception, PodRoutesGoToRepresentorsAndRemotePlainPodsToTheirVpcsReturnLink) {
  auto pod = [](std::string ip, std::string node, bool mesh, uint32_t vni, std::string rep = "") {
    MeshWorkload w;
    w.ip = std::move(ip);
    w.node = std::move(node);
    w.mesh = mesh;
    w.vni = vni;
    w.representor = std::move(rep);
    return w;
  };
  std::vector<MeshWorkload> ws{pod("10.64.0.2", "a", true, 1, "pf0vf1"), pod("10.64.0.3", "a", false, 1, "pf0vf2"),
                               pod("10.64.0.4", "b", false, 1), pod("10.64.0.5", "b", true, 1),
                               pod("10.65.0.4", "b", false, 3)};
  std::vector<uint32_t> asked;
  auto routes = podRouteTargets(ws, "a", [&](uint32_t vni) {
    asked.push_back(vni);
    return vni == 1;  // no mesh pod of VPC 3 here: no link
  });
  std::map<std::string, std::string> want{
      {"10.64.0.2", "pf0vf1"}, {"10.64.0.3", "pf0vf2"}, {"10.64.0.4", meshReturnLink(1)}};
  EXPECT_EQ(routes, want);
  EXPECT_EQ(asked, (std::vector<uint32_t>{1, 3})) << "one check per VPC";
}

// A Transport that records what it is given and lets the test push events.
class FakeTransport : public Transport {
 public:
  void setCallbacks(Callbacks* c) override { cb = c; }
  void write(std::string_view b) override { written.append(b); }
  size_t pendingWrite() const override { return pending; }
  void pauseReading(bool p) override { paused = p; }
  void endWrite() override { ended = true; }
  void reset() override { was_reset = true; }
  std::string localAddress() const override { return "10.0.0.1:80"; }
  std::string remoteAddress() const override { return "10.0.0.2:4000"; }
  Callbacks* cb = nullptr;
  std::string written;
  size_t pending = 0;
  bool paused = false, ended = false, was_reset = false;
};

TEST(Pump, CopiesBothWaysPassesHalfClosesAndBackpressure) {
  auto down = std::make_unique<FakeTransport>();
  auto up = std::make_unique<FakeTransport>();
  FakeTransport *d = down.get(), *u = up.get();
  bool done = false;
  PumpStats got;
  Pump pump(std::move(down), std::move(up), [&](const PumpStats& s) {
    done = true;
    got = s;
  });
  d->cb->onData("request");
  EXPECT_EQ(u->written, "request");
  u->cb->onData("response");
  EXPECT_EQ(d->written, "response");
  u->pending = Pump::kHighWater + 1;
  d->cb->onData("more");
  EXPECT_TRUE(d->paused) << "the client is not read while its upstream is backed up";
  u->cb->onDrained();
  EXPECT_FALSE(d->paused);
  d->cb->onEnd();
  EXPECT_TRUE(u->ended);
  d->cb->onClosed(okStatus());
  EXPECT_FALSE(done);
  u->cb->onClosed(okStatus());
  EXPECT_TRUE(done);
  EXPECT_EQ(got.bytes_up, 11u);
  EXPECT_EQ(got.bytes_down, 8u);
  EXPECT_FALSE(got.reset);
}

TEST(Pump, AnErrorOnOneSideResetsTheOther) {
  auto down = std::make_unique<FakeTransport>();
  auto up = std::make_unique<FakeTransport>();
  FakeTransport* d = down.get();
  FakeTransport* u = up.get();
  PumpStats got;
  bool done = false;
  Pump pump(std::move(down), std::move(up), [&](const PumpStats& s) {
    done = true;
    got = s;
  });
  u->cb->onClosed(makeError("connection reset by peer"));
  EXPECT_TRUE(d->was_reset);
  EXPECT_TRUE(done);
  EXPECT_TRUE(got.reset);
  EXPECT_EQ(got.error, "connection reset by peer");
}

TEST(Workloads, FindByAddress) {
  std::vector<MeshWorkload> ws(3);
  ws[0].ip = "10.0.0.1";
  ws[1].ip = "10.0.0.10";
  ws[2].ip = "10.0.0.2";
  std::sort(ws.begin(), ws.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
  ASSERT_NE(findWorkload(ws, "10.0.0.2"), nullptr);
  EXPECT_EQ(findWorkload(ws, "10.0.0.2")->ip, "10.0.0.2");
  EXPECT_EQ(findWorkload(ws, "10.0.0.3"), nullptr);
}

}  // namespace
}  // namespace offcore::mesh
