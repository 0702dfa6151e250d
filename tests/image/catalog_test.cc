#include "image/catalog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/files.h"

namespace offcore {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST_F(CatalogTest, EmptyCatalogHasNothing) {
  Catalog c(dir_);
  auto l = c.layer("sha256:x");
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->has_value());
  EXPECT_TRUE(c.images()->empty());
}

TEST_F(CatalogTest, ChunkIndexIsKeptByDigestAndCheckedOnRead) {
  Catalog c(dir_);
  ChunkIndex idx;
  idx.chunk_size = 4096;
  idx.raw_size = 5000;
  idx.blob_digest = "sha256:" + std::string(64, '0');
  ChunkEntry e0, e1;
  e0.stored_len = e0.raw_len = 4096;
  e1.offset = 4096;
  e1.stored_len = e1.raw_len = 904;
  e1.sha256[0] = 7;
  idx.chunks = {e0, e1};
  auto digest = c.putChunkIndex(idx);
  ASSERT_TRUE(digest.ok()) << digest.error().message;
  auto back = c.chunkIndex(*digest);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, idx);
  std::string file = dir_ + "/indexes/" + digest->substr(7) + ".idx";
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A changed byte anywhere is refused, and so are made-up names.
  std::string bytes = *readFile(file);
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(writeFileAtomic(file, bytes).ok());
  auto tampered = c.chunkIndex(*digest);
  ASSERT_FALSE(tampered.ok());
  EXPECT_NE(tampered.error().message.find("does not match its digest"), std::string::npos);
  EXPECT_FALSE(c.chunkIndex("sha256:../../etc/passwd").ok());
  EXPECT_FALSE(c.chunkIndex("").ok());
}

TEST_F(CatalogTest, ArtifactsFromTwoConversionsMerge) {
  Catalog c(dir_);
  LayerRecord a;
  a.diff_id = "sha256:d1";
  a.fs_bytes = 4096;
  a.gateway = GatewayArtifact{"nvme-tcp://10.0.0.1:4420/nqn", "gw", "l-1", "sha256:" + std::string(64, 'a')};
  ASSERT_TRUE(c.putLayer(a).ok());
  LayerRecord b;
  b.diff_id = "sha256:d1";
  b.fs_bytes = 4096;
  b.registry = RegistryArtifact{"reg:5000", "repo", false, "sha256:data", "sha256:idx", 100, 65536, 1};
  ASSERT_TRUE(c.putLayer(b).ok());
  auto got = c.layer("sha256:d1");
  ASSERT_TRUE(got.ok() && got->has_value());
  ASSERT_TRUE((*got)->gateway.has_value());
  ASSERT_TRUE((*got)->registry.has_value());
  EXPECT_EQ((*got)->gateway->volume, "l-1");
  EXPECT_EQ((*got)->registry->chunk_index, "sha256:idx");
  ASSERT_TRUE(c.setProfile("sha256:d1", {5, 1, 9}).ok());
  EXPECT_EQ((*c.layer("sha256:d1"))->profile, (std::vector<uint32_t>{5, 1, 9}));
  EXPECT_FALSE(c.setProfile("sha256:nope", {1}).ok());
  // Start ranges add up across images, in first-seen order, without repeats.
  ASSERT_TRUE(c.addStartRanges("sha256:d1", {{0, 4096}, {8192, 100}}).ok());
  ASSERT_TRUE(c.addStartRanges("sha256:d1", {{0, 4096}, {65536, 10}}).ok());
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ((*c.layer("sha256:d1"))->start_ranges, (R{{0, 4096}, {8192, 100}, {65536, 10}}));
  EXPECT_FALSE(c.addStartRanges("sha256:nope", {{0, 1}}).ok());
}

TEST_F(CatalogTest, ResolvesRealAndLazyChains) {
  Catalog c(dir_);
  ImageRecord img{"reg/app:1",
                  "reg/app:lazy",
                  "sha256:m",
                  {"sha256:d0", "sha256:d1"},
                  {"sha256:c0", "sha256:c1"},
                  {"sha256:s0", "sha256:s1"},
                  true,
                  false,
                  {"/bin/app", "/lib/ld.so"},
                  ""};
  ASSERT_TRUE(c.putImage(img).ok());
  EXPECT_EQ((*c.images())[0].start_files, img.start_files);
  auto real = c.resolveChain("sha256:c1");
  ASSERT_TRUE(real.ok() && real->has_value());
  EXPECT_EQ((*real)->diff_id, "sha256:d1");
  auto lazy = c.resolveChain("sha256:s0");
  ASSERT_TRUE(lazy.ok() && lazy->has_value());
  EXPECT_EQ((*lazy)->diff_id, "sha256:d0");
  EXPECT_EQ((*lazy)->chain_id, "sha256:c0");
  EXPECT_FALSE(c.resolveChain("sha256:zz")->has_value());
}

TEST_F(CatalogTest, CorruptCatalogIsAClearError) {
  ASSERT_TRUE(writeFileAtomic(dir_ + "/catalog.json", "{not json").ok());
  Catalog c(dir_);
  auto l = c.layer("sha256:d1");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message.find("corrupt"), std::string::npos);
  LayerRecord a;
  a.diff_id = "sha256:d1";
  EXPECT_FALSE(c.putLayer(a).ok());  // never overwrites what it cannot read
  EXPECT_EQ(*readFile(dir_ + "/catalog.json"), "{not json");
}

}  // namespace
}  // namespace offcore
