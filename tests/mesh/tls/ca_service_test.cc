// The keeper's CA service (what it signs for whom) and the worker's
// KeeperIssuer over a real socketpair.
#include "mesh/tls/ca_service.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "base/files.h"
#include "mesh/proxy/workloads.h"
#include "mesh/tls/cert_manager.h"
#include "mesh/tls/keeper_issuer.h"
#include "mesh/tls/x509_util.h"

namespace offcore::mesh::tls {
namespace {

using namespace std::chrono_literals;

const std::string kOwn = "spiffe://cluster.local/ns/shop/sa/cart";
const std::string kElsewhere = "spiffe://cluster.local/ns/shop/sa/billing";
const std::string kPlain = "spiffe://cluster.local/ns/shop/sa/legacy";

svc::Endpoint pod(const std::string& node, const std::string& ip, bool mesh, const std::string& sa) {
  svc::Endpoint e;
  e.id = node + "/" + sa + "/eth0";
  e.node = node;
  e.ip = ip;
  e.pod_name = sa;
  e.mesh = mesh;
  e.ns = "shop";
  e.service_account = sa;
  return e;
}

// A CSR over `key`, signed by `signer` (another key: no proof of possession).
std::string csrFor(EVP_PKEY* key, EVP_PKEY* signer) {
  X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_pubkey(req.get(), signer);
  X509_REQ_sign(req.get(), signer, EVP_sha256());
  if (key != signer) X509_REQ_set_pubkey(req.get(), key);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  return bioString(bio.get());
}

class CaServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/offcore-ca-service-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ca = Ca::loadOrCreate(dir_ + "/ca", "cluster.local");
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    ca_ = std::move(*ca);
    state_.endpoints["a/1"] = pod("a", "10.0.0.1", true, "cart");
    state_.endpoints["b/1"] = pod("b", "10.0.0.2", true, "billing");
    state_.endpoints["a/2"] = pod("a", "10.0.0.3", false, "legacy");
    service_ = std::make_unique<CaService>(*ca_, "a", 600s, [this]() -> Result<std::set<std::string>> {
      return meshIdentitiesOnNode(state_, "a", "cluster.local");
    });
    key_.reset(EVP_EC_gen("P-256"));
  }
  void TearDown() override { (void)removeTree(dir_); }

  CsrResponse sign(const std::string& id, const std::string& csr, int64_t ttl = 60) {
    CsrRequest r;
    r.id = 7;
    r.spiffe_id = id;
    r.csr_pem = csr;
    r.ttl_s = ttl;
    return service_->handle(r);
  }

  std::string dir_;
  std::unique_ptr<Ca> ca_;
  svc::ClusterState state_;
  std::unique_ptr<CaService> service_;
  PkeyPtr key_;
};

TEST_F(CaServiceTest, SignsOnlyMeshIdentitiesOfItsNode) {
  auto ok = sign(kOwn, csrFor(key_.get(), key_.get()));
  ASSERT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(ok.id, 7u);
  auto cert = parseCert(ok.cert_pem);
  ASSERT_TRUE(cert.ok());
  EXPECT_EQ(X509_check_private_key(cert->get(), key_.get()), 1) << "not over the CSR's key";
  EXPECT_EQ(*spiffeIdOf(cert->get()), kOwn);
  auto life = asn1Time(X509_get0_notAfter(cert->get())) - std::chrono::system_clock::now();
  EXPECT_NEAR(std::chrono::duration_cast<std::chrono::seconds>(life).count(), 60, 2);

  for (auto [id, why] : {std::pair{kElsewhere, "not the identity of a mesh pod on node a"},
                         std::pair{kPlain, "not the identity of a mesh pod on node a"},
                         std::pair{std::string("spiffe://other.domain/ns/shop/sa/cart"), "outside trust domain"},
                         std::pair{std::string("spiffe://cluster.local/ns/shop"), "not a workload SPIFFE ID"}}) {
    auto r = sign(id, csrFor(key_.get(), key_.get()));
    EXPECT_FALSE(r.ok) << id;
    EXPECT_NE(r.error.find(why), std::string::npos) << id << ": " << r.error;
    EXPECT_TRUE(r.cert_pem.empty());
  }
  // The pod moves to node b: refused from then on.
  state_.endpoints["a/1"].node = "b";
  EXPECT_FALSE(sign(kOwn, csrFor(key_.get(), key_.get())).ok);
}

