#include "svc/cluster_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "base/files.h"
#include "svc/liveness.h"
#include "svc/resolve.h"

namespace offcore::svc {
namespace {

class ClusterStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-cluster-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/cluster";
  }
  void TearDown() override { (void)removeTree(root_); }

  // Writes yaml to a real file and parses it, as `svc apply -f` does.
  std::vector<Resource> file(const std::string& name, const std::string& yaml) {
    std::string path = root_ + "/" + name;
    EXPECT_TRUE(writeFileAtomic(path, yaml).ok());
    auto text = readFile(path);
    auto r = parseResources(*text, path);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : std::vector<Resource>{};
  }

  ClusterState state() {
    auto s = ClusterStore(dir_).load();
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? *s : ClusterState{};
  }

  std::string root_, dir_;
};

const char* kNet = R"(apiVersion: offcore.io/v1
kind: VPC
metadata: {name: red}
---
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: blue}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: red-a}
spec: {vpc: red, cidr: 10.1.0.0/24}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: blue-a}
spec: {vpc: blue, cidr: 10.1.0.0/24, gateway: 10.1.0.2}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: tiny}
spec: {vpc: red, cidr: 10.9.0.0/29, gateway: 10.9.0.3}
)";

TEST_F(ClusterStoreTest, MissingDirIsTheEmptyStateWithTheDefaultVpc) {
  ClusterState s = state();
  EXPECT_EQ(s.generation, 0u);
  ASSERT_EQ(s.vpcs.size(), 1u);
  EXPECT_EQ(s.vpcs.at("default").vni, 1u);
  EXPECT_FALSE(pathExists(dir_));  // reading creates nothing
}

TEST_F(ClusterStoreTest, ApplyIsAtomicAndReapplyIsIdempotent) {
  ClusterStore store(dir_);
  auto first = store.apply(file("net.yaml", kNet));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->created.size(), 5u);
  EXPECT_EQ(first->generation, 1u);
  ClusterState s1 = state();
  EXPECT_EQ(s1.vpcs.at("red").vni, 2u);
  EXPECT_EQ(s1.vpcs.at("blue").vni, 3u);

  auto again = store.apply(file("net.yaml", kNet));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged.size(), 5u);
  EXPECT_EQ(again->generation, 1u);  // nothing changed, nothing written
  EXPECT_EQ(state(), s1);

  // A good Service and a bad one in one file: nothing is applied.
  std::string yaml = R"(apiVersion: offcore.io/v1
kind: Service
metadata: {name: good}
spec: {vpc: red, ports: [{port: 80}], selector: {app: web}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: bad}
spec: {vpc: green, ports: [{port: 80}], selector: {app: web}}
)";
  auto bad = store.apply(file("mixed.yaml", yaml));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, root_ +
                                     "/mixed.yaml:6: Service \"bad\": spec.vpc: VPC \"green\" does not exist; "
                                     "apply it first or in the same file");
  EXPECT_EQ(state(), s1);
  // And a document that does not even parse never reaches the store.
  EXPECT_FALSE(parseResources(yaml + "---\nkind: [\n", "m.yaml").ok());
}

TEST_F(ClusterStoreTest, CorruptStateIsAnErrorNamingTheFile) {
  ASSERT_TRUE(makeDirs(dir_).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/state.json", "{\"version\": 1, \"generation\": \"x\"}").ok());
  auto s = ClusterStore(dir_).load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find(dir_ + "/state.json is corrupt"), std::string::npos) << s.error().message;
  ClusterStore store(dir_);
  EXPECT_FALSE(store.apply(file("net.yaml", kNet)).ok());  // never silently reset
  EXPECT_FALSE(store.addEndpoint({"n1", "c1", "eth0", "p", "", "", "red-a"}).ok());
}

