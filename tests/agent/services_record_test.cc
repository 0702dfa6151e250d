#include "agent/services_record.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(ServicesRecordTest, RoundTrips) {
  std::vector<RecordedService> in{
      {{"images", {"offcore", "image", "serve"}, true, ""}, 2, "running", 4242, 987654321ULL},
      {{"images-fds", {"offcore", "image", "fd-keeper"}, true, "images"}, 0, "running", 7, 1},
      {{"once", {"true"}, false, ""}, 0, "exited", 0, 0}};
  std::vector<std::string> skipped;
  auto out = parseServicesRecord(renderServicesRecord(in), &skipped);
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0].spec.argv, in[0].spec.argv);
  EXPECT_EQ((*out)[0].spec.part_of, "");
  EXPECT_EQ((*out)[1].spec.part_of, "images");
  EXPECT_EQ((*out)[0].pid, 4242);
  EXPECT_EQ((*out)[0].start_ticks, 987654321ULL);
  EXPECT_EQ((*out)[0].restarts, 2);
  EXPECT_FALSE((*out)[2].spec.restart);
  EXPECT_EQ((*out)[2].state, "exited");
}

TEST(ServicesRecordTest, SkipsMalformedEntriesAndRefusesOtherDocuments) {
  std::vector<std::string> skipped;
  auto out = parseServicesRecord(R"({"services":[7,{"name":"a"},{"name":"b","argv":["x"],"pid":-3},)"
                                 R"({"name":"c","argv":["x"],"start_ticks":-1},{"name":"ok","argv":["x"]}]})",
                                 &skipped);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].spec.name, "ok");
  EXPECT_TRUE((*out)[0].spec.restart);  // the default
  EXPECT_EQ(skipped.size(), 4u);
  EXPECT_FALSE(parseServicesRecord("", nullptr).ok());
  EXPECT_FALSE(parseServicesRecord("[]", nullptr).ok());
  EXPECT_FALSE(parseServicesRecord(R"({"services":{}})", nullptr).ok());
}

}  // namespace
}  // namespace offcore