TEST_F(CaServiceTest, RefusesCsrsWithoutProofOfPossessionOrOfAnotherKeyType) {
  PkeyPtr other(EVP_EC_gen("P-256"));
  auto r = sign(kOwn, csrFor(key_.get(), other.get()));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("does not verify"), std::string::npos) << r.error;
  PkeyPtr p384(EVP_EC_gen("P-384"));
  r = sign(kOwn, csrFor(p384.get(), p384.get()));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("P-256"), std::string::npos) << r.error;
  r = sign(kOwn, "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
  EXPECT_FALSE(r.ok);
}

TEST_F(CaServiceTest, LifetimeIsCappedByTheKeeper) {
  auto r = sign(kOwn, csrFor(key_.get(), key_.get()), 10 * 365 * 24 * 3600);
  ASSERT_TRUE(r.ok) << r.error;
  auto cert = parseCert(r.cert_pem);
  auto life = asn1Time(X509_get0_notAfter(cert->get())) - std::chrono::system_clock::now();
  EXPECT_NEAR(std::chrono::duration_cast<std::chrono::seconds>(life).count(), 600, 2);
}

TEST_F(CaServiceTest, GarbledAndOversizedFramesAreErrors) {
  for (const std::string& bad :
       {std::string("not json"), std::string("[1,2]"), std::string(R"({"v":2,"id":1,"op":"trust"})"),
        std::string(R"({"v":1,"op":"trust"})"), std::string(R"({"v":1,"id":1,"op":"mint"})"),
        std::string(R"({"v":1,"id":1,"op":"sign","spiffeId":5,"csr":"x"})")}) {
    EXPECT_FALSE(service_->handleFrame(bad).ok()) << bad;
  }
  FrameReader reader;
  std::string big("\x00\x00\x40\x01", 4);  // 16385
  reader.append(big.data(), big.size());
  auto f = reader.next();
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("outside 1-16384"), std::string::npos) << f.error().message;
  auto trust = service_->handleFrame(R"({"v":1,"id":3,"op":"trust"})");
  ASSERT_TRUE(trust.ok());
}

// The keeper's channel on a loop thread; the worker's issuer in the test thread.
class ChannelTest : public CaServiceTest {
 protected:
  void startKeeper(CaChannel::Options options = {}) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    worker_fd_ = pair[1];
    ASSERT_TRUE(loop_.init().ok());
    channel_ = std::make_unique<CaChannel>(
        loop_, *service_, pair[0], [this](const std::string& why) { closed_why_ = why; }, options);
    ASSERT_TRUE(channel_->start().ok());
    thread_ = std::thread([this] { (void)loop_.run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      loop_.stop();
      thread_.join();
    }
    channel_.reset();
    CaServiceTest::TearDown();
  }
  EventLoop loop_;
  std::unique_ptr<CaChannel> channel_;
  std::thread thread_;
  int worker_fd_ = -1;
  std::string closed_why_;  // written on the loop thread, read after join
};

