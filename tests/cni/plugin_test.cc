// offcore-cni's ADD/DEL/CHECK/VERSION logic against a scripted agent, and
// once end to end over a real API socket.
#include "cni/plugin.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "api/api_server.h"
#include "base/files.h"
#include "cni/cni_config.h"

namespace offcore {
namespace {

using json = nlohmann::json;

const char* kReply = R"({"ifname":"eth0","mac":"02:00:00:aa:bb:01","netns":"/var/run/netns/pod1","ip":"10.1.0.5/24",)"
                     R"("gateway":"169.254.1.1","representor":"pf0vf3","endpoint":"n1/abc123/eth0"})";

// The agent as the plugin sees it: replies scripted per path, calls recorded.
struct FakeAgent {
  std::map<std::string, Result<ApiReply>> replies;
  std::vector<std::pair<std::string, json>> calls;
  std::vector<std::string> sockets;
  bool netns_exists = true;
};

class FakeBackend : public CniBackend {
 public:
  explicit FakeBackend(FakeAgent& agent) : agent_(agent) {}
  Result<ApiReply> call(const std::string& path, const std::string& body) override {
    agent_.calls.emplace_back(path, json::parse(body));
    auto it = agent_.replies.find(path);
    if (it == agent_.replies.end()) return ApiReply{404, R"({"error":"no endpoint )" + path + "\"}"};
    return it->second;
  }
  bool netnsExists(const std::string&) override { return agent_.netns_exists; }

 private:
  FakeAgent& agent_;
};

class CniPluginTest : public ::testing::Test {
 protected:
  CniOutcome run(const std::string& command, const std::string& config, std::map<std::string, std::string> extra = {}) {
    CniInput in;
    in.env = {{"CNI_COMMAND", command},
              {"CNI_CONTAINERID", "abc123"},
              {"CNI_NETNS", "/var/run/netns/pod1"},
              {"CNI_IFNAME", "eth0"},
              {"CNI_PATH", "/opt/cni/bin"}};
    for (auto& [k, v] : extra) {
      if (v.empty())
        in.env.erase(k);
      else
        in.env[k] = v;
    }
    in.config = config;
    return runCniPlugin(in, [this](const std::string& socket) {
      agent_.sockets.push_back(socket);
      return std::make_unique<FakeBackend>(agent_);
    });
  }

  static std::string conf(const std::string& version = "1.0.0", const std::string& extra = "") {
    return R"({"cniVersion":")" + version + R"(","name":"ocnet","type":"offcore-cni","node":"n1","vpc":"vpc1",)" +
           R"("subnet":"sub1")" + extra + "}";
  }

  static json errorOf(const CniOutcome& o) {
    EXPECT_NE(o.exit_code, 0);
    return json::parse(o.out, nullptr, false);
  }

  FakeAgent agent_;
};

TEST_F(CniPluginTest, Version) {
  auto o = run("VERSION", "");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\"]}\n");
  EXPECT_TRUE(agent_.sockets.empty());
}

TEST_F(CniPluginTest, AddForwardsToTheAgentAndRendersA100Result) {
  agent_.replies.insert_or_assign("/v1/net/cni/add", ApiReply{200, kReply});
  auto o = run("ADD", conf("1.0.0", R"(,"mtu":1400)"), {{"CNI_ARGS", "K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=prod"}});
  ASSERT_EQ(o.exit_code, 0) << o.out;
  ASSERT_EQ(agent_.sockets, std::vector<std::string>{"/run/offcore/n1/api.sock"});
  ASSERT_EQ(agent_.calls.size(), 1u);
  EXPECT_EQ(agent_.calls[0].first, "/v1/net/cni/add");
  EXPECT_EQ(agent_.calls[0].second, json::parse(R"({"containerId":"abc123","netns":"/var/run/netns/pod1",
      "ifname":"eth0","vpc":"vpc1","subnet":"sub1","podName":"web-0","podNamespace":"prod","mtu":1400,
      "mesh":false,"serviceAccount":"default"})"));
  EXPECT_EQ(json::parse(o.out), json::parse(R"({"cniVersion":"1.0.0",
      "interfaces":[{"name":"eth0","mac":"02:00:00:aa:bb:01","sandbox":"/var/run/netns/pod1"}],
      "ips":[{"address":"10.1.0.5/24","gateway":"169.254.1.1","interface":0}],
      "routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}})"));
}

