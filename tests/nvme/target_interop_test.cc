// Interop with initiators other than ours (issue #14): an empty host NQN
// (fio's SPDK plugin sends one by default), NUSE that follows a thin
// volume's allocation, and poll groups that follow the CPU affinity mask.
#include <pthread.h>
#include <sched.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <string>
#include <vector>

#include "base/files.h"
#include "nvme/host/host.h"
#include "storage/volume_store.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using test::kHostnqn;
using test::kSubnqn;
using test::TargetTest;

// Makes spdlog's default logger write into a ring as well, for the life of
// the object. Swapping the default logger races with threads that log, so
// the fixture does it only while no target runs (before SetUp starts one,
// after TearDown joined its threads).
class LogCapture {
 public:
  LogCapture() : old_(spdlog::default_logger()), ring_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)) {
    ring_->set_pattern("%l %v");
    auto sinks = old_->sinks();
    sinks.push_back(ring_);
    auto logger = std::make_shared<spdlog::logger>("capture", sinks.begin(), sinks.end());
    logger->set_level(spdlog::level::info);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(old_); }
  // The captured lines that contain every one of `parts`.
  std::vector<std::string> linesWith(const std::vector<std::string>& parts) const {
    std::vector<std::string> out;
    for (const auto& line : ring_->last_formatted()) {
      bool all = true;
      for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
      if (all) out.push_back(line);
    }
    return out;
  }

 private:
  std::shared_ptr<spdlog::logger> old_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> ring_;
};

class InteropTest : public TargetTest {
 protected:
  void SetUp() override {
    log_ = std::make_unique<LogCapture>();
    TargetTest::SetUp();
  }
  void TearDown() override {
    TargetTest::TearDown();
    log_.reset();
  }
  const LogCapture& log() const { return *log_; }

  // IC and an admin Connect with `hostnqn`; returns the Connect's response.
  std::vector<uint8_t> connectAdmin(int fd, const std::string& subnqn, const std::string& hostnqn) {
    sendBytes(fd, icreq());
    EXPECT_EQ(readPdu(fd).size(), 128u);
    sendBytes(fd, connectCapsule(1, 0, 31, 0xFFFF, subnqn, hostnqn));
    return readPdu(fd);
  }
  static void enable(int fd) {
    uint8_t sqe[64] = {};
    sqe[0] = 0x7F;
    putLe16(sqe + 2, 2);
    sqe[4] = 0x00;  // Property Set CC: EN, IOSQES 6, IOCQES 4
    putLe32(sqe + 44, 0x14);
    putLe64(sqe + 48, 1 | (6 << 16) | (4 << 20));
    sendBytes(fd, capsule(sqe));
    ASSERT_EQ(statusOf(readPdu(fd)), 0);
  }
  // Identify Namespace 1 over an enabled admin queue: the 4096-byte page.
  static std::vector<uint8_t> identifyNamespace(int fd, uint16_t cid) {
    uint8_t id[64] = {};
    id[0] = 0x06;
    putLe16(id + 2, cid);
    putLe32(id + 4, 1);  // NSID
    putLe32(id + 24 + 8, 4096);
    id[24 + 15] = kSglTransportDataBlock;
    putLe32(id + 40, 0);  // CNS 0
    sendBytes(fd, capsule(id));
    auto d = readPdu(fd);
    EXPECT_EQ(d.size() > 0 ? d[0] : 0, 0x07);  // C2HData
    if (d.size() < 24 || d[3] + 4096u > d.size()) return {};
    std::vector<uint8_t> page(d.begin() + d[3], d.begin() + d[3] + 4096);
    EXPECT_EQ(statusOf(readPdu(fd)), 0);  // the CapsuleResp
    return page;
  }

  std::unique_ptr<LogCapture> log_;
};

