// Chunk indexes and chunk data come from registries: parsing and decoding
// must turn any bytes into a value or an error, never a crash or an
// unbounded allocation.
//
// Input: one mode byte, two little-endian length bytes, that many bytes of
// index (clamped), and the rest as stored chunk data. Mode bit 0 re-seals the
// index CRC first, so mutations reach the field checks and successful parses;
// bits 1-2 pick the codec of a synthetic entry decoded from the rest.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/crc32c.h"
#include "image/chunk_codec.h"
#include "image/chunk_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore;
  if (size < 3) return 0;
  uint8_t mode = data[0];
  size_t len = static_cast<size_t>(data[1]) | static_cast<size_t>(data[2]) << 8;
  data += 3, size -= 3;
  if (len > size) len = size;
  std::string index(reinterpret_cast<const char*>(data), len);
  std::string rest(reinterpret_cast<const char*>(data) + len, size - len);
  if ((mode & 1) != 0 && index.size() >= 4) {
    uint32_t crc = crc32c(0, index.data(), index.size() - 4);
    for (int i = 0; i < 4; i++) index[index.size() - 4 + i] = static_cast<char>(crc >> (8 * i));
  }

  std::string out;
  auto parsed = parseChunkIndex(index.data(), index.size());
  if (parsed.ok()) {
    // Every field is validated, so an accepted index has one encoding.
    if (serializeChunkIndex(*parsed) != index) __builtin_trap();
    for (size_t i = 0; i < parsed->chunks.size() && i < 16; i++) {
      const ChunkEntry& e = parsed->chunks[i];
      if (e.offset > rest.size() || e.stored_len > rest.size() - e.offset) break;
      Status s = decodeChunk(e, i, rest.data() + e.offset, e.stored_len, out);
      if (s.ok() && out.size() != e.raw_len) __builtin_trap();
      if (!s.ok() && s.error().code != EIO) __builtin_trap();
    }
  }

  // The decoders themselves, on arbitrary bytes; the sha256 is that of the
  // rest itself, so raw entries of the right size decode successfully.
  ChunkEntry e;
  e.codec = static_cast<ChunkCodec>((mode >> 1) % 3);
  e.stored_len = static_cast<uint32_t>(rest.size());
  e.raw_len = e.codec == ChunkCodec::kRaw ? e.stored_len : static_cast<uint32_t>((mode >> 3) * 4096 + rest.size());
  std::string hex = sha256Hex(rest.data(), rest.size());
  for (size_t i = 0; i < 32; i++) e.sha256[i] = static_cast<uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  Status s = decodeChunk(e, 0, rest.data(), rest.size(), out);
  if (e.codec == ChunkCodec::kRaw && rest.size() <= kMaxChunkSize && (!s.ok() || out != rest)) __builtin_trap();
  if (!s.ok() && s.error().code != EIO) __builtin_trap();
  return 0;
}
