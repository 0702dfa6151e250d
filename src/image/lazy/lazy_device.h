// LazyDevice: a read-only BlockDevice over a ChunkSource and the ChunkCache.
// This is what a layer's block file on the host is: every read maps to the
// chunks it covers; a cached chunk is read locally, a missing one is fetched
// once (concurrent readers of the same chunk wait for one fetch) and cached.
//
// It also records the order in which readers first touched chunks (the
// profile `offcore image profile` stores) and runs one background thread
// that prefetches a given chunk list, then optionally every other chunk.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "image/lazy/chunk_cache.h"
#include "image/lazy/chunk_source.h"
#include "storage/block_device.h"

namespace offcore {

struct LazyDeviceStats {
  uint64_t reads = 0, read_bytes = 0;
  uint64_t chunk_hits = 0, chunk_fetches = 0, fetch_errors = 0, coalesced = 0;
  uint64_t prefetched = 0;
  uint64_t bytes_fetched = 0;  // from the back end, as sent
};

class LazyDevice final : public BlockDevice {
 public:
  // cache_key: the layer's identity in the cache (stable across restarts).
  LazyDevice(std::unique_ptr<ChunkSource> source, std::shared_ptr<ChunkCache> cache, std::string cache_key);
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
  Status chunk(uint64_t index, std::string& out);  // whole chunk: cache or fetch
  void touch(uint64_t index);                      // records a reader's first touch
  uint64_t chunkLength(uint64_t index) const;
  struct Inflight;

  std::unique_ptr<ChunkSource> source_;
  std::shared_ptr<ChunkCache> cache_;
  const std::string key_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Inflight>> inflight_;
  std::vector<uint32_t> trace_;
  std::vector<bool> touched_;
  LazyDeviceStats stats_;
  std::thread prefetcher_;
  std::atomic<bool> stop_{false};
};

}  // namespace offcore
