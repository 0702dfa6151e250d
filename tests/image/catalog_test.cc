#include "image/catalog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "../kv/etcd_member.h"
#include "../kv/fake_kv.h"
#include "base/files.h"
#include "image/catalog_storage.h"
#include "kv/etcd_client.h"

namespace offcore {
namespace {

ChunkIndex sampleIndex(size_t chunks) {
  ChunkIndex idx;
  idx.chunk_size = 4096;
  idx.raw_size = chunks * 4096 - 100;
  idx.blob_digest = "sha256:" + std::string(64, '0');
  for (size_t i = 0; i < chunks; ++i) {
    ChunkEntry e;
    e.offset = i * 4096;
    e.stored_len = e.raw_len = i + 1 == chunks ? 3996 : 4096;
    e.sha256[0] = static_cast<uint8_t>(i);
    e.sha256[1] = static_cast<uint8_t>(i >> 8);
    idx.chunks.push_back(e);
  }
  return idx;
}

// The same cases against each storage: the directory, an in-memory etcd
// with etcd's rules, and a real etcd member over gRPC.
class CatalogTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    if (GetParam() == "fake") raw_ = std::make_shared<kv::FakeKv>();
    if (GetParam() == "etcd") {
      auto up = member_.start();
      ASSERT_TRUE(up.ok()) << up.error().message;
      raw_ = kv::makeEtcdClient(member_.options());
    }
  }
  void TearDown() override { (void)removeTree(dir_); }

  bool kv() const { return raw_ != nullptr; }
  Catalog open() {
    if (!kv()) return Catalog::inDir(dir_);
    if (GetParam() == "fake") return Catalog(makeKvCatalogStorage(raw_));
    return Catalog(makeKvCatalogStorage(kv::makeEtcdClient(member_.options())));
  }
  // Puts text where a layer record lives, behind the catalog's back.
  void overwriteLayer(const std::string& diff_id, const std::string& text) {
    if (kv()) {
      ASSERT_TRUE(raw_->txn({}, {kv::Op::put("/offcore/images/v1/layers/" + diff_id, text)}).ok());
    } else {
      ASSERT_TRUE(writeFileAtomic(dir_ + "/catalog.json",
                                  R"({"version":1,"flat":{},"images":{},"layers":{")" + diff_id + R"(":)" + text + "}}")
                      .ok());
    }
  }

  std::string dir_;
  kv::EtcdMember member_;
  std::shared_ptr<kv::KvClient> raw_;
};

TEST_P(CatalogTest, EmptyCatalogHasNothing) {
  Catalog c = open();
  auto l = c.layer("sha256:x");
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_FALSE(l->has_value());
  EXPECT_TRUE(c.images()->empty());
  EXPECT_TRUE(c.layers()->empty());
  EXPECT_FALSE(c.flat("sha256:c")->has_value());
}

TEST_P(CatalogTest, ChunkIndexRoundTripsAndRefusesMadeUpNames) {
  Catalog c = open();
  // 40,000 chunks: a serialized index of about 1.5 MiB, more than one etcd
  // request may carry, so the etcd catalog keeps it in parts.
  for (size_t chunks : {2u, 40000u}) {
    ChunkIndex idx = sampleIndex(chunks);
    auto digest = c.putChunkIndex(idx);
    ASSERT_TRUE(digest.ok()) << digest.error().message;
    auto back = c.chunkIndex(*digest);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, idx);
    // Put again (a second conversion of the same layer): still the same.
    ASSERT_TRUE(c.putChunkIndex(idx).ok());
    EXPECT_EQ(*open().chunkIndex(*digest), idx);
  }
  EXPECT_FALSE(c.chunkIndex("sha256:../../etc/passwd").ok());
  EXPECT_FALSE(c.chunkIndex("sha256:" + std::string(64, 'f')).ok());
  EXPECT_FALSE(c.chunkIndex("").ok());
}

