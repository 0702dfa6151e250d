#include "image/oci.h"

#include <gtest/gtest.h>

namespace offcore::oci {
namespace {

const std::string kA = "sha256:" + std::string(64, 'a');
const std::string kB = "sha256:" + std::string(64, 'b');

TEST(OciReference, RegistryForms) {
  auto r = parseReference("127.0.0.1:5000/library/busybox:1.36");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "library/busybox");
  EXPECT_EQ(r->tag, "1.36");
  EXPECT_EQ(r->manifestRef(), "1.36");
  auto d = parseReference("reg.example:443/app@" + kA);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->digest, kA);
  EXPECT_EQ(d->manifestRef(), kA);
  auto latest = parseReference("10.0.0.1:5000/app");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->tag, "latest");
}

TEST(OciReference, LayoutForms) {
  auto r = parseReference("oci:/var/cache/img:v1");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_layout);
  EXPECT_EQ(r->layout_dir, "/var/cache/img");
  EXPECT_EQ(r->tag, "v1");
  auto bare = parseReference("oci:./dir");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->layout_dir, "./dir");
  EXPECT_EQ(bare->tag, "");
}

TEST(OciReference, RejectsWithAHint) {
  for (const char* bad : {"busybox", "reg:5000/Upper/case", "reg:5000/app@sha256:xyz", "oci:", "reg:5000/a:t@g"}) {
    auto r = parseReference(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("HOST"), std::string::npos) << r.error().message;
    }
  }
}

TEST(OciManifest, ParsesAndRoundTrips) {
  std::string text = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
                     kA + R"(","size":12},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
                     kB + R"(","size":34,"annotations":{"k":"v"}}]})";
  auto m = parseManifest(text);
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->layers.size(), 1u);
  EXPECT_EQ(m->layers[0].annotations.at("k"), "v");
  EXPECT_EQ(layerCompression(m->layers[0].media_type), Compression::kGzip);
  auto again = parseManifest(serializeManifest(*m));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->layers[0].digest, kB);
  EXPECT_EQ(again->config.size, 12);
}

TEST(OciManifest, ErrorsNameTheField) {
  auto bad_size =
      parseManifest(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kA + R"(","size":-1},"layers":[]})");
  ASSERT_FALSE(bad_size.ok());
  EXPECT_NE(bad_size.error().message.find("manifest.config"), std::string::npos);
  auto bad_digest =
      parseManifest(R"({"schemaVersion":2,"config":{"mediaType":"x","digest":"md5:00","size":1},"layers":[]})");
  ASSERT_FALSE(bad_digest.ok());
  EXPECT_NE(bad_digest.error().message.find("digest"), std::string::npos);
  EXPECT_FALSE(parseManifest(R"({"schemaVersion":1})").ok());
  EXPECT_FALSE(parseManifest("[]").ok());
  EXPECT_FALSE(parseManifest("{").ok());
}

TEST(OciConfig, DiffIdsAndRuntimeFields) {
  auto c = parseConfig(R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},
                           "rootfs":{"type":"layers","diff_ids":[")" +
                       kA + R"("]}})");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->diff_ids, std::vector<std::string>{kA});
  EXPECT_EQ(c->env, std::vector<std::string>{"PATH=/bin"});
  EXPECT_FALSE(parseConfig(R"({"rootfs":{"diff_ids":["nope"]}})").ok());
  EXPECT_FALSE(parseConfig(R"({"config":{}})").ok());
}

TEST(OciIndex, PicksLinuxAmd64) {
  auto idx = parseIndex(R"({"schemaVersion":2,"manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                        kA +
                        R"(","size":1,"platform":{"os":"linux","architecture":"arm64"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
                        kB + R"(","size":1,"platform":{"os":"linux","architecture":"amd64"}}]})");
  ASSERT_TRUE(idx.ok()) << idx.error().message;
  auto pick = pickPlatform(*idx);
  ASSERT_TRUE(pick.ok());
  EXPECT_EQ(pick->digest, kB);
  auto none = pickPlatform(*idx, "s390x");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("linux/arm64"), std::string::npos);
}

TEST(OciChainIds, MatchTheImageSpec) {
  // Values computed independently: sha256("<chain> <diff>").
  auto ids = chainIds({kA, kB, kA});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], kA);
  EXPECT_EQ(ids[1], "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c");
  EXPECT_EQ(ids[2], "sha256:406364a4bd8d39df8107071d4494fa73814420337124657ec5999b072e5d3352");
}

}  // namespace
}  // namespace offcore::oci
