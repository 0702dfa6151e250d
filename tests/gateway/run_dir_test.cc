// sweepGatewayRunDirs: a gateway killed with SIGKILL leaves
// <run_root>/targets/<name>/ behind; the next start (or `target list`)
// removes it, and only it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "base/files.h"
#include "base/subprocess.h"
#include "gateway/gateway.h"

namespace offcore {
namespace {

class RunDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = "/tmp/offcore_rundir_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(removeTree(root_).ok());
  }
  void TearDown() override { (void)removeTree(root_); }

  std::string dir(const std::string& name) { return root_ + "/targets/" + name; }
  void record(const std::string& name, pid_t pid, uint64_t ticks) {
    ASSERT_TRUE(makeDirs(dir(name)).ok());
    ASSERT_TRUE(writeFileAtomic(dir(name) + "/target.json",
                                "{\"pid\":" + std::to_string(pid) + ",\"start_ticks\":" + std::to_string(ticks) + "}")
                    .ok());
  }
  // The pid of a process that has exited and been reaped.
  static pid_t deadPid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    return pid;
  }
  std::string root_;
};

TEST_F(RunDirTest, RemovesOnlyTheDirectoriesOfDeadGateways) {
  pid_t me = ::getpid();
  record("killed", deadPid(), 12345);
  record("live", me, processStartTicks(me));
  record("reused", me, processStartTicks(me) + 1);  // our pid, another process's start time
  ASSERT_TRUE(makeDirs(dir("nojson")).ok());        // killed before it wrote target.json
  ASSERT_TRUE(makeDirs(dir("garbage")).ok());
  ASSERT_TRUE(writeFileAtomic(dir("garbage") + "/target.json", "{not json").ok());

  ASSERT_TRUE(sweepGatewayRunDirs(root_).ok());
  EXPECT_FALSE(pathExists(dir("killed")));
  EXPECT_FALSE(pathExists(dir("reused")));
  EXPECT_FALSE(pathExists(dir("nojson")));
  EXPECT_FALSE(pathExists(dir("garbage")));
  EXPECT_TRUE(pathExists(dir("live")));
}

TEST_F(RunDirTest, AStartUnderTheNameOfALiveGatewayIsRefused) {
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  record("stor1", child, processStartTicks(child));
  auto s = sweepGatewayRunDirs(root_, "stor1");
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("already runs"), std::string::npos) << s.error().message;
  // Once that process is gone, the same start goes ahead and the stale directory goes.
  EXPECT_TRUE(sweepGatewayRunDirs(root_, "stor1").ok());
  EXPECT_FALSE(pathExists(dir("stor1")));
}

TEST_F(RunDirTest, NoTargetsDirectoryIsFine) { EXPECT_TRUE(sweepGatewayRunDirs(root_).ok()); }

}  // namespace
}  // namespace offcore
