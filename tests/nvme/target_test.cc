// The NVMe/TCP target against a raw socket client that writes PDUs by hand
// (from the specification's byte layouts) and checks the exact replies, and
// against our own initiator for the end-to-end paths.
#include "nvme/target/target.h"

#include <thread>

#include "base/crc32c.h"
#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using test::kHostnqn;
using test::kSubnqn;
using test::TargetTest;

TEST_F(TargetTest, IcRespIsExact) {
  int fd = dial();
  sendBytes(fd, icreq(kHdgstEnable | kDdgstEnable));
  auto r = readPdu(fd);
  ASSERT_EQ(r.size(), 128u);
  std::vector<uint8_t> want(128, 0);
  want[0] = 0x01;
  want[2] = 128;
  putLe32(want.data() + 4, 128);
  want[10] = 0;                       // CPDA
  want[11] = 0x03;                    // both digests granted
  putLe32(want.data() + 12, 131072);  // MAXH2CDATA
  EXPECT_EQ(r, want);
  ::close(fd);
}

TEST_F(TargetTest, ConnectPropertiesAndIdentify) {
  uint16_t cntlid = 0;
  int fd = adminUp(cntlid);
  EXPECT_GE(cntlid, 1);
  // Property Get CAP (8 bytes).
  uint8_t sqe[64] = {};
  sqe[0] = 0x7F;
  putLe16(sqe + 2, 3);
  sqe[4] = 0x04;
  sqe[40] = 1;
  putLe32(sqe + 44, 0);
  sendBytes(fd, capsule(sqe));
  auto r = readPdu(fd);
  ASSERT_EQ(statusOf(r), 0);
  uint64_t cap = getLe64(r.data() + 8);
  EXPECT_EQ(cap & 0xFFFF, 127u);  // MQES
  EXPECT_TRUE((cap >> 37) & 1);   // CSS NVM
  // CSTS.RDY after CC.EN.
  putLe16(sqe + 2, 4);
  sqe[40] = 0;
  putLe32(sqe + 44, 0x1C);
  sendBytes(fd, capsule(sqe));
  r = readPdu(fd);
  EXPECT_EQ(getLe32(r.data() + 8) & 1, 1u);
  // Identify Controller: one C2HData (LAST) then CapsuleResp.
  uint8_t id[64] = {};
  id[0] = 0x06;
  putLe16(id + 2, 5);
  putLe32(id + 24 + 8, 4096);
  id[24 + 15] = 0x5A;
  putLe32(id + 40, 1);
  sendBytes(fd, capsule(id));
  auto d = readPdu(fd);
  ASSERT_EQ(d[0], 0x07);
  EXPECT_TRUE(d[1] & kFlagLastPdu);
  EXPECT_FALSE(d[1] & kFlagSuccess);  // SQ flow control is on: a CapsuleResp follows
  EXPECT_EQ(getLe16(d.data() + 8), 5u);
  EXPECT_EQ(getLe32(d.data() + 16), 4096u);
  const uint8_t* ctrl = d.data() + d[3];
  EXPECT_EQ(getLe16(ctrl + 78), cntlid);       // CNTLID
  EXPECT_EQ(getLe32(ctrl + 80), 0x00010300u);  // VER
  EXPECT_EQ(ctrl[512], 0x66);                  // SQES
  EXPECT_EQ(ctrl[513], 0x44);                  // CQES
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ctrl + 768)), kSubnqn);
  EXPECT_EQ(getLe32(ctrl + 1792), (64u + 16384) / 16);  // IOCCSZ
  auto resp = readPdu(fd);
  EXPECT_EQ(resp[0], 0x05);
  EXPECT_EQ(statusOf(resp), 0);
  EXPECT_EQ(getLe16(resp.data() + 20), 5u);
  ::close(fd);
}