TEST_F(CniPluginTest, OlderVersionsNameTheAddressFamily) {
  agent_.replies.insert_or_assign("/v1/net/cni/add", ApiReply{200, kReply});
  for (const char* v : {"0.3.0", "0.3.1", "0.4.0"}) {
    auto o = run("ADD", conf(v));
    ASSERT_EQ(o.exit_code, 0) << o.out;
    auto r = json::parse(o.out);
    EXPECT_EQ(r["cniVersion"], v);
    EXPECT_EQ(r["ips"][0]["version"], "4");
    EXPECT_EQ(r["ips"][0]["interface"], 0);
  }
}

TEST_F(CniPluginTest, AddDefaultsPodNameAndNamespace) {
  agent_.replies.insert_or_assign("/v1/net/cni/add", ApiReply{200, kReply});
  ASSERT_EQ(run("ADD", conf()).exit_code, 0);
  EXPECT_EQ(agent_.calls[0].second["podName"], "abc123");
  EXPECT_EQ(agent_.calls[0].second["podNamespace"], "default");
  EXPECT_EQ(agent_.calls[0].second["mtu"], 1450);
}

TEST_F(CniPluginTest, ChainedAddKeepsThePreviousResult) {
  agent_.replies.insert_or_assign("/v1/net/cni/add", ApiReply{200, kReply});
  auto o = run("ADD", conf("1.0.0", R"(,"prevResult":{"cniVersion":"1.0.0",
      "interfaces":[{"name":"lo","sandbox":"/var/run/netns/pod1"}],
      "ips":[{"address":"127.0.0.1/8","interface":0}],"dns":{"nameservers":["10.96.0.10"]}})"));
  ASSERT_EQ(o.exit_code, 0) << o.out;
  auto r = json::parse(o.out);
  ASSERT_EQ(r["interfaces"].size(), 2u);
  EXPECT_EQ(r["interfaces"][1]["name"], "eth0");
  EXPECT_EQ(r["ips"][1]["interface"], 1);
  EXPECT_EQ(r["dns"]["nameservers"][0], "10.96.0.10");
}

