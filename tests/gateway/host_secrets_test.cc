// Which DH-HMAC-CHAP secrets an allow-list change gives each host, the
// request syntax for them, and the 0600 secrets file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "base/files.h"
#include "gateway/host_secrets.h"
#include "gateway/requests.h"
#include "nvme/auth/dhchap_key.h"

namespace offcore::gateway {
namespace {

const std::string kA = "nqn.2026-11.io.offcore:node:a";
const std::string kB = "nqn.2026-11.io.offcore:node:b";
const std::string kGiven = "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";

TEST(HostSecretsTest, NewHostsGetSecretsListedHostsKeepTheirs) {
  std::vector<NewSecret> made;
  auto first = resolveHostSecrets({kA, kB}, {}, {}, {}, &made);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 2u);
  ASSERT_EQ(made.size(), 2u);
  EXPECT_TRUE(nvme::auth::parseDhchapKey(first->at(kA).secret).ok());
  EXPECT_EQ(first->at(kA).secret.rfind("DHHC-1:01:", 0), 0u);
  EXPECT_NE(first->at(kA).secret, first->at(kB).secret);
  EXPECT_TRUE(first->at(kA).ctrl_secret.empty());

  // Re-listing keeps the secrets and shows nothing; a dropped host loses its.
  made.clear();
  auto again = resolveHostSecrets({kA}, {}, {kA, kB}, *first, &made);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->at(kA).secret, first->at(kA).secret);
  EXPECT_EQ(again->count(kB), 0u);
  EXPECT_TRUE(made.empty());

  // A host allowed before secrets existed stays NQN-only until asked.
  auto legacy = resolveHostSecrets({kA}, {}, {kA}, {}, nullptr);
  ASSERT_TRUE(legacy.ok());
  EXPECT_TRUE(legacy->empty());
  HostAuthRequest gen;
  gen.secret.mode = SecretRequest::Mode::kGenerate;
  gen.ctrl_secret.mode = SecretRequest::Mode::kGenerate;
  made.clear();
  auto upgraded = resolveHostSecrets({kA}, {{kA, gen}}, {kA}, {}, &made);
  ASSERT_TRUE(upgraded.ok());
  EXPECT_FALSE(upgraded->at(kA).ctrl_secret.empty());
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(made[0].ctrl_secret, upgraded->at(kA).ctrl_secret);
}

TEST(HostSecretsTest, RequestsNameGivenNoneOrGenerate) {
  auto r = parseCreateVolume(R"({"name":"v","size":"1G","allowed_hosts":[")" + kA + R"(",{"nqn":")" + kB +
                             R"(","dhchap_secret":")" + kGiven + R"(","dhchap_ctrl_secret":"generate"}]})");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r->allowed_hosts, (std::vector<std::string>{kA, kB}));
  ASSERT_EQ(r->host_auth.count(kB), 1u);
  EXPECT_EQ(r->host_auth.at(kB).secret.mode, SecretRequest::Mode::kGiven);
  EXPECT_EQ(r->host_auth.at(kB).secret.text, kGiven);
  auto res = resolveHostSecrets(*r->allowed_hosts, r->host_auth, {}, {}, nullptr);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->at(kB).secret, kGiven);

  auto none = parseHostsRequest(R"({"allowed_hosts":[{"nqn":")" + kA + R"(","dhchap_secret":"none"}]})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(resolveHostSecrets(none->hosts, none->host_auth, {}, {}, nullptr)->empty());

  for (const std::string& bad : std::vector<std::string>{
           R"({"nqn":")" + kA + R"(","dhchap_secret":"DHHC-1:01:xx:"})", R"({"nqn":")" + kA + R"(","dhchap_secret":5})",
           R"({"nqn":")" + kA + R"(","secret":"generate"})", R"({"dhchap_secret":"generate"})",
           R"({"nqn":")" + kA + R"(","dhchap_secret":"none","dhchap_ctrl_secret":"generate"})"}) {
    EXPECT_FALSE(parseHostsRequest(R"({"allowed_hosts":[)" + bad + "]}").ok()) << bad;
  }
}

TEST(HostSecretsTest, TheFileIsPrivateAndRoundTrips) {
  char tmpl[] = "/tmp/oc-secrets-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string path = dir + "/dhchap-secrets.json";
  HostSecretFile f(path);
  ASSERT_TRUE(f.load().ok());  // absent: empty
  ASSERT_TRUE(f.setVolume("v1", {{kA, HostSecret{kGiven, ""}}}).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  HostSecretFile g(path);
  ASSERT_TRUE(g.load().ok());
  EXPECT_EQ(g.forVolume("v1").at(kA).secret, kGiven);
  auto t = toTargetSecrets(g.forVolume("v1"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->at(kA).host.secret.size(), 32u);
  ASSERT_TRUE(g.setVolume("v1", {}).ok());
  EXPECT_TRUE(g.forVolume("v1").empty());
  ASSERT_TRUE(writeFileAtomic(path, "not json").ok());
  EXPECT_FALSE(HostSecretFile(path).load().ok());
  (void)removeTree(dir);
}

}  // namespace
}  // namespace offcore::gateway
