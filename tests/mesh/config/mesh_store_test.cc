#include "mesh/config/mesh_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/files.h"

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

class MeshStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mesh_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto docs = svc::parseResources(kServices, "svc.yaml");
    ASSERT_TRUE(docs.ok()) << docs.error().message;
    ASSERT_TRUE(svc::ClusterStore(dir_).apply(*docs).ok());
  }
  void TearDown() override { (void)removeTree(dir_); }

  ParsedMesh parse(const std::string& text, const std::string& file = "m.yaml") {
    auto p = parseMeshDocuments(text, file);
    EXPECT_TRUE(p.ok()) << p.error().message;
    return p.ok() ? *p : ParsedMesh{};
  }

  std::string dir_;
};

TEST_F(MeshStoreTest, ApplyIsAtomicVersionedAndIdempotent) {
  MeshStore store(dir_);
  auto empty = store.load();
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->generation, 0u);
  auto r = store.apply(parse(std::string(kRule) + "---\n" + kRoute));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->created, (std::vector<std::string>{"destinationrule/web", "virtualservice/web"}));
  EXPECT_EQ(r->generation, 1u);
  struct stat st {};
  ASSERT_EQ(::stat(store.configFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

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

TEST_F(MeshStoreTest, HostsMustBeServicesAndSubsetsDefinedWithFileLine) {
  MeshStore store(dir_);
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
  EXPECT_FALSE(readFile(store.configFile()).ok()) << "a failed apply wrote the store";

  // The subset may come from the same apply, in any order, or an earlier one.
  ASSERT_TRUE(store.apply(parse(std::string(kRoute) + "---\n" + kRule)).ok());
  // A second DestinationRule for the same host is refused.
  std::string other = kRule;
  other.replace(other.find("name: web"), 9, "name: web2");
  auto r3 = store.apply(parse(other, "o.yaml"));
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("already has DestinationRule"), std::string::npos);
}

TEST_F(MeshStoreTest, DeleteRefusesAnInUseRuleAndSaysNotFound) {
  MeshStore store(dir_);
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

TEST_F(MeshStoreTest, CorruptFileIsAnErrorNamingIt) {
  MeshStore store(dir_);
  ASSERT_TRUE(store.apply(parse(kRule)).ok());
  ASSERT_TRUE(writeFileAtomic(store.configFile(), "{\"generation\": 1, \"config\": {\"destinationRules\": 3}}").ok());
  auto r = store.load();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("config.json"), std::string::npos);
  ASSERT_TRUE(writeFileAtomic(store.configFile(), "not json").ok());
  EXPECT_FALSE(store.load().ok());
  EXPECT_FALSE(store.apply(parse(kRule)).ok()) << "a damaged store must not be overwritten";
}

}  // namespace
}  // namespace offcore::mesh