TEST_F(CniPluginTest, AddWithTheAgentDownIsTryAgainLater) {
  agent_.replies.insert_or_assign("/v1/net/cni/add",
                                  makeError("cannot reach the agent at /run/offcore/n1/api.sock: refused"));
  auto e = errorOf(run("ADD", conf("0.4.0")));
  EXPECT_EQ(e["code"], kCniTryAgainLater);
  EXPECT_EQ(e["cniVersion"], "0.4.0");
  std::string msg = e["msg"];
  EXPECT_NE(msg.find("node 'n1' does not answer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offcore dpu agent restart --name n1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("offcore dpu up --name n1"), std::string::npos) << msg;
}

TEST_F(CniPluginTest, AgentStatusesMapToCniCodes) {
  struct Case {
    long status;
    int code;
  };
  for (Case c : {Case{400, kCniInvalidConfig}, Case{404, kCniUnknownContainer}, Case{409, kCniInvalidConfig},
                 Case{500, kCniIoFailure}, Case{503, kCniTryAgainLater}}) {
    agent_.replies.insert_or_assign("/v1/net/cni/add",
                                    ApiReply{c.status, R"({"error":"unknown subnet 'sub1' in vpc 'vpc1'"})"});
    auto e = errorOf(run("ADD", conf()));
    EXPECT_EQ(e["code"], c.code) << c.status;
    EXPECT_NE(e["msg"].get<std::string>().find("unknown subnet 'sub1'"), std::string::npos) << e["msg"];
  }
}

TEST_F(CniPluginTest, AddIntoAMissingNetnsIsUnknownContainer) {
  agent_.netns_exists = false;
  auto e = errorOf(run("ADD", conf()));
  EXPECT_EQ(e["code"], kCniUnknownContainer);
  EXPECT_TRUE(agent_.calls.empty());
}

TEST_F(CniPluginTest, MalformedAgentReplyIsIoFailure) {
  for (const char* body : {"not json", R"({"ifname":"eth0"})", R"({"ifname":"eth0","mac":1,"ip":"x","gateway":"g"})",
                           R"({"ifname":"eth0","mac":"m","ip":"10.0.0.1","gateway":"g"})"}) {
    agent_.replies.insert_or_assign("/v1/net/cni/add", ApiReply{200, body});
    auto e = errorOf(run("ADD", conf()));
    EXPECT_EQ(e["code"], kCniIoFailure) << body;
  }
}

TEST_F(CniPluginTest, BadInputNeverReachesTheAgent) {
  struct Case {
    std::string config;
    int code;
  };
  for (const auto& c :
       {Case{"not json", kCniDecodeFailed},
        Case{R"({"cniVersion":"1.0.0","name":"x","subnet":"s"})", kCniInvalidConfig},
        Case{conf("1.0.0", R"(,"mtu":"big")"), kCniInvalidConfig}, Case{conf("0.1.0"), kCniIncompatibleVersion}}) {
    auto o = run("ADD", c.config);
    auto e = errorOf(o);
    EXPECT_EQ(e["code"], c.code) << c.config;
    EXPECT_TRUE(e["msg"].is_string());
    EXPECT_EQ(o.out.back(), '\n');
  }
  EXPECT_TRUE(agent_.sockets.empty());
  auto e = errorOf(run("ADD", conf(), {{"CNI_IFNAME", ""}}));
  EXPECT_EQ(e["code"], kCniInvalidEnv);
  auto none = errorOf(run("", conf()));
  EXPECT_EQ(none["code"], kCniInvalidEnv);
  EXPECT_TRUE(agent_.calls.empty());
}

TEST_F(CniPluginTest, DelSucceedsWhateverIsLeft) {
  agent_.replies.insert_or_assign("/v1/net/cni/del", ApiReply{200, "{}"});
  auto o = run("DEL", conf(), {{"CNI_NETNS", ""}});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out, "");
  ASSERT_EQ(agent_.calls.size(), 1u);
  EXPECT_EQ(agent_.calls[0].second, json::parse(R"({"containerId":"abc123","ifname":"eth0","netns":""})"));

  agent_.replies.insert_or_assign("/v1/net/cni/del", ApiReply{404, R"({"error":"no endpoint"})"});
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);

  // No agent: nothing can be held; a warning for the log, success for the runtime.
  agent_.replies.insert_or_assign("/v1/net/cni/del",
                                  makeError("cannot reach the agent at /run/offcore/n1/api.sock: refused"));
  auto down = run("DEL", conf());
  EXPECT_EQ(down.exit_code, 0);
  EXPECT_EQ(down.out, "");
  EXPECT_NE(down.err.find("warning"), std::string::npos);
  // DEL does not care whether the netns still exists.
  agent_.netns_exists = false;
  agent_.replies.insert_or_assign("/v1/net/cni/del", ApiReply{200, "{}"});
  EXPECT_EQ(run("DEL", conf()).exit_code, 0);
}

TEST_F(CniPluginTest, DelFailureInsideTheAgentIsReported) {
  agent_.replies.insert_or_assign("/v1/net/cni/del", ApiReply{500, R"({"error":"cannot write state"})"});
  auto e = errorOf(run("DEL", conf()));
  EXPECT_EQ(e["code"], kCniIoFailure);
}

