#include "agent/requests.h"

#include <nlohmann/json.hpp>

namespace offcore {

using nlohmann::json;

namespace {

Result<json> parseObject(const std::string& body) {
  auto doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return makeError("request body must be a JSON object");
  return doc;
}

Result<std::string> stringField(const json& doc, const char* key, bool required) {
  auto it = doc.find(key);
  if (it == doc.end()) {
    if (required) return makeError(std::string("missing field '") + key + "'");
    return std::string();
  }
  if (!it->is_string()) return makeError(std::string("field '") + key + "' must be a string");
  return it->get<std::string>();
}

}  // namespace

Result<ServiceSpec> parseServiceRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, parseObject(body));
  ServiceSpec spec;
  OC_ASSIGN_OR_RETURN(spec.name, stringField(doc, "name", true));
  auto argv = doc.find("argv");
  if (argv == doc.end() || !argv->is_array() || argv->empty()) {
    return makeError("field 'argv' must be a non-empty array of strings");
  }
  for (const auto& a : *argv) {
    if (!a.is_string()) return makeError("field 'argv' must be a non-empty array of strings");
    spec.argv.push_back(a.get<std::string>());
  }
  if (auto restart = doc.find("restart"); restart != doc.end()) {
    if (!restart->is_boolean()) return makeError("field 'restart' must be true or false");
    spec.restart = restart->get<bool>();
  }
  OC_ASSIGN_OR_RETURN(spec.part_of, stringField(doc, "part_of", false));
  return spec;
}

Result<VfSpec> parseVfRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, parseObject(body));
  VfSpec spec;
  OC_ASSIGN_OR_RETURN(spec.netns, stringField(doc, "netns", true));
  OC_ASSIGN_OR_RETURN(std::string ifname, stringField(doc, "ifname", false));
  if (!ifname.empty()) spec.ifname = ifname;
  OC_ASSIGN_OR_RETURN(spec.ip, stringField(doc, "ip", false));
  OC_ASSIGN_OR_RETURN(spec.mac, stringField(doc, "mac", false));
  if (spec.netns.empty()) return makeError("field 'netns' is empty: name the pod's namespace");
  OC_TRY(validateNetnsName(spec.netns));
  OC_TRY(validateIfname(spec.ifname));
  if (!spec.ip.empty()) OC_TRY(validateCidr(spec.ip));
  if (!spec.mac.empty()) OC_TRY(validateMac(spec.mac));
  return spec;
}

Result<bool> parseShutdownRequest(const std::string& body) {
  if (body.empty()) return false;
  OC_ASSIGN_OR_RETURN(json doc, parseObject(body));
  auto keep = doc.find("keep_services");
  if (keep == doc.end()) return false;
  if (!keep->is_boolean()) return makeError("field 'keep_services' must be true or false");
  return keep->get<bool>();
}

}  // namespace offcore
