#include "nvme/target/subsystem.h"

#include <gtest/gtest.h>

namespace offcore::nvme {
namespace {

Subsystem withHosts(std::vector<std::string> hosts) {
  return Subsystem("nqn.2026-11.io.offcore:t:v", "S", {}, std::move(hosts));
}

TEST(Subsystem, EmptyListAdmitsAnyHost) { EXPECT_TRUE(withHosts({}).allows("nqn.2014-08.org.example:any")); }

TEST(Subsystem, ExactEntriesAdmitOnlyThatHost) {
  auto s = withHosts({"nqn.2026-11.io.offcore:node:a"});
  EXPECT_TRUE(s.allows("nqn.2026-11.io.offcore:node:a"));
  EXPECT_FALSE(s.allows("nqn.2026-11.io.offcore:node:ab"));
  EXPECT_FALSE(s.allows("nqn.2026-11.io.offcore:node:"));
}

TEST(Subsystem, PrefixEntryAdmitsHostsBelowIt) {
  auto s = withHosts({"nqn.2026-11.io.offcore:node:*"});
  EXPECT_TRUE(s.allows("nqn.2026-11.io.offcore:node:a"));
  EXPECT_TRUE(s.allows("nqn.2026-11.io.offcore:node:worker-7"));
  EXPECT_FALSE(s.allows("nqn.2026-11.io.offcore:node:"));  // the prefix alone is no host
  EXPECT_FALSE(s.allows("nqn.2026-11.io.offcore:converter"));
  EXPECT_FALSE(s.allows("nqn.2014-08.org.nvmexpress:uuid:1234"));
  EXPECT_FALSE(s.allows("nqn.2026-11.io.offcore:nodeX:a"));
}

}  // namespace
}  // namespace offcore::nvme
