#include "nexus/claim.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "base/files.h"

namespace offcore::nexus {
namespace {

class ClaimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char d[] = "/tmp/oc-claim-XXXXXX";
    ASSERT_NE(::mkdtemp(d), nullptr);
    dir_ = d;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST_F(ClaimTest, ASecondWriterIsRefusedAndToldWhoHoldsTheReplica) {
  auto first = claimReplicasInDir(dir_ + "/claims", {"10.0.0.1:4420/nqn.x:a:v", "10.0.0.2:4420/nqn.x:b:v"},
                                  ClaimHolder{"node n1 (disk d1)", 1});
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = claimReplicasInDir(dir_ + "/claims", {"10.0.0.2:4420/nqn.x:b:v"}, ClaimHolder{"node n2 (disk d2)", 2});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EBUSY);
  EXPECT_NE(second.error().message.find("node n1 (disk d1) (pid 1)"), std::string::npos) << second.error().message;
  first->reset();  // detached (or its process died): the kernel drops the locks
  EXPECT_TRUE(claimReplicasInDir(dir_ + "/claims", {"10.0.0.2:4420/nqn.x:b:v"}, ClaimHolder{"node n2"}).ok());
}

TEST_F(ClaimTest, ARefusedClaimHoldsNothing) {
  auto held = claimReplicasInDir(dir_ + "/claims", {"b"}, ClaimHolder{"node n1"});
  ASSERT_TRUE(held.ok());
  // c is claimed before b is refused; it must be free again afterwards.
  EXPECT_FALSE(claimReplicasInDir(dir_ + "/claims", {"c", "b"}, ClaimHolder{"node n2"}).ok());
  EXPECT_TRUE(claimReplicasInDir(dir_ + "/claims", {"c"}, ClaimHolder{"node n3"}).ok());
}

TEST_F(ClaimTest, LockFilesArePrivateAndNamesNeverCollide) {
  auto a = claimReplicasInDir(dir_ + "/claims", {"h:1/n:v"}, ClaimHolder{"x"});
  auto b = claimReplicasInDir(dir_ + "/claims", {"h_1/n_v"}, ClaimHolder{"y"});  // same after '_' folding
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/claims").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace offcore::nexus
