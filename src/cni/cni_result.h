// What the CNI plugin prints: results, errors and version info, each in the
// cniVersion the runtime asked for. Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"

namespace offcore {

// The agent's view of one pod interface (its reply to cni/add and cni/check).
struct CniEndpoint {
  std::string ifname;
  std::string mac;
  std::string netns;
  std::string ip;       // CIDR, "10.1.0.5/24"
  std::string gateway;  // "169.254.1.1"
};

// Errors (a malformed agent reply) carry kCniIoFailure.
Result<CniEndpoint> parseAgentEndpoint(const std::string& body);

// The ADD result. A chained plugin's prevResult is kept and ours appended to
// it. Errors (a prevResult of the wrong shape) carry kCniInvalidConfig.
Result<std::string> renderCniAddResult(const std::string& version, const CniEndpoint& ep,
                                       const nlohmann::ordered_json& prev_result);

// {"cniVersion","code","msg"[,"details"]}
std::string renderCniError(const std::string& version, int code, const std::string& msg,
                           const std::string& details = "");

std::string renderCniVersion();

// CHECK: prevResult (what the runtime believes) must name the agent's address
// and, for `ifname`, the agent's MAC. Errors carry kCniInvalidConfig.
Status checkPrevResult(const nlohmann::ordered_json& prev, const std::string& ifname, const CniEndpoint& ep);

}  // namespace offcore
