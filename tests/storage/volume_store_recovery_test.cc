// Crash safety: kill -9 at random instants, torn and corrupted journals,
// corrupted checkpoints, and the on-disk codec.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <thread>

#include "base/crc32c.h"
#include "base/files.h"
#include "storage/cluster_set.h"
#include "storage/journal.h"
#include "storage/store_core.h"
#include "volume_store_test_util.h"

namespace offcore {
namespace {

using VolumeStoreRecoveryTest = StoreDirTest;

// Runs fn on the store in a child process that then exits without closing
// it: what is on disk afterwards is what a crash right there would leave.
void crashAfter(const std::string& dir, const std::function<bool(VolumeStore&)>& fn) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = VolumeStore::open(dir, 0);
    ::_exit(s.ok() && fn(**s) ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed, status " << status;
}

void flipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ 0x5a);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

// --- kill -9 ---------------------------------------------------------------

constexpr uint64_t kCrashVolBytes = 16 * kMiB;
constexpr uint64_t kCrashBlocks = kCrashVolBytes / kBlk;
constexpr uint64_t kTagZero = 0, kTagGold = 1;

// Block content for a tag: unique per (tag, block), so a read names its tag.
std::string blockFor(uint64_t tag, uint64_t block) {
  std::string out(kBlk, '\0');
  if (tag == kTagZero) return out;
  for (uint64_t w = 0; w < kBlk / 8; ++w) {
    uint64_t v = (tag * 0x9E3779B97F4A7C15ULL) ^ (block << 20) ^ w;
    std::memcpy(out.data() + w * 8, &v, 8);
  }
  return out;
}

struct Msg {
  uint32_t acked;  // 0: about to start, 1: acknowledged
  uint32_t op;     // 0: write one block, 1: discard one block, 2: discard its whole cluster
  uint64_t block;
  uint64_t tag;
};

[[noreturn]] void crashChild(const std::string& dir, int fd, uint64_t seed, uint64_t round) {
  auto s = VolumeStore::open(dir, 0);
  if (!s.ok()) ::_exit(2);
  auto d = (*s)->openVolume("disk");
  if (!d.ok()) ::_exit(2);
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0;; ++i) {
    Msg m{0, 0, rng() % kCrashBlocks, (round + 2) << 32 | i};
    uint64_t pick = rng() % 100;
    m.op = pick < 88 ? 0 : pick < 97 ? 1 : 2;
    if (m.op == 2) m.block -= m.block % (kMiB / kBlk);
    if (::write(fd, &m, sizeof m) != sizeof m) ::_exit(4);
    Status st = m.op == 0   ? put(**d, m.block * kBlk, blockFor(m.tag, m.block))
                : m.op == 1 ? (*d)->discard(m.block * kBlk, kBlk)
                            : (*d)->discard(m.block * kBlk, kMiB);
    if (!st.ok()) ::_exit(5);
    m.acked = 1;
    if (::write(fd, &m, sizeof m) != sizeof m) ::_exit(4);
    if (i % 97 == 96 && !(*s)->checkpoint().ok()) ::_exit(6);
    if (i % 151 == 150 && !(*s)->snapshot("disk", "snap" + std::to_string(round) + "_" + std::to_string(i)).ok())
      ::_exit(7);
  }
}

