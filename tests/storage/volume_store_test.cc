#include "storage/volume_store.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "base/mapped_file.h"
#include "volume_store_test_util.h"

namespace offcore {
namespace {

// Every case runs twice: the store on disk (/tmp here: reads by pread) and
// in memory (/dev/shm: reads copied out of a mapping of data.img).
// A root not of its kind here (/tmp in tmpfs, no /dev/shm) skips.
class VolumeStoreTest : public StoreDirTest, public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    int fd = ::open(GetParam(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << GetParam() << " is missing";
    bool in_memory = fileIsInMemory(fd);
    ::close(fd);
    if (in_memory != inMemory()) GTEST_SKIP() << GetParam() << (in_memory ? " is" : " is not") << " in memory here";
    StoreDirTest::SetUp();
  }
  std::string root() const override { return GetParam(); }
  bool inMemory() const { return std::string(GetParam()) == "/dev/shm"; }
};
INSTANTIATE_TEST_SUITE_P(Roots, VolumeStoreTest, ::testing::Values("/tmp", "/dev/shm"), [](const auto& info) {
  return std::string(info.param == std::string("/tmp") ? "OnDisk" : "InMemory");
});

TEST_P(VolumeStoreTest, ReadsAreMappedExactlyWhenTheStoreIsInMemory) {
  auto s = openStore();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->stats().reads_mapped, inMemory());
}

// data.img cut short under an open store (someone truncated it): a mapped
// read faults (SIGBUS), falls back to pread, and reads what pread reads past
// the end of the file (zeroes); nothing crashes, and the store still works.
TEST_P(VolumeStoreTest, ATruncatedDataFileFaultsNothing) {
  auto s = openStore();
  ASSERT_OK(s->create("v", 4 * kMiB));
  auto d = dev(*s, "v");
  ASSERT_OK(put(*d, 0, bytes('a')));
  ASSERT_OK(put(*d, 2 * kMiB, bytes('b')));
  EXPECT_EQ(get(*d, 2 * kMiB), bytes('b'));
  ASSERT_EQ(::truncate((dir_ + "/data.img").c_str(), 0), 0);
  EXPECT_EQ(get(*d, 0), bytes('\0'));
  EXPECT_EQ(get(*d, 2 * kMiB), bytes('\0'));
  ASSERT_OK(put(*d, 0, bytes('c')));
  EXPECT_EQ(get(*d, 0), bytes('c'));
}

TEST_P(VolumeStoreTest, CreateReadWriteZeroes) {
  auto s = openStore();
  ASSERT_OK(s->create("vol", 8 * kMiB));
  EXPECT_EQ(s->create("vol", 8 * kMiB).error().code, EEXIST);
  EXPECT_FALSE(s->create("-bad", 8 * kMiB).ok());
  EXPECT_FALSE(s->create("ok", 1000).ok());
  auto d = dev(*s, "vol");
  EXPECT_EQ(d->sizeBytes(), 8 * kMiB);
  EXPECT_EQ(d->blockSize(), 4096u);
  EXPECT_EQ(get(*d, 0), bytes(0));  // thin: never written reads zero
  EXPECT_EQ(s->info("vol")->allocated_bytes, 0u);

  ASSERT_OK(put(*d, 0, bytes('a')));
  ASSERT_OK(put(*d, kMiB + 8 * kBlk, bytes('b')));
  // Spans three clusters, two of them partially.
  std::string big = bytes('c', 2 * kMiB);
  ASSERT_OK(put(*d, 3 * kMiB - 4 * kBlk, big));
  EXPECT_EQ(get(*d, 0), bytes('a'));
  EXPECT_EQ(get(*d, kBlk), bytes(0));
  EXPECT_EQ(get(*d, kMiB + 8 * kBlk), bytes('b'));
  EXPECT_EQ(get(*d, 3 * kMiB - 4 * kBlk, 2 * kMiB), big);
  EXPECT_EQ(get(*d, 5 * kMiB - 4 * kBlk), bytes(0));
  EXPECT_EQ(s->info("vol")->allocated_bytes, 5 * kMiB);

  ASSERT_OK(d->writeZeroes(3 * kMiB - 4 * kBlk, 2 * kBlk));  // partial: in place
  EXPECT_EQ(get(*d, 3 * kMiB - 4 * kBlk, 2 * kBlk), bytes(0, 2 * kBlk));
  EXPECT_EQ(get(*d, 3 * kMiB - 2 * kBlk), bytes('c'));
  ASSERT_OK(d->writeZeroes(3 * kMiB, kMiB));  // whole cluster: deallocated
  EXPECT_EQ(get(*d, 3 * kMiB, kMiB), bytes(0, kMiB));
  EXPECT_EQ(s->info("vol")->allocated_bytes, 4 * kMiB);
  ASSERT_OK(d->writeZeroes(6 * kMiB, kBlk));  // zeroes over nothing allocate nothing
  EXPECT_EQ(s->info("vol")->allocated_bytes, 4 * kMiB);

  EXPECT_EQ(put(*d, 8 * kMiB, bytes('x')).error().code, kBlockOutOfRange);
  EXPECT_EQ(put(*d, 8 * kMiB - kBlk, bytes('x', 2 * kBlk)).error().code, kBlockOutOfRange);
  EXPECT_EQ(put(*d, 100, bytes('x')).error().code, kBlockInvalid);
  EXPECT_EQ(put(*d, 0, bytes('x', 100)).error().code, kBlockInvalid);
  ASSERT_OK(d->flush());
}

TEST_P(VolumeStoreTest, SnapshotFreezesTheOrigin) {
  auto s = openStore();
  ASSERT_OK(s->create("vol", 4 * kMiB));
  auto d = dev(*s, "vol");
  ASSERT_OK(put(*d, 0, bytes('a')));
  ASSERT_OK(put(*d, 2 * kMiB, bytes('a')));
  ASSERT_OK(s->snapshot("vol", "snap"));
  ASSERT_OK(put(*d, 0, bytes('b')));  // copy-on-write: the rest of cluster 0 comes from snap
  ASSERT_OK(put(*d, kBlk, bytes('b')));
  auto sn = dev(*s, "snap");
  EXPECT_EQ(get(*sn, 0), bytes('a'));
  EXPECT_EQ(get(*sn, kBlk), bytes(0));
  EXPECT_EQ(get(*d, 0, 2 * kBlk), bytes('b', 2 * kBlk));
  EXPECT_EQ(get(*d, 2 * kMiB), bytes('a'));  // still shared
  EXPECT_EQ(put(*sn, 0, bytes('z')).error().code, kBlockReadOnly);
  EXPECT_EQ(sn->discard(0, kMiB).error().code, kBlockReadOnly);
  EXPECT_FALSE(s->snapshot("snap", "snap2").ok());
  EXPECT_EQ(s->resize("snap", 8 * kMiB).error().code, kBlockReadOnly);

  auto vi = s->info("vol");
  auto si = s->info("snap");
  EXPECT_EQ(vi->parent, "snap");
  EXPECT_FALSE(vi->read_only);
  EXPECT_TRUE(si->read_only);
  EXPECT_EQ(si->clones, std::vector<std::string>{"vol"});
  EXPECT_EQ(si->allocated_bytes, 2 * kMiB);
  EXPECT_EQ(vi->allocated_bytes, kMiB);
}

TEST_P(VolumeStoreTest, CloneSharesDataAndDiverges) {
  auto s = openStore();
  ASSERT_OK(s->create("gold", 4 * kMiB));
  auto g = dev(*s, "gold");
  ASSERT_OK(put(*g, kMiB, bytes('g', kMiB)));
  ASSERT_OK(s->snapshot("gold", "base"));
  ASSERT_OK(s->clone("base", "c1"));
  EXPECT_FALSE(s->clone("gold", "c2").ok());  // not a snapshot
  auto c = dev(*s, "c1");
  EXPECT_EQ(c->sizeBytes(), 4 * kMiB);
  EXPECT_EQ(get(*c, kMiB + kBlk), bytes('g'));
  EXPECT_EQ(s->info("c1")->allocated_bytes, 0u);
  ASSERT_OK(put(*c, kMiB + kBlk, bytes('c')));
  ASSERT_OK(put(*g, kMiB + 2 * kBlk, bytes('o')));
  EXPECT_EQ(get(*c, kMiB, 3 * kBlk), bytes('g') + bytes('c') + bytes('g'));
  EXPECT_EQ(get(*g, kMiB, 3 * kBlk), bytes('g') + bytes('g') + bytes('o'));
  EXPECT_EQ(get(*dev(*s, "base"), kMiB, 3 * kBlk), bytes('g', 3 * kBlk));
  EXPECT_EQ(s->info("base")->clones, (std::vector<std::string>{"c1", "gold"}));
}

TEST_P(VolumeStoreTest, ChainsOfDepthSix) {
  auto s = openStore();
  ASSERT_OK(s->create("v", 8 * kMiB));
  auto d = dev(*s, "v");
  const int depth = 6;
  for (int i = 0; i < depth; ++i) {
    ASSERT_OK(put(*d, static_cast<uint64_t>(i) * kMiB, bytes(static_cast<char>('a' + i))));
    ASSERT_OK(put(*d, static_cast<uint64_t>(i) * kBlk, bytes(static_cast<char>('a' + i))));  // cluster 0 again
    ASSERT_OK(s->snapshot("v", "s" + std::to_string(i)));
  }
  EXPECT_EQ(s->info("v")->parent, "s5");
  EXPECT_EQ(s->info("s5")->parent, "s4");
  EXPECT_FALSE(s->info("s0")->parent.has_value());
  for (int k = 0; k < depth; ++k) {
    auto sn = dev(*s, "s" + std::to_string(k));
    for (int i = 0; i < depth; ++i) {
      char want = i <= k ? static_cast<char>('a' + i) : 0;
      EXPECT_EQ(get(*sn, static_cast<uint64_t>(i) * kMiB), bytes(want)) << "s" << k << " cluster " << i;
      EXPECT_EQ(get(*sn, static_cast<uint64_t>(i) * kBlk), bytes(want)) << "s" << k << " block " << i;
    }
  }
  ASSERT_OK(s->clone("s2", "deep"));
  auto c = dev(*s, "deep");
  EXPECT_EQ(get(*c, 2 * kMiB), bytes('c'));
  EXPECT_EQ(get(*c, 3 * kMiB), bytes(0));
  ASSERT_OK(put(*c, 2 * kBlk + kMiB, bytes('Z')));
  EXPECT_EQ(get(*c, kMiB), bytes('b'));  // copied up from s1 through s2
  EXPECT_EQ(get(*c, 2 * kBlk + kMiB), bytes('Z'));
}

TEST_P(VolumeStoreTest, DeleteRefusesSnapshotsWithClonesAndOpenVolumes) {
  auto s = openStore();
  ASSERT_OK(s->create("gold", 4 * kMiB));
  ASSERT_OK(put(*dev(*s, "gold"), 0, bytes('g', 2 * kMiB)));
  ASSERT_OK(s->snapshot("gold", "base"));
  ASSERT_OK(s->clone("base", "a"));
  ASSERT_OK(s->clone("base", "b"));
  ASSERT_OK(put(*dev(*s, "a"), 0, bytes('a')));
  EXPECT_EQ(s->stats().allocated_bytes, 3 * kMiB);
  EXPECT_EQ(s->stats().volumes, 4u);

  auto refused = s->remove("base");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message, "snapshot 'base' has clones: a, b, gold; delete them first");
  {
    auto handle = dev(*s, "a");
    EXPECT_EQ(s->remove("a").error().code, EBUSY);
  }
  ASSERT_OK(s->remove("a"));
  EXPECT_EQ(s->stats().allocated_bytes, 2 * kMiB);
  ASSERT_OK(s->remove("b"));
  ASSERT_OK(s->remove("gold"));
  ASSERT_OK(s->remove("base"));
  EXPECT_EQ(s->stats().allocated_bytes, 0u);
  EXPECT_EQ(s->stats().volumes, 0u);
  EXPECT_EQ(s->remove("base").error().code, ENOENT);
  // Freed clusters are reused before the file grows.
  ASSERT_OK(s->create("n", 4 * kMiB));
  ASSERT_OK(put(*dev(*s, "n"), 0, bytes('n')));
  s.reset();
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
  EXPECT_EQ(r.clusters_in_use, 1u);
}

