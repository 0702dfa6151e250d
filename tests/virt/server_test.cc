// VhostUserServer against a fake front end: the test speaks the protocol the
// way QEMU does, over a real unix socket, with a memfd as guest RAM, and lays
// out requests in the ring itself.
#include "virt/vhost/server.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "virt/vhost/dirty_log.h"
#include "virt/vhost/inflight.h"
#include "virt/vhost/packed_inflight.h"
#include "virt/vhost/protocol.h"

namespace offcore::virt {
namespace {

// Guest RAM and the dirty log as QEMU makes them: memfds sealed against
// shrinking (the back end refuses unsealed ones).
int sealedMemfd(const char* name, off_t size) {
  int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ::ftruncate(fd, size) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    ADD_FAILURE() << "memfd " << name << ": " << std::strerror(errno);
  }
  return fd;
}

constexpr uint64_t kRamSize = 1 << 20;
constexpr uint64_t kUva = 0x7f0000000000;  // where the "front end" says it mapped RAM
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
constexpr uint16_t kQueueSize = 16;
constexpr uint64_t kOutBuf = 0x10000, kInBuf = 0x11000;
constexpr uint32_t kInLen = 64;

// Writes 0xab into every device-writable byte of the chain.
class FakeDevice : public VhostDevice {
 public:
  uint64_t deviceFeatures() const override { return 0; }
  uint16_t maxQueues() const override { return 2; }
  bool packedRing() const override { return packed.load(); }
  std::vector<uint8_t> configSpace(uint16_t) const override { return {1, 2, 3, 4, 5, 6, 7, 8}; }
  Coalescing coalescing() const override { return {coalesceUs.load(), coalesceIops.load()}; }
  uint32_t pollUs() const override { return poll.load(); }
  uint32_t handle(uint16_t queue, const Chain& chain) override {
    uint32_t written = 0;
    for (const auto& s : chain.segments) {
      if (s.deviceWritable) {
        std::memset(s.data, 0xab, s.len);
        written += s.len;
      } else {
        readable += s.len;
      }
    }
    ++handled;
    return written;
  }
  // With `source` set, queue 0 is device-driven: each count on that eventfd
  // is one "frame", written as 0xcd into one chain.
  int sourceFd(uint16_t queue) const override { return queue == 0 ? source.load() : -1; }
  Fill fill(uint16_t queue, VirtQueue& vq) override {
    vq.setKicksEnabled(false);
    for (;;) {
      if (pending == 0) {
        uint64_t n = 0;
        if (::read(source.load(), &n, 8) != 8) return Fill::kIdle;
        pending = n;
      }
      auto c = vq.pop();
      if (c.ok() && !c->has_value()) {
        vq.setKicksEnabled(true);
        c = vq.pop();
        if (c.ok() && !c->has_value()) return Fill::kNoBuffers;
        vq.setKicksEnabled(false);
      }
      if (!c.ok()) return Fill::kBroken;
      uint32_t written = 0;
      for (const auto& s : (*c)->segments) {
        if (!s.deviceWritable) continue;
        std::memset(s.data, 0xcd, s.len);
        written += s.len;
      }
      vq.push(**c, written);
      --pending;
      ++filled;
    }
  }
  std::atomic<int> handled{0};
  std::atomic<bool> packed{false};
  std::atomic<uint32_t> coalesceUs{0}, coalesceIops{0}, poll{0};
  std::atomic<uint32_t> readable{0};
  std::atomic<int> source{-1};  // set by the test before the queue starts
  uint64_t pending = 0;         // the queue thread's
  std::atomic<int> filled{0};
};

class FrontEnd {
 public:
  explicit FrontEnd(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    connected = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  }
  ~FrontEnd() { ::close(fd_); }

