// LazyDevice: a read-only BlockDevice over a ChunkSource and the ChunkCache.
// This is what a layer's block file on the host is: every read maps to the
// chunks it covers; a cached chunk is read locally, a missing one is fetched
// once (concurrent readers of the same chunk wait for one fetch) and cached.
//
// A miss fetches a run of chunks in one request (ChunkSource::fetchRun):
// readahead, when a reader's miss follows a chunk readers already touched
// (sequential access), grows the run 2, 4, 8... chunks up to
// readahead_max_bytes; prefetch merges the adjacent chunks of its list and
// fetches up to prefetch_workers runs at once.
//
// It also records the order in which readers first touched chunks (the
// profile `offcore image profile` stores) and runs one background thread
// that prefetches a given chunk list, then optionally every other chunk
// (the fill, paced to fill_bytes_per_sec).
//
// Demand first: while a reader's miss is being fetched, prefetch and fill
// start no new request (a run already in flight finishes; runs are at most
// prefetch_run_bytes), so a reader waits behind at most prefetch_workers
// runs, never behind the whole list.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "block/block_device.h"
#include "image/lazy/chunk_cache.h"
#include "image/lazy/chunk_source.h"

namespace offcore {

struct LazyDeviceStats {
  uint64_t reads = 0, read_bytes = 0;
  uint64_t chunk_hits = 0, chunk_fetches = 0, fetch_errors = 0, coalesced = 0;
  uint64_t prefetched = 0;
  uint64_t range_requests = 0;    // requests to the back end (a run is one)
  uint64_t readahead_chunks = 0;  // fetched ahead of a sequential reader
  uint64_t bytes_fetched = 0;     // from the back end, as sent
  uint64_t filled = 0;            // chunks the fill fetched (after the prefetch list)
  uint64_t prefetch_yields = 0;   // prefetch/fill runs held back for a reader's miss
};

struct LazyDeviceOptions {
  // Largest readahead run; 0 turns readahead off (every miss one chunk).
  uint64_t readahead_max_bytes = 4u << 20;
  // Largest run a prefetch request merges.
  uint64_t prefetch_run_bytes = 4u << 20;
  // Prefetch runs fetched at once (a reader's miss still goes on its own).
  unsigned prefetch_workers = 4;
  // The fill's bandwidth bound (bytes/s; 0 = unbounded). The prefetch list
  // is not paced: it is what the container reads first.
  uint64_t fill_bytes_per_sec = 64u << 20;
};

class LazyDevice final : public BlockDevice {
 public:
  // cache_key: the layer's identity in the cache (stable across restarts).
  LazyDevice(std::unique_ptr<ChunkSource> source, std::shared_ptr<ChunkCache> cache, std::string cache_key,
             LazyDeviceOptions options = {});
  ~LazyDevice() override;

  uint64_t sizeBytes() const override;
  uint32_t blockSize() const override { return 4096; }
  Status read(uint64_t offset, void* buf, size_t len) override;
  Status write(uint64_t, const void*, size_t) override {
    return makeError("layer images are read-only", kBlockReadOnly);
  }
  Status flush() override { return {}; }
  Status discard(uint64_t, uint64_t) override { return makeError("layer images are read-only", kBlockReadOnly); }
  Status writeZeroes(uint64_t, uint64_t) override { return makeError("layer images are read-only", kBlockReadOnly); }

  // Starts the background thread: `first` in order, then (fill) the rest.
  void startPrefetch(std::vector<uint32_t> first, bool fill);
  void stopPrefetch();

  std::vector<uint32_t> trace() const;  // first-touch order of reader accesses
  void resetTrace();
  LazyDeviceStats stats() const;
  const ChunkSource& source() const { return *source_; }

 private:
  // Whole chunk: cache or fetch. A demand miss may read ahead.
  Status chunk(uint64_t index, std::string& out, bool demand);
  // Fetches up to `want` chunks from index on (fewer where one is cached or
  // in flight already) as one run, or waits for the fetch of index already
  // in flight; out gets chunk `index`. ahead: counted as readahead;
  // fetched (if set): how many chunks this call fetched.
  Status fetchRun(uint64_t index, uint64_t want, std::string& out, bool ahead, uint64_t* fetched);
  void touch(uint64_t index);  // records a reader's first touch
  // Prefetch side: waits while a reader's miss is in flight, then (paced)
  // for the fill's next slot. false: stopping.
  bool waitTurn(uint64_t bytes, bool paced);
  uint64_t chunkLength(uint64_t index) const;
  struct Inflight;

  std::unique_ptr<ChunkSource> source_;
  std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Inflight>> inflight_;
  const LazyDeviceOptions options_;
  std::vector<uint32_t> trace_;
  std::vector<bool> touched_;
  std::vector<bool> present_;     // fetched or seen cached by this device (a hint: the cache may evict)
  uint64_t ra_window_ = 1;        // the next readahead run, in chunks
  unsigned demand_ = 0;           // readers' misses being fetched
  std::condition_variable turn_;  // demand_ reached 0, or stopping
  std::chrono::steady_clock::time_point pace_until_{};  // the fill's next free slot
  LazyDeviceStats stats_;
  std::thread prefetcher_;
  std::atomic<bool> stop_{false};
};

}  // namespace offcore
