// FuseDisk and ByteRangeIo over a device with an asynchronous path (the
// NVMe/TCP initiator's shape): completions on another thread, many requests
// in flight from one libfuse worker, and the lock an async aligned write
// holds until it completes. Plus the BufferPool those requests draw from.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "base/files.h"
#include "disk/buffer_pool.h"
#include "disk/byte_range_io.h"
#include "disk/file_block_device.h"
#include "disk/fuse_disk.h"
#include "wrapped_device.h"

namespace offcore {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kMiB = 1 << 20;

std::string tempDir() {
  static std::atomic<int> n{0};
  std::string p = "/tmp/offcore-disk-async-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  (void)removeTree(p);
  EXPECT_TRUE(makeDirs(p).ok());
  return p;
}

// Runs every async request on its own worker thread after `delay`, or holds
// them until release() when `hold` is set. Counts the most requests it had
// in flight at once.
class DeferredDevice final : public test::WrappedDevice {
 public:
  DeferredDevice(std::shared_ptr<BlockDevice> inner, std::chrono::microseconds delay)
      : WrappedDevice(std::move(inner)), delay_(delay), worker_([this] { loop(); }) {}
  ~DeferredDevice() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  void readAsync(uint64_t o, void* b, size_t n, IoCompletion* done) override {
    enqueue([=, this] { done->done(inner_->read(o, b, n)); });
  }
  void writeAsync(uint64_t o, const void* b, size_t n, IoCompletion* done) override {
    enqueue([=, this] { done->done(inner_->write(o, b, n)); });
  }
  void hold(bool on) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      hold_ = on;
    }
    cv_.notify_all();
  }
  size_t queued() {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_.size();
  }
  size_t maxInFlight() const { return max_in_flight_.load(); }
  void resetMaxInFlight() { max_in_flight_ = 0; }

 private:
  void enqueue(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back({std::chrono::steady_clock::now() + delay_, std::move(job)});
    max_in_flight_ = std::max(max_in_flight_.load(), jobs_.size());
    cv_.notify_all();
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || (!hold_ && !jobs_.empty()); });
      if (stop_ && jobs_.empty()) return;
      if (hold_ && !stop_) continue;
      auto [when, job] = std::move(jobs_.front());
      lock.unlock();
      std::this_thread::sleep_until(when);
      job();
      lock.lock();
      jobs_.pop_front();
    }
  }
  const std::chrono::microseconds delay_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> jobs_;
  std::atomic<size_t> max_in_flight_{0};
  bool stop_ = false, hold_ = false;
  std::thread worker_;
};

// A device in the shape of the polled initiator: every request, synchronous
// ones included, completes only when its owner's loop calls
// reapCompletions(). A synchronous call made on that loop's own thread
// would wait for itself: it gives up after 3 s with an error, which the
// tests catch. Records which threads reaped.
class PolledDevice final : public test::WrappedDevice {
 public:
  explicit PolledDevice(std::shared_ptr<BlockDevice> inner)
      : WrappedDevice(std::move(inner)), efd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~PolledDevice() override { ::close(efd_); }
  Status read(uint64_t o, void* b, size_t n) override {
    return viaLoop([=, this] { return inner_->read(o, b, n); });
  }
  Status write(uint64_t o, const void* b, size_t n) override {
    return viaLoop([=, this] { return inner_->write(o, b, n); });
  }
  Status flush() override {
    ++flushes;
    return viaLoop([this] { return inner_->flush(); });
  }
  Status discard(uint64_t o, uint64_t n) override {
    return viaLoop([=, this] { return inner_->discard(o, n); });
  }
  Status writeZeroes(uint64_t o, uint64_t n) override {
    return viaLoop([=, this] { return inner_->writeZeroes(o, n); });
  }
  void readAsync(uint64_t o, void* b, size_t n, IoCompletion* done) override {
    push([=, this] { done->done(inner_->read(o, b, n)); });
  }
  void writeAsync(uint64_t o, const void* b, size_t n, IoCompletion* done) override {
    push([=, this] { done->done(inner_->write(o, b, n)); });
  }
  int completionFd() override { return efd_; }
  void reapCompletions() override {
    eventfd_t v;
    (void)::eventfd_read(efd_, &v);
    std::deque<std::function<void()>> jobs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs.swap(jobs_);
      reapers_.insert(std::this_thread::get_id());
      max_batch_ = std::max(max_batch_, jobs.size());
    }
    for (auto& j : jobs) j();
  }
  size_t reaperThreads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reapers_.size();
  }
  size_t maxBatch() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_batch_;
  }
  std::atomic<int> flushes{0};

 private:
  void push(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    (void)::eventfd_write(efd_, 1);
  }
  Status viaLoop(std::function<Status()> op) {
    auto state = std::make_shared<std::pair<std::promise<Status>, std::atomic<bool>>>();
    auto fut = state->first.get_future();
    push([state, op] { state->first.set_value(op()); });
    if (fut.wait_for(3s) != std::future_status::ready) {
      return makeError("a synchronous call waited for the loop that should reap it", kBlockIo);
    }
    return fut.get();
  }
  const int efd_;
  std::mutex mu_;
  std::deque<std::function<void()>> jobs_;
  std::set<std::thread::id> reapers_;
  size_t max_batch_ = 0;
};

