// Layer bounds: a few KiB of tar declaring a sparse 1 TiB file, and gzip or
// zstd bombs, are refused before they fill the disk; layers within the
// bounds (and every small one, thanks to the floor) unpack as before, with
// zero blocks left as holes.
#include "image/layer_bounds.h"

#include <sys/stat.h>

#include <chrono>

#include "image/layer_apply.h"
#include "image/tar_reader.h"
#include "tar_test_util.h"

namespace offcore {
namespace {

constexpr uint64_t kMiB = 1ull << 20, kGiB = 1ull << 30, kTiB = 1ull << 40;

TEST(LayerBounds, LimitIsTheSmallerOfCapAndRatioWithAFloor) {
  LayerBounds d;
  EXPECT_EQ(d.max_bytes, 8 * kGiB);
  EXPECT_EQ(d.max_ratio, 100u);
  EXPECT_EQ(d.ratio_floor, 64 * kMiB);
  EXPECT_EQ(ExpansionLimit(d, 10 << 10, "l").bytes(), 64 * kMiB);  // the floor: small layers pass
  EXPECT_EQ(ExpansionLimit(d, 0, "l").bytes(), 64 * kMiB);
  EXPECT_EQ(ExpansionLimit(d, 50 * kMiB, "l").bytes(), 5000 * kMiB);  // the ratio
  EXPECT_EQ(ExpansionLimit(d, 1 * kGiB, "l").bytes(), 8 * kGiB);      // the cap
  EXPECT_EQ(ExpansionLimit(LayerBounds{.max_bytes = 0}, 1 * kGiB, "l").bytes(), 100 * kGiB);
  EXPECT_EQ(ExpansionLimit(LayerBounds{.max_ratio = 0}, 1, "l").bytes(), 8 * kGiB);
  EXPECT_EQ(ExpansionLimit(LayerBounds{.max_bytes = 32 * kMiB}, 1, "l").bytes(), 32 * kMiB);  // cap below the floor
  EXPECT_EQ(ExpansionLimit(LayerBounds{.max_bytes = 0, .max_ratio = 1000}, UINT64_MAX / 2, "l").bytes(), UINT64_MAX);
  EXPECT_EQ(ExpansionLimit(LayerBounds::unlimited(), 1, "l").bytes(), UINT64_MAX);
  EXPECT_EQ(ExpansionLimit().bytes(), UINT64_MAX);
  EXPECT_TRUE(ExpansionLimit(d, 1, "l").check(64 * kMiB, "x").ok());
  EXPECT_FALSE(ExpansionLimit(d, 1, "l").check(64 * kMiB + 1, "x").ok());
}

TEST(LayerBounds, ErrorNamesTheLayerTheBoundAndTheOption) {
  Error ratio = ExpansionLimit(LayerBounds{}, 10 << 10, "sha256:feed").error(kTiB, "declared file sizes");
  EXPECT_EQ(ratio.code, EFBIG);
  EXPECT_EQ(ratio.message.find('\n'), std::string::npos);
  for (const char* part :
       {"sha256:feed", "declared file sizes", "1.0 TiB", "64.0 MiB", "100x", "10.0 KiB", "--max-expansion-ratio"})
    EXPECT_NE(ratio.message.find(part), std::string::npos) << part << " in " << ratio.message;
  Error cap = ExpansionLimit(LayerBounds{.max_ratio = 0}, 1, "sha256:feed").error(9 * kGiB, "x");
  EXPECT_NE(cap.message.find("8.0 GiB"), std::string::npos) << cap.message;
  EXPECT_NE(cap.message.find("--max-layer-bytes"), std::string::npos) << cap.message;
  EXPECT_EQ(cap.message.find("--max-expansion-ratio"), std::string::npos) << cap.message;
}

// A small file, then a sparse file of `size` bytes whose only data is its
// first 4 KiB: a few KiB of tar.
std::string sparseLayer(uint64_t size) {
  TarBuilder b;
  b.file("before", "b");
  b.add({.path = "big", .content = std::string(4096, 'x'), .sparse = {{0, 4096}}, .size = static_cast<int64_t>(size)});
  b.file("after", "a");
  return b.finish();
}

// A tar holding one file of `zeros` zero bytes, stored densely and compressed.
std::string zeroFileLayer(TarFilter filter, uint64_t zeros) {
  RawCompressor c(filter);
  c.write(ustarHeader("zeros", '0', zeros)).zeros(zeros);
  c.zeros((512 - zeros % 512) % 512 + 1024);  // padding, end of archive
  return c.finish();
}

// A pax hardlink carrying a body (libarchive keeps pax hardlink data and
// skips it): bytes in the stream that no regular file declares.
std::string hardlinkBomb(TarFilter filter, uint64_t zeros) {
  RawCompressor c(filter);
  c.write(ustarHeader("f", '0', 0)).write(paxHeader("path", "bomb")).write(ustarHeader("bomb", '1', zeros, "f"));
  c.zeros(zeros + (512 - zeros % 512) % 512 + 1024);
  return c.finish();
}

// Reads every entry and body; returns the error, and the reader's counters.
struct ReadOutcome {
  Status status;
  uint64_t declared = 0, streamed = 0;
  std::vector<std::string> paths;
};
ReadOutcome readAll(const std::string& blob, const LayerBounds& bounds, const std::string& layer) {
  ReadOutcome out;
  auto r = TarReader::openMemory(blob.data(), blob.size(), bounds, layer);
  if (!r.ok()) return ReadOutcome{r.error()};
  TarEntry e;
  for (;;) {
    auto more = (*r)->next(e);
    out.declared = (*r)->declaredBytes(), out.streamed = (*r)->streamBytes();
    if (!more.ok() || !*more) {
      if (!more.ok()) out.status = more.error();
      return out;
    }
    out.paths.push_back(e.path);
    out.status = (*r)->readBody([](uint64_t, const void*, size_t) { return okStatus(); });
    out.streamed = (*r)->streamBytes();
    if (!out.status.ok()) return out;
  }
}

class LayerBoundsApply : public ScratchDirTest {
 protected:
  void SetUp() override {
    ScratchDirTest::SetUp();
    dest_ = path("dest");
    ASSERT_OK(makeDirs(dest_));
  }
  // Bytes allocated under dest: what the unpack really wrote.
  uint64_t allocated(const std::string& rel) {
    struct stat st {};
    return ::lstat((dest_ + "/" + rel).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
  }
  std::string dest_;
};

TEST_F(LayerBoundsApply, SparseTebibyteFileIsRefusedBeforeItIsCreated) {
  std::string blob = sparseLayer(kTiB);
  ASSERT_LT(blob.size(), 20000u);
  auto start = std::chrono::steady_clock::now();
  auto r = applyLayerMemory(blob.data(), blob.size(), dest_, WhiteoutMode::kOverlayForm, LayerBounds{}, "sha256:feed");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EFBIG);
  for (const char* part : {"sha256:feed", "declared file sizes", "'big'", "1.0 TiB", "--max-expansion-ratio"})
    EXPECT_NE(r.error().message.find(part), std::string::npos) << part << " in " << r.error().message;
  EXPECT_TRUE(pathExists(dest_ + "/before"));
  EXPECT_FALSE(pathExists(dest_ + "/big"));  // refused at its header: never created
  EXPECT_FALSE(pathExists(dest_ + "/after"));

