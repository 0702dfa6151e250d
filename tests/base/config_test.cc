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
  EXPECT_EQ(parseConfig(R"({"mesh_ca_etcd_user": "offcore-mesh-ca"})", "t.json").error().message,
            "t.json: mesh_ca_etcd_user and mesh_ca_etcd_password_file go together (the mesh CA's etcd user)");
  auto ca = parseConfig(R"({"mesh_ca_etcd_user": "u", "mesh_ca_etcd_password_file": "/p"})", "t.json");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  EXPECT_EQ(ca->mesh_ca_etcd_password_file, "/p");
}

TEST(ConfigTest, LivenessTimesArePositiveAndTheExpiryOutlastsABeat) {
  auto c = parseConfig(R"({"heartbeat_interval_ms": 200, "node_expiry_ms": 1000})", "t.json");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->heartbeat_interval_ms, 200);
  EXPECT_EQ(c->node_expiry_ms, 1000);
  EXPECT_EQ(parseConfig(R"({"node_expiry_ms": 0})", "t.json").error().message,
            "t.json: field 'node_expiry_ms' must be a positive integer (milliseconds)");
  EXPECT_FALSE(parseConfig(R"({"heartbeat_interval_ms": 1000, "node_expiry_ms": 1000})", "t.json").ok());
  EXPECT_TRUE(parseConfig("{}", "t.json")->rx_steering);
  EXPECT_FALSE(parseConfig(R"({"rx_steering": false})", "t.json")->rx_steering);
  EXPECT_FALSE(parseConfig(R"({"rx_steering": "no"})", "t.json").ok());
  EXPECT_EQ(parseConfig("{}", "t.json")->rx_steering_mode, "napi");
  EXPECT_EQ(parseConfig(R"({"rx_steering_mode": "rps"})", "t.json")->rx_steering_mode, "rps");
  auto bad = parseConfig(R"({"rx_steering_mode": "irq"})", "t.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "t.json: field 'rx_steering_mode' must be \"napi\" or \"rps\"");
}

}  // namespace
}  // namespace offcore
