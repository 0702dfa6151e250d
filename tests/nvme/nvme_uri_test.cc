#include "nvme/host/nvme_uri.h"

#include <gtest/gtest.h>

namespace offcore::nvme {
namespace {

TEST(NvmeUriTest, AddressPortAndNqn) {
  auto u = parseNvmeUri("nvme-tcp://10.77.1.10:4421/nqn.2026-11.io.offcore:g:v");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->address, "10.77.1.10");
  EXPECT_EQ(u->port, 4421);
  EXPECT_EQ(u->nqn, "nqn.2026-11.io.offcore:g:v");
}

TEST(NvmeUriTest, PortDefaultsTo4420AndNqnIsOptional) {
  auto u = parseNvmeUri("nvme-tcp://gw");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->port, 4420);
  EXPECT_EQ(u->nqn, "");
}

TEST(NvmeUriTest, RefusesWhatIsNotOne) {
  for (const char* bad : {"", "nvme://a/n", "nvme-tcp://", "nvme-tcp://:4420/n", "nvme-tcp://a:/n",
                          "nvme-tcp://a:65536/n", "nvme-tcp://a:12x/n", "nvme-tcp://a:123456/n"}) {
    auto u = parseNvmeUri(bad);
    EXPECT_FALSE(u.ok()) << bad;
    if (!u.ok()) {
      EXPECT_NE(u.error().message.find("nvme-tcp://ADDR:PORT/NQN"), std::string::npos) << bad;
    }
  }
  EXPECT_FALSE(parseNvmeUri("nvme-tcp://a/" + std::string(224, 'n')).ok());
  EXPECT_TRUE(parseNvmeUri("nvme-tcp://a/" + std::string(223, 'n')).ok());
}

}  // namespace
}  // namespace offcore::nvme