  // With the ratio off, the absolute cap still holds, from a file too.
  ASSERT_OK(removeTree(dest_));
  ASSERT_OK(makeDirs(dest_));
  ASSERT_OK(writeFileAtomic(path("layer.tar"), blob));
  auto capped = applyLayerFile(path("layer.tar"), dest_, WhiteoutMode::kApplyInPlace, LayerBounds{.max_ratio = 0});
  ASSERT_FALSE(capped.ok());
  EXPECT_NE(capped.error().message.find("--max-layer-bytes"), std::string::npos) << capped.error().message;
  EXPECT_NE(capped.error().message.find(path("layer.tar")), std::string::npos) << capped.error().message;
  EXPECT_FALSE(pathExists(dest_ + "/big"));

  // The reader refuses at the header: not even the 4 KiB of data was read.
  ReadOutcome o = readAll(blob, LayerBounds{}, "sha256:feed");
  EXPECT_EQ(o.status.error().code, EFBIG);
  EXPECT_EQ(o.declared, kTiB + 1);
  EXPECT_EQ(o.paths, std::vector<std::string>{"before"});
}

TEST_F(LayerBoundsApply, GzipBombOfADeclaredFileIsRefusedBeforeDecompressing) {
  std::string blob = zeroFileLayer(TarFilter::kGzip, 200 * kMiB);
  ASSERT_LT(blob.size(), 300000u);  // about 1000:1
  ReadOutcome o = readAll(blob, LayerBounds{}, "sha256:gz");
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.error().code, EFBIG);
  EXPECT_NE(o.status.error().message.find("'zeros'"), std::string::npos) << o.status.error().message;
  EXPECT_LT(o.streamed, 256 * 1024u);  // the header and one buffer, not the 200 MiB
  auto r = applyLayerMemory(blob.data(), blob.size(), dest_, WhiteoutMode::kOverlayForm);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(pathExists(dest_ + "/zeros"));
}

TEST_F(LayerBoundsApply, UndeclaredGzipAndZstdBombsStopAtTheLimit) {
  for (TarFilter f : {TarFilter::kGzip, TarFilter::kZstd}) {
    std::string blob = hardlinkBomb(f, 200 * kMiB);
    ASSERT_LT(blob.size(), 300000u);
    // Without a bound the whole 200 MiB is decompressed (and skipped).
    ReadOutcome unbounded = readAll(blob, LayerBounds::unlimited(), "l");
    ASSERT_OK(unbounded.status);
    EXPECT_GT(unbounded.streamed, 200 * kMiB);
    ReadOutcome o = readAll(blob, LayerBounds{}, "sha256:bomb");
    ASSERT_FALSE(o.status.ok());
    EXPECT_EQ(o.status.error().code, EFBIG);
    for (const char* part : {"sha256:bomb", "decompressed tar stream", "64.0 MiB", "--max-expansion-ratio"})
      EXPECT_NE(o.status.error().message.find(part), std::string::npos) << part << " in " << o.status.error().message;
    EXPECT_GT(o.streamed, 64 * kMiB);
    EXPECT_LE(o.streamed, 64 * kMiB + 64 * 1024);  // stopped within one buffer of the limit
    auto r = applyLayerMemory(blob.data(), blob.size(), dest_, WhiteoutMode::kOverlayForm, {}, "sha256:bomb");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, EFBIG) << r.error().message;
  }
}

