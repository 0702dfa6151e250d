#include "cni/plugin.h"

#include <sys/stat.h>

#include "cni/cni_config.h"
#include "cni/cni_result.h"

namespace offcore {
namespace {

using Json = nlohmann::ordered_json;

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A peer's text in our one-line message.
std::string oneLine(const std::string& s, size_t max = 300) {
  std::string out = s.substr(0, max);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) c = ' ';
  }
  return s.size() > max ? out + "..." : out;
}

class AgentBackend : public CniBackend {
 public:
  AgentBackend(const std::string& socket_path, long timeout_ms) : client_(socket_path, timeout_ms) {}
  Result<ApiReply> call(const std::string& path, const std::string& body) override { return client_.post(path, body); }
  bool netnsExists(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

 private:
  ApiClient client_;
};

class Run {
 public:
  Run(const CniEnv& env, const CniNetConf& conf, CniBackend& backend)
      : env_(env),
        conf_(conf),
        backend_(backend),
        what_(std::string(cniCommandName(env.command)) + " " + env.ifname + " of " + env.container_id) {}

  CniOutcome add() {
    if (!backend_.netnsExists(env_.netns)) return netnsGone();
    Json body = {{"containerId", env_.container_id},
                 {"netns", env_.netns},
                 {"ifname", env_.ifname},
                 {"vpc", conf_.vpc},
                 {"subnet", conf_.subnet},
                 {"podName", env_.pod_name},
                 {"podNamespace", env_.pod_namespace},
                 {"serviceAccount", env_.service_account},
                 {"mesh", conf_.mesh},
                 {"mtu", conf_.mtu}};
    auto reply = backend_.call("/v1/net/cni/add", dump(body));
    if (!reply.ok()) return notRunning(reply.error());
    if (!ok(*reply)) return agentRefused(*reply);
    auto ep = parseAgentEndpoint(reply->body);
    if (!ep.ok()) return fail(ep.error().code, ep.error().message);
    if (ep->netns.empty()) ep->netns = env_.netns;
    auto result = renderCniAddResult(conf_.cni_version, *ep, conf_.prev_result);
    if (!result.ok()) return fail(result.error().code, result.error().message);
    return CniOutcome{0, *result, ""};
  }

  // DEL must succeed whenever nothing can still be held: the agent reports
  // success for unknown endpoints, and with no agent there is nothing to free
  // (a node's endpoints go with `dpu down`).
  CniOutcome del() {
    Json body = {{"containerId", env_.container_id}, {"ifname", env_.ifname}, {"netns", env_.netns}};
    auto reply = backend_.call("/v1/net/cni/del", dump(body));
    if (!reply.ok()) {
      return CniOutcome{0, "",
                        "offcore-cni: warning: " + what_ + ": node '" + conf_.node + "' is not running (" +
                            reply.error().message + "); nothing to release\n"};
    }
    if (ok(*reply) || reply->status == 404) return CniOutcome{0, "", ""};
    return agentRefused(*reply);
  }

  CniOutcome check() {
    if (!cniVersionAtLeast(conf_.cni_version, "0.4.0")) {
      return fail(kCniIncompatibleVersion,
                  "CHECK needs cniVersion 0.4.0 or later; the configuration has " + conf_.cni_version);
    }
    if (conf_.prev_result.is_null()) {
      return fail(kCniInvalidConfig, what_ + ": no prevResult; CHECK compares the agent's view with the result of ADD");
    }
    if (!backend_.netnsExists(env_.netns)) return netnsGone();
    Json body = {{"containerId", env_.container_id}, {"ifname", env_.ifname}, {"netns", env_.netns}};
    auto reply = backend_.call("/v1/net/cni/check", dump(body));
    if (!reply.ok()) return notRunning(reply.error());
    if (!ok(*reply)) return agentRefused(*reply);
    auto ep = parseAgentEndpoint(reply->body);
    if (!ep.ok()) return fail(ep.error().code, what_ + ": " + ep.error().message);
    if (auto s = checkPrevResult(conf_.prev_result, env_.ifname, *ep); !s.ok()) {
      return fail(s.error().code, what_ + ": " + s.error().message);
    }
    return CniOutcome{0, "", ""};
  }

 private:
  static bool ok(const ApiReply& r) { return r.status >= 200 && r.status < 300; }

  CniOutcome fail(int code, const std::string& msg) const {
    return CniOutcome{1, renderCniError(conf_.cni_version, code, msg) + "\n", ""};
  }

  CniOutcome netnsGone() const {
    return fail(kCniUnknownContainer, what_ + ": network namespace " + env_.netns + " does not exist");
  }

  CniOutcome notRunning(const Error& e) const {
    return fail(kCniTryAgainLater, what_ + ": node '" + conf_.node + "' does not answer on this host (" + e.message +
                                       "); if `offcore dpu list` shows it, restart its agent with `offcore dpu agent "
                                       "restart --name " +
                                       conf_.node + "`, else start it with `offcore dpu up --name " + conf_.node + "`");
  }

  static std::string agentMessage(const ApiReply& r) {
    Json j = jsonNestingDepth(r.body) > kCniMaxJsonDepth ? Json(nullptr) : Json::parse(r.body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string()) {
      return oneLine(j["error"].get<std::string>());
    }
    return r.body.empty() ? "no message" : oneLine(r.body);
  }

  // 404: the sandbox (ADD) or the endpoint (CHECK) is unknown. Other 4xx:
  // what we sent is wrong for this node (unknown VPC or subnet, bad names):
  // fix the configuration. 503: not ready, retry. Other 5xx: the agent failed.
  CniOutcome agentRefused(const ApiReply& r) const {
    int code = r.status == 404                       ? kCniUnknownContainer
               : r.status == 503                     ? kCniTryAgainLater
               : (r.status >= 400 && r.status < 500) ? kCniInvalidConfig
                                                     : kCniIoFailure;
    return fail(
        code, what_ + ": node '" + conf_.node + "' answered HTTP " + std::to_string(r.status) + ": " + agentMessage(r));
  }

  const CniEnv& env_;
  const CniNetConf& conf_;
  CniBackend& backend_;
  std::string what_;
};

}  // namespace

std::unique_ptr<CniBackend> makeAgentBackend(const std::string& socket_path, long timeout_ms) {
  return std::make_unique<AgentBackend>(socket_path, timeout_ms);
}

CniOutcome runCniPlugin(const CniInput& in, const CniConnect& connect) {
  auto fail = [&](const Error& e) {
    int code = e.code != 0 ? e.code : kCniIoFailure;
    return CniOutcome{1, renderCniError(cniReplyVersion(in.config), code, e.message) + "\n", ""};
  };
  auto env = parseCniEnv(in.env);
  if (!env.ok()) return fail(env.error());
  if (env->command == CniCommand::kVersion) return CniOutcome{0, renderCniVersion() + "\n", ""};
  auto conf = parseCniNetConf(in.config, in.default_run_root);
  if (!conf.ok()) return fail(conf.error());

  std::unique_ptr<CniBackend> backend = connect(conf->apiSocket());
  if (!backend) return fail(makeError("cannot open the agent channel at " + conf->apiSocket(), kCniIoFailure));
  Run run(*env, *conf, *backend);
  switch (env->command) {
    case CniCommand::kAdd: return run.add();
    case CniCommand::kDel: return run.del();
    case CniCommand::kCheck: return run.check();
    case CniCommand::kVersion: break;
  }
  return CniOutcome{0, renderCniVersion() + "\n", ""};
}

}  // namespace offcore
