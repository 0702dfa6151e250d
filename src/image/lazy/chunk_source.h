// ChunkSource: a back end the lazy loader fetches one chunk of a layer's
// filesystem image from (the registry's chunked blob, or the layer's volume
// in a storage gateway). Small on purpose, like a bdev's ops table.
//
// fetch() blocks; it is called from FUSE worker threads and the prefetch
// thread, concurrently for different chunks. A returned chunk is verified
// (registry: sha256 of the chunk); an Error carries ETIMEDOUT when the back
// end could not be reached within its fetch timeout (FailFastSource then
// treats it as down), EIO when it answered wrongly (a corrupt chunk).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  virtual uint64_t rawSize() const = 0;    // bytes of the layer image
  virtual uint32_t chunkSize() const = 0;  // power of two
  uint64_t chunkCount() const { return (rawSize() + chunkSize() - 1) / chunkSize(); }
  // Fills out with chunk `index` (chunkSize() bytes, fewer for the last).
  virtual Status fetch(uint64_t index, std::string& out) = 0;
  // Chunks first .. first+count-1 in one request where the back end allows
  // (one HTTP range, one block read); out gets count chunks. The default
  // fetches them one by one. All or nothing: an error leaves out unusable.
  virtual Status fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) {
    out.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      if (Status s = fetch(first + i, out[i]); !s.ok()) return s;
    }
    return {};
  }
  // Bytes moved over the network so far (compressed, for the registry).
  virtual uint64_t bytesFetched() const = 0;
  virtual std::string describe() const = 0;  // for logs and listings
};

}  // namespace offcore
