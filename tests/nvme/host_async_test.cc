// The initiator's asynchronous path (BlockDevice::readAsync/writeAsync),
// against the real target: many commands in flight from one thread,
// requests larger than one command, a target restart under load, and a
// close with commands outstanding.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "host_io_helpers.h"
#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using namespace std::chrono_literals;
using test::kSubnqn;
using test::pattern;
using test::TargetTest;

// Counts completions; remembers the first error and which threads ran them.
class Completions {
 public:
  class One final : public IoCompletion {
   public:
    explicit One(Completions* c) : c_(c) {}
    void done(Status status) override { c_->record(std::move(status)); }

   private:
    Completions* c_;
  };
  IoCompletion* next() {
    std::lock_guard<std::mutex> lock(mu_);
    ones_.push_back(std::make_unique<One>(this));
    return ones_.back().get();
  }
  // Waits for `n` completions in all; false on timeout.
  bool waitFor(size_t n, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return done_ >= n; });
  }
  size_t failures() {
    std::lock_guard<std::mutex> lock(mu_);
    return failures_;
  }
  std::string firstError() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }
  bool ranOffThread(std::thread::id caller) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::any_of(threads_.begin(), threads_.end(), [&](auto id) { return id != caller; });
  }

 private:
  void record(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    threads_.push_back(std::this_thread::get_id());
    if (!status.ok()) {
      if (failures_++ == 0) first_error_ = status.error().message;
    }
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<One>> ones_;
  std::vector<std::thread::id> threads_;
  size_t done_ = 0, failures_ = 0;
  std::string first_error_;
};

HostOptions hostOptions() { return test::ioHostOptions(2, 16, false); }

TEST_F(TargetTest, AsyncIoKeepsManyCommandsInFlightFromOneThread) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, hostOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  // 256 blocks from one thread: more than both queues hold (2 x 16), so
  // submission also waits for slots as the answers free them.
  constexpr size_t kBlocks = 256;
  auto data = pattern(kBlocks * 4096, 7);
  Completions writes;
  for (size_t i = 0; i < kBlocks; ++i) {
    (*host)->writeAsync(i * 4096 * 3, data.data() + i * 4096, 4096, writes.next());
  }
  ASSERT_TRUE(writes.waitFor(kBlocks, 20s));
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  EXPECT_TRUE(writes.ranOffThread(std::this_thread::get_id())) << "every completion ran inline: nothing was async";

  std::vector<uint8_t> back(kBlocks * 4096, 0);
  Completions reads;
  for (size_t i = 0; i < kBlocks; ++i) {
    (*host)->readAsync(i * 4096 * 3, back.data() + i * 4096, 4096, reads.next());
  }
  ASSERT_TRUE(reads.waitFor(kBlocks, 20s));
  EXPECT_EQ(reads.failures(), 0u) << reads.firstError();
  EXPECT_EQ(back, data);
  // The synchronous path sees the same bytes.
  std::vector<uint8_t> one(4096);
  ASSERT_TRUE((*host)->read(5 * 4096 * 3, one.data(), one.size()).ok());
  EXPECT_TRUE(std::equal(one.begin(), one.end(), data.begin() + 5 * 4096));
  EXPECT_EQ((*host)->stats().writes, kBlocks);
  EXPECT_EQ((*host)->stats().reads, kBlocks + 1);
  (*host)->close();
}

TEST_F(TargetTest, AsyncIoSplitsRequestsLargerThanOneCommand) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, hostOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  // 3 MiB + 4 KiB: more than the 1 MiB a command carries, not a multiple of it.
  auto data = pattern((3u << 20) + 4096, 11);
  Completions c;
  (*host)->writeAsync(1 << 20, data.data(), data.size(), c.next());
  ASSERT_TRUE(c.waitFor(1, 20s));
  ASSERT_EQ(c.failures(), 0u) << c.firstError();
  std::vector<uint8_t> back(data.size());
  (*host)->readAsync(1 << 20, back.data(), back.size(), c.next());
  ASSERT_TRUE(c.waitFor(2, 20s));
  ASSERT_EQ(c.failures(), 0u) << c.firstError();
  EXPECT_EQ(back, data);

  // Out of range and misaligned: completed at once with the error, nothing sent.
  Completions bad;
  (*host)->readAsync((*host)->sizeBytes(), back.data(), 4096, bad.next());
  (*host)->writeAsync(100, data.data(), 4096, bad.next());
  ASSERT_TRUE(bad.waitFor(2, 1s));
  EXPECT_EQ(bad.failures(), 2u);
  (*host)->close();
}

TEST_F(TargetTest, AsyncIoRidesOutATargetRestart) {
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, hostOptions());
  ASSERT_TRUE(host.ok()) << host.error().message;
  constexpr size_t kBlocks = 64;
  auto data = pattern(kBlocks * 4096, 23);
  std::thread restarter = restartTargetAfter(1500ms);  // stops it now
  Completions writes;
  for (size_t i = 0; i < kBlocks; ++i) {
    (*host)->writeAsync(i * 4096, data.data() + i * 4096, 4096, writes.next());
  }
  restarter.join();
  ASSERT_TRUE(writes.waitFor(kBlocks, 25s)) << "asynchronous writes did not finish after the target returned";
  EXPECT_EQ(writes.failures(), 0u) << writes.firstError();
  std::vector<uint8_t> back(kBlocks * 4096);
  ASSERT_TRUE((*host)->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, data);
  EXPECT_GE((*host)->stats().reconnects, 1u);
  (*host)->close();
}

TEST_F(TargetTest, AsyncIoOutstandingAtCloseFailsAndCloseReturns) {
  HostOptions o = hostOptions();
  o.io_timeout = 60s;  // longer than the test: only close() may end these
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  target_->stop();  // gone for good: the commands wait for a reconnect that never comes
  std::vector<uint8_t> buf(16 * 4096, 0x42);
  Completions c;
  for (int i = 0; i < 16; ++i) (*host)->writeAsync(i * 4096, buf.data() + i * 4096, 4096, c.next());
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  (*host)->close();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  ASSERT_TRUE(c.waitFor(16, 1s)) << "close() returned with completions still owed";
  EXPECT_EQ(c.failures(), 16u);
  TargetConfig cfg;  // TearDown stops target_ again: give it a fresh one
  cfg.listen_addr = "127.0.0.1";
  cfg.port = 0;
  target_ = std::make_unique<NvmeTcpTarget>(cfg, registry_);
  ASSERT_TRUE(target_->start().ok());
}

}  // namespace
}  // namespace offcore::nvme
