// The index of a chunked layer blob (the registry form of a converted layer).
//
// A converted layer image (a raw filesystem image, e.g. EROFS) is cut into
// fixed-size chunks, each compressed on its own (zstd or lz4) or stored raw
// when compression does not help. The data blob is the concatenation of the
// stored chunks; this index says where each one is and what it must hash to,
// so any chunk can be fetched with one HTTP range request and verified alone.
//
// Binary layout, all integers little-endian (also in src/image/README.md):
//
//   off  size  field
//     0     8  magic "OCCHNK01"
//     8     4  u32 version = 1
//    12     4  u32 chunk_size (power of two, 4 KiB .. 16 MiB)
//    16     8  u64 raw_size (bytes of the uncompressed image)
//    24     4  u32 chunk_count == ceil(raw_size / chunk_size)
//    28     4  u32 reserved = 0
//    32    72  blob digest "sha256:" + 64 lowercase hex, NUL-padded (71 + 1)
//   104  56*n  entries:
//                +0  u64 offset in the data blob (0, then contiguous)
//                +8  u32 stored_len
//               +12  u32 raw_len (chunk_size, except a shorter last chunk)
//               +16  u8  codec (0 raw, 1 zstd, 2 lz4)
//               +17  7   reserved = 0 (keeps entries 8-byte aligned)
//               +24  32  sha256 of the raw (uncompressed) chunk
//   104+56n  4  u32 CRC32C (Castagnoli) of every byte before it
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

enum class ChunkCodec : uint8_t { kRaw = 0, kZstd = 1, kLz4 = 2 };

const char* chunkCodecName(ChunkCodec codec);

inline constexpr char kChunkIndexMagic[8] = {'O', 'C', 'C', 'H', 'N', 'K', '0', '1'};
inline constexpr uint32_t kChunkIndexVersion = 1;
inline constexpr size_t kChunkIndexHeaderSize = 104;
inline constexpr size_t kChunkEntrySize = 56;
inline constexpr size_t kChunkDigestField = 72;
inline constexpr uint32_t kMinChunkSize = 4 * 1024;
inline constexpr uint32_t kMaxChunkSize = 16 * 1024 * 1024;

struct ChunkEntry {
  uint64_t offset = 0;
  uint32_t stored_len = 0;
  uint32_t raw_len = 0;
  ChunkCodec codec = ChunkCodec::kRaw;
  std::array<uint8_t, 32> sha256{};  // of the raw (uncompressed) chunk
  bool operator==(const ChunkEntry&) const = default;
};

struct ChunkIndex {
  uint32_t chunk_size = 0;
  uint64_t raw_size = 0;
  std::string blob_digest;  // "sha256:<hex>" of the data blob
  std::vector<ChunkEntry> chunks;
  bool operator==(const ChunkIndex&) const = default;
};

// Largest stored_len a chunk of raw_len bytes may have with this codec.
uint64_t maxStoredLen(ChunkCodec codec, uint32_t raw_len);
// Size of the data blob the index describes.
uint64_t chunkBlobSize(const ChunkIndex& index);

std::string serializeChunkIndex(const ChunkIndex& index);
// Untrusted bytes: every field is validated, see the layout above.
Result<ChunkIndex> parseChunkIndex(const void* data, size_t len);

}  // namespace offcore