TEST_P(VolumeStoreTest, DiscardFreesClustersAndHidesTheParent) {
  auto s = openStore();
  ASSERT_OK(s->create("v", 4 * kMiB));
  auto d = dev(*s, "v");
  ASSERT_OK(put(*d, 0, bytes('a', 3 * kMiB)));
  ASSERT_OK(d->discard(kMiB, kMiB));
  EXPECT_EQ(s->info("v")->allocated_bytes, 2 * kMiB);
  EXPECT_EQ(get(*d, kMiB, kMiB), bytes(0, kMiB));

  ASSERT_OK(s->snapshot("v", "snap"));
  ASSERT_OK(put(*d, 0, bytes('b')));             // v owns cluster 0
  ASSERT_OK(d->discard(0, 2 * kMiB));            // owned over parent data, and a parent hole
  ASSERT_OK(d->discard(2 * kMiB + kBlk, kBlk));  // partial, over parent data
  EXPECT_EQ(get(*d, 0, 2 * kMiB), bytes(0, 2 * kMiB));
  EXPECT_EQ(get(*d, 2 * kMiB, 3 * kBlk), bytes('a') + bytes(0) + bytes('a'));
  EXPECT_EQ(get(*dev(*s, "snap"), 0), bytes('a'));
  EXPECT_EQ(s->info("v")->allocated_bytes, kMiB);  // only the partially zeroed copy
  EXPECT_EQ(s->stats().allocated_bytes, 3 * kMiB);

  ASSERT_OK(d->discard(0, 4 * kMiB));
  EXPECT_EQ(s->info("v")->allocated_bytes, 0u);
  EXPECT_EQ(get(*d, 0, 4 * kMiB), bytes(0, 4 * kMiB));
  d.reset();
  s.reset();
  s = openStore();  // zero markers survive a reopen
  EXPECT_EQ(get(*dev(*s, "v"), 0, 4 * kMiB), bytes(0, 4 * kMiB));
}