class Flag final : public IoCompletion {
 public:
  void done(Status s) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = std::move(s);
    fired_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return fired_; });
  }
  bool ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_ && status_.ok();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool fired_ = false;
  Status status_;
};

TEST(BufferPoolTest, ReusesBuffersAndKeepsAtMostItsBound) {
  BufferPool pool(64 * 1024);
  auto a = pool.take(100);
  EXPECT_EQ(a.capacity, 4096u);
  auto b = pool.take(5000);
  EXPECT_EQ(b.capacity, 8192u);
  char* a_data = a.data;
  pool.give(a);
  EXPECT_EQ(pool.freeBytes(), 4096u);
  auto c = pool.take(4096);
  EXPECT_EQ(c.data, a_data) << "a freed buffer of the same class is reused";
  EXPECT_EQ(pool.freeBytes(), 0u);
  pool.give(b);
  pool.give(c);
  auto big = pool.take(kMiB);  // beyond the bound: freed on return, not kept
  pool.give(big);
  EXPECT_EQ(pool.freeBytes(), 4096u + 8192u);
}

// An aligned async write keeps its stripes until the device completes it:
// an unaligned write to the same block (read-modify-write) waits, and lands
// on top of it.
TEST(ByteRangeIoAsyncTest, AnAsyncWriteHoldsItsBlocksUntilItCompletes) {
  std::string dir = tempDir();
  auto file = FileBlockDevice::create(dir + "/f.img", kMiB, 4096);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto dev = std::make_shared<DeferredDevice>(*file, 0us);
  ByteRangeIo io(dev);
  dev->hold(true);
  std::vector<char> block(4096, 'A');
  Flag first;
  io.writeAsync(8192, block.data(), block.size(), &first);
  EXPECT_EQ(dev->queued(), 1u);
  std::atomic<bool> rmw_done{false};
  std::thread rmw([&] {
    char c = 'B';
    EXPECT_TRUE(io.write(8192 + 10, &c, 1).ok());
    rmw_done = true;
  });
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(rmw_done) << "the read-modify-write ran while the async write to its block was in flight";
  dev->hold(false);
  ASSERT_TRUE(first.wait(5s));
  EXPECT_TRUE(first.ok());
  rmw.join();
  std::vector<char> back(4096);
  ASSERT_TRUE((*file)->read(8192, back.data(), back.size()).ok());
  std::vector<char> want(4096, 'A');
  want[10] = 'B';
  EXPECT_TRUE(back == want);
  EXPECT_TRUE(removeTree(dir).ok());
}

