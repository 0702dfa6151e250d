#include "image/chunk_codec.h"

#include <random>

#include "tar_test_util.h"

namespace offcore {
namespace {

using ChunkCodecTest = ScratchDirTest;

// Half compressible text, half random bytes: exercises both stored forms.
std::string mixedData(size_t n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++)
    s[i] = (i / 65536) % 2 == 0 ? static_cast<char>('a' + i % 7) : static_cast<char>(rng());
  return s;
}

TEST(ChunkSha256, KnownVectors) {
  EXPECT_EQ(sha256Hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_F(ChunkCodecTest, RoundTripsEveryCodec) {
  struct Case {
    ChunkCodec codec;
    uint32_t chunk;
    size_t size;
  };
  const Case cases[] = {
      {ChunkCodec::kZstd, 64 * 1024, 5 * 65536 + 777},  // last chunk partial
      {ChunkCodec::kLz4, 64 * 1024, 4 * 65536},         // exact multiple
      {ChunkCodec::kRaw, 4096, 10000},
      {ChunkCodec::kZstd, 256 * 1024, 0},  // empty input
      {ChunkCodec::kLz4, 16 * 1024 * 1024, 100},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(chunkCodecName(c.codec)) + " size " + std::to_string(c.size));
    std::string raw = mixedData(c.size);
    ASSERT_OK(writeFileAtomic(path("raw.img"), raw));
    uint64_t last_done = 0, last_total = 0, calls = 0;
    auto idx =
        writeChunkedBlob(path("raw.img"), path("blob"), ChunkWriterOptions{.chunk_size = c.chunk, .codec = c.codec},
                         [&](uint64_t done, uint64_t total) { last_done = done, last_total = total, calls++; });
    ASSERT_OK(idx);
    EXPECT_EQ(idx->raw_size, c.size);
    EXPECT_EQ(idx->chunk_size, c.chunk);
    EXPECT_EQ(idx->chunks.size(), (c.size + c.chunk - 1) / c.chunk);
    EXPECT_EQ(calls, idx->chunks.size());
    if (c.size > 0) {
      EXPECT_EQ(last_done, c.size);
      EXPECT_EQ(last_total, c.size);
    }

    auto blob = readFile(path("blob"));
    ASSERT_OK(blob);
    EXPECT_EQ(blob->size(), chunkBlobSize(*idx));
    EXPECT_EQ(idx->blob_digest, "sha256:" + sha256Hex(blob->data(), blob->size()));
    // The index it returns is one the parser accepts.
    std::string ser = serializeChunkIndex(*idx);
    auto parsed = parseChunkIndex(ser.data(), ser.size());
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, *idx);

    std::string back, out;
    bool saw_compressed = false, saw_raw = false;
    for (size_t i = 0; i < idx->chunks.size(); i++) {
      const ChunkEntry& e = idx->chunks[i];
      (e.codec == ChunkCodec::kRaw ? saw_raw : saw_compressed) = true;
      ASSERT_OK(decodeChunk(e, i, blob->data() + e.offset, e.stored_len, out));
      back += out;
    }
    EXPECT_EQ(back, raw);
    if (c.codec != ChunkCodec::kRaw && c.size > 65536) {
      EXPECT_TRUE(saw_compressed);
      EXPECT_TRUE(saw_raw);  // random chunks do not shrink and are stored raw
    }
    if (c.codec == ChunkCodec::kRaw) {
      EXPECT_FALSE(saw_compressed);
    }
  }
}

TEST_F(ChunkCodecTest, TamperingIsEio) {
  std::string raw = mixedData(3 * 65536);
  ASSERT_OK(writeFileAtomic(path("raw.img"), raw));
  for (ChunkCodec codec : {ChunkCodec::kZstd, ChunkCodec::kLz4}) {
    auto idx = writeChunkedBlob(path("raw.img"), path("blob"), ChunkWriterOptions{.chunk_size = 65536, .codec = codec});
    ASSERT_OK(idx);
    std::string blob = readFile(path("blob")).valueOr("");
    for (size_t i = 0; i < idx->chunks.size(); i++) {
      const ChunkEntry& e = idx->chunks[i];
      std::string stored = blob.substr(e.offset, e.stored_len), out;
      for (size_t at : {size_t{0}, stored.size() / 2, stored.size() - 1}) {
        std::string bad = stored;
        bad[at] ^= 0x20;
        Status s = decodeChunk(e, i, bad.data(), bad.size(), out);
        ASSERT_FALSE(s.ok()) << "chunk " << i << " byte " << at;
        EXPECT_EQ(s.error().code, EIO);
        EXPECT_NE(s.error().message.find("chunk " + std::to_string(i)), std::string::npos) << s.error().message;
      }
      Status shortened = decodeChunk(e, i, stored.data(), stored.size() - 1, out);
      EXPECT_EQ(shortened.error().code, EIO);
      ChunkEntry wrong_sha = e;
      wrong_sha.sha256[5] ^= 1;
      Status sha = decodeChunk(wrong_sha, i, stored.data(), stored.size(), out);
      ASSERT_FALSE(sha.ok());
      EXPECT_EQ(sha.error().code, EIO);
      EXPECT_NE(sha.error().message.find("sha256"), std::string::npos);
      ChunkEntry wrong_len = e;
      wrong_len.raw_len -= 1;
      EXPECT_EQ(decodeChunk(wrong_len, i, stored.data(), stored.size(), out).error().code, EIO);
      ChunkEntry huge = e;
      huge.raw_len = 1u << 30;
      EXPECT_EQ(decodeChunk(huge, i, stored.data(), stored.size(), out).error().code, EIO);
    }
  }
}

TEST_F(ChunkCodecTest, RejectsBadOptionsAndInputs) {
  ASSERT_OK(writeFileAtomic(path("raw.img"), "x"));
  for (uint32_t cs : {0u, 1000u, 2048u, 3u * 4096u, 32u << 20})
    EXPECT_FALSE(writeChunkedBlob(path("raw.img"), path("blob"), ChunkWriterOptions{.chunk_size = cs}).ok()) << cs;
  EXPECT_FALSE(writeChunkedBlob(path("raw.img"), path("blob"), ChunkWriterOptions{.zstd_level = 1000}).ok());
  EXPECT_FALSE(
      writeChunkedBlob(path("raw.img"), path("blob"), ChunkWriterOptions{.codec = static_cast<ChunkCodec>(9)}).ok());
  EXPECT_FALSE(writeChunkedBlob(path("missing.img"), path("blob"), {}).ok());
  EXPECT_FALSE(writeChunkedBlob(path("raw.img"), path("no/such/dir/blob"), {}).ok());
}

}  // namespace
}  // namespace offcore