TEST_P(VolumeStoreTest, CapacityExhaustionFailsCleanly) {
  auto s = openStore(4 * kMiB);
  ASSERT_OK(s->create("v", 16 * kMiB));
  auto d = dev(*s, "v");
  for (uint64_t c = 0; c < 4; ++c) ASSERT_OK(put(*d, c * kMiB, bytes(static_cast<char>('a' + c))));
  auto before = s->stats();
  auto full = put(*d, 4 * kMiB, bytes('x'));
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, kBlockNoSpace);
  EXPECT_EQ(s->stats().allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(s->stats().capacity_bytes, 4 * kMiB);
  EXPECT_EQ(get(*d, 4 * kMiB), bytes(0));
  ASSERT_OK(put(*d, kBlk, bytes('i')));  // in place still works
  ASSERT_OK(s->snapshot("v", "snap"));
  EXPECT_EQ(put(*d, 0, bytes('y')).error().code, kBlockNoSpace);  // copy-on-write needs a cluster
  for (uint64_t c = 0; c < 4; ++c) EXPECT_EQ(get(*d, c * kMiB), bytes(static_cast<char>('a' + c)));
  EXPECT_EQ(get(*d, kBlk), bytes('i'));
  d.reset();
  s.reset();
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
  EXPECT_EQ(r.clusters_in_use, 4u);
}

