#include "gateway/requests.h"

#include <nlohmann/json.hpp>

#include "base/byte_size.h"

namespace offcore::gateway {
namespace {

using nlohmann::json;

Result<json> object(const std::string& body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return makeError("request body must be a JSON object");
  return doc;
}

Result<std::string> stringField(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_string()) return makeError(std::string("field '") + key + "' must be a string");
  return it->get<std::string>();
}

Result<uint64_t> sizeField(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end()) return makeError(std::string("missing field '") + key + "'");
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_string()) return parseByteSize(it->get<std::string>());
  return makeError(std::string("field '") + key + "' must be a size like \"10G\"");
}

Result<std::vector<std::string>> hostList(const json& value) {
  if (!value.is_array()) return makeError("field 'allowed_hosts' must be an array of host NQNs");
  if (value.size() > kMaxAllowedHosts) {
    return makeError("field 'allowed_hosts' lists " + std::to_string(value.size()) + " hosts; at most " +
                     std::to_string(kMaxAllowedHosts));
  }
  std::vector<std::string> hosts;
  for (const auto& h : value) {
    if (!h.is_string()) return makeError("field 'allowed_hosts' must hold only strings (host NQNs)");
    std::string nqn = h.get<std::string>();
    if (nqn.size() < 5 || nqn.compare(0, 4, "nqn.") != 0 || nqn.size() > kMaxNqnBytes) {
      return makeError("'" + nqn.substr(0, 64) + "' in 'allowed_hosts' is not a host NQN (nqn.…, at most 223 bytes)");
    }
    for (unsigned char c : nqn) {
      if (c < 0x20 || c == 0x7F) return makeError("a host NQN in 'allowed_hosts' holds a control character");
    }
    auto star = nqn.find('*');
    if (star != std::string::npos && (star != nqn.size() - 1 || nqn[star - 1] != ':')) {
      return makeError("'" + nqn.substr(0, 64) + "' in 'allowed_hosts': '*' may only end a prefix, as in nqn.…:node:*");
    }
    hosts.push_back(std::move(nqn));
  }
  return hosts;
}

}  // namespace

Result<CreateVolumeRequest> parseCreateVolume(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  CreateVolumeRequest r;
  OC_ASSIGN_OR_RETURN(r.name, stringField(doc, "name"));
  OC_ASSIGN_OR_RETURN(r.size_bytes, sizeField(doc, "size"));
  if (auto it = doc.find("allowed_hosts"); it != doc.end() && !it->is_null()) {
    OC_ASSIGN_OR_RETURN(auto hosts, hostList(*it));
    r.allowed_hosts = std::move(hosts);
  }
  return r;
}

Result<std::vector<std::string>> parseHostsRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  auto it = doc.find("allowed_hosts");
  if (it == doc.end()) return makeError("missing field 'allowed_hosts' (an array of host NQNs; [] allows any host)");
  return hostList(*it);
}

Result<DerivedVolumeRequest> parseDerivedVolume(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  DerivedVolumeRequest r;
  OC_ASSIGN_OR_RETURN(r.name, stringField(doc, "name"));
  if (auto it = doc.find("allowed_hosts"); it != doc.end() && !it->is_null()) {
    OC_ASSIGN_OR_RETURN(auto hosts, hostList(*it));
    r.allowed_hosts = std::move(hosts);
  }
  return r;
}

Result<uint64_t> parseResizeRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  return sizeField(doc, "size");
}

}  // namespace offcore::gateway
