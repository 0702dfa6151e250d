#include "agent/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "base/files.h"
#include "base/subprocess.h"

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
  ASSERT_TRUE(sup_->add({"sleeper", {"sleep", "60"}, true, ""}).ok());
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

TEST_F(SupervisorTest, ReplaceHandsOverToTheNewArgvAtOnce) {
  // The service writes its argv's word to a file and waits; SIGHUP ends it
  // (as `disk serve` does on a handover).
  std::string out = dir_ + "/which";
  auto argv = [&](const std::string& word) {
    return std::vector<std::string>{"sh", "-c", "echo " + word + " > " + out + "; exec sleep 60"};
  };
  ASSERT_TRUE(sup_->add({"disk-x", argv("old"), true, ""}).ok());
  ASSERT_TRUE(runUntil([&] { return readFile(out).valueOr("") == "old\n"; }, 3000ms));
  // Three crashes first: the next restart after a crash would wait 1.6 s.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(::kill(sup_->get("disk-x")->pid, SIGKILL), 0);
    ASSERT_TRUE(runUntil([&] { return sup_->get("disk-x")->restarts == i; }, 3000ms));
  }
  pid_t old_pid = sup_->get("disk-x")->pid;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(sup_->replace("disk-x", argv("new")).ok());
  ASSERT_TRUE(runUntil([&] { return readFile(out).valueOr("") == "new\n"; }, 3000ms));
  // No backoff for a handover (a crash's would be 1.6 s now).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1200ms);
  auto now = sup_->get("disk-x");
  EXPECT_NE(now->pid, old_pid);
  EXPECT_EQ(now->argv, argv("new"));
  EXPECT_EQ(now->last_exit, 128 + SIGHUP);
  EXPECT_FALSE(sup_->replace("no-such", argv("x")).ok());
  EXPECT_FALSE(sup_->replace("disk-x", {}).ok());
}

TEST_F(SupervisorTest, BackoffGrowsForAServiceThatKeepsCrashing) {
  ASSERT_TRUE(sup_->add({"crasher", {"sh", "-c", "exit 3"}, true, ""}).ok());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(runUntil([&] { return sup_->get("crasher")->restarts >= 3; }, 5000ms));
  // 200 + 400 + 800 ms of backoff at least before the third restart.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1300ms);
  EXPECT_EQ(sup_->get("crasher")->last_exit, 3);
}

TEST_F(SupervisorTest, CleanExitWithoutRestartEnds) {
  ASSERT_TRUE(sup_->add({"oneshot", {"true"}, false, ""}).ok());
  ASSERT_TRUE(runUntil([&] { return sup_->get("oneshot")->state == ServiceState::kExited; }, 2000ms));
  EXPECT_EQ(sup_->get("oneshot")->restarts, 0);
}

TEST_F(SupervisorTest, RejectsBadSpecs) {
  EXPECT_FALSE(sup_->add({"", {"true"}, true, ""}).ok());
  EXPECT_FALSE(sup_->add({"Bad Name", {"true"}, true, ""}).ok());
  EXPECT_FALSE(sup_->add({"empty", {}, true, ""}).ok());
  ASSERT_TRUE(sup_->add({"dup", {"sleep", "60"}, true, ""}).ok());
  EXPECT_FALSE(sup_->add({"dup", {"sleep", "60"}, true, ""}).ok());
}

TEST_F(SupervisorTest, RemoveStopsTheProcess) {
  ASSERT_TRUE(sup_->add({"victim", {"sleep", "60"}, true, ""}).ok());
  pid_t pid = sup_->get("victim")->pid;
  ASSERT_TRUE(sup_->remove("victim").ok());
  EXPECT_NE(::kill(pid, 0), 0);  // gone (and reaped)
  EXPECT_FALSE(sup_->get("victim").ok());
  EXPECT_FALSE(sup_->remove("victim").ok());
}

