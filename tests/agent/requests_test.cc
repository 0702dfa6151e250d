#include "agent/requests.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(RequestsTest, ServiceRequest) {
  auto s = parseServiceRequest(R"({"name":"web","argv":["sleep","1"],"restart":false})");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->name, "web");
  EXPECT_EQ(s->argv, (std::vector<std::string>{"sleep", "1"}));
  EXPECT_FALSE(s->restart);
  EXPECT_EQ(s->part_of, "");
  auto k = parseServiceRequest(R"({"name":"web-fds","argv":["x"],"part_of":"web"})");
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->part_of, "web");
  EXPECT_EQ(parseServiceRequest(R"({"name":"a","argv":["x"],"part_of":3})").error().message,
            "field 'part_of' must be a string");
}

TEST(RequestsTest, ServiceRequestErrorsNameTheField) {
  EXPECT_EQ(parseServiceRequest("nope").error().message, "request body must be a JSON object");
  EXPECT_EQ(parseServiceRequest("{}").error().message, "missing field 'name'");
  EXPECT_EQ(parseServiceRequest(R"({"name":1})").error().message, "field 'name' must be a string");
  EXPECT_EQ(parseServiceRequest(R"({"name":"a","argv":[]})").error().message,
            "field 'argv' must be a non-empty array of strings");
  EXPECT_EQ(parseServiceRequest(R"({"name":"a","argv":["x",2]})").error().message,
            "field 'argv' must be a non-empty array of strings");
  EXPECT_EQ(parseServiceRequest(R"({"name":"a","argv":["x"],"restart":"yes"})").error().message,
            "field 'restart' must be true or false");
}

TEST(RequestsTest, VfRequest) {
  auto v = parseVfRequest(R"({"netns":"pod1","ip":"10.0.0.2/24","mac":"02:00:00:00:00:02"})");
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->ifname, "eth0");
  EXPECT_EQ(v->ip, "10.0.0.2/24");
  EXPECT_FALSE(parseVfRequest(R"({"netns":""})").ok());
  EXPECT_FALSE(parseVfRequest(R"({"netns":"p","ip":"10.0.0.2"})").ok());
  EXPECT_FALSE(parseVfRequest(R"({"netns":"p","ifname":"a/b"})").ok());
  EXPECT_FALSE(parseVfRequest(R"({"netns":"p","mac":"xx"})").ok());
}

TEST(RequestsTest, ShutdownRequest) {
  EXPECT_FALSE(*parseShutdownRequest(""));
  EXPECT_FALSE(*parseShutdownRequest("{}"));
  EXPECT_TRUE(*parseShutdownRequest(R"({"keep_services":true})"));
  EXPECT_EQ(parseShutdownRequest(R"({"keep_services":"yes"})").error().message,
            "field 'keep_services' must be true or false");
  EXPECT_FALSE(parseShutdownRequest("[]").ok());
}

}  // namespace
}  // namespace offcore
