// The cgroup drivers against the real kernel. The v1 driver runs where the v1
// cpuacct hierarchy is mounted (this project's machines); the v2 driver runs
// against any mounted cgroup2 hierarchy (the hybrid layout's "unified" one
// has no cpuset or memory controller, so only accounting and process
// tracking are checked there). Needs root; skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/files.h"
#include "dpu/cgroup.h"

namespace offcore {
namespace {

pid_t spawnBusy() {
  pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) {}
  }
  return pid;
}

void exerciseDriver(CgroupDriver& d, const std::string& path, const CgroupSettings& settings) {
  ASSERT_TRUE(d.create(path + "/leaf", settings).ok());
  EXPECT_TRUE(d.exists(path + "/leaf"));
  pid_t busy = spawnBusy();
  ASSERT_GT(busy, 0);
  ASSERT_TRUE(d.attach(path + "/leaf", busy).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto u = d.usage(path + "/leaf");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_GT(u->cpu_seconds, 0.1);
  auto procs = d.processes(path);
  EXPECT_NE(std::find(procs.begin(), procs.end(), busy), procs.end());
  // remove must refuse while the cgroup is populated...
  EXPECT_FALSE(d.remove(path).ok());
  ASSERT_TRUE(killCgroupProcesses(d, path, 2000).ok());
  ::waitpid(busy, nullptr, 0);
  EXPECT_TRUE(d.processes(path).empty());
  // ...and succeed once it is empty, idempotently.
  EXPECT_TRUE(d.remove(path).ok());
  EXPECT_FALSE(d.exists(path));
  EXPECT_TRUE(d.remove(path).ok());
}

TEST(CgroupTest, V1DriverAccountsPinsAndCleansUp) {
  if (::geteuid() != 0 || !pathExists("/sys/fs/cgroup/cpuacct/cpuacct.usage")) GTEST_SKIP() << "needs root + v1";
  auto d = makeCgroupV1Driver("/sys/fs/cgroup");
  std::string path = "offcore-test-" + std::to_string(::getpid());
  CgroupSettings s;
  s.cpus = {0};
  s.memory_limit = 256ULL << 20;
  exerciseDriver(*d, path, s);
}

TEST(CgroupTest, V1PinsTheCpuset) {
  if (::geteuid() != 0 || !pathExists("/sys/fs/cgroup/cpuset/cpuset.cpus")) GTEST_SKIP() << "needs root + v1";
  auto d = makeCgroupV1Driver("/sys/fs/cgroup");
  std::string path = "offcore-test-pin-" + std::to_string(::getpid());
  ASSERT_TRUE(d->create(path, CgroupSettings{{0}, std::nullopt}).ok());
  EXPECT_EQ(trim(*readFile("/sys/fs/cgroup/cpuset/" + path + "/cpuset.cpus")), "0");
  EXPECT_TRUE(d->remove(path).ok());
}

TEST(CgroupTest, V2DriverAccountsAndCleansUp) {
  std::string root = pathExists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
  if (::geteuid() != 0 || !pathExists(root + "/cgroup.controllers")) GTEST_SKIP() << "needs root + cgroup2";
  auto d = makeCgroupV2Driver(root);
  std::string path = "offcore-test-" + std::to_string(::getpid());
  exerciseDriver(*d, path, CgroupSettings{});
}

TEST(CgroupTest, DetectionPicksTheMountedVersion) {
  auto d = makeCgroupDriver();
  ASSERT_TRUE(d.ok());
  std::string expected = pathExists("/sys/fs/cgroup/cgroup.controllers") ? "v2" : "v1";
  EXPECT_EQ((*d)->version(), expected);
  EXPECT_FALSE(makeCgroupDriver("/nonexistent").ok());
}

TEST(CgroupTest, ParsesKernelFiles) {
  EXPECT_EQ(parsePidList("12\n34\n"), (std::vector<pid_t>{12, 34}));
  EXPECT_EQ(parseKeyedValue("usage_usec 1500\nuser_usec 1000\n", "usage_usec"), 1500u);
  EXPECT_FALSE(parseKeyedValue("user_usec 1000\n", "usage_usec").has_value());
}

}  // namespace
}  // namespace offcore
