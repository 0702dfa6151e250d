#include "image/registry_auth.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/files.h"

namespace offcore::oci {
namespace {

TEST(RegistryAuthTest, ParsesBearerAndBasicChallenges) {
  auto c = parseAuthChallenge(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->realm, "https://auth.example/token");
  EXPECT_EQ(c->service, "registry.example");
  EXPECT_EQ(c->scope, "repository:a/b:pull,push");
  auto b = parseAuthChallenge(R"(Basic realm="offcore")");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->scheme, "basic");
  auto bare = parseAuthChallenge("bearer realm=http://t/token, service=s");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->service, "s");
}

TEST(RegistryAuthTest, RefusesWhatItCannotAnswer) {
  EXPECT_FALSE(parseAuthChallenge("").ok());
  EXPECT_FALSE(parseAuthChallenge("Negotiate abc").ok());
  EXPECT_FALSE(parseAuthChallenge(R"(Bearer realm="file:///etc/passwd")").ok());  // a token from a file: no
  EXPECT_FALSE(parseAuthChallenge(R"(Bearer realm="http://x)").ok());             // unterminated
  EXPECT_FALSE(parseAuthChallenge(std::string(5000, 'a')).ok());
}

TEST(RegistryAuthTest, TokenResponses) {
  auto t = parseTokenResponse(R"({"token":"abc.def","expires_in":300})");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->token, "abc.def");
  EXPECT_EQ(t->expires_in, 300);
  auto a = parseTokenResponse(R"({"access_token":"xyz"})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->expires_in, 60);  // the spec's default
  EXPECT_FALSE(parseTokenResponse(R"({"token":""})").ok());
  EXPECT_FALSE(parseTokenResponse(R"({"token":"a\r\nX-Evil: 1"})").ok());  // no header injection
  EXPECT_FALSE(parseTokenResponse("[]").ok());
}

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-creds-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)removeTree(dir_); }
  std::string dir_;
};

TEST_F(CredentialsTest, ReadsACredsFileAndDockerConfig) {
  ASSERT_TRUE(writeFileAtomic(dir_ + "/c.json", R"({"username":"u","password":"p"})").ok());
  auto c = loadRegistryCredentials("r:5000", dir_ + "/c.json");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ((*c)->username, "u");
  ASSERT_TRUE(writeFileAtomic(dir_ + "/d.json", R"({"auths":{"https://r:5000/v2/":{"auth":"YWxpY2U6czNjcmV0"},)"
                                                R"("other:1":{"username":"o","password":"x"}}})")
                  .ok());
  auto d = loadRegistryCredentials("r:5000", dir_ + "/d.json");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->username, "alice");
  EXPECT_EQ((*d)->password, "s3cret");
  auto none = loadRegistryCredentials("elsewhere:5000", dir_ + "/d.json");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(writeFileAtomic(dir_ + "/bad.json", "{not json").ok());
  EXPECT_FALSE(loadRegistryCredentials("r:5000", dir_ + "/bad.json").ok());
  EXPECT_FALSE(loadRegistryCredentials("r:5000", dir_ + "/missing.json").ok());  // named but not there
}

}  // namespace
}  // namespace offcore::oci
