#include "virt/vhost/guest_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "virt/vhost/dirty_log.h"

namespace offcore::virt {
namespace {

// Sealed the way QEMU seals its memory-backend-memfd (seal=on).
int memfd(size_t size, bool sealed = true) {
  int fd = ::memfd_create("oc-guest-mem-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  if (sealed) {
    EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), 0);
  }
  return fd;
}

TEST(GuestMemoryTest, RefusesAMemfdItsSenderCouldShrink) {
  std::vector<MemoryRegionDesc> regions = {{0x0, 0x10000, 0x7f0000000000, 0, memfd(0x10000, false)}};
  auto mem = GuestMemory::map(regions);
  ASSERT_FALSE(mem.ok());
  EXPECT_NE(mem.error().message.find("F_SEAL_SHRINK"), std::string::npos) << mem.error().message;
  auto log = DirtyLog::map(memfd(4096, false), 4096, 0);
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.error().message.find("dirty log"), std::string::npos) << log.error().message;
}

TEST(GuestMemoryTest, TranslatesInsideRegionsAndRefusesEverythingElse) {
  std::vector<MemoryRegionDesc> regions = {
      {0x0, 0x10000, 0x7f0000000000, 0, memfd(0x10000)},
      {0x100000, 0x4000, 0x7f0000100000, 0x2000, memfd(0x6000)},
  };
  auto mem = GuestMemory::map(regions);
  ASSERT_TRUE(mem.ok()) << mem.error().message;
  EXPECT_EQ((*mem)->regionCount(), 2u);
  EXPECT_EQ((*mem)->totalBytes(), 0x14000u);

  auto a = (*mem)->gpaToHost(0x100, 16);
  ASSERT_TRUE(a.ok());
  auto b = (*mem)->uvaToHost(0x7f0000000100, 16);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  **a = 0x5a;
  EXPECT_EQ(**b, 0x5a);

  EXPECT_TRUE((*mem)->gpaToHost(0xfff0, 0x10).ok());            // last bytes
  EXPECT_FALSE((*mem)->gpaToHost(0xfff0, 0x11).ok());           // one past the end
  EXPECT_FALSE((*mem)->gpaToHost(0x10000, 1).ok());             // the gap
  EXPECT_FALSE((*mem)->gpaToHost(0x10000, 0).ok());             // len 0 needs a mapped address
  EXPECT_FALSE((*mem)->gpaToHost(0x100000, UINT64_MAX).ok());   // wraps
  EXPECT_FALSE((*mem)->gpaToHost(UINT64_MAX, 2).ok());          // wraps
  EXPECT_FALSE((*mem)->uvaToHost(0x7f0000000000 - 1, 2).ok());  // straddles the start
  EXPECT_FALSE((*mem)->gpaToHost(0xf000, 0x100000).ok());       // spans two regions and the gap
  auto gpa = (*mem)->uvaToGpa(0x7f0000100010);
  ASSERT_TRUE(gpa.ok());
  EXPECT_EQ(*gpa, 0x100010u);
  EXPECT_FALSE((*mem)->uvaToGpa(0x7f0000104000).ok());
}

TEST(GuestMemoryTest, RefusesBadTablesAndClosesTheirFds) {
  auto refused = [](std::vector<MemoryRegionDesc> regions, const char* why) {
    std::vector<int> fds;
    for (auto& r : regions) fds.push_back(r.fd);
    auto mem = GuestMemory::map(regions);
    EXPECT_FALSE(mem.ok()) << why;
    for (int fd : fds) EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << why << ": fd left open";
  };
  refused({}, "empty table");
  refused({{0, 0, 0, 0, memfd(4096)}}, "zero-sized region");
  refused({{0, 0x2000, 0, 0, memfd(0x1000)}}, "region past the end of its file");
  refused({{0, 0x1000, 0, 100, memfd(0x2000)}}, "misaligned mmap offset");
  // A ring's atomics would be misaligned in our mapping of such a region.
  refused({{0, 0x1000, 0x7f0000000002, 0, memfd(0x1000)}}, "front-end address not page aligned");
  refused({{UINT64_MAX - 0xfff, 0x2000, 0, 0, memfd(0x2000)}}, "wrapping guest address");
  refused({{0, 0x2000, 0x10000, 0, memfd(0x2000)}, {0x1000, 0x1000, 0x20000, 0, memfd(0x1000)}},
          "overlapping guest addresses");
  std::vector<MemoryRegionDesc> many;
  for (uint64_t i = 0; i <= kMaxMemoryRegions; ++i) many.push_back({i * 0x1000, 0x1000, i * 0x1000, 0, memfd(0x1000)});
  refused(many, "too many regions");
}

TEST(DirtyLogTest, RefusesAnAreaAtAMisalignedOrWrappingOffset) {
  EXPECT_FALSE(DirtyLog::map(memfd(8192), 16, 3).ok());
  EXPECT_FALSE(DirtyLog::map(memfd(8192), 16, UINT64_MAX - 7).ok());
  EXPECT_TRUE(DirtyLog::map(memfd(8192), 16, 4096).ok());
}

TEST(DirtyLogTest, MarksEveryTouchedPageAndNothingBeyondTheLog) {
  int fd = memfd(4096);
  int mine = ::dup(fd);
  auto log = DirtyLog::map(fd, 2, 0);  // 16 pages
  ASSERT_TRUE(log.ok()) << log.error().message;
  auto* bits = static_cast<uint8_t*>(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mine, 0));
  ASSERT_NE(bits, MAP_FAILED);
  (*log)->mark(0x1fff, 2);  // pages 1 and 2
  EXPECT_EQ(bits[0], 0b110);
  (*log)->mark(15 * 4096, 4096 * 4);  // page 15, then pages outside the log
  EXPECT_EQ(bits[1], 0x80);
  EXPECT_EQ(bits[2], 0);
  (*log)->mark(UINT64_MAX - 10, 100);  // wraps: ignored, no crash
  (*log)->mark(0, 0);
  EXPECT_EQ(bits[0], 0b110);
  ::munmap(bits, 4096);
  ::close(mine);
}

}  // namespace
}  // namespace offcore::virt
