#include "image/catalog.h"

#include <gtest/gtest.h>
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

TEST_F(CatalogTest, ArtifactsFromTwoConversionsMerge) {
  Catalog c(dir_);
  LayerRecord a;
  a.diff_id = "sha256:d1";
  a.fs_bytes = 4096;
  a.gateway = GatewayArtifact{"nvme-tcp://10.0.0.1:4420/nqn", "gw", "l-1"};
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
                  false};
  ASSERT_TRUE(c.putImage(img).ok());
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