TEST_F(ClusterStoreTest, IpamHandsOutLowestFreeHostAddresses) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  auto e1 = store.addEndpoint({"n1", "c1", "eth0", "pod1", "/proc/1/ns/net", "", "red-a"});
  ASSERT_TRUE(e1.ok()) << e1.error().message;
  EXPECT_EQ(e1->ip, "10.1.0.2");  // .0 network, .1 gateway
  EXPECT_EQ(e1->prefix_len, 24);
  EXPECT_EQ(e1->vpc, "red");
  EXPECT_EQ(e1->id, "n1/c1/eth0");
  auto again = store.addEndpoint({"n1", "c1", "eth0", "pod1", "/proc/1/ns/net", "red", "red-a"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *e1);  // a retried CNI ADD gets the same address
  uint64_t gen = state().generation;
  EXPECT_TRUE(store.setEndpointDetails("n1/c1/eth0", "02:00:00:00:00:01", "pf0vf0").ok());
  EXPECT_EQ(state().endpoints.at("n1/c1/eth0").representor, "pf0vf0");
  EXPECT_EQ(state().generation, gen + 1);

  // Overlapping subnets of different VPCs allocate independently; the
  // gateway (.2 in blue) is skipped.
  auto b1 = store.addEndpoint({"n2", "c2", "eth0", "pod2", "", "blue", "blue-a"});
  ASSERT_TRUE(b1.ok());
  EXPECT_EQ(b1->ip, "10.1.0.1");
  auto b2 = store.addEndpoint({"n2", "c3", "eth0", "pod3", "", "", "blue-a"});
  EXPECT_EQ(b2->ip, "10.1.0.3");

  // /29 with gateway .3: hosts .1 .2 .4 .5 .6, then full.
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto e = store.addEndpoint({"n1", "t" + std::to_string(i), "eth0", "p", "", "", "tiny"});
    ASSERT_TRUE(e.ok()) << e.error().message;
    got.push_back(e->ip);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"10.9.0.1", "10.9.0.2", "10.9.0.4", "10.9.0.5", "10.9.0.6"}));
  auto full = store.addEndpoint({"n1", "t9", "eth0", "p", "", "", "tiny"});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().message,
            "Subnet \"tiny\" (10.9.0.0/29) has no free address; apply a larger subnet or delete pods");
  // A released address is the lowest free one again.
  ASSERT_TRUE(store.removeEndpoint("n1/t1/eth0").ok());
  ASSERT_TRUE(store.removeEndpoint("n1/t1/eth0").ok());  // absent is fine
  EXPECT_EQ(store.addEndpoint({"n1", "t9", "eth0", "p", "", "", "tiny"})->ip, "10.9.0.2");

  auto wrong_vpc = store.addEndpoint({"n1", "c7", "eth0", "p", "", "blue", "red-a"});
  ASSERT_FALSE(wrong_vpc.ok());
  EXPECT_NE(wrong_vpc.error().message.find("belongs to VPC \"red\", not \"blue\""), std::string::npos);
  auto unknown = store.addEndpoint({"n1", "c8", "eth0", "p", "", "", "nope"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("Subnet \"nope\" does not exist"), std::string::npos);
}

TEST_F(ClusterStoreTest, ConcurrentAllocationFromTwoProcessesIsUnique) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  constexpr int kPerProcess = 25;
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ClusterStore mine(dir_);
      for (int i = 0; i < kPerProcess; ++i) {
        auto e = mine.addEndpoint({"n" + std::to_string(p), "c" + std::to_string(i), "eth0", "p", "", "", "red-a"});
        if (!e.ok()) ::_exit(1);
      }
      ::_exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  ClusterState s = state();
  std::set<std::string> ips;
  for (const auto& [id, e] : s.endpoints) ips.insert(e.ip);
  EXPECT_EQ(s.endpoints.size(), 2u * kPerProcess);
  EXPECT_EQ(ips.size(), 2u * kPerProcess) << "an address was handed out twice";
  EXPECT_FALSE(ips.count("10.1.0.1"));
  EXPECT_EQ(s.generation, 1u + 2 * kPerProcess);
}