  void send(Request r, std::vector<uint8_t> payload, std::vector<int> fds = {}, uint32_t flags = kVersion) {
    std::vector<uint8_t> msg(12);
    uint32_t h[3] = {static_cast<uint32_t>(r), flags, static_cast<uint32_t>(payload.size())};
    std::memcpy(msg.data(), h, 12);
    msg.insert(msg.end(), payload.begin(), payload.end());
    iovec iov{msg.data(), msg.size()};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)] = {};
    if (!fds.empty()) {
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ASSERT_EQ(::sendmsg(fd_, &mh, MSG_NOSIGNAL), static_cast<ssize_t>(msg.size()));
  }
  void sendU64(Request r, uint64_t v, std::vector<int> fds = {}) { send(r, bytes(&v, 8), std::move(fds)); }
  void sendState(Request r, uint32_t index, uint32_t num) {
    uint32_t s[2] = {index, num};
    send(r, bytes(s, 8));
  }

  // The payload of the next reply, checked against the request it answers.
  std::vector<uint8_t> reply(Request r) {
    uint32_t h[3] = {};
    if (!readAll(h, 12)) return {};
    EXPECT_EQ(h[0], static_cast<uint32_t>(r));
    EXPECT_EQ(h[1], kVersion | kFlagReply);
    std::vector<uint8_t> p(h[2]);
    if (!readAll(p.data(), p.size())) return {};
    return p;
  }
  uint64_t replyU64(Request r) {
    auto p = reply(r);
    uint64_t v = ~0ull;
    if (p.size() == 8) std::memcpy(&v, p.data(), 8);
    return v;
  }
  // A request without payload, non-blocking: false when the socket is full.
  bool trySend(Request r) {
    uint32_t h[3] = {static_cast<uint32_t>(r), kVersion, 0};
    return ::send(fd_, h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof h);
  }
  bool writableWithin(int timeoutMs) {
    pollfd p{fd_, POLLOUT, 0};
    return ::poll(&p, 1, timeoutMs) == 1;
  }
  // Reads (and discards) until the server closes, for at most timeoutMs.
  bool drainedToEof(int timeoutMs) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
    // Give the server its reply timeout; reading early would make room.
    std::this_thread::sleep_for(std::chrono::milliseconds(5500));
    char buf[4096];
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 1000) != 1) continue;
      ssize_t r = ::recv(fd_, buf, sizeof buf, 0);
      if (r <= 0) return r == 0 || errno == ECONNRESET;
    }
    return false;
  }
  // True when the server closed the connection (within 5 s).
  bool closedByServer() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

  static std::vector<uint8_t> bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    return {b, b + n};
  }

  bool connected = false;

 private:
  bool readAll(void* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) != 1) return false;
      ssize_t r = ::recv(fd_, static_cast<char*>(buf) + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
};

class VhostServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() / ("oc-vhost-" + std::to_string(::getpid()) + ".sock");
    auto s = VhostUserServer::listen(path_, device_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    thread_ = std::thread([this] { ran_ = server_->run(); });
    ramFd_ = sealedMemfd("oc-vhost-test-ram", kRamSize);
    ram_ = static_cast<uint8_t*>(::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, ramFd_, 0));
    ASSERT_NE(ram_, MAP_FAILED);
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
    if (device_.source >= 0) ::close(device_.source);
    EXPECT_TRUE(ran_.ok()) << ran_.error().message;
    server_.reset();
    EXPECT_FALSE(std::filesystem::exists(path_)) << "socket file left behind";
    ::munmap(ram_, kRamSize);
    ::close(ramFd_);
  }

  std::vector<uint8_t> memTable(uint64_t size) {
    std::vector<uint8_t> p(8 + 32, 0);
    uint32_t n = 1;
    std::memcpy(p.data(), &n, 4);
    uint64_t r[4] = {0, size, kUva, 0};
    std::memcpy(p.data() + 8, r, 32);
    return p;
  }

  // QEMU's set-up of one queue, up to SET_VRING_CALL (the ring is then
  // enabled by the caller).
  void setUpQueue(FrontEnd& fe, int kick, int call, uint64_t descUva = kUva + kDesc) {
    fe.send(Request::kGetFeatures, {});
    uint64_t offered = fe.replyU64(Request::kGetFeatures);
    ASSERT_TRUE(offered & (1ull << VIRTIO_F_VERSION_1));
    ASSERT_TRUE(offered & (1ull << kFProtocolFeatures));
    fe.send(Request::kGetProtocolFeatures, {});
    uint64_t proto = fe.replyU64(Request::kGetProtocolFeatures);
    ASSERT_TRUE(proto & (1ull << kProtoReplyAck));
    ASSERT_FALSE(proto & (1ull << kProtoConfigureMemSlots));
    fe.sendU64(Request::kSetProtocolFeatures, proto & ((1ull << kProtoReplyAck) | (1ull << kProtoConfig) |
                                                       (1ull << kProtoMq) | (1ull << kProtoLogShmfd)));
    fe.send(Request::kGetQueueNum, {});
    EXPECT_EQ(fe.replyU64(Request::kGetQueueNum), 2u);
    std::vector<uint8_t> cfg(12 + 4, 0);
    uint32_t off = 2, size = 4;
    std::memcpy(cfg.data(), &off, 4);
    std::memcpy(cfg.data() + 4, &size, 4);
    fe.send(Request::kGetConfig, cfg);
    auto got = fe.reply(Request::kGetConfig);
    ASSERT_EQ(got.size(), 16u);
    EXPECT_EQ(got[12], 3);
    EXPECT_EQ(got[15], 6);
    fe.send(Request::kSetOwner, {});
    fe.sendU64(Request::kSetFeatures,
               (1ull << VIRTIO_F_VERSION_1) | (1ull << kFProtocolFeatures) | (1ull << VIRTIO_RING_F_EVENT_IDX));
    fe.send(Request::kSetMemTable, memTable(kRamSize), {ramFd_}, kVersion | kFlagNeedReply);
    EXPECT_EQ(fe.replyU64(Request::kSetMemTable), 0u);
    fe.sendState(Request::kSetVringNum, 0, kQueueSize);
    fe.sendState(Request::kSetVringBase, 0, 0);
    vhost_vring_addr a{};
    a.index = 0;
    a.desc_user_addr = descUva;
    a.used_user_addr = kUva + kUsed;
    a.avail_user_addr = kUva + kAvail;
    fe.send(Request::kSetVringAddr, FrontEnd::bytes(&a, sizeof(a)));
    fe.sendU64(Request::kSetVringKick, 0, {kick});
    fe.sendU64(Request::kSetVringCall, 0, {call});
  }

  // One request: a 16-byte readable buffer, then a kInLen writable one.
  void postRequest(uint16_t availIdx) {
    auto* desc = reinterpret_cast<vring_desc*>(ram_ + kDesc);
    desc[0] = {kOutBuf, 16, VRING_DESC_F_NEXT, 1};
    desc[1] = {kInBuf, kInLen, VRING_DESC_F_WRITE, 0};
    auto* avail = reinterpret_cast<vring_avail*>(ram_ + kAvail);
    avail->ring[availIdx % kQueueSize] = 0;
    std::atomic_thread_fence(std::memory_order_release);
    avail->idx = static_cast<uint16_t>(availIdx + 1);
  }

  const vring_used* used() const { return reinterpret_cast<const vring_used*>(ram_ + kUsed); }

  static bool fired(int efd) {
    pollfd p{efd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    uint64_t v;
    return ::read(efd, &v, 8) == 8;
  }

  // Interrupts until the used idx reaches idx: every queue start also
  // signals once (for completions a killed back end never announced), so
  // the first interrupt may come before the request is served.
  bool completedTo(int call, uint16_t idx) const {
    for (int i = 0; i < 10; ++i) {
      if (!fired(call)) return false;
      std::atomic_thread_fence(std::memory_order_acquire);
      if (used()->idx == idx) return true;
    }
    return false;
  }

  // A new connection still gets answers.
  void expectServing() {
    FrontEnd fe(path_);
    ASSERT_TRUE(fe.connected);
    fe.send(Request::kGetFeatures, {});
    EXPECT_NE(fe.replyU64(Request::kGetFeatures), ~0ull) << "the server stopped serving after a bad front end";
  }

  FakeDevice device_;
  std::string path_;
  std::unique_ptr<VhostUserServer> server_;
  std::thread thread_;
  Status ran_;
  int ramFd_ = -1;
  uint8_t* ram_ = nullptr;
};