TEST_P(VolumeStoreTest, ReopenPreservesEverything) {
  std::vector<VolumeInfo> before;
  {
    auto s = openStore();
    ASSERT_OK(s->create("a", 4 * kMiB));
    ASSERT_OK(put(*dev(*s, "a"), kMiB, bytes('a', kMiB + kBlk)));
    ASSERT_OK(s->snapshot("a", "a-snap"));
    ASSERT_OK(s->clone("a-snap", "a.clone"));
    ASSERT_OK(dev(*s, "a")->discard(kMiB, kMiB));
    ASSERT_OK(s->resize("a.clone", 12 * kMiB));
    EXPECT_FALSE(s->resize("a.clone", 8 * kMiB).ok());
    ASSERT_OK(put(*dev(*s, "a.clone"), 11 * kMiB, bytes('c')));
    ASSERT_OK(s->setAllowedHosts("a.clone", {"nqn.2014-08.org.nvmexpress:uuid:1", "nqn.host2"}));
    EXPECT_FALSE(s->setAllowedHosts("a", {"has space"}).ok());
    ASSERT_OK(s->create("b", 64 * kMiB));
    ASSERT_OK(s->create("gone", 64 * kMiB));
    ASSERT_OK(s->remove("gone"));
    before = s->list();
    auto again = VolumeStore::open(dir_, 0);
    EXPECT_EQ(again.ok() ? 0 : again.error().code, EBUSY);
    EXPECT_EQ(VolumeStore::fsck(dir_).error().code, EBUSY);
  }
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
  EXPECT_EQ(r.volumes, 4u);
  EXPECT_EQ(r.journal_records, 0u);  // a clean close checkpoints
  auto s = openStore();
  auto after = s->list();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].name, before[i].name);
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].size_bytes, before[i].size_bytes);
    EXPECT_EQ(after[i].read_only, before[i].read_only);
    EXPECT_EQ(after[i].parent, before[i].parent);
    EXPECT_EQ(after[i].clones, before[i].clones);
    EXPECT_EQ(after[i].allocated_bytes, before[i].allocated_bytes);
    EXPECT_EQ(after[i].allowed_hosts, before[i].allowed_hosts);
  }
  EXPECT_EQ(get(*dev(*s, "a"), kMiB), bytes(0));
  EXPECT_EQ(get(*dev(*s, "a"), 2 * kMiB), bytes('a'));
  EXPECT_EQ(get(*dev(*s, "a.clone"), kMiB), bytes('a'));
  EXPECT_EQ(get(*dev(*s, "a.clone"), 11 * kMiB), bytes('c'));
  ASSERT_OK(s->create("new", 4 * kMiB));  // ids are not reused
  EXPECT_GT(s->info("new")->id, before.back().id);
}

