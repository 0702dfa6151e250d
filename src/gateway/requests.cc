#include "gateway/requests.h"

#include <nlohmann/json.hpp>

#include "base/byte_size.h"
#include "nvme/auth/dhchap_key.h"

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

Result<SecretRequest> secretField(const json& entry, const char* key) {
  SecretRequest r;
  auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return r;
  if (!it->is_string())
    return makeError(std::string("'") + key + "' must be \"generate\", \"none\" or a DHHC-1 secret");
  std::string v = it->get<std::string>();
  if (v == "generate") {
    r.mode = SecretRequest::Mode::kGenerate;
  } else if (v == "none") {
    r.mode = SecretRequest::Mode::kNone;
  } else {
    auto k = nvme::auth::parseDhchapKey(v);
    if (!k.ok()) return makeError(std::string("'") + key + "': " + k.error().message);
    r.mode = SecretRequest::Mode::kGiven;
    r.text = nvme::auth::formatDhchapKey(*k);
  }
  return r;
}

Result<std::vector<std::string>> hostList(const json& value, std::map<std::string, HostAuthRequest>* auth) {
  if (!value.is_array()) return makeError("field 'allowed_hosts' must be an array of host NQNs");
  if (value.size() > kMaxAllowedHosts) {
    return makeError("field 'allowed_hosts' lists " + std::to_string(value.size()) + " hosts; at most " +
                     std::to_string(kMaxAllowedHosts));
  }
  std::vector<std::string> hosts;
  for (const auto& entry : value) {
    const json* h = &entry;
    if (entry.is_object()) {
      for (const auto& [k, _] : entry.items()) {
        if (k != "nqn" && k != "dhchap_secret" && k != "dhchap_ctrl_secret") {
          return makeError("unknown field '" + k.substr(0, 32) +
                           "' in an 'allowed_hosts' entry (nqn, dhchap_secret, dhchap_ctrl_secret)");
        }
      }
      auto n = entry.find("nqn");
      if (n == entry.end()) return makeError("an 'allowed_hosts' entry has no 'nqn'");
      h = &*n;
    }
    if (!h->is_string()) return makeError("field 'allowed_hosts' must hold host NQNs (strings or {\"nqn\": ...})");
    std::string nqn = h->get<std::string>();
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
    if (entry.is_object()) {
      if (!auth) return makeError("'allowed_hosts' of a snapshot or clone takes NQNs only (set secrets with /hosts)");
      HostAuthRequest a;
      OC_ASSIGN_OR_RETURN(a.secret, secretField(entry, "dhchap_secret"));
      OC_ASSIGN_OR_RETURN(a.ctrl_secret, secretField(entry, "dhchap_ctrl_secret"));
      if (a.secret.mode == SecretRequest::Mode::kNone && a.ctrl_secret.mode != SecretRequest::Mode::kDefault &&
          a.ctrl_secret.mode != SecretRequest::Mode::kNone) {
        return makeError("a controller secret needs a host secret (" + nqn.substr(0, 64) + ")");
      }
      // A prefix names many hosts: it cannot share one secret.
      if (star != std::string::npos &&
          (a.secret.mode == SecretRequest::Mode::kGenerate || a.secret.mode == SecretRequest::Mode::kGiven)) {
        return makeError("'" + nqn.substr(0, 64) + "' is a prefix; a prefix entry cannot have a DH-HMAC-CHAP secret");
      }
      (*auth)[nqn] = std::move(a);
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
    OC_ASSIGN_OR_RETURN(auto hosts, hostList(*it, &r.host_auth));
    r.allowed_hosts = std::move(hosts);
  }
  return r;
}

Result<HostsRequest> parseHostsRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  auto it = doc.find("allowed_hosts");
  if (it == doc.end()) return makeError("missing field 'allowed_hosts' (an array of host NQNs; [] allows any host)");
  HostsRequest r;
  OC_ASSIGN_OR_RETURN(r.hosts, hostList(*it, &r.host_auth));
  return r;
}

Result<DerivedVolumeRequest> parseDerivedVolume(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  DerivedVolumeRequest r;
  OC_ASSIGN_OR_RETURN(r.name, stringField(doc, "name"));
  if (auto it = doc.find("allowed_hosts"); it != doc.end() && !it->is_null()) {
    OC_ASSIGN_OR_RETURN(auto hosts, hostList(*it, nullptr));
    r.allowed_hosts = std::move(hosts);
  }
  return r;
}

Result<uint64_t> parseResizeRequest(const std::string& body) {
  OC_ASSIGN_OR_RETURN(json doc, object(body));
  return sizeField(doc, "size");
}

}  // namespace offcore::gateway
