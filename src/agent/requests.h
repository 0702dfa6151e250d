// Parsers for the agent's API request bodies. They take untrusted bytes
// (anything that can write to the socket) and either return a validated
// spec or a one-line error; they are fuzzed (fuzz/api_request_fuzz.cc).
#pragma once

#include <string>

#include "agent/supervisor.h"
#include "base/result.h"
#include "dpu/vf.h"

namespace offcore {

Result<ServiceSpec> parseServiceRequest(const std::string& body);
Result<VfSpec> parseVfRequest(const std::string& body);
// POST /v1/shutdown: true when the services are to keep running (an agent
// restart); an empty body means stop them.
Result<bool> parseShutdownRequest(const std::string& body);

}  // namespace offcore