TEST_F(VhostServerTest, ServesARequestPostedInTheRingAndSignalsTheCallFd) {
  FrontEnd fe(path_);
  ASSERT_TRUE(fe.connected);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  // Round trip, so every message above has been applied.
  fe.send(Request::kGetFeatures, {});
  fe.replyU64(Request::kGetFeatures);

  postRequest(0);
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(completedTo(call, 1)) << "no interrupt for a completed request";
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 1);
  EXPECT_EQ(used()->ring[0].id, 0u);
  EXPECT_EQ(used()->ring[0].len, kInLen);
  EXPECT_EQ(ram_[kInBuf], 0xab);
  EXPECT_EQ(ram_[kInBuf + kInLen - 1], 0xab);
  EXPECT_EQ(ram_[kInBuf + kInLen], 0) << "wrote past the writable buffer";
  EXPECT_EQ(device_.readable.load(), 16u);

  // GET_VRING_BASE stops the ring and says where to resume.
  fe.sendState(Request::kGetVringBase, 0, 0);
  auto base = fe.reply(Request::kGetVringBase);
  ASSERT_EQ(base.size(), 8u);
  uint32_t st[2];
  std::memcpy(st, base.data(), 8);
  EXPECT_EQ(st[0], 0u);
  EXPECT_EQ(st[1], 1u);
  // A stopped ring serves nothing.
  postRequest(1);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(device_.handled.load(), 1);
  ::close(kick);
  ::close(call);
}

// A packed ring as QEMU 7.2 sets one up: RING_PACKED offered only when the
// device takes it, any ring size, and a 32-bit vring base with the used
// position in the upper half (both ways).
TEST_F(VhostServerTest, OffersAndServesAPackedRingWithQemusVringBase) {
  constexpr uint16_t kAvailF = 1u << VRING_PACKED_DESC_F_AVAIL, kUsedF = 1u << VRING_PACKED_DESC_F_USED;
  FrontEnd fe(path_);
  ASSERT_TRUE(fe.connected);
  fe.send(Request::kGetFeatures, {});
  EXPECT_FALSE(fe.replyU64(Request::kGetFeatures) & (1ull << VIRTIO_F_RING_PACKED));
  device_.packed = true;
  fe.send(Request::kGetFeatures, {});
  ASSERT_TRUE(fe.replyU64(Request::kGetFeatures) & (1ull << VIRTIO_F_RING_PACKED));
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  fe.send(Request::kSetOwner, {});
  fe.sendU64(Request::kSetFeatures, (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_RING_PACKED));
  fe.send(Request::kSetMemTable, memTable(kRamSize), {ramFd_});
  fe.sendState(Request::kSetVringNum, 0, 6);  // not a power of two
  // avail index 5 and used index 5, both in the first lap (wrap counter 1).
  fe.sendState(Request::kSetVringBase, 0, 0x80058005u);
  vhost_vring_addr a{};
  a.desc_user_addr = kUva + kDesc;
  a.avail_user_addr = kUva + kAvail;  // driver event area
  a.used_user_addr = kUva + kUsed;    // device event area
  fe.send(Request::kSetVringAddr, FrontEnd::bytes(&a, sizeof(a)));
  fe.sendU64(Request::kSetVringKick, 0, {kick});
  fe.sendU64(Request::kSetVringCall, 0, {call});
  fe.send(Request::kGetFeatures, {});  // round trip: all of the above applied
  fe.replyU64(Request::kGetFeatures);

  // A chain over the ring's end: slot 5 (lap 1), then slot 0 (lap 2), id 3.
  auto* desc = reinterpret_cast<vring_packed_desc*>(ram_ + kDesc);
  desc[0] = {kInBuf, kInLen, 3, static_cast<uint16_t>(VRING_DESC_F_WRITE | kUsedF)};
  desc[5] = {kOutBuf, 16, 3, 0};
  std::atomic_ref<uint16_t>(desc[5].flags).store(VRING_DESC_F_NEXT | kAvailF, std::memory_order_release);
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick, &one, 8), 8);
  bool done = false;
  for (int i = 0; i < 10 && !done; ++i) {
    if (!fired(call)) break;
    done = std::atomic_ref<uint16_t>(desc[5].flags).load(std::memory_order_acquire) & kUsedF;
  }
  ASSERT_TRUE(done) << "no used descriptor written back";
  EXPECT_EQ(desc[5].id, 3);
  EXPECT_EQ(desc[5].len, kInLen);
  EXPECT_EQ(desc[5].flags & (kAvailF | kUsedF), kAvailF | kUsedF);  // used in lap 1
  EXPECT_EQ(ram_[kInBuf], 0xab);

  // Both positions moved two slots, into lap 2 (wrap counter 0).
  fe.sendState(Request::kGetVringBase, 0, 0);
  auto base = fe.reply(Request::kGetVringBase);
  ASSERT_EQ(base.size(), 8u);
  uint32_t st[2];
  std::memcpy(st, base.data(), 8);
  EXPECT_EQ(st[1], 0x00010001u);
  ::close(kick);
  ::close(call);
}