TEST_F(ChannelTest, WorkerIssuerGetsCertificatesForItsOwnKeys) {
  startKeeper();
  auto issuer = KeeperIssuer::connect(worker_fd_, 2000ms);
  ASSERT_TRUE(issuer.ok()) << issuer.error().message;
  EXPECT_EQ((*issuer)->caPem(), ca_->caPem());
  EXPECT_EQ((*issuer)->trustDomain(), "cluster.local");
  auto cert = (*issuer)->issue(kOwn, 120s);
  ASSERT_TRUE(cert.ok()) << cert.error().message;
  EXPECT_FALSE(cert->key_pem.empty());
  EXPECT_NEAR(std::chrono::duration_cast<std::chrono::seconds>(cert->not_after - cert->issued_at).count(), 120, 2);
  auto refused = (*issuer)->issue(kElsewhere, 120s);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("not the identity of a mesh pod on node a"), std::string::npos)
      << refused.error().message;
  // CertManager runs on it as on the CA itself, rotation included.
  EventLoop worker_loop;
  ASSERT_TRUE(worker_loop.init().ok());
  CertManager certs(worker_loop, **issuer, CertManager::Options{2s});
  ASSERT_TRUE(certs.init().ok());
  ASSERT_TRUE(certs.add(kOwn).ok());
  EXPECT_FALSE(certs.add(kElsewhere).ok());
  auto first = certs.status().at(0).serial;
  worker_loop.addTimer(1300ms, [&] { worker_loop.stop(); });
  ASSERT_TRUE(worker_loop.run().ok());
  EXPECT_EQ(certs.status().at(0).rotations, 1u);
  EXPECT_NE(certs.status().at(0).serial, first);
}

TEST_F(ChannelTest, GarbledFrameGetsAReasonAndClosesTheChannel) {
  startKeeper();
  std::string garbage = std::string("\x00\x00\x00\x05", 4) + "hello";
  ASSERT_EQ(::send(worker_fd_, garbage.data(), garbage.size(), 0), static_cast<ssize_t>(garbage.size()));
  FrameReader reader;
  char buf[4096];
  ssize_t n = ::recv(worker_fd_, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  reader.append(buf, static_cast<size_t>(n));
  auto frame = reader.next();
  ASSERT_TRUE(frame.ok() && *frame);
  auto r = decodeCsrResponse(**frame);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_NE(r->error.find("not a JSON object"), std::string::npos) << r->error;
  EXPECT_EQ(::recv(worker_fd_, buf, sizeof buf, 0), 0) << "the keeper kept the channel open";
  ::close(worker_fd_);
  loop_.stop();
  thread_.join();
  EXPECT_NE(closed_why_.find("not a JSON object"), std::string::npos) << closed_why_;
}

TEST_F(ChannelTest, OversizedFrameClosesTheChannelAndTheIssuerSaysSo) {
  startKeeper();
  std::string big("\x00\x01\x00\x00", 4);  // 65536 bytes announced
  ASSERT_EQ(::send(worker_fd_, big.data(), big.size(), 0), 4);
  auto issuer = KeeperIssuer::connect(worker_fd_, 2000ms);
  ASSERT_FALSE(issuer.ok());
  EXPECT_NE(issuer.error().message.find("outside 1-16384"), std::string::npos) << issuer.error().message;
}

TEST_F(ChannelTest, FloodIsRefusedBeyondTheRate) {
  startKeeper(CaChannel::Options{2, 0.001});
  auto issuer = KeeperIssuer::connect(worker_fd_, 2000ms);  // token 1
  ASSERT_TRUE(issuer.ok()) << issuer.error().message;
  EXPECT_TRUE((*issuer)->issue(kOwn, 60s).ok());  // token 2
  auto r = (*issuer)->issue(kOwn, 60s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too many"), std::string::npos) << r.error().message;
}

TEST(KeeperIssuerTest, SilentKeeperTimesOut) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  auto t0 = std::chrono::steady_clock::now();
  auto issuer = KeeperIssuer::connect(pair[1], 200ms);
  ASSERT_FALSE(issuer.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_NE(issuer.error().message.find("did not answer"), std::string::npos) << issuer.error().message;
  ::close(pair[0]);
}

}  // namespace
}  // namespace offcore::mesh::tls
