#include "base/config.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(ConfigTest, DefaultsNeedNoFile) {
  Config c;
  EXPECT_EQ(c.run_root, "/run/offcore");
  EXPECT_EQ(c.fabric_prefix, "10.77");
}

TEST(ConfigTest, OverridesFieldByField) {
  auto c = parseConfig(R"({"run_root": "/tmp/x", "agent_ready_timeout_ms": 500})", "t.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->run_root, "/tmp/x");
  EXPECT_EQ(c->agent_ready_timeout_ms, 500);
  EXPECT_EQ(c->fabric_netns, "oc-fabric");
}

TEST(ConfigTest, BadInputNamesFileAndField) {
  EXPECT_EQ(parseConfig("[1]", "t.json").error().message, "t.json: not a JSON object");
  EXPECT_EQ(parseConfig(R"({"run_root": 3})", "t.json").error().message, "t.json: field 'run_root' must be a string");
  EXPECT_EQ(parseConfig(R"({"typo": 1})", "t.json").error().message, "t.json: unknown field 'typo'");
  EXPECT_FALSE(parseConfig("{", "t.json").ok());
}

}  // namespace
}  // namespace offcore