// QEMU sets the features before GET_INFLIGHT_FD, so the area it gets back
// is laid out (and sized) for the ring type the guest picked.
TEST_F(VhostServerTest, GetInflightFdSizesTheAreaForTheNegotiatedRingType) {
  device_.packed = true;
  FrontEnd fe(path_);
  ASSERT_TRUE(fe.connected);
  fe.send(Request::kGetFeatures, {});
  fe.replyU64(Request::kGetFeatures);
  fe.sendU64(Request::kSetProtocolFeatures, 1ull << kProtoInflightShmfd);
  for (bool packed : {false, true}) {
    fe.sendU64(Request::kSetFeatures, (1ull << VIRTIO_F_VERSION_1) | (packed ? 1ull << VIRTIO_F_RING_PACKED : 0));
    uint8_t req[24] = {};
    const uint16_t queues = 2, size = 128;
    std::memcpy(req + 16, &queues, 2);
    std::memcpy(req + 18, &size, 2);
    fe.send(Request::kGetInflightFd, FrontEnd::bytes(req, sizeof req));
    auto p = fe.reply(Request::kGetInflightFd);
    ASSERT_EQ(p.size(), 24u);
    uint64_t mmapSize;
    std::memcpy(&mmapSize, p.data(), 8);
    EXPECT_EQ(mmapSize, 2 * (packed ? packedInflightQueueBytes(size) : inflightQueueBytes(size))) << packed;
  }
}

TEST_F(VhostServerTest, ADeviceDrivenQueueFillsFromItsSourceAndWaitsForAKickWithoutBuffers) {
  device_.source = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  FrontEnd fe(path_);
  ASSERT_TRUE(fe.connected);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  fe.send(Request::kGetFeatures, {});
  fe.replyU64(Request::kGetFeatures);

  // A frame and no buffer: nothing happens until the guest posts and kicks.
  const uint64_t one = 1;
  ASSERT_EQ(::write(device_.source, &one, 8), 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(device_.filled.load(), 0);
  postRequest(0);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(fired(call)) << "no interrupt for a filled buffer";
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 1);
  EXPECT_EQ(used()->ring[0].len, kInLen);
  EXPECT_EQ(ram_[kInBuf], 0xcd);

  // A buffer waiting and a new frame: the source alone wakes the queue.
  // (EVENT_IDX: the guest asks for an interrupt past the entry it has seen.)
  reinterpret_cast<vring_avail*>(ram_ + kAvail)->ring[kQueueSize] = 1;
  postRequest(1);
  ASSERT_EQ(::write(device_.source, &one, 8), 8);
  ASSERT_TRUE(fired(call)) << "the source did not wake the queue";
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 2);
  EXPECT_EQ(device_.filled.load(), 2);
  EXPECT_EQ(device_.handled.load(), 0) << "handle() on a device-driven queue";

  fe.sendState(Request::kGetVringBase, 0, 0);
  auto base = fe.reply(Request::kGetVringBase);
  ASSERT_EQ(base.size(), 8u);
  uint32_t st[2];
  std::memcpy(st, base.data(), 8);
  EXPECT_EQ(st[1], 2u);
  ::close(kick);
  ::close(call);
}