TEST_F(TargetTest, UnknownNqnGetsConnectInvalidParameters) {
  int fd = dial();
  sendBytes(fd, icreq());
  readPdu(fd);
  sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, "nqn.2026-11.io.offcore:test:nope", kHostnqn));
  auto r = readPdu(fd);
  EXPECT_EQ(statusOf(r), 0x182);
  EXPECT_EQ(getLe32(r.data() + 8), (1u << 16) | 256u);  // IATTR=data, IPO=SUBNQN
  ::close(fd);
}

TEST_F(TargetTest, UnlistedHostGetsConnectInvalidHost) {
  registry_->find(kSubnqn)->setAllowedHosts({"nqn.2026-11.io.offcore:node:other"});
  int fd = dial();
  sendBytes(fd, icreq());
  readPdu(fd);
  sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn));
  EXPECT_EQ(statusOf(readPdu(fd)), 0x184);
  ::close(fd);
}

TEST_F(TargetTest, MalformedPduGetsTermReqAndOnlyThatConnectionCloses) {
  uint16_t cntlid = 0;
  int good = adminUp(cntlid);
  int bad = dial();
  sendBytes(bad, icreq());
  readPdu(bad);
  std::vector<uint8_t> junk(72, 0);
  junk[0] = 0x04;
  junk[2] = 60;  // wrong HLEN for a CapsuleCmd
  putLe32(junk.data() + 4, 72);
  sendBytes(bad, junk);
  auto term = readPdu(bad);
  ASSERT_GE(term.size(), 24u);
  EXPECT_EQ(term[0], 0x03);                  // C2HTermReq
  EXPECT_EQ(getLe16(term.data() + 8), 1u);   // FES: invalid header field
  EXPECT_EQ(getLe32(term.data() + 10), 2u);  // FEI: HLEN's offset
  EXPECT_TRUE(closedByPeer(bad));
  ::close(bad);
  // The other association still answers.
  uint8_t ka[64] = {};
  ka[0] = 0x18;
  putLe16(ka + 2, 9);
  sendBytes(good, capsule(ka));
  EXPECT_EQ(statusOf(readPdu(good)), 0);
  ::close(good);
}

TEST_F(TargetTest, CommandBeforeIcReqIsASequenceError) {
  int fd = dial();
  uint8_t ka[64] = {};
  ka[0] = 0x18;
  sendBytes(fd, capsule(ka));
  auto term = readPdu(fd);
  ASSERT_GE(term.size(), 24u);
  EXPECT_EQ(term[0], 0x03);
  EXPECT_EQ(getLe16(term.data() + 8), 2u);  // PDU sequence error
  ::close(fd);
}

TEST_F(TargetTest, HeaderDigestErrorTerminates) {
  int fd = dial();
  sendBytes(fd, icreq(kHdgstEnable));
  readPdu(fd);
  uint8_t ka[64] = {};
  ka[0] = 0x18;
  auto p = capsule(ka);
  p[1] = kFlagHdgst;
  putLe32(p.data() + 4, 76);
  uint8_t bad_digest[4] = {1, 2, 3, 4};
  p.insert(p.end(), bad_digest, bad_digest + 4);
  sendBytes(fd, p);
  auto term = readPdu(fd);
  ASSERT_GE(term.size(), 24u);
  EXPECT_EQ(getLe16(term.data() + 8), 3u);  // header digest error
  ::close(fd);
}

TEST_F(TargetTest, KeepAliveTimeoutEndsTheAssociation) {
  int fd = dial();
  sendBytes(fd, icreq());
  readPdu(fd);
  auto c = connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn);
  putLe32(c.data() + 8 + 48, 500);  // KATO 500 ms
  sendBytes(fd, c);
  ASSERT_EQ(statusOf(readPdu(fd)), 0);
  EXPECT_EQ(target_->controllers().size(), 1u);
  // Silence for longer than KATO + the target's 1 s slack: the target hangs up.
  EXPECT_TRUE(closedByPeer(fd));
  // The socket closes first; the controller table follows on the same thread.
  for (int i = 0; i < 100 && !target_->controllers().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(target_->controllers().empty());
  ::close(fd);
}

