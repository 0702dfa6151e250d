// DH-HMAC-CHAP between our target and our initiator over loopback TCP: every
// queue authenticates (admin and I/O, again after a reconnect), wrong or
// missing secrets are refused with a clear error, bidirectional works, and
// every hash and DH group is used at least once. Raw-PDU cases check what a
// host that skips or garbles the exchange gets.
#include <thread>

#include "nvme/auth/dhchap_host.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using test::kHostnqn;
using test::kSubnqn;

class DhchapLoopbackTest : public test::TargetTest {
 protected:
  void requireSecret(const auth::DhchapKey& host, std::optional<auth::DhchapKey> ctrl = std::nullopt) {
    registry_->find(kSubnqn)->setHostSecrets({{kHostnqn, auth::DhchapSecrets{host, ctrl}}});
  }
  HostOptions options() {
    HostOptions o;
    o.host_nqn = kHostnqn;
    o.io_queues = 2;
    o.queue_depth = 8;
    return o;
  }
  static void readWrite(NvmeTcpHost& h) {
    std::vector<uint8_t> w(65536, 0xA5), r(65536);
    ASSERT_TRUE(h.write(8192, w.data(), w.size()).ok());
    ASSERT_TRUE(h.read(8192, r.data(), r.size()).ok());
    EXPECT_EQ(r, w);
  }
  // The host's exchange over a raw socket: capsules by hand, replies read PDU by PDU.
  class RawTransport final : public auth::AuthTransport {
   public:
    explicit RawTransport(int fd) : fd_(fd) {}
    Result<uint16_t> send(const auth::Bytes& m) override {
      sendBytes(fd_, test::authCapsule(kFctAuthSend, cid_++, m, static_cast<uint32_t>(m.size()), true));
      auto r = readPdu(fd_);
      if (r.empty() || r[0] != kCapsuleResp) return makeError("no CapsuleResp");
      return statusOf(r);
    }
    Result<std::pair<uint16_t, auth::Bytes>> receive(uint32_t al) override {
      sendBytes(fd_, test::authCapsule(kFctAuthReceive, cid_++, {}, al, false));
      auth::Bytes data;
      for (;;) {
        auto r = readPdu(fd_);
        if (r.empty()) return makeError("connection closed");
        if (r[0] == kC2HData) {
          data.insert(data.end(), r.begin() + r[3], r.end());
          continue;
        }
        return std::make_pair(statusOf(r), data);
      }
    }

   private:
    int fd_;
    uint16_t cid_ = 100;
  };

  auth::DhchapKey key_ = *auth::generateDhchapKey(auth::kHashSha256);
  auth::DhchapKey ctrl_key_ = *auth::generateDhchapKey(auth::kHashSha384);
};

TEST_F(DhchapLoopbackTest, EveryQueueAuthenticatesAndIoFlows) {
  requireSecret(key_);
  HostOptions o = options();
  o.dhchap_secret = key_;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  readWrite(**host);
  auto ctrls = target_->controllers();
  ASSERT_EQ(ctrls.size(), 1u);
  EXPECT_EQ(ctrls[0].io_queues, 2);
  (*host)->close();
}

TEST_F(DhchapLoopbackTest, WrongSecretIsRefusedClearly) {
  requireSecret(key_);
  HostOptions o = options();
  o.dhchap_secret = *auth::generateDhchapKey(auth::kHashSha256);
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.error().message.find("refused authentication (authentication failed"), std::string::npos)
      << host.error().message;
  EXPECT_EQ(host.error().message.find('\n'), std::string::npos);
  // The failed admin queue is closed by the target shortly after its Failure1.
  for (int i = 0; i < 40 && !target_->controllers().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(target_->controllers().empty());
}

TEST_F(DhchapLoopbackTest, NoSecretWhenRequiredIsRefusedClearly) {
  requireSecret(key_);
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, options());
  ASSERT_FALSE(host.ok());
  EXPECT_NE(host.error().message.find("requires DH-HMAC-CHAP"), std::string::npos) << host.error().message;
}

