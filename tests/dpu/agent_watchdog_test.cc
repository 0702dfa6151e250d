#include "dpu/agent_watchdog.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

namespace offcore {
namespace {

class AgentPidTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-watchdog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    layout_.name = "wd";
    layout_.run_dir = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(layout_.run_dir); }
  NodeLayout layout_;
};

TEST_F(AgentPidTest, NothingRecordedIsZero) { EXPECT_EQ(recordedAgentPid(layout_), 0); }

TEST_F(AgentPidTest, RecordsThePid) {
  ASSERT_TRUE(writeAgentPid(layout_, ::getpid()).ok());
  EXPECT_EQ(recordedAgentPid(layout_), ::getpid());
}

TEST_F(AgentPidTest, GarbageIsZero) {
  ASSERT_TRUE(writeAgentPid(layout_, ::getpid()).ok());
  std::FILE* f = std::fopen((layout_.run_dir + "/agent.pid").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("-5 x\n", f);
  std::fclose(f);
  EXPECT_EQ(recordedAgentPid(layout_), 0);
}

TEST(IsNodeProcessTest, MatchesRoleAndNodeOnly) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // bash stays (two commands), so its cmdline keeps the arguments.
    ::execlp("bash", "bash", "-c", "sleep 30; :", "agent", "--name", "n1", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // exec replaces the cmdline; wait until it has.
  for (int i = 0; i < 200 && !isNodeProcess(child, "agent", "n1"); ++i) ::usleep(5000);
  EXPECT_TRUE(isNodeProcess(child, "agent", "n1"));
  EXPECT_FALSE(isNodeProcess(child, "agent", "n"));
  EXPECT_FALSE(isNodeProcess(child, "watchdog", "n1"));
  EXPECT_FALSE(isNodeProcess(0, "agent", "n1"));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(isNodeProcess(child, "agent", "n1"));
}

}  // namespace
}  // namespace offcore
