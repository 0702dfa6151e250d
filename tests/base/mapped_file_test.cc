#include "base/mapped_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <string>

namespace offcore {
namespace {

class MappedReadViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = ::memfd_create("offcore-mapped-view-test", MFD_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }
  void put(const std::string& s, off_t at) { ASSERT_EQ(::pwrite(fd_, s.data(), s.size(), at), ssize_t(s.size())); }
  int fd_ = -1;
};

TEST_F(MappedReadViewTest, CopiesWhatPwriteWroteBeforeAndAfterTheMapping) {
  put("before", 0);
  auto view = MappedReadView::map(fd_, 1 << 20);
  ASSERT_TRUE(view.ok()) << view.error().message;
  std::string out(6, '?');
  ASSERT_TRUE((*view)->copyOut(out.data(), 0, 6));
  EXPECT_EQ(out, "before");
  put("after!", 0);  // the same page cache: seen at once
  put("grown", 512 << 10);
  ASSERT_TRUE((*view)->copyOut(out.data(), 0, 6));
  EXPECT_EQ(out, "after!");
  ASSERT_TRUE((*view)->copyOut(out.data(), 512 << 10, 5));
  EXPECT_EQ(out.substr(0, 5), "grown");
}

TEST_F(MappedReadViewTest, RangesOutsideTheViewAreRefused) {
  put(std::string(8192, 'x'), 0);
  auto view = MappedReadView::map(fd_, 8192);
  ASSERT_TRUE(view.ok());
  char buf[16];
  EXPECT_FALSE((*view)->copyOut(buf, 8190, 16));
  EXPECT_FALSE((*view)->copyOut(buf, ~0ULL - 4, 16));
  EXPECT_TRUE((*view)->copyOut(buf, 8192 - 16, 16));
}

// Past the end of the file a mapping faults: copyOut says so and the thread
// goes on (many times over, so the handler is still in place after each).
TEST_F(MappedReadViewTest, AFaultPastTheEndOfTheFileIsReportedNotRaised) {
  put(std::string(4096, 'x'), 0);
  auto view = MappedReadView::map(fd_, 1 << 20);
  ASSERT_TRUE(view.ok());
  char buf[4096];
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE((*view)->copyOut(buf, 64 << 10, sizeof buf));
    EXPECT_TRUE((*view)->copyOut(buf, 0, sizeof buf));
  }
  ASSERT_EQ(::ftruncate(fd_, 0), 0);
  EXPECT_FALSE((*view)->copyOut(buf, 0, sizeof buf));
}

// The statement ends with exit(0) only if the SIGBUS was swallowed. Killed
// by it, or ended by a sanitizer's report of it (ASan aborts, TSan exits
// 66): anything but a clean exit.
bool didNotGoOn(int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }

// The handler takes only copyOut's faults: any other SIGBUS, a fault
// elsewhere or one sent with kill, still ends the process as it would have.
TEST_F(MappedReadViewTest, OtherFaultsStillKill) {
  auto view = MappedReadView::map(fd_, 1 << 20);
  ASSERT_TRUE(view.ok());
  char buf[16];
  EXPECT_FALSE((*view)->copyOut(buf, 0, sizeof buf));  // installs the handler and uses it
  EXPECT_EXIT(
      {
        void* raw = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd_, 0);
        volatile const char* p = static_cast<const char*>(raw);
        (void)p[0];
        std::exit(0);
      },
      didNotGoOn, "");
  EXPECT_EXIT(
      {
        ::raise(SIGBUS);
        std::exit(0);
      },
      didNotGoOn, "");
  EXPECT_FALSE((*view)->copyOut(buf, 0, sizeof buf));  // and the guard still works here
}

TEST(FileIsInMemoryTest, TmpfsYesProcNo) {
  int mem = ::memfd_create("offcore-in-memory-test", MFD_CLOEXEC);
  ASSERT_GE(mem, 0);
  EXPECT_TRUE(fileIsInMemory(mem));
  ::close(mem);
  int proc = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(proc, 0);
  EXPECT_FALSE(fileIsInMemory(proc));
  ::close(proc);
}

}  // namespace
}  // namespace offcore
