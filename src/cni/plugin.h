// offcore-cni: the CNI plugin's ADD/DEL/CHECK/VERSION logic. It allocates
// nothing itself: the node's agent owns endpoints and IPAM (POST
// /v1/net/cni/{add,del,check}); the plugin validates what the runtime handed
// it, forwards it, and renders the agent's answer in the runtime's cniVersion.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "api/api_client.h"
#include "base/result.h"

namespace offcore {

// Where the plugin's requests go: the node's agent over its API socket in
// production (makeAgentBackend), a fake in tests.
class CniBackend {
 public:
  virtual ~CniBackend() = default;
  // POSTs a JSON body. Any HTTP reply, 4xx and 5xx included, is a value: the
  // plugin maps statuses to CNI codes. An Error means no reply at all (socket
  // missing, connection refused, timeout): the node is not running.
  virtual Result<ApiReply> call(const std::string& path, const std::string& body) = 0;
  // Whether CNI_NETNS names something that exists. Checked before ADD and
  // CHECK, so a vanished sandbox is CNI code 3 and never reaches the agent.
  virtual bool netnsExists(const std::string& path) = 0;
};

std::unique_ptr<CniBackend> makeAgentBackend(const std::string& socket_path, long timeout_ms);

struct CniInput {
  std::map<std::string, std::string> env;         // the CNI_* variables
  std::string config;                             // stdin; more than 1 MiB is refused
  std::string default_run_root = "/run/offcore";  // when the config has no runRoot
};

struct CniOutcome {
  int exit_code = 0;
  std::string out;  // for stdout: a result, version info or an error JSON (empty after DEL/CHECK)
  std::string err;  // for stderr: warnings
};

// Opens the backend for the agent socket the network configuration names.
using CniConnect = std::function<std::unique_ptr<CniBackend>(const std::string& socket_path)>;

CniOutcome runCniPlugin(const CniInput& in, const CniConnect& connect);

}  // namespace offcore