TEST_F(VhostServerTest, LogsThePagesItWritesWhileMigrating) {
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  // QEMU's order when a migration starts: the log, then LOG_ALL.
  int logFd = sealedMemfd("oc-vhost-test-log", 4096);
  uint64_t area[2] = {kRamSize / kLogPageSize / 8, 0};
  fe.send(Request::kSetLogBase, FrontEnd::bytes(area, sizeof(area)), {logFd});
  EXPECT_EQ(fe.replyU64(Request::kSetLogBase), 0u);
  fe.sendU64(Request::kSetFeatures, (1ull << VIRTIO_F_VERSION_1) | (1ull << kFProtocolFeatures) |
                                        (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VHOST_F_LOG_ALL));
  fe.sendState(Request::kSetVringEnable, 0, 1);
  auto* bits = static_cast<uint8_t*>(::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, logFd, 0));
  ASSERT_NE(bits, MAP_FAILED);
  postRequest(0);
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(completedTo(call, 1));
  auto dirty = [&](uint64_t gpa) { return (bits[gpa / kLogPageSize / 8] >> (gpa / kLogPageSize % 8)) & 1; };
  EXPECT_TRUE(dirty(kInBuf)) << "the page the device wrote is not in the dirty log";
  EXPECT_FALSE(dirty(kOutBuf)) << "a page the device only read is in the dirty log";
  ::munmap(bits, 4096);
  ::close(logFd);
  ::close(kick);
  ::close(call);
}

TEST_F(VhostServerTest, ADisabledRingWaitsForSetVringEnable) {
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  postRequest(0);
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick, &one, 8), 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(device_.handled.load(), 0) << "served a ring the front end had not enabled";
  fe.sendState(Request::kSetVringEnable, 0, 1);
  ASSERT_TRUE(completedTo(call, 1));  // what was posted before the enable is served
  EXPECT_EQ(used()->idx, 1);
  ::close(kick);
  ::close(call);
}

// QEMU swaps the call fd whenever the guest masks the queue's vector: the
// queue keeps running (a restart would signal the new fd at once) and the
// next completion goes to the new fd.
TEST_F(VhostServerTest, SwapsTheCallFdWithoutRestartingTheQueue) {
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  postRequest(0);
  const uint64_t one = 1;
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(completedTo(call, 1));
  // The start's interrupt and the request's may have merged or not: empty
  // the old fd once both are surely written.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  pollfd old{call, POLLIN, 0};
  uint64_t drained;
  if (::poll(&old, 1, 0) == 1) {
    ASSERT_EQ(::read(call, &drained, 8), 8);
  }

  int call2 = ::eventfd(0, EFD_CLOEXEC);
  fe.sendU64(Request::kSetVringCall, 0, {call2});
  fe.send(Request::kGetFeatures, {});  // round trip: the swap is applied
  fe.replyU64(Request::kGetFeatures);
  pollfd p{call2, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 200), 0) << "the queue restarted (a start signals its call fd)";
  // EVENT_IDX: the guest asks for an interrupt past the entry it has seen.
  reinterpret_cast<vring_avail*>(ram_ + kAvail)->ring[kQueueSize] = 1;
  postRequest(1);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(fired(call2)) << "no interrupt on the new call fd";
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 2);
  p = {call, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the old call fd was signalled after the swap";
  ::close(kick);
  ::close(call);
  ::close(call2);
}

