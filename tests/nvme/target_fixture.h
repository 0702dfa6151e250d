// The raw-PDU fixture for target tests: a started target on 127.0.0.1 with
// one 64 MiB namespace, and a socket client that writes PDUs by hand (from
// the specification's byte layouts) and reads the exact replies.
#pragma once

#include <chrono>
#include <thread>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "memory_device.h"
#include "nvme/auth/dhchap_host.h"
#include "nvme/target/target.h"

namespace offcore::nvme::test {

inline const char* kSubnqn = "nqn.2026-11.io.offcore:test:vol1";
inline const char* kHostnqn = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";

// An Authentication Send/Receive capsule: data in-capsule, or by transport SGL.
inline std::vector<uint8_t> authCapsule(uint8_t fctype, uint16_t cid, const std::vector<uint8_t>& data, uint32_t len,
                                        bool in_capsule) {
  Sqe s = fctype == kFctAuthSend ? auth::authSendSqe(len) : auth::authReceiveSqe(len);
  putLe16(s.b + 2, cid);
  putLe32(s.b + kSqeSgl + 8, len);
  s.b[kSqeSgl + 15] = in_capsule ? kSglDataBlockOffset : kSglTransportDataBlock;
  std::vector<uint8_t> p(72 + (in_capsule ? data.size() : 0), 0);
  p[0] = kCapsuleCmd;
  p[2] = 72;
  p[3] = in_capsule && !data.empty() ? 72 : 0;
  putLe32(p.data() + 4, static_cast<uint32_t>(p.size()));
  std::memcpy(p.data() + 8, s.b, 64);
  if (in_capsule) std::copy(data.begin(), data.end(), p.begin() + 72);
  return p;
}

class TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<SubsystemRegistry>();
    device_ = std::make_shared<::offcore::test::MemoryDevice>(64 << 20);
    Namespace ns;
    ns.device = device_;
    ns.nguid = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    registry_->add(
        std::make_shared<Subsystem>(kSubnqn, "SERIAL1", std::vector<Namespace>{ns}, std::vector<std::string>{}));
    TargetConfig cfg;
    cfg.listen_addr = "127.0.0.1";
    cfg.port = 0;
    cfg.poll_groups = 2;
    configure(cfg);
    target_ = std::make_unique<NvmeTcpTarget>(cfg, registry_);
    ASSERT_TRUE(target_->start().ok());
  }
  void TearDown() override { target_->stop(); }
  // A test fixture that needs other limits overrides this.
  virtual void configure(TargetConfig&) {}

  // Stops the target now and starts a new one on the same port after
  // `down` (what a gateway restart looks like to a connected host); join the
  // returned thread before checking what the host saw.
  std::thread restartTargetAfter(std::chrono::milliseconds down) {
    uint16_t port = target_->port();
    target_->stop();
    return std::thread([this, port, down] {
      std::this_thread::sleep_for(down);
      TargetConfig cfg;
      cfg.listen_addr = "127.0.0.1";
      cfg.port = port;
      configure(cfg);
      target_ = std::make_unique<NvmeTcpTarget>(cfg, registry_);
      ASSERT_TRUE(target_->start().ok());
    });
  }

  int dial() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(target_->port());
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return fd;
  }
  static void sendBytes(int fd, const std::vector<uint8_t>& b) {
    ASSERT_EQ(::send(fd, b.data(), b.size(), MSG_NOSIGNAL), static_cast<ssize_t>(b.size()));
  }
  // Reads one PDU: common header first, then the rest of PLEN.
  static std::vector<uint8_t> readPdu(int fd, int timeout_ms = 3000) {
    std::vector<uint8_t> b(8);
    if (!readN(fd, b.data(), 8, timeout_ms)) return {};
    uint32_t plen = getLe32(b.data() + 4);
    b.resize(plen);
    if (plen > 8 && !readN(fd, b.data() + 8, plen - 8, timeout_ms)) return {};
    return b;
  }
  static bool readN(int fd, uint8_t* p, size_t n, int timeout_ms) {
    size_t got = 0;
    while (got < n) {
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, timeout_ms) <= 0) return false;
      ssize_t r = ::read(fd, p + got, n - got);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  static bool closedByPeer(int fd) {
    uint8_t b;
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, 3000) <= 0) return false;
    return ::read(fd, &b, 1) == 0;
  }
  // ICReq by hand: no digests unless asked.
  static std::vector<uint8_t> icreq(uint8_t dgst = 0) {
    std::vector<uint8_t> p(128, 0);
    p[0] = 0x00;
    p[2] = 128;
    putLe32(p.data() + 4, 128);
    p[11] = dgst;
    return p;
  }
  // A Connect capsule with its 1024 bytes in-capsule, by hand.
  static std::vector<uint8_t> connectCapsule(uint16_t cid, uint16_t qid, uint16_t sqsize, uint16_t cntlid,
                                             const std::string& subnqn, const std::string& hostnqn) {
    std::vector<uint8_t> p(72 + 1024, 0);
    p[0] = 0x04;
    p[2] = 72;
    p[3] = 72;
    putLe32(p.data() + 4, static_cast<uint32_t>(p.size()));
    uint8_t* sqe = p.data() + 8;
    sqe[0] = 0x7F;
    putLe16(sqe + 2, cid);
    sqe[4] = 0x01;  // Connect
    putLe32(sqe + 24 + 8, 1024);
    sqe[24 + 15] = 0x01;  // SGL: data block, offset
    putLe16(sqe + 42, qid);
    putLe16(sqe + 44, sqsize);
    putLe32(sqe + 48, 0);  // KATO off
    uint8_t* data = p.data() + 72;
    putLe16(data + 16, cntlid);
    std::memcpy(data + 256, subnqn.data(), subnqn.size());
    std::memcpy(data + 512, hostnqn.data(), hostnqn.size());
    return p;
  }
  static std::vector<uint8_t> capsule(const uint8_t sqe[64]) {
    std::vector<uint8_t> p(72, 0);
    p[0] = 0x04;
    p[2] = 72;
    putLe32(p.data() + 4, 72);
    std::memcpy(p.data() + 8, sqe, 64);
    return p;
  }
  static uint16_t statusOf(const std::vector<uint8_t>& resp) { return (getLe16(resp.data() + 22) >> 1) & 0x7FF; }
  static bool dnrOf(const std::vector<uint8_t>& resp) { return (getLe16(resp.data() + 22) >> 15) & 1; }

  // IC + admin Connect + CC.EN, by hand. Returns the socket.
  int adminUp(uint16_t& cntlid) {
    int fd = dial();
    sendBytes(fd, icreq());
    auto ic = readPdu(fd);
    EXPECT_EQ(ic.size(), 128u);
    sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, kSubnqn, kHostnqn));
    auto r = readPdu(fd);
    EXPECT_EQ(statusOf(r), 0);
    cntlid = getLe16(r.data() + 8);
    uint8_t sqe[64] = {};
    sqe[0] = 0x7F;
    putLe16(sqe + 2, 2);
    sqe[4] = 0x00;  // Property Set
    putLe32(sqe + 44, 0x14);
    putLe64(sqe + 48, 1 | (6 << 16) | (4 << 20));
    sendBytes(fd, capsule(sqe));
    EXPECT_EQ(statusOf(readPdu(fd)), 0);
    return fd;
  }

  std::shared_ptr<SubsystemRegistry> registry_;
  std::shared_ptr<::offcore::test::MemoryDevice> device_;
  std::unique_ptr<NvmeTcpTarget> target_;
};

}  // namespace offcore::nvme::test
