// The initiator in polled mode (HostOptions::polled): no reader thread per
// I/O queue; the test thread is the poller. Completions run only when it
// reaps, commands beyond the queue depth wait in a backlog instead of
// blocking the poller, synchronous I/O from another thread is completed by
// the poller, a target restart is ridden out, and plugged commands leave at
// unplug().
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "host_io_helpers.h"
#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using namespace std::chrono_literals;
using test::kSubnqn;
using test::pattern;
using test::TargetTest;

class Counter final : public IoCompletion {
 public:
  void done(Status s) override {
    ++done_;
    if (!s.ok() && failures_++ == 0) first_error_ = s.error().message;
    if (std::this_thread::get_id() != owner_) ++off_thread_;
  }
  size_t count() const { return done_; }
  size_t failures() const { return failures_; }
  size_t offThread() const { return off_thread_; }
  const std::string& firstError() const { return first_error_; }

 private:
  std::thread::id owner_ = std::this_thread::get_id();
  size_t done_ = 0, failures_ = 0, off_thread_ = 0;
  std::string first_error_;
};

HostOptions polledOptions() { return test::ioHostOptions(1, 8, true); }

// Reaps until `until` holds or the limit passes.
bool reapUntil(NvmeTcpHost& h, const std::function<bool()>& until, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!until()) {
    if (std::chrono::steady_clock::now() > end) return false;
    pollfd p{h.completionFd(), POLLIN, 0};
    (void)::poll(&p, 1, 20);
    h.reapCompletions();
  }
  return true;
}

// A synchronous read on a thread of its own, which the poller (the test
// thread) has to complete.
struct OtherThreadRead {
  OtherThreadRead(NvmeTcpHost& h, uint64_t offset) : buf(4096) {
    thread = std::thread([this, &h, offset] {
      status = h.read(offset, buf.data(), buf.size());
      done = true;
    });
  }
  ~OtherThreadRead() {
    if (thread.joinable()) thread.join();
  }
  std::vector<uint8_t> buf;
  std::atomic<bool> done{false};
  Status status;
  std::thread thread;
};

// Reads data.size() bytes from offset 0 in one asynchronous request and
// compares them with data.
void expectReadsBack(NvmeTcpHost& h, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> back(data.size());
  Counter reads;
  h.readAsync(0, back.data(), back.size(), &reads);
  ASSERT_TRUE(reapUntil(
      h, [&] { return reads.count() == 1; }, 10s));
  EXPECT_EQ(reads.failures(), 0u) << reads.firstError();
  EXPECT_EQ(back, data);
}

TEST_F(TargetTest, PolledHostCompletesOnlyWhenReapedAndNeverBlocksThePoller) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, polledOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  ASSERT_GE((*host)->completionFd(), 0);
  constexpr size_t kBlocks = 64;  // 8x the queue depth: most wait in the backlog
  auto data = pattern(kBlocks * 4096, 3);
  Counter writes;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kBlocks; ++i) (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, &writes);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s) << "submitting blocked the poller";
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(writes.count(), 0u) << "a completion ran without being reaped";
  ASSERT_TRUE(reapUntil(
      **host, [&] { return writes.count() == kBlocks; }, 10s));
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  EXPECT_EQ(writes.offThread(), 0u) << "completions must run on the poller";

  // Reads of 1 MiB: more read data than a polled queue keeps in flight.
  auto big = pattern(8u << 20, 5);
  Counter w2;
  (*host)->writeAsync(16u << 20, big.data(), big.size(), &w2);
  ASSERT_TRUE(reapUntil(
      **host, [&] { return w2.count() == 1; }, 10s));
  ASSERT_EQ(w2.failures(), 0u) << w2.firstError();
  std::vector<uint8_t> back(big.size());
  Counter reads;
  for (size_t i = 0; i < 8; ++i) (*host)->readAsync((16u << 20) + (i << 20), back.data() + (i << 20), 1u << 20, &reads);
  ASSERT_TRUE(reapUntil(
      **host, [&] { return reads.count() == 8; }, 10s));
  EXPECT_EQ(reads.failures(), 0u) << reads.firstError();
  EXPECT_EQ(back, big);

  // A synchronous read on another thread is completed by the poller.
  OtherThreadRead other(**host, 7 * 4096);
  ASSERT_TRUE(reapUntil(
      **host, [&] { return other.done.load(); }, 10s));
  other.thread.join();
  ASSERT_TRUE(other.status.ok()) << other.status.error().message;
  EXPECT_TRUE(std::equal(other.buf.begin(), other.buf.end(), data.begin() + 7 * 4096));
  (*host)->close();
}

