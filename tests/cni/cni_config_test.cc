// The CNI plugin's input parsers: CNI_* variables and the stdin network
// configuration, including the hostile cases (wrong types, oversized and
// deeply nested documents).
#include "cni/cni_config.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

std::map<std::string, std::string> addEnv() {
  return {{"CNI_COMMAND", "ADD"},
          {"CNI_CONTAINERID", "abc123"},
          {"CNI_NETNS", "/var/run/netns/pod1"},
          {"CNI_IFNAME", "eth0"},
          {"CNI_PATH", "/opt/cni/bin"}};
}

const char* kConf = R"({"cniVersion":"1.0.0","name":"oc","type":"offcore-cni","node":"n1","subnet":"sub1"})";

TEST(CniEnvTest, AddNeedsContainerIfnameAndNetns) {
  auto env = parseCniEnv(addEnv());
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(env->command, CniCommand::kAdd);
  EXPECT_EQ(env->container_id, "abc123");
  EXPECT_EQ(env->netns, "/var/run/netns/pod1");
  EXPECT_EQ(env->ifname, "eth0");
  EXPECT_EQ(env->pod_name, "abc123");  // no CNI_ARGS: the container id
  EXPECT_EQ(env->pod_namespace, "default");
  for (const char* key : {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"}) {
    auto e = addEnv();
    e.erase(key);
    auto r = parseCniEnv(e);
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_EQ(r.error().code, kCniInvalidEnv);
    EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
  }
}

TEST(CniEnvTest, DelWithoutNetnsIsFine) {
  auto e = addEnv();
  e["CNI_COMMAND"] = "DEL";
  e.erase("CNI_NETNS");
  auto env = parseCniEnv(e);
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(env->command, CniCommand::kDel);
  EXPECT_TRUE(env->netns.empty());
}

TEST(CniEnvTest, VersionNeedsNothingElse) {
  auto env = parseCniEnv({{"CNI_COMMAND", "VERSION"}});
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->command, CniCommand::kVersion);
}

TEST(CniEnvTest, UnknownOrMissingCommand) {
  for (const char* cmd : {"", "GC", "add", "STATUS"}) {
    auto e = addEnv();
    e["CNI_COMMAND"] = cmd;
    auto r = parseCniEnv(e);
    ASSERT_FALSE(r.ok()) << cmd;
    EXPECT_EQ(r.error().code, kCniInvalidEnv);
  }
}

TEST(CniEnvTest, ValidatesIdsAndInterfaceNames) {
  for (const char* id : {"-abc", "a/b", "a b", "ab\n"}) {
    auto e = addEnv();
    e["CNI_CONTAINERID"] = id;
    EXPECT_FALSE(parseCniEnv(e).ok()) << id;
  }
  auto e = addEnv();
  e["CNI_CONTAINERID"] = "default-c1_x.y";
  EXPECT_TRUE(parseCniEnv(e).ok());
  for (const char* name : {"eth0:1", "a/b", ".", "..", "sixteen-chars-xx", "e th"}) {
    auto e2 = addEnv();
    e2["CNI_IFNAME"] = name;
    auto r = parseCniEnv(e2);
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  }
  auto rel = addEnv();
  rel["CNI_NETNS"] = "var/run/netns/x";
  EXPECT_FALSE(parseCniEnv(rel).ok());
}

TEST(CniEnvTest, PodNameAndNamespaceFromCniArgs) {
  auto e = addEnv();
  e["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;";
  auto env = parseCniEnv(e);
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(env->pod_name, "web-0");
  EXPECT_EQ(env->pod_namespace, "prod");
  e["CNI_ARGS"] = "K8S_POD_NAME=web;garbage";
  auto bad = parseCniEnv(e);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, kCniInvalidEnv);
  EXPECT_NE(bad.error().message.find("garbage"), std::string::npos);
  e["CNI_ARGS"] = std::string(70000, 'x');
  EXPECT_FALSE(parseCniEnv(e).ok());
}

TEST(CniConfTest, DefaultsAndUnknownFields) {
  auto c = parseCniNetConf(
      R"({"cniVersion":"1.0.0","name":"oc","type":"offcore-cni","node":"n1","subnet":"sub1",
          "somethingElse":{"x":1},"ipam":{},"dns":{},"runtimeConfig":{"portMappings":[]},"args":{}})",
      "/run/offcore");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->cni_version, "1.0.0");
  EXPECT_EQ(c->node, "n1");
  EXPECT_EQ(c->vpc, "default");
  EXPECT_EQ(c->subnet, "sub1");
  EXPECT_EQ(c->mtu, 1450);
  EXPECT_EQ(c->apiSocket(), "/run/offcore/n1/api.sock");
  EXPECT_TRUE(c->prev_result.is_null());
}

TEST(CniConfTest, ExplicitFields) {
  auto c = parseCniNetConf(R"({"cniVersion":"0.3.1","name":"oc","node":"n1","vpc":"vpc1","subnet":"sub1",
                               "mtu":9000,"runRoot":"/tmp/oc//","prevResult":{"cniVersion":"0.3.1"}})",
                           "/run/offcore");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->vpc, "vpc1");
  EXPECT_EQ(c->mtu, 9000);
  EXPECT_EQ(c->apiSocket(), "/tmp/oc/n1/api.sock");
  EXPECT_TRUE(c->prev_result.is_object());
  // The machine's run root applies only when the config names none.
  auto d = parseCniNetConf(kConf, "/run/other");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->apiSocket(), "/run/other/n1/api.sock");
}

struct BadConf {
  const char* text;
  int code;
  const char* mentions;
};