TEST_F(SupervisorTest, RemovingAServiceRemovesItsPartsAfterIt) {
  ASSERT_TRUE(sup_->add({"keeper", {"sleep", "60"}, true, "main"}).ok());  // added first, like an fd keeper
  ASSERT_TRUE(sup_->add({"main", {"sleep", "60"}, true, ""}).ok());
  ASSERT_TRUE(sup_->add({"other", {"sleep", "60"}, true, ""}).ok());
  pid_t keeper = sup_->get("keeper")->pid;
  EXPECT_EQ(sup_->get("keeper")->part_of, "main");
  ASSERT_TRUE(sup_->remove("main").ok());
  EXPECT_NE(::kill(keeper, 0), 0);
  EXPECT_FALSE(sup_->get("keeper").ok());
  EXPECT_TRUE(sup_->get("other").ok());
  // A part removed on its own leaves its service alone.
  ASSERT_TRUE(sup_->add({"main", {"sleep", "60"}, true, ""}).ok());
  ASSERT_TRUE(sup_->add({"keeper", {"sleep", "60"}, true, "main"}).ok());
  ASSERT_TRUE(sup_->remove("keeper").ok());
  EXPECT_TRUE(sup_->get("main").ok());
  EXPECT_FALSE(sup_->add({"self", {"sleep", "60"}, true, "self"}).ok());
  EXPECT_FALSE(sup_->add({"bad", {"sleep", "60"}, true, "a/b"}).ok());
}

TEST_F(SupervisorTest, ServiceOutputGoesToItsLog) {
  ASSERT_TRUE(sup_->add({"talker", {"sh", "-c", "echo hello-from-service; sleep 60"}, true, ""}).ok());
  ASSERT_TRUE(runUntil(
      [&] { return readFile(dir_ + "/talker.log").valueOr("").find("hello-from-service") != std::string::npos; },
      2000ms));
}

// The agent-restart path: one supervisor releases its services, the next
// adopts them from the state file.
class SupervisorHandoverTest : public SupervisorTest {
 protected:
  std::string stateFile() const { return dir_ + "/services.json"; }
  std::unique_ptr<Supervisor> recorded() { return std::make_unique<Supervisor>(loop_, dir_, stateFile()); }
};

TEST_F(SupervisorHandoverTest, ANewSupervisorAdoptsTheRunningProcessAndWatchesIt) {
  auto first = recorded();
  ASSERT_TRUE(first->add({"keeper", {"sleep", "60"}, true, ""}).ok());
  pid_t pid = first->get("keeper")->pid;
  first->releaseAll();
  first.reset();  // must not stop what it released
  ASSERT_EQ(::kill(pid, 0), 0);

  auto second = recorded();
  auto adopted = second->adoptRecorded();
  ASSERT_TRUE(adopted.ok()) << adopted.error().message;
  EXPECT_EQ(*adopted, 1);
  EXPECT_EQ(second->get("keeper")->pid, pid);
  EXPECT_EQ(second->get("keeper")->state, ServiceState::kRunning);

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(
      runUntil([&] { return second->get("keeper")->restarts == 1 && second->get("keeper")->pid != 0; }, 3000ms));
  EXPECT_NE(second->get("keeper")->pid, pid);
  EXPECT_EQ(second->get("keeper")->state, ServiceState::kRunning);
}

TEST_F(SupervisorHandoverTest, AServiceThatDiedMeanwhileIsStartedAgain) {
  auto first = recorded();
  ASSERT_TRUE(first->add({"keeper", {"sleep", "60"}, true, ""}).ok());
  pid_t pid = first->get("keeper")->pid;
  first->releaseAll();
  first.reset();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);

  auto second = recorded();
  auto adopted = second->adoptRecorded();
  ASSERT_TRUE(adopted.ok());
  EXPECT_EQ(*adopted, 0);
  auto st = second->get("keeper");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, ServiceState::kRunning);
  EXPECT_NE(st->pid, pid);
  EXPECT_EQ(st->restarts, 1);
}

// A process that is not our child, as after an agent restart: a
// grandchild whose parent exited, so init (or a subreaper) owns it.
pid_t spawnOrphan(const char* seconds) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t child = ::fork();
  if (child == 0) {
    pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::execlp("sleep", "sleep", seconds, nullptr);
      ::_exit(127);
    }
    (void)!::write(fds[1], &grandchild, sizeof grandchild);
    ::_exit(0);
  }
  pid_t orphan = -1;
  (void)!::read(fds[0], &orphan, sizeof orphan);
  ::close(fds[0]);
  ::close(fds[1]);
  ::waitpid(child, nullptr, 0);
  return orphan;
}