TEST_F(DhchapLoopbackTest, HostsWithoutSecretsStillConnectByNqn) {
  HostOptions o = options();
  o.dhchap_secret = key_;  // the host has one, the target asks for none: plain connect
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  readWrite(**host);
}

TEST_F(DhchapLoopbackTest, BidirectionalProvesTheTargetToo) {
  requireSecret(key_, ctrl_key_);
  HostOptions o = options();
  o.dhchap_secret = key_;
  o.dhchap_ctrl_secret = ctrl_key_;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  readWrite(**host);
  (*host)->close();

  // A target holding another controller secret is not the subsystem we expect.
  requireSecret(key_, *auth::generateDhchapKey(auth::kHashSha384));
  auto impostor = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_FALSE(impostor.ok());
  EXPECT_NE(impostor.error().message.find("controller secret"), std::string::npos) << impostor.error().message;

  // A target that asks for no authentication cannot prove itself either.
  registry_->find(kSubnqn)->setHostSecrets({});
  auto silent = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_FALSE(silent.ok());
  EXPECT_NE(silent.error().message.find("did not ask for DH-HMAC-CHAP"), std::string::npos) << silent.error().message;
}

TEST_F(DhchapLoopbackTest, EveryHashAndDhGroupOnce) {
  struct Case {
    uint8_t hash, group;
  };
  const Case cases[] = {{auth::kHashSha256, auth::kDhNull},      {auth::kHashSha384, auth::kDhFfdhe2048},
                        {auth::kHashSha512, auth::kDhFfdhe3072}, {auth::kHashSha256, auth::kDhFfdhe4096},
                        {auth::kHashSha384, auth::kDhFfdhe6144}, {auth::kHashSha512, auth::kDhFfdhe8192}};
  for (const auto& c : cases) {
    // Different transform hashes for the secrets too (hh 00..03).
    auto hk = *auth::generateDhchapKey(static_cast<uint8_t>(c.group % 4));
    auto ck = *auth::generateDhchapKey(static_cast<uint8_t>((c.group + 1) % 4));
    requireSecret(hk, ck);
    HostOptions o = options();
    o.io_queues = 1;
    o.dhchap_secret = hk;
    o.dhchap_ctrl_secret = ck;
    o.dhchap_hashes = {c.hash};
    o.dhchap_dhgroups = {c.group};
    auto t0 = std::chrono::steady_clock::now();
    auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
    ASSERT_TRUE(host.ok()) << auth::hashName(c.hash) << "/" << auth::dhGroupName(c.group) << ": "
                           << host.error().message;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %s: connect + 2 authenticated queues in %lld ms\n", auth::hashName(c.hash),
                auth::dhGroupName(c.group), static_cast<long long>(ms));
    readWrite(**host);
    (*host)->close();
  }
}

TEST_F(DhchapLoopbackTest, ReconnectAuthenticatesAgain) {
  requireSecret(key_);
  HostOptions o = options();
  o.dhchap_secret = key_;
  o.io_timeout = std::chrono::seconds(20);
  o.kato_ms = 1000;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  std::thread restarter = restartTargetAfter(std::chrono::milliseconds(800));
  std::vector<uint8_t> buf(4096, 0x33);
  auto s = (*host)->write(0, buf.data(), buf.size());  // stalls, reconnects with auth, succeeds
  restarter.join();
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_GE((*host)->stats().reconnects, 1u);
  (*host)->close();
}

// ---- raw PDUs ----------------------------------------------------------------