TEST_P(CatalogTest, ArtifactsFromTwoConversionsMerge) {
  Catalog c = open();
  LayerRecord a;
  a.diff_id = "sha256:d1";
  a.fs_bytes = 4096;
  a.gateway = GatewayArtifact{"nvme-tcp://10.0.0.1:4420/nqn", "gw", "l-1", "sha256:" + std::string(64, 'a')};
  ASSERT_TRUE(c.putLayer(a).ok());
  ASSERT_TRUE(c.addStartRanges("sha256:d1", {{0, 4096}}).ok());
  LayerRecord b;
  b.diff_id = "sha256:d1";
  b.fs_bytes = 4096;
  b.registry = RegistryArtifact{"reg:5000", "repo", false, "sha256:data", "sha256:idx", 100, 65536, 1};
  ASSERT_TRUE(c.putLayer(b).ok());
  auto got = open().layer("sha256:d1");
  ASSERT_TRUE(got.ok() && got->has_value());
  ASSERT_TRUE((*got)->gateway.has_value());
  ASSERT_TRUE((*got)->registry.has_value());
  EXPECT_EQ((*got)->gateway->volume, "l-1");
  EXPECT_EQ((*got)->registry->chunk_index, "sha256:idx");
  EXPECT_EQ((*got)->registry->chunk_size, 65536u);
  ASSERT_TRUE(c.setProfile("sha256:d1", {5, 1, 9}).ok());
  EXPECT_EQ((*c.layer("sha256:d1"))->profile, (std::vector<uint32_t>{5, 1, 9}));
  EXPECT_FALSE(c.setProfile("sha256:nope", {1}).ok());
  EXPECT_FALSE(c.layer("sha256:nope")->has_value());  // and it made no record
  // Start ranges add up across images, in first-seen order, without
  // repeats; a second putLayer kept the first image's.
  ASSERT_TRUE(c.addStartRanges("sha256:d1", {{0, 4096}, {8192, 100}}).ok());
  ASSERT_TRUE(c.addStartRanges("sha256:d1", {{0, 4096}, {65536, 10}}).ok());
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ((*c.layer("sha256:d1"))->start_ranges, (R{{0, 4096}, {8192, 100}, {65536, 10}}));
  EXPECT_FALSE(c.addStartRanges("sha256:nope", {{0, 1}}).ok());
  EXPECT_EQ(c.layers()->size(), 1u);
}

TEST_P(CatalogTest, ResolvesRealAndLazyChains) {
  Catalog c = open();
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
  // A flat conversion of the same image later keeps the lazy image's names.
  ImageRecord flat = img;
  flat.lazy_ref.clear();
  flat.lazy_chain_ids.clear();
  flat.layered = false;
  flat.flat = true;
  ASSERT_TRUE(c.putImage(flat).ok());
  ASSERT_TRUE(c.putFlat(FlatRecord{"sha256:c1", GatewayArtifact{"nvme-tcp://a:1/n", "gw", "f-1", ""}, 1 << 20}).ok());
  Catalog d = open();
  auto imgs = d.images();
  ASSERT_TRUE(imgs.ok() && imgs->size() == 1u);
  EXPECT_EQ((*imgs)[0].start_files, img.start_files);
  EXPECT_EQ((*imgs)[0].lazy_ref, "reg/app:lazy");
  EXPECT_TRUE((*imgs)[0].layered && (*imgs)[0].flat);
  auto real = d.resolveChain("sha256:c1");
  ASSERT_TRUE(real.ok() && real->has_value());
  EXPECT_EQ((*real)->diff_id, "sha256:d1");
  auto lazy = d.resolveChain("sha256:s0");
  ASSERT_TRUE(lazy.ok() && lazy->has_value());
  EXPECT_EQ((*lazy)->diff_id, "sha256:d0");
  EXPECT_EQ((*lazy)->chain_id, "sha256:c0");
  EXPECT_FALSE(d.resolveChain("sha256:zz")->has_value());
  auto f = d.flat("sha256:c1");
  ASSERT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ((*f)->gateway.volume, "f-1");
  EXPECT_EQ((*f)->size_bytes, 1u << 20);
}

TEST_P(CatalogTest, MalformedRecordIsAnErrorAndIsNeverOverwritten) {
  // Types another writer got wrong: an error naming the record, not a throw
  // and not an empty record; a put does not replace what it cannot read.
  for (const char* bad : {R"({"diff_id":"sha256:d1","fs_bytes":"big"})", R"({"profile":[1,-2]})",
                          R"({"registry":{"chunk_size":4294967296}})", R"({"gateway":[]})", R"([1,2])"}) {
    overwriteLayer("sha256:d1", bad);
    Catalog c = open();
    auto l = c.layer("sha256:d1");
    ASSERT_FALSE(l.ok()) << bad;
    EXPECT_NE(l.error().message.find("layer sha256:d1"), std::string::npos) << l.error().message;
    EXPECT_FALSE(c.layers().ok()) << bad;
    LayerRecord a;
    a.diff_id = "sha256:d1";
    EXPECT_FALSE(c.putLayer(a).ok()) << bad;
    EXPECT_FALSE(c.setProfile("sha256:d1", {1}).ok()) << bad;
    EXPECT_FALSE(c.layer("sha256:d1").ok()) << "overwritten: " << bad;
  }
}

TEST_P(CatalogTest, ConcurrentUpdatesLoseNothing) {
  // Two writers (two conversions adding start ranges to a shared base layer)
  // racing on one record: every range lands.
  Catalog c = open();
  LayerRecord a;
  a.diff_id = "sha256:base";
  ASSERT_TRUE(c.putLayer(a).ok());
  constexpr int kEach = 25;
  auto writer = [&](uint64_t base) {
    Catalog mine = open();
    for (int i = 0; i < kEach; ++i) {
      auto s = mine.addStartRanges("sha256:base", {{base + i, 1}});
      EXPECT_TRUE(s.ok()) << s.error().message;
    }
  };
  std::thread t1(writer, 0), t2(writer, 1000);
  t1.join();
  t2.join();
  auto got = c.layer("sha256:base");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->start_ranges.size(), 2u * kEach);
}

