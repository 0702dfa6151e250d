// The mesh store's rules over each place its document lives: the cluster
// directory and a real etcd member (the same cases), then a proxy's config
// source following both the svc state and the document.
#include "mesh/config/mesh_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <thread>

#include "../../kv/etcd_member.h"
#include "../loop_helpers.h"
#include "base/files.h"
#include "mesh/proxy/cluster_source.h"

namespace offcore::mesh {
namespace {

const char* kServices = R"(apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web-1, labels: {app: web, version: v1}}
spec: {kind: ip, ip: 10.1.0.10}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 80, targetPort: 8080, appProtocol: http}]
  selector: {app: web}
)";

const char* kApiService = R"(apiVersion: offcore.io/v1
kind: Service
metadata: {name: api}
spec:
  ports: [{port: 81}]
  selector: {app: api}
)";

const char* kRule = R"(apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
)";

const char* kRoute = R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web, subset: v1}
      weight: 50
    - destination: {host: web, subset: v2}
      weight: 50
)";

class MeshStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mesh_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (etcd()) {
      auto up = member_.start();
      ASSERT_TRUE(up.ok()) << up.error().message;
      raw_ = kv::makeEtcdClient(member_.options());
    }
    auto docs = svc::parseResources(kServices, "svc.yaml");
    ASSERT_TRUE(docs.ok()) << docs.error().message;
    ASSERT_TRUE(cluster().apply(*docs).ok());
  }
  void TearDown() override { (void)removeTree(dir_); }

  bool etcd() const { return GetParam() == "etcd"; }
  MeshStore open() {
    if (!etcd()) return MeshStore(dir_);
    return MeshStore(makeMeshEtcdDoc(kv::makeEtcdClient(member_.options())),
                     svc::makeEtcdStorage(kv::makeEtcdClient(member_.options()), 5));
  }
  svc::ClusterStore cluster() {
    if (!etcd()) return svc::ClusterStore(dir_);
    return svc::ClusterStore(svc::makeEtcdStorage(kv::makeEtcdClient(member_.options()), 5),
                             svc::AddressPlan("10.96.0.0/16"));
  }
  // Puts text where the document lives, behind the store's back.
  void overwrite(const std::string& text) {
    if (etcd()) {
      ASSERT_TRUE(raw_->txn({}, {kv::Op::put("/offcore/mesh/v1/config", text)}).ok());
    } else {
      ASSERT_TRUE(writeFileAtomic(dir_ + "/mesh/config.json", text).ok());
    }
  }

  ParsedMesh parse(const std::string& text, const std::string& file = "m.yaml") {
    auto p = parseMeshDocuments(text, file);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : ParsedMesh{};
  }

  std::string dir_;
  kv::EtcdMember member_;
  std::unique_ptr<kv::KvClient> raw_;
};

TEST_P(MeshStoreTest, ApplyIsAtomicVersionedAndIdempotent) {
  MeshStore store = open();
  auto empty = store.load();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->generation, 0u);
  auto r = store.apply(parse(std::string(kRule) + "---\n" + kRoute));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->created, (std::vector<std::string>{"destinationrule/web", "virtualservice/web"}));
  EXPECT_EQ(r->generation, 1u);
  if (!etcd()) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/mesh/config.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }

  auto again = store.apply(parse(kRoute));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, std::vector<std::string>{"virtualservice/web"});
  EXPECT_EQ(again->generation, 1u);

  std::string changed = kRoute;
  changed.replace(changed.find("weight: 50"), 10, "weight: 20");
  changed.replace(changed.find("weight: 50"), 10, "weight: 80");
  auto upd = store.apply(parse(changed));
  ASSERT_TRUE(upd.ok()) << upd.error().message;
  EXPECT_EQ(upd->configured, std::vector<std::string>{"virtualservice/web"});
  EXPECT_EQ(upd->generation, 2u);
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->generation, 2u);
  ASSERT_EQ(loaded->config.virtual_services.size(), 1u);
  EXPECT_EQ(loaded->config.virtual_services[0].http[0].route[1].weight, 80u);
}

TEST_P(MeshStoreTest, HostsMustBeServicesAndSubsetsDefinedWithFileLine) {
  MeshStore store = open();
  std::string vs = R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - route:
    - destination: {host: web, subset: v9}
)";
  auto r = store.apply(parse(vs, "vs.yaml"));
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_NE(m.find("vs.yaml:5: VirtualService \"shop\": spec.hosts[0]: Service \"shop\" does not exist"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("vs.yaml:8: VirtualService \"shop\": spec.http[0].route[0].destination.subset: subset \"v9\""),
            std::string::npos)
      << m;
  std::string dr =
      "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: x}\n"
      "spec: {host: nothere}\n";
  auto r2 = store.apply(parse(dr, "dr.yaml"));
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("dr.yaml:4: DestinationRule \"x\": spec.host: Service \"nothere\""),
            std::string::npos)
      << r2.error().message;
  auto untouched = store.load();
  ASSERT_TRUE(untouched.ok());
  EXPECT_EQ(untouched->generation, 0u) << "a failed apply wrote the store";

  // The subset may come from the same apply, in any order, or an earlier one.
  ASSERT_TRUE(store.apply(parse(std::string(kRoute) + "---\n" + kRule)).ok());
  // A second DestinationRule for the same host is refused.
  std::string other = kRule;
  other.replace(other.find("name: web"), 9, "name: web2");
  auto r3 = store.apply(parse(other, "o.yaml"));
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("already has DestinationRule"), std::string::npos);
}

