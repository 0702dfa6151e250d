#include "base/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace offcore {
namespace {

using namespace std::chrono_literals;

TEST(EventLoopTest, TimersFireInDueOrder) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  std::vector<int> order;
  loop.addTimer(30ms, [&] {
    order.push_back(3);
    loop.stop();
  });
  loop.addTimer(10ms, [&] { order.push_back(1); });
  loop.addTimer(20ms, [&] { order.push_back(2); });
  ASSERT_TRUE(loop.run().ok());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(EventLoopTest, CancelledTimerNeverFires) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  bool fired = false;
  auto id = loop.addTimer(10ms, [&] { fired = true; });
  loop.cancelTimer(id);
  loop.addTimer(30ms, [&] { loop.stop(); });
  ASSERT_TRUE(loop.run().ok());
  EXPECT_FALSE(fired);
}

TEST(EventLoopTest, PostFromOtherThreadsRunsOnTheLoop) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  std::atomic<int> count{0};
  std::thread::id loop_thread;
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        loop.post([&] {
          loop_thread = std::this_thread::get_id();
          if (++count == 400) loop.stop();
        });
      }
    });
  }
  ASSERT_TRUE(loop.run().ok());
  for (auto& s : senders) s.join();
  EXPECT_EQ(count.load(), 400);
  EXPECT_EQ(loop_thread, std::this_thread::get_id());
}

TEST(EventLoopTest, FdWatchSeesReadableData) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string got;
  ASSERT_TRUE(loop.watchFd(fds[0], EPOLLIN,
                           [&](uint32_t) {
                             char buf[16];
                             ssize_t n = ::read(fds[0], buf, sizeof buf);
                             got.assign(buf, static_cast<size_t>(n));
                             loop.unwatchFd(fds[0]);
                             loop.stop();
                           })
                  .ok());
  ASSERT_EQ(::write(fds[1], "ping", 4), 4);
  ASSERT_TRUE(loop.run().ok());
  EXPECT_EQ(got, "ping");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(EventLoopTest, StopBeforeRunReturnsAtOnce) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  loop.stop();
  EXPECT_TRUE(loop.run().ok());
}

TEST(EventLoopTest, RunsAgainAfterAStop) {
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  int fired = 0;
  loop.addTimer(1ms, [&] {
    ++fired;
    loop.stop();
  });
  ASSERT_TRUE(loop.run().ok());
  loop.addTimer(1ms, [&] {
    ++fired;
    loop.stop();
  });
  ASSERT_TRUE(loop.run().ok());
  EXPECT_EQ(fired, 2);
}

}  // namespace
}  // namespace offcore