TEST_F(ClusterStoreTest, RemoveRefusesWhileReferenced) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  ASSERT_TRUE(store
                  .apply(file("b.yaml", R"(apiVersion: offcore.io/v1
kind: Backend
metadata: {name: db}
spec: {kind: ip, vpc: red, ip: 10.1.0.50}
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: db-probe}
spec: {backend: db, type: tcp, port: 5432}
)"))
                  .ok());
  ASSERT_TRUE(store.addEndpoint({"n1", "c1", "eth0", "pod1", "", "", "red-a"}).ok());

  auto msg = [&](const std::string& kind, const std::string& name) {
    auto st = store.remove(kind, name);
    return st.ok() ? std::string("ok") : st.error().message;
  };
  EXPECT_EQ(msg("VPC", "default"), "cannot delete VPC \"default\": the default VPC always exists");
  EXPECT_EQ(msg("VPC", "red"),
            "cannot delete VPC \"red\": VPC \"red\" is still used by Subnet/red-a, Subnet/tiny, "
            "Backend/db, Endpoint/n1/c1/eth0; delete those first");
  EXPECT_EQ(msg("Subnet", "red-a"),
            "cannot delete Subnet \"red-a\": Subnet \"red-a\" still has endpoints n1/c1/eth0 "
            "(pod \"pod1\"); delete those pods first (the CNI releases their addresses)");
  EXPECT_EQ(msg("Backend", "db"),
            "cannot delete Backend \"db\": Backend \"db\" is probed by NetworkProbe "
            "\"db-probe\"; delete the probe first");
  EXPECT_EQ(msg("Service", "ghost"), "Service \"ghost\" not found (see `offcore svc list`)");
  // The IPAM skipped the backend's fixed address? It is above .2, so check directly.
  EXPECT_EQ(state().endpoints.at("n1/c1/eth0").ip, "10.1.0.2");

  uint64_t gen = state().generation;
  EXPECT_EQ(msg("NetworkProbe", "db-probe"), "ok");
  EXPECT_EQ(msg("Backend", "db"), "ok");
  ASSERT_TRUE(store.removeEndpoint("n1/c1/eth0").ok());
  EXPECT_EQ(msg("Subnet", "red-a"), "ok");
  EXPECT_EQ(msg("Subnet", "tiny"), "ok");
  EXPECT_EQ(msg("VPC", "red"), "ok");
  EXPECT_EQ(state().generation, gen + 6);
}

TEST_F(ClusterStoreTest, IpamSkipsBackendAddressesAndSubnetChangesNeedNoEndpoints) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  ASSERT_TRUE(store
                  .apply(file("b.yaml",
                              "apiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: vm}\n"
                              "spec: {kind: vm, vpc: red, ip: 10.9.0.1}\n"))
                  .ok());
  EXPECT_EQ(store.addEndpoint({"n1", "c1", "eth0", "p", "", "", "tiny"})->ip, "10.9.0.2");
  auto changed = store.apply(file("s.yaml",
                                  "apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: tiny}\n"
                                  "spec: {vpc: red, cidr: 10.9.0.0/28}\n"));
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.error().message.find("cannot change vpc, cidr or gateway while 1 endpoint(s) use the subnet"),
            std::string::npos);
  // A static backend may not take an address IPAM already handed out.
  auto clash = store.apply(file("c.yaml",
                                "apiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: vm2}\n"
                                "spec: {kind: vm, vpc: red, ip: 10.9.0.2}\n"));
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.error().message.find("10.9.0.2 is already handed out to endpoint n1/c1/eth0"), std::string::npos);
}

TEST_F(ClusterStoreTest, AVmNicIsABackendOfKindVmAndMovesWithItsVm) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  EndpointRequest req{"n1", "vm-web", "eth0", "", "", "red", "red-a"};
  req.vm = "web";
  auto ep = store.addEndpoint(req);
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  EXPECT_EQ(ep->vm, "web");
  ASSERT_TRUE(store.setEndpointDetails(ep->id, "02:0d:00:00:00:01", "ocvm1").ok());
  // A Backend of kind vm may name the NIC's address; other kinds may not.
  std::string vmb =
      "apiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: web}\nspec: {kind: vm, vpc: red, ip: " + ep->ip +
      ", node: n1}\n";
  auto ok = store.apply(file("vmb.yaml", vmb));
  EXPECT_TRUE(ok.ok()) << ok.error().message;
  std::string ipb =
      "apiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: bare}\nspec: {kind: baremetal, vpc: red, "
      "ip: " +
      ep->ip + "}\n";
  EXPECT_FALSE(store.apply(file("ipb.yaml", ipb)).ok());
  EXPECT_EQ(state().endpoints.at(ep->id).vm, "web") << "the marker survives the JSON round trip";

  // A migration: same address and MAC on the new node, representor to fill in.
  auto moved = store.moveEndpoint(ep->id, "n2");
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ(moved->id, "n2/vm-web/eth0");
  EXPECT_EQ(moved->ip, ep->ip);
  EXPECT_EQ(moved->mac, "02:0d:00:00:00:01");
  EXPECT_TRUE(moved->representor.empty());
  auto s = state();
  EXPECT_EQ(s.endpoints.count(ep->id), 0u);
  EXPECT_EQ(s.endpoints.at("n2/vm-web/eth0").node, "n2");
  EXPECT_FALSE(store.moveEndpoint(ep->id, "n3").ok()) << "nothing left to move";
}