TEST_P(VolumeStoreTest, ConcurrentWritersOnSeveralAndOneVolume) {
  auto s = openStore();
  const uint64_t size = 8 * kMiB;
  for (const char* n : {"x", "y", "shared"}) ASSERT_OK(s->create(n, size));
  ASSERT_OK(put(*dev(*s, "shared"), 0, bytes('p', size)));
  ASSERT_OK(s->snapshot("shared", "shared-snap"));  // writes below copy-on-write
  const uint64_t blocks = size / kBlk;
  std::atomic<int> failures{0};
  auto writer = [&](const std::string& vol, int stride, int phase, char c) {
    auto d = s->openVolume(vol);
    if (!d.ok()) return (void)++failures;
    // Interleaved blocks: the two writers of "shared" race for each cluster.
    for (uint64_t b = static_cast<uint64_t>(phase); b < blocks; b += static_cast<uint64_t>(stride))
      if (!put(**d, b * kBlk, bytes(c)).ok()) ++failures;
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, "x", 1, 0, 'x');
  threads.emplace_back(writer, "y", 1, 0, 'y');
  threads.emplace_back(writer, "shared", 2, 0, 'A');
  threads.emplace_back(writer, "shared", 2, 1, 'B');
  threads.emplace_back([&] {  // metadata churn meanwhile, and snapshots of "x" under its writer
    for (int i = 0; i < 20; ++i) {
      std::string n = "tmp" + std::to_string(i);
      if (!s->create(n, 4 * kMiB).ok() || !s->remove(n).ok()) ++failures;
      if (i % 4 == 0 && !s->snapshot("x", "x-snap" + std::to_string(i)).ok()) ++failures;
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto x = dev(*s, "x"), y = dev(*s, "y"), sh = dev(*s, "shared");
  EXPECT_EQ(get(*x, 0, size), bytes('x', size));
  EXPECT_EQ(get(*y, 0, size), bytes('y', size));
  std::string got = get(*sh, 0, size);
  for (uint64_t b = 0; b < blocks; ++b) ASSERT_EQ(got.substr(b * kBlk, kBlk), bytes(b % 2 ? 'B' : 'A')) << b;
  EXPECT_EQ(get(*dev(*s, "shared-snap"), 0, size), bytes('p', size));
  EXPECT_EQ(s->info("y")->allocated_bytes + s->info("shared")->allocated_bytes, 2 * size);
  x.reset(), y.reset(), sh.reset();
  s.reset();
  auto r = fsck();
  EXPECT_TRUE(r.clean) << fsckText(r);
}

TEST_P(VolumeStoreTest, HandlesOutlivingTheStoreFailCleanly) {
  auto s = openStore();
  ASSERT_OK(s->create("v", 4 * kMiB));
  auto d = dev(*s, "v");
  ASSERT_OK(put(*d, 0, bytes('a')));
  s.reset();
  EXPECT_EQ(put(*d, 0, bytes('b')).error().code, kBlockIo);
  std::string buf(kBlk, 0);
  EXPECT_EQ(d->read(0, buf.data(), kBlk).error().code, kBlockIo);
  d.reset();
  EXPECT_EQ(get(*dev(*openStore(), "v"), 0), bytes('a'));
}

}  // namespace
}  // namespace offcore

namespace offcore {
namespace {

// Tenant data is root's only: the store directory 0700 and every file in it
// 0600, whatever the umask, even when a caller made the directory first.
TEST_F(StoreDirTest, StoreFilesArePrivate) {
  mode_t old = ::umask(0);
  ASSERT_TRUE(makePrivateDir(dir_).ok());
  {
    auto s = openStore(64 * kMiB);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->create("v1", 8 * kMiB).ok());
  }
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    if (!S_ISREG(st.st_mode)) continue;
    ++files;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
  }
  EXPECT_GE(files, 2);  // data.img, the journal, ...
}

}  // namespace
}  // namespace offcore