TEST_F(TargetTest, AsyncEventOnNamespaceChangeAndChangedNsLog) {
  uint16_t cntlid = 0;
  int fd = adminUp(cntlid);
  uint8_t sf[64] = {};
  sf[0] = 0x09;  // Set Features: async event configuration, namespace notices
  putLe16(sf + 2, 10);
  putLe32(sf + 40, 0x0B);
  putLe32(sf + 44, 1u << 8);
  sendBytes(fd, capsule(sf));
  ASSERT_EQ(statusOf(readPdu(fd)), 0);
  uint8_t aer[64] = {};
  aer[0] = 0x0C;
  putLe16(aer + 2, 11);
  sendBytes(fd, capsule(aer));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  target_->notifyNamespaceChanged(kSubnqn, 1);
  auto r = readPdu(fd);
  ASSERT_EQ(r[0], 0x05);
  EXPECT_EQ(getLe16(r.data() + 20), 11u);
  EXPECT_EQ(getLe32(r.data() + 8), 0x00040002u);  // notice, NS attribute changed, log page 4
  uint8_t gl[64] = {};
  gl[0] = 0x02;
  putLe16(gl + 2, 12);
  putLe32(gl + 24 + 8, 4096);
  gl[24 + 15] = 0x5A;
  putLe32(gl + 40, 0x04 | (1023u << 16));
  sendBytes(fd, capsule(gl));
  auto d = readPdu(fd);
  ASSERT_EQ(d[0], 0x07);
  EXPECT_EQ(getLe32(d.data() + d[3]), 1u);  // NSID 1 changed
  EXPECT_EQ(getLe32(d.data() + d[3] + 4), 0u);
  EXPECT_EQ(statusOf(readPdu(fd)), 0);
  ::close(fd);
}

TEST_F(TargetTest, StatusCodesForBadCommands) {
  uint16_t cntlid = 0;
  int fd = adminUp(cntlid);
  uint8_t bad[64] = {};
  bad[0] = 0x7E;  // no such admin opcode
  putLe16(bad + 2, 20);
  sendBytes(fd, capsule(bad));
  EXPECT_EQ(statusOf(readPdu(fd)), 0x001);
  uint8_t feat[64] = {};
  feat[0] = 0x0A;  // Get Features, unknown FID
  putLe16(feat + 2, 21);
  putLe32(feat + 40, 0x55);
  sendBytes(fd, capsule(feat));
  EXPECT_EQ(statusOf(readPdu(fd)), 0x002);
  uint8_t log[64] = {};
  log[0] = 0x02;  // Get Log Page, unsupported LID
  putLe16(log + 2, 22);
  putLe32(log + 24 + 8, 512);
  log[24 + 15] = 0x5A;
  putLe32(log + 40, 0x7F | (127u << 16));
  sendBytes(fd, capsule(log));
  EXPECT_EQ(statusOf(readPdu(fd)), 0x109);
  uint8_t nq[64] = {};
  nq[0] = 0x09;  // Set Features: number of queues -> granted count in DW0
  putLe16(nq + 2, 23);
  putLe32(nq + 40, 0x07);
  putLe32(nq + 44, (3u << 16) | 3u);
  sendBytes(fd, capsule(nq));
  auto r = readPdu(fd);
  EXPECT_EQ(statusOf(r), 0);
  EXPECT_EQ(getLe32(r.data() + 8), (3u << 16) | 3u);
  ::close(fd);
}

