#include "agent/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"

namespace offcore {
namespace {

using namespace std::chrono_literals;

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/offcore-sup-test-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(loop_.init().ok());
    sup_ = std::make_unique<Supervisor>(loop_, dir_);
  }
  void TearDown() override {
    sup_.reset();
    std::filesystem::remove_all(dir_);
  }
  // Runs the loop until pred() holds or the deadline passes.
  bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    bool met = false;
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::function<void()> check = [&] {
      if (pred()) {
        met = true;
        loop_.stop();
      } else if (std::chrono::steady_clock::now() > deadline) {
        loop_.stop();
      } else {
        loop_.addTimer(10ms, check);
      }
    };
    loop_.addTimer(0ms, check);
    (void)loop_.run();
    return met;
  }
  std::string dir_;
  EventLoop loop_;
  std::unique_ptr<Supervisor> sup_;
};

TEST_F(SupervisorTest, RestartsACrashedServiceWithBackoff) {
  ASSERT_TRUE(sup_->add({"sleeper", {"sleep", "60"}, true}).ok());
  auto first = sup_->get("sleeper");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state, ServiceState::kRunning);
  pid_t old_pid = first->pid;
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  ASSERT_TRUE(runUntil([&] { return sup_->get("sleeper")->restarts == 1; }, 3000ms));
  auto again = sup_->get("sleeper");
  EXPECT_EQ(again->state, ServiceState::kRunning);
  EXPECT_NE(again->pid, old_pid);
  EXPECT_EQ(again->last_exit, 128 + SIGKILL);
}

TEST_F(SupervisorTest, BackoffGrowsForAServiceThatKeepsCrashing) {
  ASSERT_TRUE(sup_->add({"crasher", {"sh", "-c", "exit 3"}, true}).ok());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return sup_->get("crasher")->restarts >= 3; }, 5000ms));
  // 200 + 400 + 800 ms of backoff at least before the third restart.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1300ms);
  EXPECT_EQ(sup_->get("crasher")->last_exit, 3);
}

TEST_F(SupervisorTest, CleanExitWithoutRestartEnds) {
  ASSERT_TRUE(sup_->add({"oneshot", {"true"}, false}).ok());
  ASSERT_TRUE(runUntil([&] { return sup_->get("oneshot")->state == ServiceState::kExited; }, 2000ms));
  EXPECT_EQ(sup_->get("oneshot")->restarts, 0);
}

TEST_F(SupervisorTest, RejectsBadSpecs) {
  EXPECT_FALSE(sup_->add({"", {"true"}, true}).ok());
  EXPECT_FALSE(sup_->add({"Bad Name", {"true"}, true}).ok());
  EXPECT_FALSE(sup_->add({"empty", {}, true}).ok());
  ASSERT_TRUE(sup_->add({"dup", {"sleep", "60"}, true}).ok());
  EXPECT_FALSE(sup_->add({"dup", {"sleep", "60"}, true}).ok());
}

TEST_F(SupervisorTest, RemoveStopsTheProcess) {
  ASSERT_TRUE(sup_->add({"victim", {"sleep", "60"}, true}).ok());
  pid_t pid = sup_->get("victim")->pid;
  ASSERT_TRUE(sup_->remove("victim").ok());
  EXPECT_NE(::kill(pid, 0), 0);  // gone (and reaped)
  EXPECT_FALSE(sup_->get("victim").ok());
  EXPECT_FALSE(sup_->remove("victim").ok());
}

TEST_F(SupervisorTest, ServiceOutputGoesToItsLog) {
  ASSERT_TRUE(sup_->add({"talker", {"sh", "-c", "echo hello-from-service; sleep 60"}, true}).ok());
  ASSERT_TRUE(runUntil(
      [&] { return readFile(dir_ + "/talker.log").valueOr("").find("hello-from-service") != std::string::npos; },
      2000ms));
}

}  // namespace
}  // namespace offcore