TEST_F(InteropTest, EmptyHostNqnIsAcceptedWhereAnyHostMayConnect) {
  int fd = dial();
  auto r = connectAdmin(fd, kSubnqn, "");
  ASSERT_EQ(statusOf(r), 0);
  uint16_t cntlid = getLe16(r.data() + 8);
  enable(fd);
  auto page = identifyNamespace(fd, 3);
  ASSERT_EQ(page.size(), 4096u);
  EXPECT_EQ(getLe64(page.data()), (64u << 20) / 4096);  // NSZE
  // An I/O queue of that association connects with the same (empty) NQN...
  uint8_t sf[64] = {};
  sf[0] = 0x09;  // Set Features: Number of Queues
  putLe16(sf + 2, 4);
  putLe32(sf + 40, 0x07);
  sendBytes(fd, capsule(sf));
  ASSERT_EQ(statusOf(readPdu(fd)), 0);
  int io = dial();
  sendBytes(io, icreq());
  readPdu(io);
  sendBytes(io, connectCapsule(1, 1, 31, cntlid, kSubnqn, ""));
  EXPECT_EQ(statusOf(readPdu(io)), 0);
  // ...and one that names a host is not the same host.
  int other = dial();
  sendBytes(other, icreq());
  readPdu(other);
  sendBytes(other, connectCapsule(1, 1, 31, cntlid, kSubnqn, kHostnqn));
  auto refused = readPdu(other);
  EXPECT_EQ(statusOf(refused), 0x182);
  EXPECT_EQ(getLe32(refused.data() + 8), (1u << 16) | 512u);  // IATTR=data, IPO=HOSTNQN
  EXPECT_EQ(log().linesWith({"refused Connect from 127.0.0.1:", "host NQN differs", kHostnqn}).size(), 1u);
  EXPECT_TRUE(log().linesWith({"refused Connect", "hostnqn ''"}).empty());
  ::close(other);
  ::close(io);
  ::close(fd);
}

TEST_F(InteropTest, EmptyHostNqnIsRefusedByAnAllowListAndTheRefusalLogged) {
  registry_->find(kSubnqn)->setAllowedHosts({kHostnqn});
  int fd = dial();
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&mine), &len);
  auto r = connectAdmin(fd, kSubnqn, "");
  EXPECT_EQ(statusOf(r), 0x182);
  EXPECT_EQ(getLe32(r.data() + 8), (1u << 16) | 512u);  // IATTR=data, IPO=HOSTNQN
  // One line: the reason, the host's address and port, both NQNs.
  std::string from = "127.0.0.1:" + std::to_string(ntohs(mine.sin_port));
  auto lines = log().linesWith({"warning", "refused Connect from " + from, "empty host NQN",
                                std::string("subnqn '") + kSubnqn + "'", "hostnqn ''"});
  EXPECT_EQ(lines.size(), 1u);
  // The listed host still gets in; an unlisted one is refused and logged too.
  ::close(fd);
  fd = dial();
  EXPECT_EQ(statusOf(connectAdmin(fd, kSubnqn, kHostnqn)), 0);
  ::close(fd);
  fd = dial();
  EXPECT_EQ(statusOf(connectAdmin(fd, kSubnqn, "nqn.2026-11.io.offcore:node:other\n")), 0x184);
  EXPECT_EQ(
      log().linesWith({"refused Connect", "allow-list", "hostnqn 'nqn.2026-11.io.offcore:node:other\\x0a'"}).size(),
      1u);
  ::close(fd);
  fd = dial();
  EXPECT_EQ(statusOf(connectAdmin(fd, "nqn.2026-11.io.offcore:test:nope", kHostnqn)), 0x182);
  EXPECT_EQ(log().linesWith({"refused Connect", "no such subsystem", "nqn.2026-11.io.offcore:test:nope"}).size(), 1u);
  ::close(fd);
}

TEST_F(InteropTest, EmptyHostNqnDiscoversOnlyOpenSubsystems) {
  registry_->add(std::make_shared<Subsystem>("nqn.2026-11.io.offcore:test:listed", "S2", std::vector<Namespace>{},
                                             std::vector<std::string>{kHostnqn}));
  HostOptions o;
  o.host_nqn = "";
  auto recs = discover("127.0.0.1", target_->port(), o);
  ASSERT_TRUE(recs.ok()) << recs.error().message;
  std::vector<std::string> nqns;
  for (const auto& rec : *recs) nqns.push_back(rec.subnqn);
  EXPECT_NE(std::find(nqns.begin(), nqns.end(), kSubnqn), nqns.end());
  EXPECT_EQ(std::find(nqns.begin(), nqns.end(), "nqn.2026-11.io.offcore:test:listed"), nqns.end());
}

