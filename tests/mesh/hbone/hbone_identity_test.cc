// mTLS refusals and certificate rotation through real HBONE connections.
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "hbone_fixture.h"

namespace offcore::mesh::hbone {
namespace {

TEST_F(HboneTest, ServerWithTheWrongIdentityIsRefused) {
  makeCerts();
  // The server answers every SNI with an impostor's certificate.
  auto impostor = ca_->issue("spiffe://cluster.local/ns/shop/sa/impostor", 600s);
  ASSERT_TRUE(impostor.ok());
  FixedSource source;
  ASSERT_TRUE(source.init(ca_->caPem(), *impostor).ok());
  startServer(source);
  connector_ = makeConnector(*client_certs_);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("expected " + kServerId), std::string::npos) << r.error().message;
  EXPECT_TRUE(requests_.empty());
}

TEST_F(HboneTest, IdentityTheServerDoesNotHoldIsRefused) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto r = connectNow(*connector_, target(80, "spiffe://cluster.local/ns/shop/sa/elsewhere"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(requests_.empty());
}

TEST_F(HboneTest, ClientFromAnotherCaIsRefused) {
  makeCerts();
  startServer(*server_certs_);
  auto other_ca = tls::Ca::loadOrCreate(dir_ + "/other-ca", "cluster.local");
  ASSERT_TRUE(other_ca.ok());
  auto foreign = (*other_ca)->issue(kClientId, 600s);
  ASSERT_TRUE(foreign.ok());
  FixedSource source;
  // It trusts our CA (so it would accept the server) but its own cert is foreign.
  ASSERT_TRUE(source.init(ca_->caPem(), *foreign).ok());
  connector_ = makeConnector(source);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(requests_.empty());
  ASSERT_TRUE(runUntil([&] { return server_->connectionCount() == 0; }));
}

TEST_F(HboneTest, ServerFromAnotherCaIsRefused) {
  makeCerts();
  auto other_ca = tls::Ca::loadOrCreate(dir_ + "/other-ca", "cluster.local");
  ASSERT_TRUE(other_ca.ok());
  auto foreign = (*other_ca)->issue(kServerId, 600s);
  ASSERT_TRUE(foreign.ok());
  FixedSource source;
  ASSERT_TRUE(source.init(ca_->caPem(), *foreign).ok());
  startServer(source);
  connector_ = makeConnector(*client_certs_);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("certificate"), std::string::npos) << r.error().message;
}

TEST_F(HboneTest, ClientWithoutCertificateIsRefused) {
  makeCerts();
  startServer(*server_certs_);
  // A client that trusts the CA but presents no certificate at all.
  class NoCert : public tls::TlsContextSource {
   public:
    explicit NoCert(std::shared_ptr<tls::TlsContext> ctx) : ctx_(std::move(ctx)) {}
    Result<std::shared_ptr<tls::TlsContext>> contextFor(const std::string&) override { return ctx_; }
    std::shared_ptr<tls::TlsContext> acceptContext() override { return ctx_; }
    std::shared_ptr<tls::TlsContext> ctx_;
  };
  auto bare = tls::TlsContext::createAcceptor(ca_->caPem(), "cluster.local", nullptr);
  ASSERT_TRUE(bare.ok());
  NoCert source(*bare);
  connector_ = makeConnector(source);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(requests_.empty());
}

TEST_F(HboneTest, ExpiredClientCertificateIsRefused) {
  makeCerts();
  startServer(*server_certs_);
  auto expired = ca_->issue(kClientId, 1s);
  ASSERT_TRUE(expired.ok());
  std::this_thread::sleep_for(2100ms);
  FixedSource source;
  ASSERT_TRUE(source.init(ca_->caPem(), *expired).ok());
  connector_ = makeConnector(source);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("expired"), std::string::npos) << r.error().message;
  EXPECT_TRUE(requests_.empty());
}

TEST_F(HboneTest, ExpiredServerCertificateIsRefused) {
  makeCerts();
  auto expired = ca_->issue(kServerId, 1s);
  ASSERT_TRUE(expired.ok());
  std::this_thread::sleep_for(2100ms);
  FixedSource source;
  ASSERT_TRUE(source.init(ca_->caPem(), *expired).ok());
  startServer(source);
  connector_ = makeConnector(*client_certs_);
  auto r = connectNow(*connector_, target());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("expired"), std::string::npos) << r.error().message;
}

// Certificates of 2 s rotate after 1 s. A stream opened before keeps working
// past the old certificate's expiry; a new connection sees the new serial.
TEST_F(HboneTest, RotationKeepsOpenStreamsAndNewConnectionsGetTheNewCert) {
  makeCerts(2s);
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto stream = connectNow(*connector_, target());
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  Sink sink;
  (*stream)->setCallbacks(&sink);
  (*stream)->write("before");
  ASSERT_TRUE(runUntil([&] { return sink.data == "before"; }));
  auto* hs = dynamic_cast<HboneStream*>(stream->get());
  ASSERT_NE(hs, nullptr);
  std::string old_serial = server_certs_->status()[0].serial;
  EXPECT_EQ(hs->peerSerial(), old_serial);
  ASSERT_EQ(requests_.size(), 1u);

  // Past the rotation and past the old certificates' notAfter.
  runUntil([] { return false; }, 2500ms);
  auto status = server_certs_->status();
  ASSERT_GE(status[0].rotations, 1u);
  EXPECT_NE(status[0].serial, old_serial);
  EXPECT_GE(client_certs_->status()[0].rotations, 1u);

  (*stream)->write(" after");
  ASSERT_TRUE(runUntil([&] { return sink.data == "before after"; }));
  EXPECT_FALSE(sink.closed);

  auto fresh_connector = makeConnector(*client_certs_);
  auto fresh = connectNow(*fresh_connector, target());
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  auto* fs = dynamic_cast<HboneStream*>(fresh->get());
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(fs->peerSerial(), server_certs_->status()[0].serial);
  EXPECT_NE(fs->peerSerial(), old_serial);
  fresh->reset();
  fresh_connector.reset();
}

}  // namespace
}  // namespace offcore::mesh::hbone