std::string recordEntry(const std::string& name, const std::string& seconds, bool restart, pid_t pid) {
  return R"({"name":")" + name + R"(","argv":["sleep",")" + seconds + R"("],"restart":)" +
         (restart ? "true" : "false") + R"(,"state":"running","pid":)" + std::to_string(pid) + R"(,"start_ticks":)" +
         std::to_string(processStartTicks(pid)) + "}";
}

TEST_F(SupervisorHandoverTest, AdoptedProcessesThatAreNotOurChildrenAreWatchedToo) {
  pid_t oneshot = spawnOrphan("0.3");
  pid_t daemon = spawnOrphan("60");
  ASSERT_GT(oneshot, 0);
  ASSERT_GT(daemon, 0);
  ASSERT_NE(processStartTicks(daemon), 0u);
  ASSERT_TRUE(writeFileAtomic(stateFile(), R"({"services":[)" + recordEntry("oneshot", "0.3", false, oneshot) + "," +
                                               recordEntry("daemon", "60", true, daemon) + "]}")
                  .ok());
  auto sup = recorded();
  auto adopted = sup->adoptRecorded();
  ASSERT_TRUE(adopted.ok()) << adopted.error().message;
  EXPECT_EQ(*adopted, 2);
  EXPECT_EQ(sup->get("daemon")->pid, daemon);

  // Its exit code went with its parent; a one-shot must not run again.
  ASSERT_TRUE(runUntil([&] { return sup->get("oneshot")->state == ServiceState::kExited; }, 3000ms));
  EXPECT_EQ(sup->get("oneshot")->restarts, 0);
  EXPECT_EQ(sup->get("oneshot")->last_exit, -1);

  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  ASSERT_TRUE(runUntil([&] { return sup->get("daemon")->restarts == 1 && sup->get("daemon")->pid != 0; }, 3000ms));
  EXPECT_NE(sup->get("daemon")->pid, daemon);
}

TEST_F(SupervisorHandoverTest, APidNowUsedByAnotherProcessIsNotAdopted) {
  // A live process (ours) recorded with the wrong start time: a reused pid.
  ASSERT_TRUE(writeFileAtomic(stateFile(), R"({"services":[{"name":"k","argv":["sleep","60"],"pid":)" +
                                               std::to_string(::getpid()) + R"(,"start_ticks":1}]})")
                  .ok());
  auto sup = recorded();
  auto adopted = sup->adoptRecorded();
  ASSERT_TRUE(adopted.ok());
  EXPECT_EQ(*adopted, 0);
  EXPECT_NE(sup->get("k")->pid, ::getpid());
}

TEST_F(SupervisorHandoverTest, AStoppedNodeRestartsItsServicesButNotOnesThatExitedCleanly) {
  auto first = recorded();
  ASSERT_TRUE(first->add({"keeper", {"sleep", "60"}, true, ""}).ok());
  ASSERT_TRUE(first->add({"oneshot", {"true"}, false, ""}).ok());
  ASSERT_TRUE(runUntil([&] { return first->get("oneshot")->state == ServiceState::kExited; }, 2000ms));
  first.reset();  // stops keeper; the record still wants it

  auto second = recorded();
  ASSERT_TRUE(second->adoptRecorded().ok());
  EXPECT_EQ(second->get("keeper")->state, ServiceState::kRunning);
  EXPECT_EQ(second->get("oneshot")->state, ServiceState::kExited);
  EXPECT_EQ(second->get("oneshot")->pid, 0);
}

TEST_F(SupervisorHandoverTest, BadRecordsAreRefusedOrSkippedNotFatal) {
  ASSERT_TRUE(writeFileAtomic(stateFile(), "not json").ok());
  auto sup = recorded();
  auto adopted = sup->adoptRecorded();
  ASSERT_FALSE(adopted.ok());
  EXPECT_NE(adopted.error().message.find("move it away"), std::string::npos);

  ASSERT_TRUE(writeFileAtomic(stateFile(), R"({"services":[{"name":7},{"name":"Bad Name","argv":["x"]},)"
                                           R"("oops",{"name":"good","argv":["sleep","60"],"pid":"x"}]})")
                  .ok());
  auto again = recorded();
  auto ok = again->adoptRecorded();
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(again->list().size(), 0u);  // "good" has a pid of the wrong type: skipped too
}

}  // namespace
}  // namespace offcore