TEST_F(VolumeStoreRecoveryTest, Kill9LosesNoAcknowledgedWrite) {
  {
    auto s = openStore();
    ASSERT_OK(s->create("disk", kCrashVolBytes));
    auto d = dev(*s, "disk");
    for (uint64_t b = 0; b < kCrashBlocks / 2; ++b) ASSERT_OK(put(*d, b * kBlk, blockFor(kTagGold, b)));
    d.reset();
    ASSERT_OK(s->snapshot("disk", "gold"));
  }
  std::vector<uint64_t> expect(kCrashBlocks, kTagZero);  // the tag each block must read as
  for (uint64_t b = 0; b < kCrashBlocks / 2; ++b) expect[b] = kTagGold;
  uint64_t seed = std::random_device{}();
  std::mt19937_64 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));

  for (uint64_t round = 0; round < 10; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      crashChild(dir_, fds[1], rng(), round);
    }
    ::close(fds[1]);
    // Kill after a random number of acknowledgements plus a random delay.
    const uint64_t acks_before_kill = 1 + rng() % 300;
    const auto delay = std::chrono::microseconds(rng() % 3000);
    std::vector<Msg> msgs;
    Msg m;
    uint64_t acks = 0;
    while (acks < acks_before_kill && ::read(fds[0], &m, sizeof m) == sizeof m) {
      msgs.push_back(m);
      acks += m.acked;
    }
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    while (::read(fds[0], &m, sizeof m) == sizeof m) msgs.push_back(m);
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "round " << round << ": child exited early, status " << status;

    // Replay the acknowledged ops on the model; the one in flight may or
    // may not have happened, so its blocks may read either way.
    std::map<uint64_t, uint64_t> maybe;  // block -> tag it has if the in-flight op landed
    for (const Msg& x : msgs) {
      uint64_t n = x.op == 2 ? kMiB / kBlk : 1;
      for (uint64_t b = x.block; b < x.block + n; ++b) {
        uint64_t tag = x.op == 0 ? x.tag : kTagZero;
        if (x.acked) {
          expect[b] = tag;
          maybe.erase(b);
        } else {
          maybe[b] = tag;
        }
      }
    }
    auto before = fsck();  // as the crash left it
    ASSERT_TRUE(before.clean) << "round " << round << ":\n" << fsckText(before);

    auto s = openStore();
    ASSERT_TRUE(s);
    auto d = dev(*s, "disk");
    std::string all = get(*d, 0, kCrashVolBytes);
    for (uint64_t b = 0; b < kCrashBlocks; ++b) {
      std::string got = all.substr(b * kBlk, kBlk);
      if (got == blockFor(expect[b], b)) continue;
      auto it = maybe.find(b);
      ASSERT_TRUE(it != maybe.end() && got == blockFor(it->second, b))
          << "round " << round << ": block " << b << " lost its acknowledged content (tag " << expect[b] << ")";
      expect[b] = it->second;
    }
    d.reset();
    s.reset();
    auto after = fsck();
    ASSERT_TRUE(after.clean && !after.torn_tail) << "round " << round << ":\n" << fsckText(after);
  }
}

// --- torn and corrupt metadata ----------------------------------------------

TEST_F(VolumeStoreRecoveryTest, TornJournalTailIsDroppedAndReported) {
  crashAfter(dir_, [](VolumeStore& s) {
    return s.create("a", 4 * kMiB).ok() && put(*s.openVolume("a").value(), 0, bytes('a')).ok() &&
           s.create("b", 4 * kMiB).ok() && s.create("c", 4 * kMiB).ok();
  });
  const std::string journal = dir_ + "/meta.journal";
  auto size = readFile(journal)->size();
  ASSERT_EQ(::truncate(journal.c_str(), static_cast<off_t>(size - 5)), 0);
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(r.journal_records, 3u);  // create a, map, create b
  EXPECT_EQ(r.volumes, 2u);
  {
    auto s = openStore();
    EXPECT_EQ(get(*dev(*s, "a"), 0), bytes('a'));
    EXPECT_TRUE(s->info("b").ok());
    EXPECT_FALSE(s->info("c").ok());  // its record was the torn one
    ASSERT_OK(s->create("c", 4 * kMiB));
  }
  r = fsck();
  EXPECT_TRUE(r.clean && !r.torn_tail) << fsckText(r);
}

TEST_F(VolumeStoreRecoveryTest, CorruptMiddleRecordIsDetected) {
  crashAfter(dir_, [](VolumeStore& s) {
    for (const char* n : {"a", "b", "c", "d"})
      if (!s.create(n, 4 * kMiB).ok()) return false;
    return true;
  });
  const std::string journal = dir_ + "/meta.journal";
  auto scan = scanJournal(*readFile(journal));
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->entries.size(), 4u);
  flipByte(journal, scan->entries[1].offset + kRecordHeaderBytes + 10);  // b's name
  auto opened = VolumeStore::open(dir_, 0);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("journal is corrupt"), std::string::npos) << opened.error().message;
  auto r = fsck();
  EXPECT_FALSE(r.clean);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_NE(r.problems[0].find("offset " + std::to_string(scan->entries[1].offset)), std::string::npos)
      << r.problems[0];
}

TEST_F(VolumeStoreRecoveryTest, CorruptCheckpointIsDetected) {
  { ASSERT_OK(openStore()->create("a", 4 * kMiB)); }
  flipByte(dir_ + "/meta.ckpt", kCheckpointHeaderBytes + 30);
  auto opened = VolumeStore::open(dir_, 0);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message.find("meta.ckpt: checksum mismatch"), std::string::npos) << opened.error().message;
  auto r = fsck();
  EXPECT_FALSE(r.clean);
  EXPECT_NE(fsckText(r).find("meta.ckpt"), std::string::npos);
}

