#include "base/files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace offcore {
namespace {

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/offcore_files_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(removeTree(dir_).ok());
    old_umask_ = ::umask(0);  // the modes must not depend on the caller's umask
  }
  void TearDown() override {
    ::umask(old_umask_);
    (void)removeTree(dir_);
  }
  std::string dir_;
  mode_t old_umask_ = 0;
};

TEST_F(FilesTest, WrittenFilesArePrivateUnlessPublished) {
  ASSERT_TRUE(makeDirs(dir_).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/state.json", "{}").ok());
  EXPECT_EQ(modeOf(dir_ + "/state.json"), 0600u);
  ASSERT_TRUE(writeFileAtomic(dir_ + "/report.md", "# r", 0644).ok());
  EXPECT_EQ(modeOf(dir_ + "/report.md"), 0644u);
  auto lock = FileLock::acquire(dir_ + "/.lock");
  ASSERT_TRUE(lock.ok());
  EXPECT_EQ(modeOf(dir_ + "/.lock"), 0600u);
}

TEST_F(FilesTest, MakeDirsNeverLoosensAPrivateDirectory) {
  std::string data = dir_ + "/var/data";
  ASSERT_TRUE(makePrivateDir(data).ok());
  EXPECT_EQ(modeOf(data), 0700u);
  EXPECT_EQ(modeOf(dir_ + "/var"), 0700u);  // created on the way: private too
  // A later plain makeDirs of the same path (as a library below the caller
  // does) keeps it private.
  ASSERT_TRUE(makeDirs(data).ok());
  EXPECT_EQ(modeOf(data), 0700u);
  ASSERT_TRUE(makeDirs(data + "/sub").ok());
  EXPECT_EQ(modeOf(data + "/sub"), 0755u);
}

TEST_F(FilesTest, MakePrivateDirTightensAnOldDirectory) {
  ASSERT_TRUE(makeDirs(dir_ + "/old", 0755).ok());
  EXPECT_EQ(modeOf(dir_ + "/old"), 0755u);
  ASSERT_TRUE(makePrivateDir(dir_ + "/old").ok());
  EXPECT_EQ(modeOf(dir_ + "/old"), 0700u);
}

TEST_F(FilesTest, MakeDirsSaysWhatIsInTheWay) {
  ASSERT_TRUE(makeDirs(dir_).ok());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/file", "x").ok());
  auto s = makeDirs(dir_ + "/file/sub");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not a directory"), std::string::npos) << s.error().message;
}

}  // namespace
}  // namespace offcore