TEST_F(ClusterStoreTest, NodesAndHealth) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.registerNode({"n1", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:0a", ""}).ok());
  ASSERT_TRUE(store.registerNode({"n1", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:0a", ""}).ok());
  EXPECT_EQ(state().generation, 1u);
  EXPECT_EQ(state().nodes.at("n1").fabric_ip, "10.77.0.10");

  NodeHealth h;
  h.node = "n1";
  h.programmed_generation = 1;
  h.updated_ms = 1234;
  h.backends["db"] = BackendHealth{false, 1000, "connect: refused", "db-probe"};
  ASSERT_TRUE(store.writeHealth(h).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/health/n2.json", "{garbage").ok());
  auto all = store.loadHealth();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);  // the garbage file is skipped
  const auto& back = all->at("n1");
  EXPECT_EQ(back.programmed_generation, 1u);
  EXPECT_EQ(back.backends.at("db").last_error, "connect: refused");
  EXPECT_FALSE(back.backends.at("db").healthy);
  EXPECT_EQ(state().generation, 1u);  // health never touches state.json
}

TEST_F(ClusterStoreTest, UnregisterTakesTheRecordEndpointsHealthAndHeartbeat) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  ASSERT_TRUE(store.registerNode({"n1", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:0a", ""}).ok());
  ASSERT_TRUE(store.registerNode({"n2", "10.77.0.11", "10.78.1.2", "02:00:00:00:00:0b", ""}).ok());
  ASSERT_TRUE(store.addEndpoint({"n1", "c1", "eth0", "pod1", "", "", "red-a"}).ok());
  ASSERT_TRUE(store.addEndpoint({"n2", "c2", "eth0", "pod2", "", "", "red-a"}).ok());
  ASSERT_TRUE(store.heartbeat("n1", 1000).ok());
  ASSERT_TRUE(store.heartbeat("n2", 2000).ok());
  NodeHealth h;
  h.node = "n1";
  ASSERT_TRUE(store.writeHealth(h).ok());
  EXPECT_EQ(store.loadHeartbeats(), (std::map<std::string, uint64_t>{{"n1", 1000}, {"n2", 2000}}));

  ASSERT_TRUE(store.unregisterNode("n1").ok());
  ClusterState s = state();
  EXPECT_EQ(s.nodes.count("n1"), 0u);
  EXPECT_EQ(s.nodes.count("n2"), 1u);
  ASSERT_EQ(s.endpoints.size(), 1u);
  EXPECT_EQ(s.endpoints.begin()->second.node, "n2");
  EXPECT_EQ(store.loadHeartbeats(), (std::map<std::string, uint64_t>{{"n2", 2000}}));
  EXPECT_EQ(store.loadHealth()->count("n1"), 0u);
  EXPECT_TRUE(store.unregisterNode("n1").ok());  // already gone: fine
  EXPECT_FALSE(store.unregisterNode("../x").ok());
}

TEST(LivenessTest, OnlyRegisteredNodesWithAFreshBeatAreLive) {
  ClusterState s = ClusterState::empty();
  s.nodes["a"] = {"a", "10.77.0.10", "", "", ""};
  s.nodes["b"] = {"b", "10.77.0.11", "", "", ""};
  s.nodes["c"] = {"c", "10.77.0.12", "", "", ""};
  // b beat 6 s ago, c never; "gone" beats but is not registered.
  auto l = nodeLiveness(s, {{"a", 9000}, {"b", 4000}, {"gone", 9999}}, 10000, 5000);
  ASSERT_EQ(l.size(), 3u);
  EXPECT_TRUE(l["a"].live);
  EXPECT_EQ(l["a"].age_ms, 1000u);
  EXPECT_FALSE(l["b"].live);
  EXPECT_EQ(l["b"].age_ms, 6000u);
  EXPECT_FALSE(l["c"].live);
  EXPECT_EQ(l["c"].heartbeat_ms, 0u);
  EXPECT_EQ(liveNodes(l), (std::set<std::string>{"a"}));
  // A beat from the future (clock stepped back) is fresh, not expired.
  EXPECT_TRUE(nodeLiveness(s, {{"a", 20000}}, 10000, 5000)["a"].live);
}

TEST(LivenessTest, OwnersAreLiveDeterministicAndOnlyTheLeaversKeysMove) {
  EXPECT_EQ(ownerOf("10.77.200.1", {}), "");
  std::set<std::string> all{"n1", "n2", "n3"};
  std::map<std::string, std::string> before;
  std::set<std::string> owners;
  for (int i = 0; i < 64; ++i) {
    std::string eip = "10.77.200." + std::to_string(i);
    before[eip] = ownerOf(eip, all);
    EXPECT_EQ(ownerOf(eip, all), before[eip]);
    owners.insert(before[eip]);
  }
  EXPECT_EQ(owners, all);  // spread over every node
  std::set<std::string> without_n2{"n1", "n3"};
  for (const auto& [eip, owner] : before) {
    std::string now = ownerOf(eip, without_n2);
    EXPECT_NE(now, "n2");
    if (owner != "n2") {
      EXPECT_EQ(now, owner) << eip;  // nothing else moves
    }
  }
}

// --- resolution -------------------------------------------------------------

TEST_F(ClusterStoreTest, ResolvesSelectorsAcrossKindsAndScopes) {
  ClusterStore store(dir_);
  ASSERT_TRUE(store.apply(file("net.yaml", kNet)).ok());
  ASSERT_TRUE(store
                  .apply(file("app.yaml", R"(apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-pod, labels: {app: web, tier: front}}
spec: {kind: pod, vpc: red, pod: web-0}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-vm, labels: {app: web, tier: front}}
spec: {kind: vm, vpc: red, ip: 10.1.0.100, node: n2}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-old, labels: {app: web, tier: back}}
spec: {kind: baremetal, vpc: red, ip: 10.1.0.99}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-blue, labels: {app: web, tier: front}}
spec: {kind: ip, vpc: blue, ip: 10.1.0.7}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  vpc: red
  ports: [{port: 80, targetPort: 8080}, {port: 443}]
  selector: {app: web, tier: front}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: gw}
spec:
  type: LoadBalancer
  scope: cluster
  vpc: red
  eip: 192.0.2.10
  ports: [{port: 80}]
  selector: {tier: front}
)"))
                  .ok());
  ClusterState s = state();
  const Service web = s.services.at("web");  // a copy: s is reassigned below
  auto r = resolveService(s, web);
  ASSERT_EQ(r.size(), 1u);  // the pod has no endpoint yet; tier back and VPC blue do not match
  EXPECT_EQ(r[0].name, "web-vm");
  EXPECT_EQ(r[0].node, "n2");
  EXPECT_EQ(r[0].vni, 2u);
  EXPECT_EQ(r[0].target_ports, (std::vector<uint16_t>{8080, 443}));
  EXPECT_EQ(pendingBackends(s, web), std::vector<std::string>{"web-pod"});

  ASSERT_TRUE(store.addEndpoint({"n1", "c1", "eth0", "web-0", "", "", "red-a"}).ok());
  s = state();
  r = resolveService(s, web);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].name, "web-pod");  // 10.1.0.2 sorts before 10.1.0.100
  EXPECT_EQ(r[0].ip, "10.1.0.2");
  EXPECT_EQ(r[0].node, "n1");
  EXPECT_EQ(r[0].endpoint_id, "n1/c1/eth0");
  EXPECT_TRUE(pendingBackends(s, web).empty());

  // scope cluster reaches the blue backend too, sorted by (vpc, ip).
  auto g = resolveService(s, s.services.at("gw"));
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].name, "web-blue");
  EXPECT_EQ(g[0].vni, 3u);
  EXPECT_EQ(g[0].node, "");
  EXPECT_EQ(g[1].name, "web-pod");
  EXPECT_EQ(g[2].name, "web-vm");
}

}  // namespace
}  // namespace offcore::svc
