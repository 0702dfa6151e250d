// ChunkCache: the SoC-side cache of fetched chunks, one file per chunk under
// a directory, with a byte limit and least-recently-used eviction. It
// survives restarts of the image service (the index is rebuilt from the
// files at start, oldest first by mtime).
//
// Thread-safe (one mutex around the index; file I/O happens outside it).
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "base/result.h"

namespace offcore {

struct ChunkCacheStats {
  uint64_t hits = 0, misses = 0, insertions = 0, evictions = 0;
  uint64_t bytes = 0, limit_bytes = 0, entries = 0;
};

class ChunkCache {
 public:
  ChunkCache(std::string dir, uint64_t limit_bytes);
  Status init();  // creates the directory, indexes what is there

  // key: a layer identity (hex); false when not cached.
  bool get(const std::string& key, uint64_t chunk, std::string& out);
  // Reads len bytes at offset of a cached chunk into dst, if the chunk is
  // cached with exactly expected_size bytes (anything else is a torn file:
  // a miss). The hot path: a 4 KiB read copies 4 KiB, not the chunk.
  bool read(const std::string& key, uint64_t chunk, uint64_t offset, size_t len, void* dst, uint64_t expected_size);
  void put(const std::string& key, uint64_t chunk, const std::string& data);
  void dropLayer(const std::string& key);
  ChunkCacheStats stats() const;

 private:
  std::string pathOf(const std::string& key, uint64_t chunk) const;
  void evictLocked();

  struct Entry {
    uint64_t bytes;
    std::list<std::string>::iterator lru;
  };
  const std::string dir_;
  const uint64_t limit_;
  mutable std::mutex mu_;
  std::list<std::string> lru_;  // front = most recent; names "key/chunk"
  std::unordered_map<std::string, Entry> entries_;
  ChunkCacheStats stats_;
};

}  // namespace offcore
