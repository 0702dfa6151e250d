#include "agent/services_record.h"

#include <type_traits>

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace offcore {

using nlohmann::json;

std::string renderServicesRecord(const std::vector<RecordedService>& services) {
  json arr = json::array();
  for (const auto& s : services) {
    arr.push_back({{"name", s.spec.name},
                   {"argv", s.spec.argv},
                   {"restart", s.spec.restart},
                   {"part_of", s.spec.part_of},
                   {"restarts", s.restarts},
                   {"state", s.state},
                   {"pid", s.pid},
                   {"start_ticks", s.start_ticks}});
  }
  return dumpJson(json{{"services", arr}}, 2) + "\n";
}

namespace {

// Typed field access without exceptions: a wrong type is a bad entry.
template <typename T>
bool field(const json& entry, const char* key, T& out, bool required) {
  auto it = entry.find(key);
  if (it == entry.end()) return !required;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  out = it->get<T>();
  return true;
}

bool argvField(const json& entry, std::vector<std::string>& out) {
  auto it = entry.find("argv");
  if (it == entry.end() || !it->is_array() || it->empty()) return false;
  for (const auto& a : *it) {
    if (!a.is_string()) return false;
    out.push_back(a.get<std::string>());
  }
  return true;
}

}  // namespace

Result<std::vector<RecordedService>> parseServicesRecord(const std::string& text, std::vector<std::string>* skipped) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("services") || !doc["services"].is_array()) {
    return makeError("not a services record (want {\"services\": [...]})");
  }
  std::vector<RecordedService> out;
  for (const auto& entry : doc["services"]) {
    RecordedService r;
    bool ok = entry.is_object() && field(entry, "name", r.spec.name, true) && argvField(entry, r.spec.argv) &&
              field(entry, "restart", r.spec.restart, false) && field(entry, "part_of", r.spec.part_of, false) &&
              field(entry, "restarts", r.restarts, false) && field(entry, "state", r.state, false) &&
              field(entry, "pid", r.pid, false) && field(entry, "start_ticks", r.start_ticks, false) && r.pid >= 0 &&
              r.restarts >= 0;
    if (!ok) {
      if (skipped) skipped->push_back(dumpJson(entry));
      continue;
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace offcore
