#include "image/lazy/chunk_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/files.h"

namespace offcore {
namespace {

class ChunkCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-chunkcache-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST_F(ChunkCacheTest, PutThenGet) {
  ChunkCache c(dir_, 1 << 20);
  ASSERT_TRUE(c.init().ok());
  std::string out;
  EXPECT_FALSE(c.get("l1", 0, out));
  c.put("l1", 0, "hello");
  ASSERT_TRUE(c.get("l1", 0, out));
  EXPECT_EQ(out, "hello");
  EXPECT_FALSE(c.get("l2", 0, out));  // keys are per layer
  auto s = c.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.bytes, 5u);
}

TEST_F(ChunkCacheTest, EvictsLeastRecentlyUsedOverTheLimit) {
  ChunkCache c(dir_, 300);
  ASSERT_TRUE(c.init().ok());
  std::string chunk(100, 'x'), out;
  c.put("l", 0, chunk);
  c.put("l", 1, chunk);
  c.put("l", 2, chunk);
  ASSERT_TRUE(c.get("l", 0, out));  // 0 is now the most recent
  c.put("l", 3, chunk);             // 1 is evicted
  EXPECT_TRUE(c.get("l", 0, out));
  EXPECT_FALSE(c.get("l", 1, out));
  EXPECT_TRUE(c.get("l", 2, out));
  EXPECT_TRUE(c.get("l", 3, out));
  EXPECT_EQ(c.stats().evictions, 1u);
  EXPECT_LE(c.stats().bytes, 300u);
  EXPECT_FALSE(pathExists(dir_ + "/l/1"));
}

TEST_F(ChunkCacheTest, SurvivesARestartAndDropsTornWrites) {
  {
    ChunkCache c(dir_, 1 << 20);
    ASSERT_TRUE(c.init().ok());
    c.put("l", 7, "seven");
  }
  ASSERT_TRUE(writeFileAtomic(dir_ + "/l/8.tmp123", "torn").ok());
  ChunkCache again(dir_, 1 << 20);
  ASSERT_TRUE(again.init().ok());
  std::string out;
  ASSERT_TRUE(again.get("l", 7, out));
  EXPECT_EQ(out, "seven");
  EXPECT_FALSE(pathExists(dir_ + "/l/8.tmp123"));
  again.dropLayer("l");
  EXPECT_FALSE(again.get("l", 7, out));
  EXPECT_EQ(again.stats().bytes, 0u);
}

}  // namespace
}  // namespace offcore