TEST_F(TargetTest, PolledHostRidesOutATargetRestart) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, polledOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  constexpr size_t kBlocks = 32;
  auto data = pattern(kBlocks * 4096, 9);
  Counter before;
  for (size_t i = 0; i < 4; ++i) (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, &before);
  ASSERT_TRUE(reapUntil(
      **host, [&] { return before.count() == 4; }, 10s));
  std::thread restarter = restartTargetAfter(1s);  // stops it now
  Counter writes;
  for (size_t i = 0; i < kBlocks; ++i) (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, &writes);
  // The poller sees the old queue die; the writes are retried on the next
  // association (on retry threads, whose synchronous commands it completes).
  bool finished = reapUntil(
      **host, [&] { return writes.count() == kBlocks; }, 25s);
  restarter.join();
  ASSERT_TRUE(finished) << writes.count() << " of " << kBlocks << " writes finished";
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  EXPECT_EQ(writes.offThread(), 0u) << "a retried command must still complete on the poller";
  EXPECT_GE((*host)->stats().reconnects, 1u);
  expectReadsBack(**host, data);
  (*host)->close();
}

// Plugged, commands stay on the host: nothing completes however long the
// poller reaps. unplug() sends them (one send per queue) and they complete.
TEST_F(TargetTest, PluggedCommandsLeaveAtUnplug) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, polledOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  constexpr size_t kBlocks = 8;  // the queue depth: none waits in the backlog
  auto data = pattern(kBlocks * 4096, 11);
  Counter writes;
  (*host)->plug();
  for (size_t i = 0; i < kBlocks; ++i) (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, &writes);
  EXPECT_FALSE(reapUntil(
      **host, [&] { return writes.count() > 0; }, 200ms))
      << "a plugged command left before unplug()";
  (*host)->unplug();
  ASSERT_TRUE(reapUntil(
      **host, [&] { return writes.count() == kBlocks; }, 10s));
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  std::vector<uint8_t> back(kBlocks * 4096);
  Counter reads;
  (*host)->plug();
  for (size_t i = 0; i < kBlocks; ++i) (*host)->readAsync(i * 4096, back.data() + i * 4096, 4096, &reads);
  (*host)->unplug();
  ASSERT_TRUE(reapUntil(
      **host, [&] { return reads.count() == kBlocks; }, 10s));
  EXPECT_EQ(reads.failures(), 0u) << reads.firstError();
  EXPECT_EQ(back, data);

  // A synchronous read from another thread meets the plug too: its command
  // leaves at unplug(), and the poller completes it.
  (*host)->plug();
  OtherThreadRead other(**host, 3 * 4096);
  EXPECT_FALSE(reapUntil(
      **host, [&] { return other.done.load(); }, 200ms))
      << "a plugged synchronous command left before unplug()";
  (*host)->unplug();
  ASSERT_TRUE(reapUntil(
      **host, [&] { return other.done.load(); }, 10s));
  other.thread.join();
  ASSERT_TRUE(other.status.ok()) << other.status.error().message;
  EXPECT_TRUE(std::equal(other.buf.begin(), other.buf.end(), data.begin() + 3 * 4096));
  (*host)->close();
}

// The target goes away while commands are plugged: the send at unplug()
// fails or goes nowhere, the queue is dropped (its EOF, or uncork's own
// shutdown after a failed send), and the commands are retried on the next
// association like any others a lost queue held.
TEST_F(TargetTest, PluggedCommandsSurviveALostQueue) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, polledOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  constexpr size_t kBlocks = 16;
  auto data = pattern(kBlocks * 4096, 13);
  Counter writes;
  (*host)->plug();
  for (size_t i = 0; i < kBlocks; ++i) (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, &writes);
  std::thread restarter = restartTargetAfter(1s);  // stops it now
  std::this_thread::sleep_for(100ms);
  (*host)->unplug();
  bool finished = reapUntil(
      **host, [&] { return writes.count() == kBlocks; }, 25s);
  restarter.join();
  ASSERT_TRUE(finished) << writes.count() << " of " << kBlocks << " writes finished";
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  expectReadsBack(**host, data);
  (*host)->close();
}

}  // namespace
}  // namespace offcore::nvme
