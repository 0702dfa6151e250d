#include "image/lazy/sources.h"

#include <thread>

#include "base/log.h"
#include "image/chunk_codec.h"

namespace offcore {

Result<std::unique_ptr<RegistryChunkSource>> RegistryChunkSource::open(std::shared_ptr<oci::RegistryClient> client,
                                                                       std::string repository,
                                                                       const std::string& index_digest,
                                                                       std::chrono::milliseconds retry_for) {
  OC_ASSIGN_OR_RETURN(std::string bytes, client->getBlob(repository, index_digest, 64 << 20));
  OC_ASSIGN_OR_RETURN(auto idx, parseChunkIndex(bytes.data(), bytes.size()));
  return std::unique_ptr<RegistryChunkSource>(
      new RegistryChunkSource(std::move(client), std::move(repository), std::move(idx), retry_for));
}

std::string RegistryChunkSource::describe() const {
  return client_->baseUrl() + "/" + repository_ + "@" + index_.blob_digest;
}

Status RegistryChunkSource::fetch(uint64_t index, std::string& out) {
  if (index >= index_.chunks.size()) return makeError("chunk " + std::to_string(index) + " out of range", 5);
  const ChunkEntry& e = index_.chunks[index];
  auto deadline = std::chrono::steady_clock::now() + retry_for_;
  auto backoff = std::chrono::milliseconds(100);
  int corrupt = 0;
  while (true) {
    auto stored = client_->getBlobRange(repository_, index_.blob_digest, e.offset, e.stored_len);
    if (stored.ok()) {
      fetched_ += stored->size();
      Status s = decodeChunk(e, index, stored->data(), stored->size(), out);
      if (s.ok()) return s;
      // A torn transfer can look like corruption: fetch once more, then
      // report EIO. Wrong bytes never reach the reader.
      if (++corrupt >= 2) {
        spdlog::error("{}: {}", describe(), s.error().message);
        return makeError(s.error().message, 5);
      }
      continue;
    }
    if (std::chrono::steady_clock::now() + backoff > deadline) {
      return makeError("chunk " + std::to_string(index) + " of " + describe() + ": " + stored.error().message, 5);
    }
    spdlog::warn("chunk {} of {}: {}; retrying", index, describe(), stored.error().message);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

Status VolumeChunkSource::fetch(uint64_t index, std::string& out) {
  uint64_t off = index * chunk_size_;
  if (off >= raw_size_) return makeError("chunk " + std::to_string(index) + " out of range", 5);
  uint64_t len = std::min<uint64_t>(chunk_size_, raw_size_ - off);
  uint32_t bs = device_->blockSize();
  uint64_t aligned = (len + bs - 1) / bs * bs;
  out.resize(aligned);
  Status s = device_->read(off, out.data(), aligned);
  if (!s.ok()) return makeError("chunk " + std::to_string(index) + " of " + uri_ + ": " + s.error().message, 5);
  out.resize(len);
  fetched_ += aligned;
  return {};
}

}  // namespace offcore