TEST_F(VolumeStoreRecoveryTest, CrashBetweenCheckpointRenameAndTruncateReplaysNothingTwice) {
  crashAfter(dir_, [](VolumeStore& s) { return s.create("a", 4 * kMiB).ok() && s.create("b", 4 * kMiB).ok(); });
  std::string stale = *readFile(dir_ + "/meta.journal");
  { ASSERT_OK(openStore()->create("c", 4 * kMiB)); }          // checkpoints, truncates
  ASSERT_OK(writeFileAtomic(dir_ + "/meta.journal", stale));  // as if the truncate never happened
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
  EXPECT_EQ(r.volumes, 3u);
  EXPECT_EQ(openStore()->list().size(), 3u);
}

TEST_F(VolumeStoreRecoveryTest, JournalIsFoldedIntoACheckpointWhenLarge) {
  auto s = openStore();
  ASSERT_OK(s->create("v", 4 * kMiB));
  std::vector<std::string> hosts;
  for (int i = 0; i < 200; ++i)
    hosts.push_back("nqn.2014-08.org.example:host-" + std::string(180, 'h') + std::to_string(i));
  for (int i = 0; i < 150; ++i) ASSERT_OK(s->setAllowedHosts("v", hosts));  // ~5.5 MiB of records
  // Without a checkpoint the journal would hold all ~6 MiB.
  EXPECT_LT(readFile(dir_ + "/meta.journal")->size(), kJournalCheckpointBytes + 64 * 1024);
  s.reset();
  EXPECT_EQ(openStore()->info("v")->allowed_hosts, hosts);
}

// --- codec -----------------------------------------------------------------

TEST(VolumeStoreCodecTest, Crc32cMatchesTheStandardVector) {
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

TEST(VolumeStoreCodecTest, ClusterSetMergesAndSplits) {
  ClusterSet s;
  s.insertRange(10, 20);
  s.insert(20);
  s.insertRange(5, 8);
  EXPECT_EQ(s.count(), 14u);
  EXPECT_EQ(s.ranges().size(), 2u);
  s.insertRange(7, 12);
  EXPECT_EQ(s.ranges().size(), 1u);
  EXPECT_TRUE(s.erase(15));
  EXPECT_FALSE(s.erase(15));
  EXPECT_FALSE(s.contains(15));
  EXPECT_TRUE(s.contains(16));
  EXPECT_EQ(*s.lowest(), 5u);
  EXPECT_EQ(s.count(), 15u);
  EXPECT_EQ(s.end(), 21u);
}

TEST(VolumeStoreCodecTest, RecordsAndCheckpointsRoundTrip) {
  auto rec = [](RecordType type, uint64_t seq, uint64_t id) {
    MetaRecord r;
    r.type = type;
    r.seq = seq;
    r.id = id;
    return r;
  };
  MetaState st;
  MetaRecord create = rec(RecordType::kCreate, 1, 0);
  create.new_id = 1;
  create.name = "vol";
  create.size = 8 * kMiB;
  MetaRecord map = rec(RecordType::kMap, 2, 1);
  map.vcluster = 3;
  map.pcluster = 5;
  MetaRecord hosts = rec(RecordType::kSetHosts, 3, 1);
  hosts.hosts = {"nqn.a", "nqn.b"};
  std::string journal;
  for (const MetaRecord* r : {&create, &map, &hosts}) journal += encodeRecord(*r);
  auto scan = scanJournal(journal);
  ASSERT_TRUE(scan.ok());
  EXPECT_FALSE(scan->torn_tail);
  ASSERT_TRUE(replayJournal(st, *scan).ok());
  EXPECT_EQ(st.high_water, 6u);
  EXPECT_EQ(st.free.count(), 5u);
  EXPECT_TRUE(checkInvariants(st, std::nullopt).empty());
  auto back = decodeCheckpoint(encodeCheckpoint(st, st.free));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->last_seq, 3u);
  EXPECT_EQ(back->find(1)->map.at(3), 5u);
  EXPECT_EQ(back->find(1)->allowed_hosts, hosts.hosts);
  EXPECT_TRUE(back->free == st.free);
  // A second map of the same physical cluster does not apply.
  MetaRecord twice = rec(RecordType::kMap, 4, 1);
  twice.vcluster = 4;
  twice.pcluster = 5;
  EXPECT_FALSE(applyRecord(st, twice, nullptr).ok());
}

}  // namespace
}  // namespace offcore