TEST_P(MeshStoreTest, DeleteRefusesAnInUseRuleAndSaysNotFound) {
  MeshStore store = open();
  ASSERT_TRUE(store.apply(parse(std::string(kRule) + "---\n" + kRoute)).ok());
  auto st = store.remove(kDestinationRule, "default", "web");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("routes to its subset"), std::string::npos);
  // Taking a subset away that a stored VirtualService routes to is refused too.
  std::string fewer = kRule;
  fewer.erase(fewer.find("  - {name: v2"));
  auto r = store.apply(parse(fewer));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("applied earlier"), std::string::npos) << r.error().message;

  ASSERT_TRUE(store.remove(kVirtualService, "default", "web").ok());
  ASSERT_TRUE(store.remove(kDestinationRule, "default", "web").ok());
  auto gone = store.remove(kDestinationRule, "default", "web");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ENOENT);
  auto loaded = store.load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->config, MeshConfig{});
  EXPECT_EQ(loaded->generation, 3u);
}

TEST_P(MeshStoreTest, CorruptDocumentIsAnErrorNamingIt) {
  MeshStore store = open();
  ASSERT_TRUE(store.apply(parse(kRule)).ok());
  overwrite("{\"generation\": 1, \"config\": {\"destinationRules\": 3}}");
  auto r = store.load();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(etcd() ? "/offcore/mesh/v1/config" : "config.json"), std::string::npos)
      << r.error().message;
  overwrite("not json");
  EXPECT_FALSE(store.load().ok());
  EXPECT_FALSE(store.apply(parse(kRule)).ok()) << "a damaged store must not be overwritten";
}

// Two writers at once, each adding its own rule: both land (a loser runs its
// change again on the winner's document).
TEST_P(MeshStoreTest, ConcurrentAppliesLoseNothing) {
  auto docs = svc::parseResources(kApiService, "api.yaml");
  ASSERT_TRUE(docs.ok());
  ASSERT_TRUE(cluster().apply(*docs).ok());
  std::string other = kRule;
  other.replace(other.find("name: web"), 9, "name: api");
  other.replace(other.find("host: web"), 9, "host: api");
  const int rounds = 5;
  auto writer = [&](const std::string& rule, const std::string& name) {
    MeshStore store = open();
    for (int i = 0; i < rounds; ++i) {
      std::string r = rule;
      r.replace(r.find("name: v2"), 8, "name: v" + std::to_string(10 + i));
      auto applied = store.apply(parse(r, name));
      EXPECT_TRUE(applied.ok()) << applied.error().message;
    }
  };
  std::thread a(writer, std::string(kRule), "a.yaml");
  std::thread b(writer, other, "b.yaml");
  a.join();
  b.join();
  auto loaded = open().load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->generation, 2u * rounds);
  ASSERT_EQ(loaded->config.destination_rules.size(), 2u);
}

// A proxy's config source follows the mesh document and the svc state in
// the same store, and builds its first snapshot from what is there.
TEST_P(MeshStoreTest, TheConfigSourceFollowsTheStore) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  std::shared_ptr<const Snapshot> last;
  ClusterSnapshotSource source(loop, open(), "a", "cluster.local");
  auto started = source.start([&](std::shared_ptr<const Snapshot> s) { last = std::move(s); });
  ASSERT_TRUE(started.ok()) << started.error().message;
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->config.destination_rules.empty());
  auto has = [&](const std::string& svc) {
    for (const auto& s : last->services)
      if (s.name == svc) return true;
    return false;
  };
  EXPECT_TRUE(has("web"));

  ASSERT_TRUE(open().apply(parse(kRule)).ok());
  EXPECT_TRUE(testing::runUntil(loop, [&] { return last->config.destination_rules.size() == 1; }))
      << "the mesh document's change did not reach the source";
  auto docs = svc::parseResources(kApiService, "api.yaml");
  ASSERT_TRUE(docs.ok());
  ASSERT_TRUE(cluster().apply(*docs).ok());
  EXPECT_TRUE(testing::runUntil(loop, [&] { return has("api"); })) << "the Service did not reach the source";
  EXPECT_EQ(last->config.destination_rules.size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Stores, MeshStoreTest, ::testing::Values("dir", "etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace offcore::mesh
