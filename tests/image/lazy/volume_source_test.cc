// VolumeChunkSource: a gateway volume is not trusted; every chunk is
// checked against the digests conversion recorded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "../../nvme/memory_device.h"
#include "base/files.h"
#include "image/chunk_codec.h"
#include "image/lazy/sources.h"

namespace offcore {
namespace {

class VolumeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-volsrc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // 2.5 chunks of 16 KiB, not block aligned at the end, like a layer image.
    image_.resize(16384 * 2 + 9000);
    std::mt19937 rng(7);
    for (auto& c : image_) c = static_cast<char>(rng());
    ASSERT_TRUE(writeFileAtomic(dir_ + "/layer.img", image_).ok());
    device_ = std::make_shared<test::MemoryDevice>(1 << 20);
    auto idx = indexRawImage(dir_ + "/layer.img", 16384, [&](uint64_t off, const char* p, size_t n) -> Status {
      std::string block(p, n);
      block.resize((n + 4095) / 4096 * 4096, '\0');
      return device_->write(off, block.data(), block.size());
    });
    ASSERT_TRUE(idx.ok()) << idx.error().message;
    index_ = *idx;
  }
  void TearDown() override { (void)removeTree(dir_); }

  std::string dir_, image_;
  std::shared_ptr<test::MemoryDevice> device_;
  ChunkIndex index_;
};

TEST_F(VolumeSourceTest, IndexDescribesTheImage) {
  EXPECT_EQ(index_.raw_size, image_.size());
  ASSERT_EQ(index_.chunks.size(), 3u);
  EXPECT_EQ(index_.chunks[2].raw_len, 9000u);
  EXPECT_EQ(index_.blob_digest, "sha256:" + sha256Hex(image_.data(), image_.size()));
  // It is a canonical index: it serializes and parses back unchanged.
  std::string bytes = serializeChunkIndex(index_);
  auto back = parseChunkIndex(bytes.data(), bytes.size());
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, index_);
}

TEST_F(VolumeSourceTest, ReadsVerifiedChunks) {
  auto src = VolumeChunkSource::open(device_, index_, "nvme-tcp://test/l-1");
  ASSERT_TRUE(src.ok()) << src.error().message;
  std::string out, all;
  for (uint64_t i = 0; i < (*src)->chunkCount(); ++i) {
    ASSERT_TRUE((*src)->fetch(i, out).ok());
    all += out;
  }
  EXPECT_EQ(all, image_);
}

TEST_F(VolumeSourceTest, AlteredBlockReadsAsEio) {
  auto src = VolumeChunkSource::open(device_, index_, "nvme-tcp://test/l-1");
  ASSERT_TRUE(src.ok());
  // A fabric host (or a bad disk) changed one byte in chunk 1.
  std::string block(4096, '\0');
  ASSERT_TRUE(device_->read(16384 + 4096, block.data(), block.size()).ok());
  block[100] ^= 0x20;
  ASSERT_TRUE(device_->write(16384 + 4096, block.data(), block.size()).ok());
  std::string out;
  EXPECT_TRUE((*src)->fetch(0, out).ok());
  auto bad = (*src)->fetch(1, out);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EIO);
  EXPECT_NE(bad.error().message.find("chunk 1"), std::string::npos) << bad.error().message;
  // Bytes past the image's end in the last block are not covered by the
  // digest and do not matter; bytes inside it do.
  std::string tail(4096, '\0');
  ASSERT_TRUE(device_->read(32768 + 8192, tail.data(), tail.size()).ok());
  tail[4000] ^= 1;  // offset 9000-8192=808..: 4000 is past the image's end
  ASSERT_TRUE(device_->write(32768 + 8192, tail.data(), tail.size()).ok());
  EXPECT_TRUE((*src)->fetch(2, out).ok());
  tail[100] ^= 1;
  ASSERT_TRUE(device_->write(32768 + 8192, tail.data(), tail.size()).ok());
  EXPECT_FALSE((*src)->fetch(2, out).ok());
}

TEST_F(VolumeSourceTest, RefusesAVolumeSmallerThanTheImage) {
  auto small = std::make_shared<test::MemoryDevice>(32768);
  auto src = VolumeChunkSource::open(small, index_, "nvme-tcp://test/l-1");
  ASSERT_FALSE(src.ok());
  EXPECT_EQ(src.error().code, EIO);
}

TEST_F(VolumeSourceTest, RefusesACompressedIndex) {
  ChunkIndex zstd = index_;
  zstd.chunks[0].codec = ChunkCodec::kZstd;
  EXPECT_FALSE(VolumeChunkSource::open(device_, zstd, "nvme-tcp://test/l-1").ok());
}

}  // namespace
}  // namespace offcore
