#include "mesh/tls/ca_store.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "../../kv/kv_backend.h"
#include "base/files.h"
#include "mesh/tls/ca.h"

namespace offcore::mesh::tls {
namespace {

// The same cases over the directory, the in-memory fake and a real etcd
// member: what every keeper of a cluster relies on.
class CaStoreTest : public kv::StoreTest {
 protected:
  // A keeper's own store (etcd: its own connection, as on another machine).
  std::unique_ptr<CaStore> open() {
    if (!kv_.kv()) return makeDirCaStore(dir_ + "/ca");
    return makeKvCaStore(kv_.client());
  }
};

TEST_P(CaStoreTest, MadeOnceThenLoadedEverywhere) {
  auto first = Ca::loadOrCreate(*open(), "cluster.local");
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto again = Ca::loadOrCreate(*open(), "cluster.local");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)->caPem(), (*first)->caPem());
  // What one keeper signs, a peer loading the same CA trusts.
  auto cert = (*again)->issue("spiffe://cluster.local/ns/default/sa/web", Seconds(60));
  ASSERT_TRUE(cert.ok()) << cert.error().message;
  auto other = Ca::loadOrCreate(*open(), "other.domain");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message.find("is for trust domain 'cluster.local', not 'other.domain'"), std::string::npos)
      << other.error().message;
  if (kv_.kv()) {
    auto r = kv_.raw()->range(kMeshCaKey, "");
    ASSERT_TRUE(r.ok() && r->kvs.size() == 1u);
    EXPECT_NE(r->kvs[0].value.find("BEGIN PRIVATE KEY"), std::string::npos);
  }
}

// Keepers starting at once on several machines: one CA, the same for all.
TEST_P(CaStoreTest, RacingKeepersEndUpWithOneCa) {
  constexpr int kKeepers = 6;
  std::vector<std::string> pems(kKeepers);
  std::vector<std::string> errors(kKeepers);
  std::vector<std::thread> keepers;
  for (int i = 0; i < kKeepers; ++i) {
    keepers.emplace_back([&, i] {
      auto store = open();
      auto ca = Ca::loadOrCreate(*store, "cluster.local");
      if (ca.ok()) {
        pems[static_cast<size_t>(i)] = (*ca)->caPem();
      } else {
        errors[static_cast<size_t>(i)] = ca.error().message;
      }
    });
  }
  for (auto& t : keepers) t.join();
  for (int i = 0; i < kKeepers; ++i) {
    ASSERT_TRUE(errors[static_cast<size_t>(i)].empty()) << errors[static_cast<size_t>(i)];
    EXPECT_EQ(pems[static_cast<size_t>(i)], pems[0]) << "keeper " << i << " made a CA of its own";
  }
  auto loaded = open()->load();
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  EXPECT_EQ((*loaded)->cert_pem, pems[0]);
}

// A key that is not the certificate's is refused with one line, never used.
TEST_P(CaStoreTest, AMismatchedKeyIsRefused) {
  auto a = Ca::loadOrCreate(dir_ + "/a", "cluster.local");
  auto b = Ca::loadOrCreate(dir_ + "/b", "cluster.local");
  ASSERT_TRUE(a.ok() && b.ok());
  auto b_key = readFile(dir_ + "/b/ca.key");
  ASSERT_TRUE(b_key.ok());
  auto made = open()->createOrLoad(CaMaterial{"cluster.local", *b_key, (*a)->caPem()});
  ASSERT_TRUE(made.ok()) << made.error().message;
  auto ca = Ca::loadOrCreate(*open(), "cluster.local");
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().message.find("its key does not match its certificate"), std::string::npos) << ca.error().message;
  EXPECT_EQ(ca.error().message.find('\n'), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Stores, CaStoreTest, ::testing::Values("dir", "fake", "etcd"),
                         [](const auto& info) { return info.param; });

TEST(KvCaStoreTest, ADamagedValueIsOneLine) {
  auto kv = std::make_shared<kv::FakeKv>();
  ASSERT_TRUE(kv->txn({}, {kv::Op::put(kMeshCaKey, "{\"trust_domain\": 7}")}).ok());
  auto ca = Ca::loadOrCreate(*makeKvCaStore(kv), "cluster.local");
  ASSERT_FALSE(ca.ok());
  EXPECT_NE(ca.error().message.find("is damaged"), std::string::npos) << ca.error().message;
  EXPECT_EQ(ca.error().message.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace offcore::mesh::tls