// NUSE is the volume's allocation: 0 when new, grows with writes (whole
// 1 MiB clusters), shrinks with a deallocate. A device that cannot tell
// reports NUSE = NSZE.
TEST_F(InteropTest, UtilizationTracksAllocation) {
  std::string dir = "/tmp/offcore_nuse_" + std::to_string(::getpid());
  ASSERT_TRUE(removeTree(dir).ok());
  {
    auto store = VolumeStore::open(dir, 0);
    ASSERT_TRUE(store.ok()) << store.error().message;
    ASSERT_TRUE((*store)->create("v", 64 << 20).ok());
    auto dev = (*store)->openVolume("v");
    ASSERT_TRUE(dev.ok());
    const std::string nqn = "nqn.2026-11.io.offcore:test:thin";
    Namespace ns;
    ns.device = *dev;
    registry_->add(std::make_shared<Subsystem>(nqn, "THIN", std::vector<Namespace>{ns}, std::vector<std::string>{}));

    int fd = dial();
    ASSERT_EQ(statusOf(connectAdmin(fd, nqn, kHostnqn)), 0);
    enable(fd);
    uint16_t cid = 10;
    auto nuse = [&] {
      auto page = identifyNamespace(fd, cid++);
      EXPECT_EQ(page.size(), 4096u);
      EXPECT_EQ(page.size() > 24 ? page[24] & 1 : 0, 1);  // NSFEAT: thin provisioning
      return page.size() == 4096 ? getLe64(page.data() + 16) : ~0ULL;
    };
    const uint64_t kBlocksPerCluster = kClusterSize / 4096;
    EXPECT_EQ(nuse(), 0u);

    HostOptions o;
    o.host_nqn = kHostnqn;
    auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), nqn, o);
    ASSERT_TRUE(host.ok()) << host.error().message;
    std::vector<uint8_t> data(3 << 20, 0xA5);
    ASSERT_TRUE((*host)->write(0, data.data(), data.size()).ok());  // clusters 0-2
    ASSERT_TRUE((*host)->write(10 << 20, data.data(), 4096).ok());  // cluster 10
    EXPECT_EQ(nuse(), 4 * kBlocksPerCluster);
    ASSERT_TRUE((*host)->discard(0, 2 << 20).ok());  // clusters 0-1
    EXPECT_EQ(nuse(), 2 * kBlocksPerCluster);
    ASSERT_TRUE((*host)->discard(10 << 20, 4096).ok());  // part of a cluster: still allocated
    EXPECT_EQ(nuse(), 2 * kBlocksPerCluster);
    ASSERT_TRUE((*host)->writeZeroes(0, 64 << 20).ok());  // everything
    EXPECT_EQ(nuse(), 0u);
    (*host)->close();
    ::close(fd);

    // The in-memory device does not know its allocation: full.
    uint16_t cntlid = 0;
    fd = adminUp(cntlid);
    auto page = identifyNamespace(fd, 7);
    ASSERT_EQ(page.size(), 4096u);
    EXPECT_EQ(getLe64(page.data() + 16), getLe64(page.data()));
    ::close(fd);
    target_->disconnectSubsystem(nqn);
    registry_->remove(nqn);
  }
  (void)removeTree(dir);
}

// The affinity mask, not the online CPU count, sets the number of groups,
// and each group runs on its own CPU of the mask.
TEST(PollGroupAffinity, GroupsFollowTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(::sched_getaffinity(0, sizeof saved, &saved), 0);
  std::vector<int> allowed = allowedCpus();
  ASSERT_FALSE(allowed.empty());
  EXPECT_EQ(allowed.size(), static_cast<size_t>(CPU_COUNT(&saved)));
  auto run = [](size_t want_groups) {
    TargetConfig cfg;
    cfg.listen_addr = "127.0.0.1";
    cfg.port = 0;
    NvmeTcpTarget t(cfg, std::make_shared<SubsystemRegistry>());
    EXPECT_TRUE(t.start().ok());
    std::vector<int> cpus = t.pollGroupCpus();
    t.stop();
    EXPECT_EQ(cpus.size(), want_groups);
    return cpus;
  };
  // Only the last allowed CPU: one group, pinned there.
  int last = allowed.back();
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(last, &one);
  ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
  EXPECT_EQ(run(1), std::vector<int>{last});
  ASSERT_EQ(::sched_setaffinity(0, sizeof saved, &saved), 0);
  // The whole mask: one group per CPU, in order.
  EXPECT_EQ(run(allowed.size()), allowed);
}

}  // namespace
}  // namespace offcore::nvme