std::string prevResult(const std::string& mac, const std::string& ip) {
  return R"(,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":")" + mac +
         R"(","sandbox":"/var/run/netns/pod1"}],"ips":[{"address":")" + ip +
         R"(","gateway":"169.254.1.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}})";
}

TEST_F(CniPluginTest, CheckComparesWithPrevResult) {
  agent_.replies.insert_or_assign("/v1/net/cni/check", ApiReply{200, kReply});
  auto o = run("CHECK", conf("1.0.0", prevResult("02:00:00:AA:BB:01", "10.1.0.5/24")));
  EXPECT_EQ(o.exit_code, 0) << o.out;
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(agent_.calls.at(0).first, "/v1/net/cni/check");

  auto mac = errorOf(run("CHECK", conf("1.0.0", prevResult("02:00:00:aa:bb:99", "10.1.0.5/24"))));
  EXPECT_EQ(mac["code"], kCniInvalidConfig);
  EXPECT_NE(mac["msg"].get<std::string>().find("02:00:00:aa:bb:99"), std::string::npos) << mac["msg"];
  auto ip = errorOf(run("CHECK", conf("1.0.0", prevResult("02:00:00:aa:bb:01", "10.1.0.9/24"))));
  EXPECT_EQ(ip["code"], kCniInvalidConfig);
  EXPECT_NE(ip["msg"].get<std::string>().find("10.1.0.9/24"), std::string::npos) << ip["msg"];
}

TEST_F(CniPluginTest, CheckOfAnUnknownEndpointIsUnknownContainer) {
  agent_.replies.insert_or_assign("/v1/net/cni/check", ApiReply{404, R"({"error":"no endpoint n1/abc123/eth0"})"});
  auto e = errorOf(run("CHECK", conf("1.0.0", prevResult("02:00:00:aa:bb:01", "10.1.0.5/24"))));
  EXPECT_EQ(e["code"], kCniUnknownContainer);
  agent_.replies.insert_or_assign("/v1/net/cni/check", makeError("cannot reach the agent"));
  EXPECT_EQ(errorOf(run("CHECK", conf("1.0.0", prevResult("m", "10.1.0.5/24"))))["code"], kCniTryAgainLater);
}

TEST_F(CniPluginTest, CheckNeedsPrevResultAnd040) {
  agent_.replies.insert_or_assign("/v1/net/cni/check", ApiReply{200, kReply});
  EXPECT_EQ(errorOf(run("CHECK", conf()))["code"], kCniInvalidConfig);
  EXPECT_EQ(errorOf(run("CHECK", conf("0.3.1", prevResult("m", "10.1.0.5/24"))))["code"], kCniIncompatibleVersion);
  EXPECT_TRUE(agent_.calls.empty());
}

// The production backend over a real API socket: what main.cc wires up.
TEST(CniAgentBackendTest, TalksToAnApiServerAndReportsAMissingNode) {
  std::string root = "/tmp/oc-cni-test-" + std::to_string(::getpid());
  ASSERT_TRUE(makeDirs(root + "/n1").ok());
  EventLoop loop;
  ASSERT_TRUE(loop.init().ok());
  ApiServer server(loop);
  std::string seen;
  server.route("POST", "/v1/net/cni/add", [&](const ApiRequest& r) {
    seen = r.body;
    return ApiResponse::json(200, kReply);
  });
  server.route("POST", "/v1/net/cni/del", [](const ApiRequest&) { return ApiResponse::json(200, "{}"); });
  ASSERT_TRUE(server.listenUnix(root + "/n1/api.sock").ok());
  std::thread thread([&] { (void)loop.run(); });

  CniInput in;
  in.env = {{"CNI_COMMAND", "ADD"},
            {"CNI_CONTAINERID", "abc123"},
            {"CNI_NETNS", "/proc/self/ns/net"},
            {"CNI_IFNAME", "eth0"}};
  in.config = R"({"cniVersion":"1.0.0","name":"ocnet","node":"n1","subnet":"sub1","runRoot":")" + root + "\"}";
  auto connect = [](const std::string& socket) { return makeAgentBackend(socket, 2000); };
  auto add = runCniPlugin(in, connect);
  EXPECT_EQ(add.exit_code, 0) << add.out;
  EXPECT_EQ(json::parse(add.out)["ips"][0]["address"], "10.1.0.5/24");
  EXPECT_EQ(json::parse(seen)["subnet"], "sub1");
  in.env["CNI_COMMAND"] = "DEL";
  EXPECT_EQ(runCniPlugin(in, connect).exit_code, 0);

  loop.stop();
  thread.join();

  // A node that is not up: no socket at all.
  in.env["CNI_COMMAND"] = "ADD";
  in.config = R"({"cniVersion":"1.0.0","name":"ocnet","node":"n2","subnet":"sub1","runRoot":")" + root + "\"}";
  auto missing = runCniPlugin(in, connect);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(json::parse(missing.out)["code"], kCniTryAgainLater);
  in.env["CNI_COMMAND"] = "DEL";
  auto del = runCniPlugin(in, connect);
  EXPECT_EQ(del.exit_code, 0);
  EXPECT_NE(del.err.find("not running"), std::string::npos);
  (void)removeTree(root);
}

}  // namespace
}  // namespace offcore
