// The NVMe/TCP target against hostile hosts: a raw client that speaks PDUs
// byte by byte and tries to make the target allocate without bound, while the
// test watches the process's resident memory and the target's service to
// other clients. Each case failed on the target before its bounds existed.
#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using test::kHostnqn;
using test::kSubnqn;

constexpr uint32_t kMiB = 1u << 20;

// Prints the growth, so a run shows the figure and not only the bound.
double growthMiB(size_t before, size_t after) {
  double mib = (static_cast<double>(after) - static_cast<double>(before)) / (1 << 20);
  std::printf("resident memory grew %.1f MiB\n", mib);
  return mib;
}

size_t residentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

class HostileTest : public test::TargetTest {
 protected:
  void configure(TargetConfig& cfg) override {
    cfg.limits.connect_timeout_ms = 400;
    cfg.limits.max_connections_per_peer = 6;
  }

  // A command capsule whose data the target must fetch by R2T or send back
  // by C2HData: transport SGL of `len` bytes.
  static std::vector<uint8_t> transportCapsule(uint8_t opcode, uint16_t cid, uint32_t len) {
    uint8_t sqe[64] = {};
    sqe[0] = opcode;
    putLe16(sqe + 2, cid);
    putLe32(sqe + 24 + 8, len);
    sqe[24 + 15] = kSglTransportDataBlock;
    return capsule(sqe);
  }
  // NVM Read/Write of `blocks` 4 KiB blocks at `slba`, data by transport SGL.
  static std::vector<uint8_t> ioCapsule(uint8_t opcode, uint16_t cid, uint64_t slba, uint32_t blocks) {
    auto p = transportCapsule(opcode, cid, blocks * 4096u);
    uint8_t* sqe = p.data() + 8;
    putLe32(sqe + 4, 1);  // NSID
    putLe32(sqe + 40, static_cast<uint32_t>(slba));
    putLe32(sqe + 44, static_cast<uint32_t>(slba >> 32));
    putLe32(sqe + 48, blocks - 1);
    return p;
  }
  // An I/O queue of the association on `admin`, SQSIZE `sqsize` (0's based).
  int ioQueueUp(int admin, uint16_t cntlid, uint16_t sqsize) {
    uint8_t sf[64] = {};
    sf[0] = 0x09;  // Set Features: Number of Queues, one of each
    putLe16(sf + 2, 60);
    putLe32(sf + 40, 0x07);
    sendBytes(admin, capsule(sf));
    EXPECT_EQ(statusOf(readPdu(admin)), 0);
    int fd = dial();
    sendBytes(fd, icreq());
    EXPECT_EQ(readPdu(fd).size(), 128u);
    sendBytes(fd, connectCapsule(1, 1, sqsize, cntlid, kSubnqn, kHostnqn));
    EXPECT_EQ(statusOf(readPdu(fd)), 0);
    return fd;
  }
  // Writes as much of `b` as the socket takes without blocking.
  static size_t sendSome(int fd, const std::vector<uint8_t>& b) {
    ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // A second client still gets its ICResp promptly.
  void expectOthersServed() {
    int other = dial();
    auto t0 = std::chrono::steady_clock::now();
    sendBytes(other, icreq());
    EXPECT_EQ(readPdu(other, 1000).size(), 128u) << "another host's ICReq went unanswered";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
    ::close(other);
  }
};

TEST_F(HostileTest, ConnectsAskingForR2TBeforeConnectAllocateNothing) {
  int fd = dial();
  sendBytes(fd, icreq());
  ASSERT_EQ(readPdu(fd).size(), 128u);
  size_t before = residentBytes();
  // 3,000 Connect capsules (72 bytes each) that each ask for 1 MiB by R2T.
  std::vector<uint8_t> burst;
  for (uint16_t cid = 1; cid <= 3000; ++cid) {
    auto c = transportCapsule(kFabricsCommand, cid, kMiB);
    c[8 + 4] = kFctConnect;
    burst.insert(burst.end(), c.begin(), c.end());
  }
  sendBytes(fd, burst);
  auto first = readPdu(fd);
  ASSERT_EQ(first[0], kCapsuleResp) << "no R2T may be sent before Connect";
  EXPECT_EQ(statusOf(first), kScSglDataLengthInvalid);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(growthMiB(before, residentBytes()), 64) << "the target allocated for an unconnected queue";
  expectOthersServed();
  ::close(fd);
}

TEST_F(HostileTest, RepliesTheHostNeverReadsStopTheReading) {
  uint16_t cntlid = 0;
  int admin = adminUp(cntlid);
  int io = ioQueueUp(admin, cntlid, 31);
  size_t before = residentBytes();
  // 1,500 Reads of 1 MiB, never reading a reply: the target must stop
  // reading this queue instead of queueing 1.5 GiB of C2HData.
  size_t sent_cmds = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (uint16_t cid = 0; cid < 1500 && std::chrono::steady_clock::now() < deadline;) {
    auto c = ioCapsule(kIoRead, cid, (cid % 60) * 256ull, 256);
    if (sendSome(io, c) == c.size()) {
      ++cid;
      ++sent_cmds;
    } else {
      break;  // the target stopped reading: our send buffer is full
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(sent_cmds, 8u);
  EXPECT_LT(growthMiB(before, residentBytes()), 96) << "unsent replies were queued without bound";
  expectOthersServed();
  // The admin queue of the same association still answers.
  uint8_t ka[64] = {};
  ka[0] = kAdminKeepAlive;
  putLe16(ka + 2, 77);
  sendBytes(admin, capsule(ka));
  EXPECT_EQ(statusOf(readPdu(admin)), 0);
  // Reading resumes: the replies arrive in order once the host reads.
  auto d = readPdu(io);
  ASSERT_EQ(d[0], kC2HData);
  EXPECT_EQ(getLe16(d.data() + 8), 0u);
  ::close(io);
  ::close(admin);
}

TEST_F(HostileTest, MoreOutstandingCommandsThanSqsizeEndTheQueue) {
  uint16_t cntlid = 0;
  int admin = adminUp(cntlid);
  int io = ioQueueUp(admin, cntlid, 31);  // 32 entries
  // 64 KiB reads, never read: once the socket is full, completions pile up
  // unsent; the 33rd outstanding command breaks flow control.
  for (uint16_t cid = 0; cid < 800; ++cid) {
    auto c = ioCapsule(kIoRead, cid, (cid % 1000) * 16ull, 16);
    if (sendSome(io, c) != c.size()) break;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The queue ends (a C2HTermReq if the socket had room for it, then the
  // close) before all 800 commands are answered.
  int completions = 0;
  std::vector<uint8_t> p;
  for (;;) {
    p = readPdu(io, 3000);
    if (p.empty() || p[0] == kC2HTermReq) break;
    if (p[0] == kCapsuleResp) ++completions;
  }
  if (!p.empty()) {
    EXPECT_EQ(getLe16(p.data() + 8), kFesPduSequenceError);
    EXPECT_TRUE(closedByPeer(io));
  }
  EXPECT_LT(completions, 800) << "the target answered every command past SQSIZE";
  ::close(io);
  ::close(admin);
}

TEST_F(HostileTest, ControllerToHostTransfersAreCappedAtMdts) {
  uint16_t cntlid = 0;
  int fd = adminUp(cntlid);
  size_t before = residentBytes();
  // Get Log Page (SMART) asking for 1 GiB.
  auto c = transportCapsule(kAdminGetLogPage, 5, 1u << 30);
  uint8_t* sqe = c.data() + 8;
  uint32_t numd = (1u << 28) - 1;  // dwords, 0's based
  putLe32(sqe + 40, kLogSmart | ((numd & 0xFFFF) << 16));
  putLe32(sqe + 44, numd >> 16);
  sendBytes(fd, c);
  auto r = readPdu(fd);
  ASSERT_EQ(r[0], kCapsuleResp);
  EXPECT_EQ(statusOf(r), kScSglDataLengthInvalid);
  EXPECT_LT(growthMiB(before, residentBytes()), 64);
  ::close(fd);
}

TEST_F(HostileTest, WritesGetAtMostMaxR2TBuffersAtOnce) {
  uint16_t cntlid = 0;
  int admin = adminUp(cntlid);
  int io = ioQueueUp(admin, cntlid, 31);
  for (uint16_t cid = 0; cid < 20; ++cid) sendBytes(io, ioCapsule(kIoWrite, cid, cid * 16ull, 16));
  std::vector<uint16_t> r2ts;
  for (;;) {
    auto p = readPdu(io, 300);
    if (p.empty()) break;
    ASSERT_EQ(p[0], kR2T);
    r2ts.push_back(getLe16(p.data() + 8));
  }
  ASSERT_EQ(r2ts.size(), 8u) << "R2Ts outstanding at once (limits.max_r2t_per_queue)";
  // Data for the first write frees a slot: its completion, then the 9th R2T.
  std::vector<uint8_t> data(16 * 4096, 0xAB);
  auto h2c = buildData(kH2CData, r2ts[0], 0, 0, data.data(), data.size(), true, false, Digests{}, 4);
  sendBytes(io, h2c);
  std::vector<std::vector<uint8_t>> got{readPdu(io), readPdu(io)};
  int resp = got[0][0] == kCapsuleResp ? 0 : 1;
  EXPECT_EQ(statusOf(got[resp]), 0);
  ASSERT_EQ(got[1 - resp][0], kR2T);
  EXPECT_EQ(getLe16(got[1 - resp].data() + 8), 8u);
  ::close(io);
  ::close(admin);
}

TEST_F(HostileTest, SilentConnectionsAreClosed) {
  int quiet = dial();
  int half = dial();
  sendBytes(half, icreq());
  ASSERT_EQ(readPdu(half).size(), 128u);
  EXPECT_TRUE(closedByPeer(quiet)) << "no ICReq";
  EXPECT_TRUE(closedByPeer(half)) << "ICReq but no Connect";
  ::close(quiet);
  ::close(half);
}

TEST_F(HostileTest, ConnectionsPerPeerAreCapped) {
  std::vector<int> fds;
  for (int i = 0; i < 6; ++i) {
    fds.push_back(dial());
    sendBytes(fds.back(), icreq());
    ASSERT_EQ(readPdu(fds.back()).size(), 128u);
  }
  int extra = dial();
  EXPECT_TRUE(closedByPeer(extra)) << "a 7th connection from one address was kept";
  ::close(extra);
  ::close(fds.back());
  fds.pop_back();
  // The slot comes back once the target has seen the close.
  bool admitted = false;
  for (int i = 0; i < 50 && !admitted; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int again = dial();
    sendBytes(again, icreq());
    admitted = readPdu(again, 300).size() == 128u;
    ::close(again);
  }
  EXPECT_TRUE(admitted);
  for (int fd : fds) ::close(fd);
}

// ---- DH-HMAC-CHAP: a host that must authenticate and does not play along ----

class HostileAuthTest : public HostileTest {
 protected:
  void SetUp() override {
    HostileTest::SetUp();
    auto key = *auth::generateDhchapKey(auth::kHashSha256);
    registry_->find(kSubnqn)->setHostSecrets({{kHostnqn, auth::DhchapSecrets{key, std::nullopt}}});
  }
  // IC + admin Connect that asks for authentication; returns the socket.
  int connectNeedingAuth() {
    int fd = dial();
    sendBytes(fd, icreq());
    EXPECT_EQ(readPdu(fd).size(), 128u);
    sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn));
    auto r = readPdu(fd);
    EXPECT_EQ(statusOf(r), 0);
    EXPECT_TRUE(getLe32(r.data() + 8) & kConnectAuthreqAtr);
    return fd;
  }
};

TEST_F(HostileAuthTest, HugeAuthSendsAllocateNothing) {
  int fd = connectNeedingAuth();
  size_t before = residentBytes();
  // 30 Authentication Sends that each ask for 1 MiB by R2T, and one that
  // claims MDTS in-capsule-sized TL: none may get a buffer or an R2T.
  std::vector<uint8_t> burst;
  for (uint16_t cid = 10; cid < 40; ++cid) {
    auto c = test::authCapsule(kFctAuthSend, cid, {}, kMiB, false);
    burst.insert(burst.end(), c.begin(), c.end());
  }
  sendBytes(fd, burst);
  for (int i = 0; i < 30; ++i) {
    auto r = readPdu(fd);
    ASSERT_EQ(r[0], kCapsuleResp) << "no R2T for an oversized Authentication Send";
    EXPECT_EQ(statusOf(r), kScInvalidField);
  }
  EXPECT_LT(growthMiB(before, residentBytes()), 16);
  // Writes before authentication get Authentication Required, not an R2T.
  sendBytes(fd, transportCapsule(kIoWrite, 50, kMiB));
  auto w = readPdu(fd);
  ASSERT_EQ(w[0], kCapsuleResp);
  EXPECT_EQ(statusOf(w), kScAuthRequired);
  expectOthersServed();
  ::close(fd);
}

TEST_F(HostileAuthTest, GarbageMessagesGetAFailure1AndTheQueueCloses) {
  int fd = connectNeedingAuth();
  // A Reply before any Negotiate, with lengths that point past its end.
  std::vector<uint8_t> junk(16, 0);
  junk[0] = auth::kAuthTypeDhchap;
  junk[1] = auth::kMsgReply;
  junk[6] = 64;
  putLe16(junk.data() + 10, 0xFFFF);
  sendBytes(fd, test::authCapsule(kFctAuthSend, 5, junk, static_cast<uint32_t>(junk.size()), true));
  EXPECT_EQ(statusOf(readPdu(fd)), 0) << "the spec answers a bad message with Failure1, not a status";
  // The Receive returns AUTH_Failure1 (incorrect payload) even for a 1 MiB AL,
  // and only the message's 8 bytes come back.
  sendBytes(fd, test::authCapsule(kFctAuthReceive, 6, {}, kMiB, false));
  auto data = readPdu(fd);
  ASSERT_EQ(data[0], kC2HData);
  ASSERT_EQ(getLe32(data.data() + 16), 8u) << "DATAL";
  const uint8_t* m = data.data() + data[3];
  EXPECT_EQ(m[0], auth::kAuthTypeCommon);
  EXPECT_EQ(m[1], auth::kMsgFailure1);
  EXPECT_EQ(m[6], auth::kFailureRescode);
  EXPECT_EQ(m[7], auth::kReasonIncorrectPayload);
  EXPECT_EQ(statusOf(readPdu(fd)), 0);
  // The queue stays unusable, then is closed.
  uint8_t sqe[64] = {};
  sqe[0] = 0x7F;
  putLe16(sqe + 2, 7);
  sqe[4] = kFctPropertyGet;
  sendBytes(fd, capsule(sqe));
  EXPECT_EQ(statusOf(readPdu(fd)), kScAuthRequired);
  EXPECT_TRUE(closedByPeer(fd)) << "a failed queue is closed";
  ::close(fd);
}

TEST_F(HostileAuthTest, BadSecpAndLengthFieldsAreInvalidField) {
  int fd = connectNeedingAuth();
  auto neg = auth::buildNegotiate(auth::Negotiate{1, 0, true, {1}, {0}});
  auto c = test::authCapsule(kFctAuthSend, 8, neg, static_cast<uint32_t>(neg.size()), true);
  c[8 + kAuthSqeSecp] = 0x00;
  sendBytes(fd, c);
  EXPECT_EQ(statusOf(readPdu(fd)), kScInvalidField);
  c = test::authCapsule(kFctAuthSend, 9, neg, static_cast<uint32_t>(neg.size()), true);
  putLe32(c.data() + 8 + kAuthSqeLength, 4096);  // TL disagrees with the data
  sendBytes(fd, c);
  EXPECT_EQ(statusOf(readPdu(fd)), kScInvalidField);
  c = test::authCapsule(kFctAuthReceive, 10, {}, 0, false);  // AL 0
  sendBytes(fd, c);
  EXPECT_EQ(statusOf(readPdu(fd)), kScInvalidField);
  ::close(fd);
}

TEST_F(HostileAuthTest, AHostThatNeverAuthenticatesIsClosed) {
  int fd = connectNeedingAuth();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(closedByPeer(fd));  // connect_timeout_ms is 400 here
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ::close(fd);
}

}  // namespace
}  // namespace offcore::nvme
