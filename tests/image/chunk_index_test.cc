#include "image/chunk_index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "base/crc32c.h"

namespace offcore {
namespace {

constexpr size_t kHdr = kChunkIndexHeaderSize;
constexpr size_t kEnt = kChunkEntrySize;

ChunkIndex validIndex() {
  ChunkIndex idx;
  idx.chunk_size = 64 * 1024;
  idx.raw_size = 3 * 64 * 1024 + 1000;
  idx.blob_digest = "sha256:" + std::string(64, 'a');
  uint64_t off = 0;
  const ChunkCodec codecs[] = {ChunkCodec::kZstd, ChunkCodec::kRaw, ChunkCodec::kLz4, ChunkCodec::kZstd};
  for (int i = 0; i < 4; i++) {
    ChunkEntry c;
    c.offset = off;
    c.raw_len = i < 3 ? idx.chunk_size : 1000;
    c.codec = codecs[i];
    c.stored_len = c.codec == ChunkCodec::kRaw ? c.raw_len : 500 + i;
    c.sha256.fill(static_cast<uint8_t>(i + 1));
    off += c.stored_len;
    idx.chunks.push_back(c);
  }
  return idx;
}

void putU32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) s[at + i] = static_cast<char>(v >> (8 * i));
}
void putU64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) s[at + i] = static_cast<char>(v >> (8 * i));
}
void fixCrc(std::string& s) { putU32(s, s.size() - 4, crc32c(0, s.data(), s.size() - 4)); }

// Mutates a valid index, re-seals the CRC so that the mutated rule is what
// must reject it, and expects an error mentioning `why`.
void expectRejected(const std::function<void(std::string&)>& mutate, const std::string& why, bool fix_crc = true) {
  std::string s = serializeChunkIndex(validIndex());
  mutate(s);
  if (fix_crc && s.size() >= 4) fixCrc(s);
  auto r = parseChunkIndex(s.data(), s.size());
  ASSERT_FALSE(r.ok()) << "accepted, want rejection for: " << why;
  EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().code, EINVAL);
}

TEST(ChunkIndex, LayoutSizes) {
  ChunkIndex idx = validIndex();
  std::string s = serializeChunkIndex(idx);
  EXPECT_EQ(s.size(), kHdr + 4 * kEnt + 4);
  EXPECT_EQ(kHdr % 8, 0u);  // entries stay 8-byte aligned
  EXPECT_EQ(kEnt % 8, 0u);
  EXPECT_EQ(s.substr(0, 8), "OCCHNK01");
  EXPECT_EQ(s.substr(32, 71), idx.blob_digest);
  EXPECT_EQ(s[103], '\0');
  EXPECT_EQ(chunkBlobSize(idx), 500u + 65536u + 502u + 503u);
}

TEST(ChunkIndex, RoundTrip) {
  ChunkIndex idx = validIndex();
  std::string s = serializeChunkIndex(idx);
  auto back = parseChunkIndex(s.data(), s.size());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, idx);
  EXPECT_EQ(serializeChunkIndex(*back), s);

  ChunkIndex empty;
  empty.chunk_size = 4096;
  empty.blob_digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  std::string e = serializeChunkIndex(empty);
  auto eb = parseChunkIndex(e.data(), e.size());
  ASSERT_TRUE(eb.ok()) << eb.error().message;
  EXPECT_EQ(*eb, empty);

  ChunkIndex exact = validIndex();  // raw size a multiple of the chunk size
  exact.chunks.pop_back();
  exact.raw_size = 3 * 64 * 1024;
  std::string x = serializeChunkIndex(exact);
  EXPECT_TRUE(parseChunkIndex(x.data(), x.size()).ok());
}

