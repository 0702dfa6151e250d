#include "gateway/requests.h"

#include <gtest/gtest.h>

namespace offcore::gateway {
namespace {

TEST(GatewayRequestsTest, CreateTakesNameSizeAndHosts) {
  auto r = parseCreateVolume(R"({"name":"v1","size":"10G","allowed_hosts":["nqn.2026-11.io.offcore:node:a"]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->name, "v1");
  EXPECT_EQ(r->size_bytes, 10ULL << 30);
  ASSERT_TRUE(r->allowed_hosts.has_value());
  EXPECT_EQ(*r->allowed_hosts, std::vector<std::string>{"nqn.2026-11.io.offcore:node:a"});
  auto open = parseCreateVolume(R"({"name":"v2","size":4096})");
  ASSERT_TRUE(open.ok());
  EXPECT_FALSE(open->allowed_hosts.has_value());
}

// The create path once skipped entries that were not strings and kept the
// rest, silently widening access; /hosts refused the same list.
TEST(GatewayRequestsTest, CreateAndHostsRefuseTheSameBadLists) {
  for (const char* list : {R"(["nqn.2026-11.io.offcore:node:a", 5])", R"("nqn.2026-11.io.offcore:node:a")",
                           R"([{"nqn":"x"}])", R"(["node-a"])", R"(["nqn."])", R"(["nqn.a\u0001b"])"}) {
    std::string create = std::string(R"({"name":"v","size":"1G","allowed_hosts":)") + list + "}";
    std::string hosts = std::string(R"({"allowed_hosts":)") + list + "}";
    auto c = parseCreateVolume(create);
    auto h = parseHostsRequest(hosts);
    EXPECT_FALSE(c.ok()) << list;
    EXPECT_FALSE(h.ok()) << list;
    if (!c.ok() && !h.ok()) {
      EXPECT_EQ(c.error().message, h.error().message);
    }
  }
  std::string long_nqn = "nqn." + std::string(220, 'x');
  EXPECT_FALSE(parseHostsRequest(R"({"allowed_hosts":[")" + long_nqn + R"("]})").ok());
  std::string many = R"({"allowed_hosts":[)";
  for (size_t i = 0; i <= kMaxAllowedHosts; ++i)
    many += std::string(i ? "," : "") + "\"nqn.x:" + std::to_string(i) + "\"";
  EXPECT_FALSE(parseHostsRequest(many + "]}").ok());
}

TEST(GatewayRequestsTest, BadBodiesGetOneLineErrors) {
  for (const char* body :
       {"", "[]", "nope", R"({"size":"1G"})", R"({"name":"v","size":"-1"})", R"({"name":"v","size":-5})",
        R"({"name":"v","size":"99999999999999999999"})", R"({"name":7,"size":"1G"})"}) {
    auto r = parseCreateVolume(body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  }
  EXPECT_FALSE(parseHostsRequest("{}").ok());
  EXPECT_TRUE(parseHostsRequest(R"({"allowed_hosts":[]})").ok());  // [] opens the volume to any host
  EXPECT_FALSE(parseResizeRequest(R"({"size":true})").ok());
  EXPECT_EQ(*parseResizeRequest(R"({"size":"2G"})"), 2ULL << 30);
  EXPECT_EQ(*parseNameRequest(R"({"name":"s1"})"), "s1");
}

}  // namespace
}  // namespace offcore::gateway