INSTANTIATE_TEST_SUITE_P(Storages, CatalogTest, ::testing::Values("dir", "fake", "etcd"),
                         [](const auto& info) { return info.param; });

// What only the directory has: files 0600 under a 0700 directory, and a
// catalog.json that does not parse is an error, left as it is.
class DirCatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-catalog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST_F(DirCatalogTest, FilesArePrivateAndATamperedIndexIsRefused) {
  Catalog c = Catalog::inDir(dir_ + "/cat");
  auto digest = c.putChunkIndex(sampleIndex(2));
  ASSERT_TRUE(digest.ok()) << digest.error().message;
  LayerRecord a;
  a.diff_id = "sha256:d1";
  ASSERT_TRUE(c.putLayer(a).ok());
  std::string file = dir_ + "/cat/indexes/" + digest->substr(7) + ".idx";
  for (const std::string& p : {file, dir_ + "/cat/catalog.json"}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/cat").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::string bytes = *readFile(file);
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(writeFileAtomic(file, bytes).ok());
  auto tampered = c.chunkIndex(*digest);
  ASSERT_FALSE(tampered.ok());
  EXPECT_NE(tampered.error().message.find("does not match its digest"), std::string::npos);
}

TEST_F(DirCatalogTest, CorruptCatalogIsAClearError) {
  ASSERT_TRUE(writeFileAtomic(dir_ + "/catalog.json", "{not json").ok());
  Catalog c = Catalog::inDir(dir_);
  auto l = c.layer("sha256:d1");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.error().message.find("corrupt"), std::string::npos);
  LayerRecord a;
  a.diff_id = "sha256:d1";
  EXPECT_FALSE(c.putLayer(a).ok());  // never overwrites what it cannot read
  EXPECT_EQ(*readFile(dir_ + "/catalog.json"), "{not json");
}

// What only etcd has: one key per record, the blob in parts under a head
// written last; a changed, missing or extra part is refused.
TEST(KvCatalogTest, LayoutAndTamperedParts) {
  auto raw = std::make_shared<kv::FakeKv>();
  Catalog c(makeKvCatalogStorage(raw));
  LayerRecord a;
  a.diff_id = "sha256:d1";
  ASSERT_TRUE(c.putLayer(a).ok());
  ImageRecord img;
  img.ref = "reg:5000/app:1";
  ASSERT_TRUE(c.putImage(img).ok());
  EXPECT_EQ(raw->range("/offcore/images/v1/layers/sha256:d1", "")->kvs.size(), 1u);
  EXPECT_EQ(raw->range("/offcore/images/v1/images/reg:5000/app:1", "")->kvs.size(), 1u);
  auto digest = c.putChunkIndex(sampleIndex(40000));
  ASSERT_TRUE(digest.ok()) << digest.error().message;
  std::string head = "/offcore/images/v1/blobs/" + digest->substr(7);
  auto parts = raw->range(head + "/", kv::prefixEnd(head + "/"));
  ASSERT_TRUE(parts.ok());
  ASSERT_GE(parts->kvs.size(), 3u);
  for (const auto& p : parts->kvs) EXPECT_LE(p.value.size(), 512u << 10);
  std::string second = parts->kvs[1].key, saved = parts->kvs[1].value;
  std::string flipped = saved;
  flipped[10] ^= 1;
  ASSERT_TRUE(raw->txn({}, {kv::Op::put(second, flipped)}).ok());
  auto bad = c.chunkIndex(*digest);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("does not match its digest"), std::string::npos) << bad.error().message;
  ASSERT_TRUE(raw->txn({}, {kv::Op::del(second)}).ok());
  bad = c.chunkIndex(*digest);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("misses part 1"), std::string::npos) << bad.error().message;
  ASSERT_TRUE(raw->txn({}, {kv::Op::put(second, saved + "x")}).ok());
  EXPECT_FALSE(c.chunkIndex(*digest).ok());
  ASSERT_TRUE(raw->txn({}, {kv::Op::put(second, saved)}).ok());
  EXPECT_TRUE(c.chunkIndex(*digest).ok());
  // A head that lies about its size is refused before any part is read.
  ASSERT_TRUE(raw->txn({}, {kv::Op::put(head, R"({"bytes":99999999999,"parts":1})")}).ok());
  bad = c.chunkIndex(*digest);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("not a blob head"), std::string::npos) << bad.error().message;
  // Nothing under the svc state's watched prefix.
  EXPECT_TRUE(raw->range("/offcore/v1/", kv::prefixEnd("/offcore/v1/"))->kvs.empty());
}

TEST(KvCatalogTest, EtcdDownIsAOneLineError) {
  auto raw = std::make_shared<kv::FakeKv>();
  Catalog c(makeKvCatalogStorage(raw));
  raw->setDown(true);
  auto l = c.layer("sha256:d1");
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().message.find('\n'), std::string::npos);
  LayerRecord a;
  a.diff_id = "sha256:d1";
  EXPECT_FALSE(c.putLayer(a).ok());
}

}  // namespace
}  // namespace offcore