TEST(ChunkIndex, RejectsEveryViolation) {
  expectRejected([](std::string& s) { s.resize(50); }, "truncated", false);
  expectRejected([](std::string& s) { s[0] = 'X'; }, "magic");
  expectRejected([](std::string& s) { putU32(s, 8, 2); }, "version");
  expectRejected([](std::string& s) { putU32(s, 12, 3 * 4096); }, "chunk size");
  expectRejected([](std::string& s) { putU32(s, 12, 2048); }, "chunk size");
  expectRejected([](std::string& s) { putU32(s, 12, 32u << 20); }, "chunk size");
  expectRejected([](std::string& s) { putU32(s, 12, 0); }, "chunk size");
  expectRejected([](std::string& s) { putU64(s, 16, 10 * 64 * 1024); }, "chunk count");
  expectRejected([](std::string& s) { putU64(s, 16, ~0ULL); }, "chunk count");
  expectRejected([](std::string& s) { putU32(s, 24, 5); }, "chunk count");
  expectRejected([](std::string& s) { putU32(s, 28, 1); }, "reserved header");
  // Counts that promise more entries than the bytes hold (incl. huge ones).
  expectRejected(
      [](std::string& s) {
        putU64(s, 16, 0xffffffffULL * 4096);
        putU32(s, 12, 4096);
        putU32(s, 24, 0xffffffff);
      },
      "does not fit");
  expectRejected([](std::string& s) { s.insert(s.size() - 4, std::string(kEnt, '\0')); }, "does not fit");
  expectRejected([](std::string& s) { s.erase(s.size() - 4 - kEnt, kEnt); }, "does not fit");
  expectRejected([](std::string& s) { s.push_back('\0'); }, "does not fit");
  expectRejected([](std::string& s) { s[40] = 'A'; }, "digest");    // uppercase hex
  expectRejected([](std::string& s) { s[32] = 'S'; }, "digest");    // "Sha256:"
  expectRejected([](std::string& s) { s[102] = '\0'; }, "digest");  // 63 hex digits
  expectRejected([](std::string& s) { s[103] = 'x'; }, "digest");   // padding not NUL
  expectRejected([](std::string& s) { std::memset(&s[32], 0, 72); }, "digest");
  const size_t e0 = kHdr, e1 = kHdr + kEnt, e2 = kHdr + 2 * kEnt, e3 = kHdr + 3 * kEnt;
  expectRejected([&](std::string& s) { s[e0 + 16] = 3; }, "unknown codec");
  expectRejected([&](std::string& s) { s[e2 + 20] = 1; }, "reserved bytes");
  expectRejected([&](std::string& s) { putU64(s, e0, 1); }, "offset");
  expectRejected([&](std::string& s) { putU64(s, e2, 0); }, "offset");  // not contiguous
  expectRejected(
      [&](std::string& s) {
        putU32(s, e1 + 12, 4096);
        putU32(s, e1 + 8, 4096);
      },
      "raw length");
  expectRejected([&](std::string& s) { putU32(s, e3 + 12, 999); }, "raw length");  // last chunk
  expectRejected([&](std::string& s) { putU32(s, e3 + 12, 65536); }, "raw length");
  expectRejected(
      [&](std::string& s) {
        putU32(s, e0 + 8, 0);
        putU64(s, e1, 0);
        putU64(s, e2, 65536);
        putU64(s, e3, 65536 + 502);
      },
      "stored length");
  expectRejected([&](std::string& s) { putU32(s, e3 + 8, 0xfffffff0); }, "stored length");  // > compressBound
  expectRejected(
      [&](std::string& s) {
        putU32(s, e1 + 8, 100);
        putU64(s, e2, 600);
        putU64(s, e3, 1102);
      },
      "stored length");
  expectRejected([](std::string& s) { s[kHdr + 30] ^= 1; }, "CRC32C", false);
  expectRejected([](std::string& s) { s[s.size() - 1] ^= 1; }, "CRC32C", false);
}

TEST(ChunkIndex, MaxStoredLen) {
  EXPECT_EQ(maxStoredLen(ChunkCodec::kRaw, 4096), 4096u);
  EXPECT_GT(maxStoredLen(ChunkCodec::kZstd, 4096), 4096u);
  EXPECT_GT(maxStoredLen(ChunkCodec::kLz4, 4096), 4096u);
}

}  // namespace
}  // namespace offcore
