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
  auto first = ReplicaClaim::acquire(dir_ + "/claims", {"10.0.0.1:4420/nqn.x:a:v", "10.0.0.2:4420/nqn.x:b:v"},
                                     "node n1 (disk d1, pid 1)");
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto second = ReplicaClaim::acquire(dir_ + "/claims", {"10.0.0.2:4420/nqn.x:b:v"}, "node n2 (disk d2, pid 2)");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EBUSY);
  EXPECT_NE(second.error().message.find("node n1 (disk d1, pid 1)"), std::string::npos) << second.error().message;
  first->reset();  // detached (or its process died): the kernel drops the locks
  EXPECT_TRUE(ReplicaClaim::acquire(dir_ + "/claims", {"10.0.0.2:4420/nqn.x:b:v"}, "node n2").ok());
}

TEST_F(ClaimTest, ARefusedClaimHoldsNothing) {
  auto held = ReplicaClaim::acquire(dir_ + "/claims", {"b"}, "node n1");
  ASSERT_TRUE(held.ok());
  // c is claimed before b is refused; it must be free again afterwards.
  EXPECT_FALSE(ReplicaClaim::acquire(dir_ + "/claims", {"c", "b"}, "node n2").ok());
  EXPECT_TRUE(ReplicaClaim::acquire(dir_ + "/claims", {"c"}, "node n3").ok());
}

TEST_F(ClaimTest, LockFilesArePrivateAndNamesNeverCollide) {
  auto a = ReplicaClaim::acquire(dir_ + "/claims", {"h:1/n:v"}, "x");
  auto b = ReplicaClaim::acquire(dir_ + "/claims", {"h_1/n_v"}, "y");  // same after '_' folding
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok()) << b.error().message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/claims").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace offcore::nexus
