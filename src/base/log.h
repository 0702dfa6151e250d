// Logging goes through spdlog. Services log to stderr, which the supervisor
// sends to a per-service file under the node's run dir.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace offcore {

// level: trace|debug|info|warn|error|off. Unknown levels fall back to info.
void initLogging(const std::string& component, const std::string& level);

}  // namespace offcore