TEST(CniConfTest, BadConfigsGetTheRightCode) {
  const BadConf cases[] = {
      {"not json", kCniDecodeFailed, "not valid JSON"},
      {"[1,2]", kCniDecodeFailed, "not a JSON object"},
      {"", kCniDecodeFailed, "not valid JSON"},
      {R"({"name":"oc","node":"n1","subnet":"s"})", kCniInvalidConfig, "cniVersion"},
      {R"({"cniVersion":1,"name":"oc","node":"n1","subnet":"s"})", kCniInvalidConfig, "cniVersion"},
      {R"({"cniVersion":"0.2.0","name":"oc","node":"n1","subnet":"s"})", kCniIncompatibleVersion, "0.2.0"},
      {R"({"cniVersion":"1.1.0","name":"oc","node":"n1","subnet":"s"})", kCniIncompatibleVersion, "1.1.0"},
      {R"({"cniVersion":"1.0.0","node":"n1","subnet":"s"})", kCniInvalidConfig, "'name'"},
      {R"({"cniVersion":"1.0.0","name":"oc","subnet":"s"})", kCniInvalidConfig, "'node'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"N1!","subnet":"s"})", kCniInvalidConfig, "node name"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1"})", kCniInvalidConfig, "'subnet'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":7})", kCniInvalidConfig, "'subnet'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","vpc":""})", kCniInvalidConfig, "'vpc'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mtu":"1450"})", kCniInvalidConfig, "'mtu'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mtu":1450.5})", kCniInvalidConfig, "'mtu'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mtu":100})", kCniInvalidConfig, "576..9000"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mtu":90000})", kCniInvalidConfig, "576"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","runRoot":"rel"})", kCniInvalidConfig, "runRoot"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","type":3})", kCniInvalidConfig, "'type'"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","prevResult":[]})", kCniInvalidConfig,
       "prevResult"},
      {R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","ipam":"host-local"})", kCniInvalidConfig,
       "'ipam'"},
  };
  for (const auto& bad : cases) {
    auto r = parseCniNetConf(bad.text, "/run/offcore");
    ASSERT_FALSE(r.ok()) << bad.text;
    EXPECT_EQ(r.error().code, bad.code) << bad.text << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(bad.mentions), std::string::npos) << r.error().message;
  }
}

TEST(CniConfTest, SocketPathMustFitSunPath) {
  std::string root = "/" + std::string(100, 'r');
  auto r = parseCniNetConf(R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","runRoot":")" + root + "\"}",
                           "/run/offcore");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("too long"), std::string::npos);
}

TEST(CniConfTest, OversizedAndDeepDocumentsAreRefused) {
  std::string big = R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","pad":")" +
                    std::string(kCniMaxConfigBytes, 'x') + "\"}";
  auto r = parseCniNetConf(big, "/run/offcore");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kCniDecodeFailed);
  std::string deep = R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","x":)" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  auto d = parseCniNetConf(deep, "/run/offcore");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, kCniDecodeFailed);
  EXPECT_EQ(cniReplyVersion(deep), "1.0.0");
}

TEST(CniConfTest, NestingDepthIgnoresBracketsInStrings) {
  EXPECT_EQ(jsonNestingDepth(R"({"a":"[[[[\"{{"})"), 1);
  EXPECT_EQ(jsonNestingDepth(R"({"a":[{"b":[]}]})"), 4);
  EXPECT_EQ(jsonNestingDepth("plain"), 0);
}

TEST(CniConfTest, ReplyVersionFollowsTheConfig) {
  EXPECT_EQ(cniReplyVersion(R"({"cniVersion":"0.3.1"})"), "0.3.1");
  EXPECT_EQ(cniReplyVersion(R"({"cniVersion":"9.9.9"})"), "1.0.0");
  EXPECT_EQ(cniReplyVersion("garbage"), "1.0.0");
}

TEST(CniConfTest, VersionOrder) {
  EXPECT_TRUE(cniVersionAtLeast("0.4.0", "0.4.0"));
  EXPECT_TRUE(cniVersionAtLeast("1.0.0", "0.4.0"));
  EXPECT_FALSE(cniVersionAtLeast("0.3.1", "0.4.0"));
  EXPECT_TRUE(cniVersionAtLeast("0.10.0", "0.4.0"));
  EXPECT_FALSE(cniVersionAtLeast("1.0", "0.4.0"));
  EXPECT_FALSE(cniVersionAtLeast("1.0.0x", "0.4.0"));
}

TEST(CniMeshTest, MeshSwitchAndIdentityFromCniArgs) {
  auto c =
      parseCniNetConf(R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mesh":true})", "/run/offcore");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(c->mesh);
  EXPECT_FALSE(parseCniNetConf(kConf, "/run/offcore")->mesh);
  auto bad = parseCniNetConf(R"({"cniVersion":"1.0.0","name":"oc","node":"n1","subnet":"s","mesh":"yes"})", "/r");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'mesh' must be true or false"), std::string::npos);

  auto e = addEnv();
  e["CNI_ARGS"] = "K8S_POD_NAMESPACE=shop;OFFCORE_SERVICE_ACCOUNT=frontend";
  auto env = parseCniEnv(e);
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_EQ(env->pod_namespace, "shop");
  EXPECT_EQ(env->service_account, "frontend");
  EXPECT_EQ(parseCniEnv(addEnv())->service_account, "default");
  // A '/' would forge another SPIFFE path (spiffe://td/ns/<ns>/sa/<sa>).
  e["CNI_ARGS"] = "OFFCORE_SERVICE_ACCOUNT=a/ns/kube-system";
  EXPECT_FALSE(parseCniEnv(e).ok());
  e["CNI_ARGS"] = "K8S_POD_NAMESPACE=x/sa/admin";
  EXPECT_FALSE(parseCniEnv(e).ok());
}

}  // namespace
}  // namespace offcore