TEST(FuseDiskAsyncTest, OneWorkerKeepsManyRequestsInFlight) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/fuse";
  std::string dir = tempDir();
  auto file = FileBlockDevice::create(dir + "/backing.img", 16 * kMiB, 4096);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto dev = std::make_shared<DeferredDevice>(*file, 2000us);
  FuseDiskOptions o;
  o.max_threads = 1;  // a synchronous device could then have one request at a time
  o.direct_io = true;
  auto disk = FuseDisk::mount(dir + "/disk", dev, o);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  int fd = ::open((dir + "/disk").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);

  // 8 threads write their own blocks, then read them back. (Only reads
  // are counted for concurrency: the kernel holds the file's inode lock
  // around each synchronous direct write.)
  std::atomic<int> mismatches{0}, failures{0};
  auto blockOf = [](int t, int k) { return (static_cast<uint64_t>(t) * 512 + k) * 4096; };
  auto bytesOf = [](int t, int k) {
    std::vector<char> data(4096);
    std::mt19937 rng(t * 1000 + k);
    for (auto& c : data) c = static_cast<char>(rng());
    return data;
  };
  auto inThreads = [](const std::function<void(int)>& body) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) threads.emplace_back(body, t);
    for (auto& th : threads) th.join();
  };
  inThreads([&](int t) {
    for (int k = 0; k < 40; ++k) {
      auto data = bytesOf(t, k);
      if (::pwrite(fd, data.data(), data.size(), static_cast<off_t>(blockOf(t, k))) != 4096) ++failures;
    }
  });
  dev->resetMaxInFlight();
  inThreads([&](int t) {
    for (int k = 0; k < 40; ++k) {
      std::vector<char> back(4096);
      if (::pread(fd, back.data(), back.size(), static_cast<off_t>(blockOf(t, k))) != 4096) {
        ++failures;
        continue;
      }
      if (back != bytesOf(t, k)) ++mismatches;
    }
  });
  ::close(fd);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_GE(dev->maxInFlight(), 4u) << "the one worker waited for each request instead of handing it on";
  EXPECT_EQ((*disk)->stats().errors, 0u);
  EXPECT_TRUE((*disk)->unmount().ok());
  EXPECT_TRUE(removeTree(dir).ok());
}

// A device with a completion fd gets FuseDisk's polled loop: one thread
// reads /dev/fuse and reaps; what may block (fsync, fallocate, unaligned
// I/O) runs on its workers, whose synchronous calls the loop completes.
TEST(FuseDiskAsyncTest, PolledLoopServesEveryRequestKindWithoutWaitingOnItself) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/fuse";
  std::string dir = tempDir();
  auto file = FileBlockDevice::create(dir + "/backing.img", 16 * kMiB, 4096);
  ASSERT_TRUE(file.ok()) << file.error().message;
  auto dev = std::make_shared<PolledDevice>(*file);
  FuseDiskOptions o;
  o.direct_io = true;
  auto disk = FuseDisk::mount(dir + "/disk", dev, o);
  ASSERT_TRUE(disk.ok()) << disk.error().message;
  int fd = ::open((dir + "/disk").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<char> model(16 * kMiB, 0);
  std::mutex model_mu;
  std::atomic<int> failures{0};
  // Aligned writes from 8 threads, each in its own MiB; then unaligned
  // ones (read-modify-write on a worker) over the same blocks.
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int k = 0; k < 60; ++k) {
        bool aligned = k % 3 != 2;
        uint64_t off = t * kMiB + (aligned ? (rng() % 256) * 4096 : rng() % (kMiB - 9000));
        size_t len = aligned ? 4096 * (1 + rng() % 2) : 1 + rng() % 9000;
        std::vector<char> data(len);
        for (auto& c : data) c = static_cast<char>(rng());
        if (::pwrite(fd, data.data(), len, static_cast<off_t>(off)) != static_cast<ssize_t>(len)) {
          ++failures;
          continue;
        }
        std::lock_guard<std::mutex> lock(model_mu);
        std::memcpy(model.data() + off, data.data(), len);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(::fsync(fd), 0) << std::strerror(errno);
  EXPECT_GE(dev->flushes.load(), 1);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * kMiB + 100, 10000), 0)
      << std::strerror(errno);
  std::memset(model.data() + 3 * kMiB + 100, 0, 10000);
  std::vector<char> back(16 * kMiB);
  ASSERT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == model) << "the disk does not hold what was written";
  std::vector<char> part(5000);
  ASSERT_EQ(::pread(fd, part.data(), part.size(), 5 * kMiB + 7), 5000);  // unaligned read, on a worker
  EXPECT_EQ(std::memcmp(part.data(), model.data() + 5 * kMiB + 7, 5000), 0);
  ::close(fd);
  EXPECT_EQ((*disk)->stats().errors, 0u) << "a synchronous call waited on the loop that reaps it";
  EXPECT_EQ(dev->reaperThreads(), 1u) << "completions were reaped on more than the loop's thread";
  EXPECT_TRUE((*disk)->unmount().ok());
  EXPECT_TRUE(removeTree(dir).ok());
}

}  // namespace
}  // namespace offcore