TEST_F(LayerBoundsApply, FloorLetsSmallLayersThroughAndZerosStayHoles) {
  // 32 MiB of zeros in a ~32 KiB blob: 1000x, refused by the ratio alone,
  // let through by the 64 MiB floor.
  TarBuilder b(TarFilter::kGzip);
  std::string data(32 * kMiB, '\0');
  data.replace(8 * kMiB + 100, 5, "hello");
  b.file("etc/motd", "hi").file("zeros", data);
  std::string blob = b.finish();
  ASSERT_LT(blob.size(), 100000u);
  EXPECT_EQ(ExpansionLimit(LayerBounds{}, blob.size(), "l").bytes(), 64 * kMiB);
  auto stats = applyLayerMemory(blob.data(), blob.size(), dest_, WhiteoutMode::kOverlayForm);
  ASSERT_OK(stats);
  EXPECT_TRUE(readFile(dest_ + "/zeros").valueOr("") == data);
  EXPECT_EQ(readFile(dest_ + "/etc/motd").valueOr(""), "hi");
  // Written sparse: only the block holding "hello" (and motd) is allocated.
  EXPECT_LT(allocated("zeros"), 64 * 1024u);
  EXPECT_LE(stats->bytes, 4096u + 2u);  // the block with "hello" (maybe cut where libarchive's blocks end)
  EXPECT_GE(stats->bytes, 5u + 2u);
  EXPECT_EQ(stats->hole_bytes + stats->bytes, 32 * kMiB + 2);
  EXPECT_EQ(stats->sparse_files, 1u);
}

TEST_F(LayerBoundsApply, LayersWithinTheBoundsUnpackAsBefore) {
  // 3 MiB of incompressible-ish data against a tight cap and a floor of
  // 1 MiB: within 100x of its compressed size.
  std::string data(3 * kMiB, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : data) x ^= x << 13, x ^= x >> 7, x ^= x << 17, c = static_cast<char>(x);
  LayerBounds tight{.max_bytes = 4 * kMiB, .max_ratio = 100, .ratio_floor = 1 * kMiB};
  for (TarFilter f : {TarFilter::kNone, TarFilter::kGzip, TarFilter::kZstd}) {
    ASSERT_OK(removeTree(dest_));
    ASSERT_OK(makeDirs(dest_));
    TarBuilder b(f);
    b.dir("d")
        .file("d/data", data)
        .add({.path = "d/sparse",
              .content = std::string(4096, 's'),
              .sparse = {{0, 4096}},
              .size = static_cast<int64_t>(kMiB / 2)});
    std::string blob = b.finish();
    auto stats = applyLayerMemory(blob.data(), blob.size(), dest_, WhiteoutMode::kOverlayForm, tight, "l");
    ASSERT_OK(stats);
    EXPECT_TRUE(readFile(dest_ + "/d/data").valueOr("") == data);
    struct stat st {};
    ASSERT_EQ(::stat((dest_ + "/d/sparse").c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), kMiB / 2);
    EXPECT_LE(allocated("d/sparse"), 64 * 1024u);
    // One more file and the cap is passed.
    TarBuilder over(f);
    over.file("d/data", data).file("d/more", std::string(2 * kMiB, 'm'));
    std::string big = over.finish();
    ASSERT_OK(removeTree(dest_));
    ASSERT_OK(makeDirs(dest_));
    auto r = applyLayerMemory(big.data(), big.size(), dest_, WhiteoutMode::kOverlayForm, tight, "l");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("'d/more'"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace offcore
