// The NIC of `offcore vm`: the node's agent makes it a dataplane endpoint
// (/v1/net/vm/*: an address in the VPC subnet, a persistent tap in the SoC),
// and an agent service `vm-NAME-net` runs `vm net-serve` on that tap, the
// vhost-user-net back end QEMU connects to.
#include <chrono>
#include <cstdio>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/vm_common.h"

namespace offcore {

using nlohmann::json;

namespace {

json nicRequest(const virt::VmSpec& spec) {
  auto slash = spec.net.find('/');
  return {{"vm", spec.name}, {"vpc", spec.net.substr(0, slash)}, {"subnet", spec.net.substr(slash + 1)}};
}

// The last non-empty line of a service's log, or "" when there is none.
std::string lastLine(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) return "";
  std::string t = *text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

Result<std::string> attachVmNic(ApiClient& agent, virt::VmSpec& spec, NicPhase phase) {
  json req = nicRequest(spec);
  if (!spec.net_mac.empty()) req["mac"] = spec.net_mac;
  if (phase == NicPhase::kPrepare) req["prepare"] = true;
  if (phase == NicPhase::kAttach) req["move"] = true;
  OC_ASSIGN_OR_RETURN(auto body, agent.call("POST", "/v1/net/vm/add", dumpJson(req)));
  auto reply = json::parse(body, nullptr, false);
  if (reply.is_discarded() || !reply.is_object() || !reply.contains("tap"))
    return makeError("the agent's NIC reply is not JSON with a tap: " + body);
  if (phase != NicPhase::kPrepare) {
    spec.net_ip = reply.value("ip", "") + "/32";
    spec.net_mac = reply.value("mac", "");
  }
  return reply.value("tap", "");
}

Status releaseVmNic(ApiClient& agent, const virt::VmSpec& spec, bool tap_only) {
  json req = nicRequest(spec);
  if (tap_only) req["prepare"] = true;
  auto r = agent.call("POST", "/v1/net/vm/del", dumpJson(req));
  if (!r.ok()) return r.error();
  return okStatus();
}

Status startVmNetBackend(const CliContext& ctx, ApiClient& agent, const virt::VmSpec& spec, const virt::VmPaths& paths,
                         const std::string& tap) {
  OC_TRY(makePrivateDir(paths.dir));
  std::remove(paths.net_socket.c_str());
  (void)agent.del("/v1/services/" + netService(spec.name));
  std::vector<std::string> argv{selfExe(), "vm", "net-serve", "--socket", paths.net_socket, "--tap", tap};
  json svc{{"name", netService(spec.name)}, {"argv", argv}};
  OC_TRY(agent.call("POST", "/v1/services", dumpJson(svc)));
  for (int i = 0; i < 200 && !unixSocketAnswers(paths.net_socket); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (unixSocketAnswers(paths.net_socket)) return okStatus();
  (void)agent.del("/v1/services/" + netService(spec.name));
  std::string log = ctx.config.run_root + "/" + spec.node + "/" + netService(spec.name) + ".log";
  return makeError("the network back end did not come up: " + lastLine(log) + " (see " + log + ")");
}

}  // namespace offcore
