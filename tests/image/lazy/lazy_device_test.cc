#include "image/lazy/lazy_device.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/files.h"

namespace offcore {
namespace {

// A back end in memory: chunk i holds bytes (i + offset) % 251; counts and
// can fail or stall fetches.
class MemorySource final : public ChunkSource {
 public:
  MemorySource(uint64_t size, uint32_t chunk) : size_(size), chunk_(chunk) {}
  uint64_t rawSize() const override { return size_; }
  uint32_t chunkSize() const override { return chunk_; }
  Status fetch(uint64_t index, std::string& out) override {
    ++fetches;
    if (static_cast<int64_t>(index) == hold_chunk) {
      held = true;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    if (fail || static_cast<int64_t>(index) == bad_chunk) return makeError("back end down", 5);
    uint64_t off = index * chunk_, n = std::min<uint64_t>(chunk_, size_ - off);
    out.resize(n);
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<char>((off + i) % 251);
    fetched += n;
    return {};
  }
  uint64_t bytesFetched() const override { return fetched.load(); }
  std::string describe() const override { return "memory"; }

  std::atomic<int> fetches{0};
  std::atomic<uint64_t> fetched{0};
  std::atomic<bool> fail{false};
  std::atomic<int64_t> bad_chunk{-1};  // this chunk alone fails
  int delay_ms = 0;
  int64_t hold_chunk = -1;  // its fetch waits for release (a slow reader's miss)
  std::atomic<bool> held{false}, release{false};

 private:
  uint64_t size_;
  uint32_t chunk_;
};

class LazyDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-lazydev-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    cache_ = std::make_shared<ChunkCache>(dir_, 64 << 20);
    ASSERT_TRUE(cache_->init().ok());
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
  std::shared_ptr<ChunkCache> cache_;
};

TEST_F(LazyDeviceTest, ReadsAcrossChunksAndPadsTheLastBlock) {
  auto src = std::make_unique<MemorySource>(3 * 8192 + 100, 8192);
  LazyDevice dev(std::move(src), cache_, "layer");
  EXPECT_EQ(dev.sizeBytes(), 7u * 4096);  // rounded up to whole 4 KiB blocks
  std::string buf(6 * 4096, '\xee');
  ASSERT_TRUE(dev.read(4096, buf.data(), buf.size()).ok());
  for (size_t i = 0; i < 3 * 8192 + 100 - 4096; ++i) ASSERT_EQ(buf[i], static_cast<char>((4096 + i) % 251)) << i;
  for (size_t i = 3 * 8192 + 100 - 4096; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0) << i;
  EXPECT_FALSE(dev.read(7 * 4096, buf.data(), 4096).ok());
  EXPECT_FALSE(dev.write(0, buf.data(), 4096).ok());
}

TEST_F(LazyDeviceTest, AChunkReadTwiceIsFetchedOnce) {
  auto src = std::make_unique<MemorySource>(1 << 20, 65536);
  auto* raw = src.get();
  LazyDevice dev(std::move(src), cache_, "layer");
  std::string buf(4096, 0);
  ASSERT_TRUE(dev.read(0, buf.data(), 4096).ok());
  ASSERT_TRUE(dev.read(8192, buf.data(), 4096).ok());
  EXPECT_EQ(raw->fetches.load(), 1);
  EXPECT_EQ(dev.stats().chunk_hits, 1u);
}

TEST_F(LazyDeviceTest, ConcurrentReadersOfOneChunkShareOneFetch) {
  auto src = std::make_unique<MemorySource>(1 << 20, 65536);
  auto* raw = src.get();
  raw->delay_ms = 100;
  LazyDevice dev(std::move(src), cache_, "layer");
  std::vector<std::thread> readers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    readers.emplace_back([&, i] {
      std::string buf(4096, 0);
      if (dev.read(4096 * i, buf.data(), 4096).ok()) ++ok;
    });
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(raw->fetches.load(), 1);
}

TEST_F(LazyDeviceTest, BackEndErrorsReachTheReaderAsEio) {
  auto src = std::make_unique<MemorySource>(1 << 20, 65536);
  auto* raw = src.get();
  LazyDevice dev(std::move(src), cache_, "layer");
  std::string buf(4096, 0);
  ASSERT_TRUE(dev.read(0, buf.data(), 4096).ok());
  raw->fail = true;
  EXPECT_TRUE(dev.read(0, buf.data(), 4096).ok());  // cached
  auto r = dev.read(65536, buf.data(), 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 5);
  raw->fail = false;
  EXPECT_TRUE(dev.read(65536, buf.data(), 4096).ok());  // recovers
  EXPECT_EQ(dev.stats().fetch_errors, 1u);
}

TEST_F(LazyDeviceTest, TraceRecordsReaderFirstTouchesAndPrefetchFollowsIt) {
  auto src = std::make_unique<MemorySource>(16 * 4096, 4096);
  auto* raw = src.get();
  LazyDevice dev(std::move(src), cache_, "layer");
  std::string buf(4096, 0);
  for (uint64_t c : {5, 2, 5, 9}) ASSERT_TRUE(dev.read(c * 4096, buf.data(), 4096).ok());
  EXPECT_EQ(dev.trace(), (std::vector<uint32_t>{5, 2, 9}));
  dev.resetTrace();
  EXPECT_TRUE(dev.trace().empty());
  dev.startPrefetch({12, 13}, /*fill=*/false);
  for (int i = 0; i < 200 && dev.stats().prefetched < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  dev.stopPrefetch();
  EXPECT_EQ(raw->fetches.load(), 5);
  EXPECT_TRUE(dev.trace().empty());  // prefetch is not a reader
  dev.startPrefetch({}, /*fill=*/true);
  // The 11 chunks nothing read yet (prefetched counts on from the 2 above).
  for (int i = 0; i < 200 && dev.stats().prefetched < 2 + 11; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  dev.stopPrefetch();
  EXPECT_EQ(raw->fetches.load(), 16);
}

// Readahead (issue 15): a sequential reader's misses grow into runs of
// chunks fetched as one request; the same read with readahead off makes one
// request per chunk.
TEST_F(LazyDeviceTest, ASequentialReadFetchesRunsOfChunks) {
  const uint64_t size = 32u << 20;
  uint64_t requests[2] = {0, 0};
  for (int on = 0; on < 2; ++on) {
    LazyDeviceOptions o;
    o.readahead_max_bytes = on ? 4u << 20 : 0;
    LazyDevice dev(std::make_unique<MemorySource>(size, 256 * 1024), cache_, "seq" + std::to_string(on), o);
    std::string buf(128 * 1024, 0);
    for (uint64_t off = 0; off < size; off += buf.size()) {
      ASSERT_TRUE(dev.read(off, buf.data(), buf.size()).ok());
      for (size_t i = 0; i < buf.size(); i += 4093) ASSERT_EQ(buf[i], static_cast<char>((off + i) % 251)) << off + i;
    }
    requests[on] = dev.stats().range_requests;
    EXPECT_EQ(dev.stats().chunk_fetches, 128u);
    if (on) {
      EXPECT_GT(dev.stats().readahead_chunks, 100u);
    }
  }
  EXPECT_EQ(requests[0], 128u);
  EXPECT_LE(requests[1] * 4, requests[0]) << requests[1] << " requests with readahead";
}

// A run that fails as a whole (one bad chunk in it) does not fail the chunk
// a reader asked for, nor its neighbours.
TEST_F(LazyDeviceTest, OneBadChunkFailsOnlyItself) {
  auto src = std::make_unique<MemorySource>(64 * 65536, 65536);
  src->bad_chunk = 2;
  LazyDevice dev(std::move(src), cache_, "bad");
  std::string buf(4096, 0);
  ASSERT_TRUE(dev.read(0, buf.data(), buf.size()).ok());
  ASSERT_TRUE(dev.read(1 * 65536, buf.data(), buf.size()).ok());  // sequential: the run 1..2 fails, 1 alone not
  EXPECT_EQ(buf[0], static_cast<char>(65536 % 251));
  EXPECT_FALSE(dev.read(2 * 65536, buf.data(), buf.size()).ok());
  ASSERT_TRUE(dev.read(3 * 65536, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf[0], static_cast<char>((3 * 65536) % 251));
}

TEST_F(LazyDeviceTest, RandomMissesDoNotReadAhead) {
  LazyDevice dev(std::make_unique<MemorySource>(64 * 65536, 65536), cache_, "rnd");
  std::string buf(4096, 0);
  for (uint64_t c : {40, 7, 22, 3, 60}) ASSERT_TRUE(dev.read(c * 65536, buf.data(), buf.size()).ok());
  EXPECT_EQ(dev.stats().range_requests, 5u);
  EXPECT_EQ(dev.stats().chunk_fetches, 5u);
  EXPECT_EQ(dev.stats().readahead_chunks, 0u);
}

TEST_F(LazyDeviceTest, ReadaheadStopsAtChunksAlreadyThere) {
  LazyDevice dev(std::make_unique<MemorySource>(64 * 65536, 65536), cache_, "stop");
  std::string buf(4096, 0);
  ASSERT_TRUE(dev.read(5 * 65536, buf.data(), buf.size()).ok());  // chunk 5 present
  ASSERT_TRUE(dev.read(2 * 65536, buf.data(), buf.size()).ok());
  ASSERT_TRUE(dev.read(3 * 65536, buf.data(), buf.size()).ok());  // sequential: a run from 3, cut at 5
  EXPECT_EQ(dev.stats().chunk_fetches, 4u);                       // 5, 2, then 3 and 4
  EXPECT_EQ(dev.stats().range_requests, 3u);
}

TEST_F(LazyDeviceTest, PrefetchMergesAdjacentChunksAndSkipsCachedOnes) {
  {
    LazyDevice warm(std::make_unique<MemorySource>(64 * 65536, 65536), cache_, "pf");
    std::string buf(4096, 0);
    ASSERT_TRUE(warm.read(30 * 65536, buf.data(), buf.size()).ok());  // chunk 30 in the cache
  }
  auto src = std::make_unique<MemorySource>(64 * 65536, 65536);
  auto* raw = src.get();
  LazyDevice dev(std::move(src), cache_, "pf");
  dev.startPrefetch({4, 5, 6, 7, 20, 30, 31}, /*fill=*/false);
  for (int i = 0; i < 200 && dev.stats().prefetched < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  dev.stopPrefetch();
  EXPECT_EQ(dev.stats().prefetched, 6u);
  EXPECT_EQ(dev.stats().range_requests, 3u);  // 4-7, 20, 31
  EXPECT_EQ(raw->fetches.load(), 6);
}

}  // namespace
}  // namespace offcore

namespace offcore {
namespace {

// Demand first (issue 15): while a reader's miss is being fetched, the
// prefetcher starts no new request; it resumes when the miss is answered.
TEST_F(LazyDeviceTest, PrefetchWaitsWhileAReadersMissIsFetched) {
  auto src = std::make_unique<MemorySource>(512 * 65536, 65536);
  src->delay_ms = 5;
  src->hold_chunk = 401;
  auto* raw = src.get();
  LazyDevice dev(std::move(src), cache_, "prio");
  std::vector<uint32_t> list;
  for (uint32_t c = 0; c < 400; c += 2) list.push_back(c);  // 200 runs: nothing merges
  dev.startPrefetch(list, /*fill=*/false);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::thread reader([&] {
    std::string buf(4096, 0);
    EXPECT_TRUE(dev.read(401 * 65536, buf.data(), buf.size()).ok());
  });
  while (!raw->held) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // runs already past the gate finish
  const int paused_at = raw->fetches.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(raw->fetches.load(), paused_at) << "prefetch went on while a reader waited";
  EXPECT_LT(paused_at, 150) << "the list was done before the reader came";
  raw->release = true;
  reader.join();
  for (int i = 0; i < 500 && dev.stats().prefetched < list.size(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(dev.stats().prefetched, list.size());
  EXPECT_GE(dev.stats().prefetch_yields, 1u);
  dev.stopPrefetch();
}

// The fill is paced to its bandwidth bound; the prefetch list is not.
TEST_F(LazyDeviceTest, TheFillKeepsToItsBandwidth) {
  LazyDeviceOptions o;
  o.fill_bytes_per_sec = 8u << 20;  // 4 MiB at 8 MiB/s: about half a second
  LazyDevice dev(std::make_unique<MemorySource>(64 * 65536, 65536), cache_, "paced", o);
  auto start = std::chrono::steady_clock::now();
  dev.startPrefetch({}, /*fill=*/true);
  for (int i = 0; i < 1000 && dev.stats().filled < 64; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  dev.stopPrefetch();
  EXPECT_EQ(dev.stats().filled, 64u);
  EXPECT_GE(took, 0.35) << "4 MiB filled in " << took << " s at 8 MiB/s";
}

// Stopping does not wait out the pacing.
TEST_F(LazyDeviceTest, StoppingAPacedFillIsPrompt) {
  LazyDeviceOptions o;
  o.fill_bytes_per_sec = 64 << 10;  // one 64K chunk per second
  LazyDevice dev(std::make_unique<MemorySource>(64 * 65536, 65536), cache_, "stop-paced", o);
  dev.startPrefetch({}, /*fill=*/true);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto start = std::chrono::steady_clock::now();
  dev.stopPrefetch();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  EXPECT_LT(dev.stats().filled, 64u);
}

}  // namespace
}  // namespace offcore