TEST_F(DhchapLoopbackTest, ConnectSetsAtrAndNothingElseRunsUntilAuthenticated) {
  requireSecret(key_);
  int fd = dial();
  sendBytes(fd, icreq());
  ASSERT_EQ(readPdu(fd).size(), 128u);
  sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn));
  auto r = readPdu(fd);
  ASSERT_EQ(statusOf(r), 0);
  EXPECT_TRUE(getLe32(r.data() + 8) & kConnectAuthreqAtr) << "AUTHREQ.ATR in the Connect response";
  uint8_t sqe[64] = {};
  sqe[0] = 0x7F;
  putLe16(sqe + 2, 2);
  sqe[4] = kFctPropertyGet;
  putLe32(sqe + 44, kPropCap);
  sendBytes(fd, capsule(sqe));
  auto pg = readPdu(fd);
  EXPECT_EQ(statusOf(pg), kScAuthRequired);
  EXPECT_TRUE(dnrOf(pg));
  uint8_t id[64] = {};
  id[0] = kAdminIdentify;
  putLe16(id + 2, 3);
  sendBytes(fd, capsule(id));
  EXPECT_EQ(statusOf(readPdu(fd)), kScAuthRequired);
  ::close(fd);
}

TEST_F(DhchapLoopbackTest, EachIoQueueMustAuthenticateItself) {
  requireSecret(key_);
  auth::HostAuthConfig cfg{key_, std::nullopt, {auth::kHashSha256}, {auth::kDhFfdhe2048}};
  int admin = dial();
  sendBytes(admin, icreq());
  ASSERT_EQ(readPdu(admin).size(), 128u);
  sendBytes(admin, connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn));
  auto c = readPdu(admin);
  ASSERT_EQ(statusOf(c), 0);
  uint16_t cntlid = getLe16(c.data() + 8);
  RawTransport at(admin);
  auto a = auth::authenticateQueue(at, cfg, kHostnqn, kSubnqn, 1);
  ASSERT_TRUE(a.ok()) << a.error().message;
  uint8_t sqe[64] = {};
  sqe[0] = 0x7F;
  putLe16(sqe + 2, 2);
  sqe[4] = kFctPropertySet;
  putLe32(sqe + 44, kPropCc);
  putLe64(sqe + 48, 1 | (6 << 16) | (4 << 20));
  sendBytes(admin, capsule(sqe));
  ASSERT_EQ(statusOf(readPdu(admin)), 0) << "the authenticated admin queue works";
  uint8_t sf[64] = {};
  sf[0] = kAdminSetFeatures;
  putLe16(sf + 2, 3);
  putLe32(sf + 40, kFeatNumQueues);
  sendBytes(admin, capsule(sf));
  ASSERT_EQ(statusOf(readPdu(admin)), 0);

  int io = dial();
  sendBytes(io, icreq());
  ASSERT_EQ(readPdu(io).size(), 128u);
  sendBytes(io, connectCapsule(1, 1, 31, cntlid, kSubnqn, kHostnqn));
  auto ic = readPdu(io);
  ASSERT_EQ(statusOf(ic), 0);
  EXPECT_TRUE(getLe32(ic.data() + 8) & kConnectAuthreqAtr) << "the I/O queue's Connect asks for authentication too";
  uint8_t rd[64] = {};
  rd[0] = kIoRead;
  putLe16(rd + 2, 4);
  putLe32(rd + 4, 1);
  putLe32(rd + 24 + 8, 4096);
  rd[24 + 15] = kSglTransportDataBlock;
  sendBytes(io, capsule(rd));
  EXPECT_EQ(statusOf(readPdu(io)), kScAuthRequired) << "an authenticated admin queue does not open the I/O queue";
  RawTransport it(io);
  auto b = auth::authenticateQueue(it, cfg, kHostnqn, kSubnqn, 2);
  ASSERT_TRUE(b.ok()) << b.error().message;
  putLe16(rd + 2, 5);
  sendBytes(io, capsule(rd));
  auto data = readPdu(io);
  EXPECT_EQ(data[0], kC2HData) << "the Read runs once the I/O queue authenticated";
  ::close(io);
  ::close(admin);
}

}  // namespace
}  // namespace offcore::nvme