TEST_F(TargetTest, InitiatorReadWriteWithDigestsAndErrors) {
  HostOptions o;
  o.host_nqn = kHostnqn;
  o.header_digest = true;
  o.data_digest = true;
  o.io_queues = 2;
  o.queue_depth = 8;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ((*host)->sizeBytes(), 64u << 20);
  std::vector<uint8_t> w(1 << 20), r(1 << 20);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE((*host)->write(4096, w.data(), w.size()).ok());  // R2T path
  std::vector<uint8_t> small(4096, 0x5A);
  ASSERT_TRUE((*host)->write(8 << 20, small.data(), 4096).ok());  // in-capsule path
  ASSERT_TRUE((*host)->read(4096, r.data(), r.size()).ok());
  EXPECT_EQ(r, w);
  ASSERT_TRUE((*host)->flush().ok());
  EXPECT_GE(device_->flushes, 1);
  ASSERT_TRUE((*host)->discard(8 << 20, 4096).ok());
  ASSERT_TRUE((*host)->read(8 << 20, small.data(), 4096).ok());
  EXPECT_EQ(small, std::vector<uint8_t>(4096, 0));
  auto out = (*host)->read(64 << 20, small.data(), 4096);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error().code, kBlockOutOfRange);
  // Concurrent I/O from several threads over both queues.
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      std::vector<uint8_t> buf(16384, static_cast<uint8_t>(t + 1)), back(16384);
      for (int i = 0; i < 50; ++i) {
        uint64_t off = (16ULL << 20) + (static_cast<uint64_t>(t) << 20) + i * 16384ULL;
        if (!(*host)->write(off, buf.data(), buf.size()).ok() || !(*host)->read(off, back.data(), back.size()).ok() ||
            back != buf) {
          failures++;
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  (*host)->close();
}

TEST_F(TargetTest, DiscoveryListsOnlyAllowedSubsystems) {
  registry_->add(std::make_shared<Subsystem>("nqn.2026-11.io.offcore:test:secret", "S2", std::vector<Namespace>{},
                                             std::vector<std::string>{"nqn.other"}));
  HostOptions o;
  o.host_nqn = kHostnqn;
  auto recs = discover("127.0.0.1", target_->port(), o);
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  std::vector<std::string> nqns;
  for (const auto& r : *recs) nqns.push_back(r.subnqn);
  EXPECT_NE(std::find(nqns.begin(), nqns.end(), kSubnqn), nqns.end());
  EXPECT_EQ(std::find(nqns.begin(), nqns.end(), "nqn.2026-11.io.offcore:test:secret"), nqns.end());
  for (const auto& r : *recs) {
    EXPECT_EQ(r.traddr, "127.0.0.1");
    EXPECT_EQ(r.trsvcid, std::to_string(target_->port()));
  }
}

TEST_F(TargetTest, ReconnectsAfterTheTargetRestarts) {
  HostOptions o;
  o.host_nqn = kHostnqn;
  o.io_timeout = std::chrono::seconds(20);
  o.kato_ms = 1000;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok());
  std::thread restarter = restartTargetAfter(std::chrono::milliseconds(1500));
  std::vector<uint8_t> buf(4096, 0x33);
  auto t0 = std::chrono::steady_clock::now();
  auto s = (*host)->write(0, buf.data(), buf.size());  // stalls, then succeeds
  restarter.join();
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1000));
  EXPECT_GE((*host)->stats().reconnects, 1u);
  (*host)->close();
}

// A Flush waits on the target's sync worker, not on the poll group: a read
// on the same queue is answered while an fdatasync-slow Flush is pending,
// and the Flush completes once the disk lets it.
TEST_F(TargetTest, AFlushDoesNotHoldUpTheQueue) {
  HostOptions o;
  o.host_nqn = kHostnqn;
  o.io_queues = 1;
  o.queue_depth = 8;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  std::vector<uint8_t> buf(4096, 0x11);
  ASSERT_TRUE((*host)->write(0, buf.data(), buf.size()).ok());
  device_->hold_flush = true;
  int before = device_->flushes.load();
  std::atomic<bool> flushed{false};
  std::thread flusher([&] {
    EXPECT_TRUE((*host)->flush().ok());
    flushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the Flush is on the worker now
  auto t0 = std::chrono::steady_clock::now();
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE((*host)->read(0, back.data(), back.size()).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(back, buf);
  EXPECT_FALSE(flushed.load()) << "the Flush returned while the disk still held it";
  device_->hold_flush = false;
  flusher.join();
  EXPECT_TRUE(flushed.load());
  EXPECT_EQ(device_->flushes.load(), before + 1);
}

}  // namespace
}  // namespace offcore::nvme
