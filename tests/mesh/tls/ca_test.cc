#include "mesh/tls/ca.h"

#include <gtest/gtest.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <thread>

#include "base/event_loop.h"
#include "base/files.h"
#include "mesh/tls/cert_manager.h"
#include "mesh/tls/x509_util.h"

namespace offcore::mesh::tls {
namespace {

using namespace std::chrono_literals;

class CaTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/offcore-ca-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST(SpiffeIdTest, AcceptsOnlyWorkloadIds) {
  auto ok = parseSpiffeId("spiffe://cluster.local/ns/default/sa/web");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->ns, "default");
  EXPECT_EQ(ok->sa, "web");
  for (const char* bad :
       {"spiffe://cluster.local/ns/default", "http://cluster.local/ns/a/sa/b", "spiffe://Cluster.local/ns/a/sa/b",
        "spiffe://cluster.local/ns/a/sa/b/c", "spiffe://cluster.local/ns//sa/b", "spiffe://cluster.local/ns/a.b/sa/c",
        "spiffe://cluster.local/x/a/sa/b", "spiffe://cluster.local/ns/a/sa/B,URI:x"}) {
    EXPECT_FALSE(parseSpiffeId(bad).ok()) << bad;
  }
}

TEST_F(CaTest, CreatesPrivateKeyAndReloadsTheSameCa) {
  auto ca = Ca::loadOrCreate(dir_, "cluster.local");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = Ca::loadOrCreate(dir_, "cluster.local");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)->caPem(), (*ca)->caPem());
  auto other = Ca::loadOrCreate(dir_, "other.domain");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message.find("trust domain"), std::string::npos);
}

TEST_F(CaTest, IssuesShortLivedCertWithOnlyTheSpiffeUri) {
  auto ca = Ca::loadOrCreate(dir_, "cluster.local");
  ASSERT_TRUE(ca.ok());
  const std::string id = "spiffe://cluster.local/ns/shop/sa/cart";
  auto a = (*ca)->issue(id, 120s);
  auto b = (*ca)->issue(id);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->serial, b->serial);
  auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(a->not_after - a->issued_at);
  EXPECT_NEAR(lifetime.count(), 120, 2);
  EXPECT_NEAR(std::chrono::duration_cast<std::chrono::seconds>(b->not_after - b->issued_at).count(), 3600, 2);
  auto cert = parseCert(a->cert_pem);
  ASSERT_TRUE(cert.ok());
  auto san = spiffeIdOf(cert->get());
  ASSERT_TRUE(san.ok()) << san.error().message;
  EXPECT_EQ(*san, id);
  // Chains to the CA.
  auto ca_cert = parseCert((*ca)->caPem());
  ASSERT_TRUE(ca_cert.ok());
  PkeyPtr ca_key(X509_get_pubkey(ca_cert->get()));
  EXPECT_EQ(X509_verify(cert->get(), ca_key.get()), 1);
  EXPECT_FALSE((*ca)->issue("spiffe://evil.domain/ns/shop/sa/cart", 60s).ok());
  EXPECT_FALSE((*ca)->issue("spiffe://cluster.local/ns/shop", 60s).ok());
  EXPECT_FALSE((*ca)->issue(id, 0s).ok());
}

TEST_F(CaTest, CertManagerRotatesAtHalfLife) {
  auto ca = Ca::loadOrCreate(dir_, "cluster.local");
  ASSERT_TRUE(ca.ok());
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  CertManager certs(loop, **ca, CertManager::Options{2s});
  ASSERT_TRUE(certs.init().ok());
  const std::string id = "spiffe://cluster.local/ns/shop/sa/cart";
  ASSERT_TRUE(certs.add(id).ok());
  EXPECT_FALSE(certs.add("spiffe://cluster.local/ns/shop").ok());
  auto first = certs.status();
  ASSERT_EQ(first.size(), 1u);
  auto ctx = certs.contextFor(id);
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ((*ctx)->serial(), first[0].serial);
  EXPECT_FALSE(certs.contextFor("spiffe://cluster.local/ns/shop/sa/other").ok());
  loop.addTimer(1300ms, [&] { loop.stop(); });
  ASSERT_TRUE(loop.run().ok());
  auto second = certs.status();
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].rotations, 1u);
  EXPECT_NE(second[0].serial, first[0].serial);
  EXPECT_GT(second[0].not_after, first[0].not_after);
  EXPECT_EQ((*certs.contextFor(id))->serial(), second[0].serial);
  // The old context is still usable by whoever holds it.
  EXPECT_EQ((*ctx)->serial(), first[0].serial);
}

}  // namespace
}  // namespace offcore::mesh::tls