// Coalescing: above the rate threshold (0: always), a completion's
// interrupt waits up to the delay, and what the guest posts meanwhile is
// served and covered by the same interrupt.
TEST_F(VhostServerTest, HoldsAnInterruptForTheDelayAndCoversLaterCompletions) {
  device_.coalesceUs = 300000;  // long enough to observe
  device_.coalesceIops = 0;
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  ASSERT_TRUE(fired(call)) << "no interrupt at the queue's start";
  const uint64_t one = 1;
  postRequest(0);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 1) << "the request was not served at once";
  pollfd p{call, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the interrupt was not held";
  postRequest(1);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_EQ(::poll(&p, 1, 2000), 1) << "the held interrupt never came";
  uint64_t count = 0;
  ASSERT_EQ(::read(call, &count, 8), 8);
  EXPECT_EQ(count, 1u) << "two interrupts for two completions";
  std::atomic_thread_fence(std::memory_order_acquire);
  EXPECT_EQ(used()->idx, 2);
  ::close(kick);
  ::close(call);
}

// Polling: right after the ring ran empty the queue keeps looking at it
// with kicks off, so a chain posted within the window needs no kick.
TEST_F(VhostServerTest, PollsTheRingAfterItRunsEmptySoAChainNeedsNoKick) {
  device_.poll = 500000;  // half a second, to observe it
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  const uint64_t one = 1;
  postRequest(0);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  ASSERT_TRUE(completedTo(call, 1));
  postRequest(1);  // no kick
  bool served = false;
  for (int i = 0; i < 40 && !served; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic_thread_fence(std::memory_order_acquire);
    served = used()->idx == 2;
  }
  EXPECT_TRUE(served) << "a chain posted inside the polling window waited for a kick";
  ::close(kick);
  ::close(call);
}

TEST_F(VhostServerTest, DoesNotHoldAnInterruptBelowTheRateThreshold) {
  device_.coalesceUs = 300000;
  device_.coalesceIops = 1000000000;
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  fe.sendState(Request::kSetVringEnable, 0, 1);
  ASSERT_TRUE(fired(call));
  const uint64_t one = 1;
  postRequest(0);
  ASSERT_EQ(::write(kick, &one, 8), 8);
  pollfd p{call, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 100), 1) << "a slow queue's interrupt was held";
  ::close(kick);
  ::close(call);
}

// REPLY_ACK: a request that fails with NEED_REPLY set is answered with a
// non-zero status, and the connection goes on.
TEST_F(VhostServerTest, AnswersAFailedRequestThatAskedForAReply) {
  FrontEnd fe(path_);
  fe.sendU64(Request::kSetProtocolFeatures, 1ull << kProtoReplyAck);
  fe.send(Request::kSetMemTable, memTable(kRamSize * 4), {ramFd_}, kVersion | kFlagNeedReply);
  EXPECT_NE(fe.replyU64(Request::kSetMemTable), 0u);
  fe.send(Request::kSetMemTable, memTable(kRamSize), {ramFd_}, kVersion | kFlagNeedReply);
  EXPECT_EQ(fe.replyU64(Request::kSetMemTable), 0u) << "the connection did not survive the failed request";
}

// A front end that sends requests and never reads the replies fills its
// socket: the server drops it (within its 5 s reply timeout) instead of
// blocking for good, and serves the next one.
TEST_F(VhostServerTest, DropsAFrontEndThatNeverReadsItsReplies) {
  FrontEnd fe(path_);
  const auto start = std::chrono::steady_clock::now();
  // Send until the server stops reading (its own replies have filled its
  // socket): then our socket stays full for a second.
  int sent = 0;
  while (sent < 200000) {
    if (fe.trySend(Request::kGetFeatures)) {
      ++sent;
    } else if (!fe.writableWithin(1000)) {
      break;
    }
  }
  ASSERT_LT(sent, 200000) << "the server kept reading without its replies being read";
  EXPECT_TRUE(fe.drainedToEof(15000)) << "the server kept a front end that does not read";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  expectServing();
}

