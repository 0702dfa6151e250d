#include "image/lazy/sources.h"

#include <cerrno>
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
      // Unreachable, not wrong: ETIMEDOUT (FailFastSource marks the registry down).
      return makeError("chunk " + std::to_string(index) + " of " + describe() + ": " + stored.error().message,
                       ETIMEDOUT);
    }
    spdlog::warn("chunk {} of {}: {}; retrying", index, describe(), stored.error().message);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

// Adjacent chunks lie back to back in the blob: one range covers them. A
// run whose chunks are not contiguous (never written that way, but the
// index is data) is fetched chunk by chunk.
Status RegistryChunkSource::fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) {
  if (count == 0 || first >= index_.chunks.size() || count > index_.chunks.size() - first) {
    return makeError("chunks " + std::to_string(first) + "+" + std::to_string(count) + " out of range", 5);
  }
  uint64_t start = index_.chunks[first].offset, end = start;
  for (uint64_t i = first; i < first + count; ++i) {
    const ChunkEntry& e = index_.chunks[i];
    if (e.offset != end) return ChunkSource::fetchRun(first, count, out);
    end += e.stored_len;
  }
  if (count == 1) {
    out.resize(1);
    return fetch(first, out[0]);
  }
  auto deadline = std::chrono::steady_clock::now() + retry_for_;
  auto backoff = std::chrono::milliseconds(100);
  while (true) {
    auto stored = client_->getBlobRange(repository_, index_.blob_digest, start, end - start);
    if (stored.ok()) {
      fetched_ += stored->size();
      out.assign(count, std::string());
      bool good = stored->size() == end - start;
      for (uint64_t i = 0; good && i < count; ++i) {
        const ChunkEntry& e = index_.chunks[first + i];
        good = decodeChunk(e, first + i, stored->data() + (e.offset - start), e.stored_len, out[i]).ok();
      }
      if (good) return {};
      // A chunk that does not check out: each is fetched (and judged) alone.
      return ChunkSource::fetchRun(first, count, out);
    }
    if (std::chrono::steady_clock::now() + backoff > deadline) {
      return makeError("chunks " + std::to_string(first) + "+" + std::to_string(count) + " of " + describe() + ": " +
                           stored.error().message,
                       ETIMEDOUT);
    }
    spdlog::warn("chunks {}+{} of {}: {}; retrying", first, count, describe(), stored.error().message);
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

Result<std::unique_ptr<VolumeChunkSource>> VolumeChunkSource::open(std::shared_ptr<BlockDevice> device,
                                                                   ChunkIndex index, std::string uri) {
  // Raw chunks only: chunk i is at i * chunk_size on the volume.
  for (size_t i = 0; i < index.chunks.size(); ++i) {
    if (index.chunks[i].codec != ChunkCodec::kRaw || index.chunks[i].offset != i * uint64_t{index.chunk_size}) {
      return makeError("the chunk index of " + uri + " does not describe a raw volume layout; convert the image again",
                       EINVAL);
    }
  }
  if (device->sizeBytes() < index.raw_size) {
    return makeError(uri + " holds " + std::to_string(device->sizeBytes()) + " bytes, the layer image " +
                         std::to_string(index.raw_size) + "; convert the image again",
                     EIO);
  }
  return std::unique_ptr<VolumeChunkSource>(new VolumeChunkSource(std::move(device), std::move(index), std::move(uri)));
}

Status VolumeChunkSource::fetch(uint64_t index, std::string& out) {
  if (index >= index_.chunks.size()) return makeError("chunk " + std::to_string(index) + " out of range", EIO);
  const ChunkEntry& e = index_.chunks[index];
  uint32_t bs = device_->blockSize();
  uint64_t aligned = (uint64_t{e.raw_len} + bs - 1) / bs * bs;
  out.resize(aligned);
  Status s = device_->read(e.offset, out.data(), aligned);
  // The initiator gave up (io_timeout, or the gateway answers nothing but
  // errors): unreachable, ETIMEDOUT. A wrong chunk below is EIO.
  if (!s.ok()) {
    return makeError("chunk " + std::to_string(index) + " of " + uri_ + ": " + s.error().message, ETIMEDOUT);
  }
  out.resize(e.raw_len);
  fetched_ += aligned;
  if (auto v = verifyRawChunk(e, index, out.data(), out.size()); !v.ok()) {
    return makeError(uri_ + ": " + v.error().message, EIO);
  }
  return {};
}

}  // namespace offcore

namespace offcore {

// One block read for the run (the volume holds chunk i at i * chunk_size);
// each chunk is still checked against its own digest.
Status VolumeChunkSource::fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) {
  if (count == 0 || first >= index_.chunks.size() || count > index_.chunks.size() - first) {
    return makeError("chunks " + std::to_string(first) + "+" + std::to_string(count) + " out of range", EIO);
  }
  if (count == 1) {
    out.resize(1);
    return fetch(first, out[0]);
  }
  const uint32_t bs = device_->blockSize();
  const ChunkEntry& last = index_.chunks[first + count - 1];
  uint64_t start = index_.chunks[first].offset;
  uint64_t bytes = (last.offset + last.raw_len - start + bs - 1) / bs * bs;
  std::string buf(bytes, '\0');
  if (Status s = device_->read(start, buf.data(), bytes); !s.ok()) {
    return makeError(
        "chunks " + std::to_string(first) + "+" + std::to_string(count) + " of " + uri_ + ": " + s.error().message,
        ETIMEDOUT);
  }
  fetched_ += bytes;
  out.assign(count, std::string());
  for (uint64_t i = 0; i < count; ++i) {
    const ChunkEntry& e = index_.chunks[first + i];
    out[i] = buf.substr(e.offset - start, e.raw_len);
    if (auto v = verifyRawChunk(e, first + i, out[i].data(), out[i].size()); !v.ok()) {
      return makeError(uri_ + ": " + v.error().message, EIO);
    }
  }
  return {};
}

}  // namespace offcore
