#include "image/chunk_index.h"

#include <lz4.h>
#include <zstd.h>

#include <cstring>

#include "base/crc32c.h"

namespace offcore {
namespace {

void putU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(static_cast<char>(v >> (8 * i)));
}

void putU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t getU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

uint64_t getU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

bool validDigest(const std::string& d) {
  if (d.size() != 71 || d.compare(0, 7, "sha256:") != 0) return false;
  for (size_t i = 7; i < d.size(); i++) {
    char c = d[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Error bad(const std::string& what) {
  return makeError("chunk index: " + what + "; re-fetch or re-convert the layer", EINVAL);
}

}  // namespace

const char* chunkCodecName(ChunkCodec codec) {
  switch (codec) {
    case ChunkCodec::kRaw: return "raw";
    case ChunkCodec::kZstd: return "zstd";
    case ChunkCodec::kLz4: return "lz4";
  }
  return "?";
}

uint64_t maxStoredLen(ChunkCodec codec, uint32_t raw_len) {
  switch (codec) {
    case ChunkCodec::kRaw: return raw_len;
    case ChunkCodec::kZstd: return ZSTD_compressBound(raw_len);
    case ChunkCodec::kLz4:
      return raw_len > static_cast<uint32_t>(LZ4_MAX_INPUT_SIZE)
                 ? 0
                 : static_cast<uint64_t>(LZ4_compressBound(static_cast<int>(raw_len)));
  }
  return 0;
}

uint64_t chunkBlobSize(const ChunkIndex& index) {
  if (index.chunks.empty()) return 0;
  return index.chunks.back().offset + index.chunks.back().stored_len;
}

std::string serializeChunkIndex(const ChunkIndex& index) {
  std::string out;
  out.reserve(kChunkIndexHeaderSize + index.chunks.size() * kChunkEntrySize + 4);
  out.append(kChunkIndexMagic, sizeof kChunkIndexMagic);
  putU32(out, kChunkIndexVersion);
  putU32(out, index.chunk_size);
  putU64(out, index.raw_size);
  putU32(out, static_cast<uint32_t>(index.chunks.size()));
  putU32(out, 0);
  std::string digest = index.blob_digest.substr(0, kChunkDigestField - 1);
  digest.resize(kChunkDigestField, '\0');
  out += digest;
  for (const ChunkEntry& c : index.chunks) {
    putU64(out, c.offset);
    putU32(out, c.stored_len);
    putU32(out, c.raw_len);
    out.push_back(static_cast<char>(c.codec));
    out.append(7, '\0');
    out.append(reinterpret_cast<const char*>(c.sha256.data()), c.sha256.size());
  }
  putU32(out, crc32c(0, out.data(), out.size()));
  return out;
}

Result<ChunkIndex> parseChunkIndex(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (len < kChunkIndexHeaderSize + 4) return bad("truncated (" + std::to_string(len) + " bytes)");
  if (std::memcmp(p, kChunkIndexMagic, sizeof kChunkIndexMagic) != 0) return bad("bad magic, not an OCCHNK01 index");
  uint32_t version = getU32(p + 8);
  if (version != kChunkIndexVersion) return bad("unsupported version " + std::to_string(version));
  ChunkIndex index;
  index.chunk_size = getU32(p + 12);
  index.raw_size = getU64(p + 16);
  uint32_t count = getU32(p + 24);
  if (getU32(p + 28) != 0) return bad("reserved header field is not zero");
  uint32_t cs = index.chunk_size;
  if (cs < kMinChunkSize || cs > kMaxChunkSize || (cs & (cs - 1)) != 0)
    return bad("chunk size " + std::to_string(cs) + " is not a power of two in 4 KiB..16 MiB");
  uint64_t want = index.raw_size / cs + (index.raw_size % cs != 0 ? 1 : 0);
  if (want != count)
    return bad("chunk count " + std::to_string(count) + " does not match raw size " + std::to_string(index.raw_size));
  // Checked before anything is allocated from the count.
  if ((len - kChunkIndexHeaderSize - 4) / kChunkEntrySize < count ||
      len != kChunkIndexHeaderSize + static_cast<size_t>(count) * kChunkEntrySize + 4)
    return bad("size " + std::to_string(len) + " does not fit " + std::to_string(count) + " chunks");

  const char* d = reinterpret_cast<const char*>(p + 32);
  index.blob_digest.assign(d, strnlen(d, kChunkDigestField));
  if (!validDigest(index.blob_digest)) return bad("blob digest is not sha256:<64 lowercase hex>");
  for (size_t i = index.blob_digest.size(); i < kChunkDigestField; i++)
    if (d[i] != '\0') return bad("blob digest padding is not NUL");

  index.chunks.resize(count);
  uint64_t next_offset = 0;
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* e = p + kChunkIndexHeaderSize + static_cast<size_t>(i) * kChunkEntrySize;
    ChunkEntry& c = index.chunks[i];
    std::string at = "chunk " + std::to_string(i) + ": ";
    c.offset = getU64(e);
    c.stored_len = getU32(e + 8);
    c.raw_len = getU32(e + 12);
    if (e[16] > static_cast<uint8_t>(ChunkCodec::kLz4)) return bad(at + "unknown codec " + std::to_string(e[16]));
    c.codec = static_cast<ChunkCodec>(e[16]);
    for (int k = 17; k < 24; k++)
      if (e[k] != 0) return bad(at + "reserved bytes are not zero");
    std::memcpy(c.sha256.data(), e + 24, c.sha256.size());

    if (c.offset != next_offset)
      return bad(at + "offset " + std::to_string(c.offset) + ", want " + std::to_string(next_offset));
    uint64_t raw_want = i + 1 < count ? cs : index.raw_size - static_cast<uint64_t>(i) * cs;
    if (c.raw_len != raw_want)
      return bad(at + "raw length " + std::to_string(c.raw_len) + ", want " + std::to_string(raw_want));
    if (c.stored_len == 0 || c.stored_len > maxStoredLen(c.codec, c.raw_len))
      return bad(at + "stored length " + std::to_string(c.stored_len) + " impossible for " + chunkCodecName(c.codec));
    if (c.codec == ChunkCodec::kRaw && c.stored_len != c.raw_len)
      return bad(at + "raw chunk with stored length != raw length");
    // Cannot wrap: offsets sum u32 lengths over at most 2^32 chunks.
    next_offset = c.offset + c.stored_len;
  }

  size_t body = len - 4;
  uint32_t crc = getU32(p + body);
  if (crc32c(0, p, body) != crc) return bad("CRC32C mismatch, the index is corrupt");
  return index;
}

}  // namespace offcore
