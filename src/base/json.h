// JSON output that never throws: strings from users, pods or peers may hold
// invalid UTF-8, which nlohmann::json::dump() would throw on (and a throw on
// the agent's loop is a crash). Invalid bytes become U+FFFD instead.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace offcore {

inline std::string dumpJson(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace offcore
