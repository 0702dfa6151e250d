#include "disk/fd_keeper.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace offcore {
namespace {

TEST(FdKeeperTest, KeepsAnFdAcrossItsOwnersAndDropsItOnDel) {
  std::string sock = std::filesystem::temp_directory_path() / ("oc-fdk-" + std::to_string(::getpid()) + ".sock");
  EXPECT_EQ(fdKeeperSocket("/run/offcore", "n1", "disks"), "/run/offcore/n1/disks-fds.sock");
  EXPECT_FALSE(fdKeeperAnswers(sock));
  int rc = -1;
  std::thread keeper([&] { rc = runFdKeeper(sock); });
  for (int i = 0; i < 200 && !fdKeeperAnswers(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(fdKeeperAnswers(sock));

  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ASSERT_TRUE(fdKeeperPut(sock, "disk-d1", p[1]).ok());
  ::close(p[1]);  // the keeper's copy keeps the pipe's write side open
  auto got = fdKeeperGet(sock, "disk-d1");
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_GE(*got, 0);
  ASSERT_EQ(::write(*got, "x", 1), 1);
  char c = 0;
  ASSERT_EQ(::read(p[0], &c, 1), 1);
  EXPECT_EQ(c, 'x');
  ::close(*got);

  auto none = fdKeeperGet(sock, "disk-d2");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, -1);
  ASSERT_TRUE(fdKeeperDel(sock, "disk-d1").ok());
  EXPECT_EQ(*fdKeeperGet(sock, "disk-d1"), -1);
  EXPECT_EQ(::read(p[0], &c, 1), 0);  // every write side is closed now
  ::close(p[0]);

  ::pthread_kill(keeper.native_handle(), SIGTERM);
  keeper.join();
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(std::filesystem::exists(sock));
}

}  // namespace
}  // namespace offcore