TEST_F(VhostServerTest, DropsAFrontEndThatSendsAWrongPayloadSize) {
  FrontEnd fe(path_);
  fe.send(Request::kSetVringNum, {0, 0, 0, 0});
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
}

TEST_F(VhostServerTest, DropsAFrontEndThatSendsTooManyRegions) {
  FrontEnd fe(path_);
  std::vector<uint8_t> p(8 + 9 * 32, 0);
  p[0] = 9;
  fe.send(Request::kSetMemTable, p, {ramFd_, ramFd_, ramFd_, ramFd_, ramFd_, ramFd_, ramFd_, ramFd_});
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
}

TEST_F(VhostServerTest, DropsAFrontEndWhoseRegionIsLargerThanItsMemory) {
  FrontEnd fe(path_);
  fe.send(Request::kSetMemTable, memTable(kRamSize * 4), {ramFd_});
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
}

TEST_F(VhostServerTest, DropsAFrontEndWhoseRingLiesOutsideGuestMemory) {
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call, kUva + kRamSize - 0x80);  // the 256-byte descriptor table runs past the end
  fe.sendState(Request::kSetVringEnable, 0, 1);
  EXPECT_TRUE(fe.closedByServer());
  EXPECT_EQ(device_.handled.load(), 0);
  expectServing();
  ::close(kick);
  ::close(call);
}

TEST_F(VhostServerTest, DropsAFrontEndWhoseCallFdIsNotAnEventfd) {
  // A pipe nobody reads would block the queue thread's notify for good.
  FrontEnd fe(path_);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  int kick = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, p[1]);
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
  ::close(p[0]);
  ::close(p[1]);
  ::close(kick);
}

TEST_F(VhostServerTest, DropsAFrontEndWhoseDirtyLogRunsPastItsFile) {
  // Marking a page past the end of the log's file would SIGBUS the back end.
  FrontEnd fe(path_);
  int kick = ::eventfd(0, EFD_CLOEXEC), call = ::eventfd(0, EFD_CLOEXEC);
  setUpQueue(fe, kick, call);
  int logFd = sealedMemfd("oc-vhost-test-log", 4096);
  uint64_t area[2] = {1 << 20, 0};
  fe.send(Request::kSetLogBase, FrontEnd::bytes(area, sizeof(area)), {logFd});
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
  ::close(logFd);
  ::close(kick);
  ::close(call);
}

TEST_F(VhostServerTest, DropsAFrontEndThatSendsAnUnknownRequest) {
  FrontEnd fe(path_);
  fe.send(static_cast<Request>(99), {});
  EXPECT_TRUE(fe.closedByServer());
  expectServing();
}

TEST_F(VhostServerTest, ASecondFrontEndWaitsForTheFirst) {
  auto first = std::make_unique<FrontEnd>(path_);
  first->send(Request::kGetFeatures, {});
  first->replyU64(Request::kGetFeatures);
  FrontEnd second(path_);
  ASSERT_TRUE(second.connected);  // queued in the backlog
  second.send(Request::kGetFeatures, {});
  first.reset();  // the first one leaves: the second is served
  EXPECT_NE(second.replyU64(Request::kGetFeatures), ~0ull);
}

TEST(VhostServerListenTest, RefusesASocketAnotherServerAnswersOn) {
  FakeDevice dev;
  std::string path = std::filesystem::temp_directory_path() / ("oc-vhost-dup-" + std::to_string(::getpid()) + ".sock");
  auto a = VhostUserServer::listen(path, dev);
  ASSERT_TRUE(a.ok()) << a.error().message;
  auto b = VhostUserServer::listen(path, dev);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

}  // namespace
}  // namespace offcore::virt
