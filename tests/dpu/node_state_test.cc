#include "dpu/node_state.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(NodeStateTest, RoundTripsThroughJson) {
  NodeState s;
  s.name = "a";
  s.soc_cpus = {1};
  s.host_cpus = {0};
  s.soc_memory_limit = 512ULL << 20;
  s.host_netns = "hostb";
  s.created_host_netns = true;
  s.fabric_index = 3;
  s.uplink_ip = "10.77.0.13/16";
  s.agent_pid = 42;
  s.watchdog_pid = 41;
  s.phase = "up";
  auto back = NodeState::fromJson(s.toJson(), "node.json");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->soc_cpus, s.soc_cpus);
  EXPECT_EQ(back->soc_memory_limit, s.soc_memory_limit);
  EXPECT_EQ(back->host_netns, "hostb");
  EXPECT_TRUE(back->created_host_netns);
  EXPECT_EQ(back->fabric_index, 3);
  EXPECT_EQ(back->agent_pid, 42);
  EXPECT_EQ(back->watchdog_pid, 41);
}

TEST(NodeStateTest, MalformedStateIsAnErrorNotACrash) {
  EXPECT_FALSE(NodeState::fromJson("nope", "n").ok());
  EXPECT_FALSE(NodeState::fromJson("{}", "n").ok());
  EXPECT_FALSE(NodeState::fromJson(R"({"name":"a","soc_cpus":"x","host_cpus":"0"})", "n").ok());
  EXPECT_FALSE(NodeState::fromJson(R"({"name":1,"soc_cpus":"1","host_cpus":"0"})", "n").ok());
}

}  // namespace
}  // namespace offcore
