// The two ChunkSource back ends.
//  RegistryChunkSource: HTTP range reads of a chunked blob, each chunk
//    decompressed and checked against its sha256 from the index.
//  VolumeChunkSource: block reads of the layer's volume in a storage
//    gateway through the NVMe/TCP initiator, each chunk checked against its
//    sha256 from the index conversion recorded (which itself reconnects and
//    stalls I/O up to its io_timeout while the gateway is away).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "block/block_device.h"
#include "image/chunk_index.h"
#include "image/lazy/chunk_source.h"
#include "image/registry_client.h"

namespace offcore {

class RegistryChunkSource final : public ChunkSource {
 public:
  // Fetches and validates the index blob. retry_for: how long a chunk fetch
  // keeps retrying an unreachable registry before the read fails with EIO.
  static Result<std::unique_ptr<RegistryChunkSource>> open(std::shared_ptr<oci::RegistryClient> client,
                                                           std::string repository, const std::string& index_digest,
                                                           std::chrono::milliseconds retry_for);
  uint64_t rawSize() const override { return index_.raw_size; }
  uint32_t chunkSize() const override { return index_.chunk_size; }
  Status fetch(uint64_t index, std::string& out) override;
  Status fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) override;
  uint64_t bytesFetched() const override { return fetched_.load(); }
  std::string describe() const override;

 private:
  RegistryChunkSource(std::shared_ptr<oci::RegistryClient> c, std::string repo, ChunkIndex idx,
                      std::chrono::milliseconds retry_for)
      : client_(std::move(c)), repository_(std::move(repo)), index_(std::move(idx)), retry_for_(retry_for) {}
  std::shared_ptr<oci::RegistryClient> client_;
  std::string repository_;
  ChunkIndex index_;
  std::chrono::milliseconds retry_for_;
  std::atomic<uint64_t> fetched_{0};
};

class VolumeChunkSource final : public ChunkSource {
 public:
  // index: the raw chunk digests of the layer image (indexRawImage), from
  // a trusted place (the catalog). Every fetched chunk is checked against
  // it, so a volume altered on the gateway or on the wire reads as EIO.
  static Result<std::unique_ptr<VolumeChunkSource>> open(std::shared_ptr<BlockDevice> device, ChunkIndex index,
                                                         std::string uri);
  uint64_t rawSize() const override { return index_.raw_size; }
  uint32_t chunkSize() const override { return index_.chunk_size; }
  Status fetch(uint64_t index, std::string& out) override;
  Status fetchRun(uint64_t first, uint64_t count, std::vector<std::string>& out) override;
  uint64_t bytesFetched() const override { return fetched_.load(); }
  std::string describe() const override { return uri_; }

 private:
  VolumeChunkSource(std::shared_ptr<BlockDevice> device, ChunkIndex index, std::string uri)
      : device_(std::move(device)), index_(std::move(index)), uri_(std::move(uri)) {}
  std::shared_ptr<BlockDevice> device_;
  ChunkIndex index_;
  std::string uri_;
  std::atomic<uint64_t> fetched_{0};
};

}  // namespace offcore
