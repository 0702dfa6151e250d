#include "cni/cni_result.h"

#include <algorithm>
#include <cctype>

#include "cni/cni_config.h"

namespace offcore {
namespace {

using Json = nlohmann::ordered_json;

// Strings from the agent or the runtime may hold invalid UTF-8; dump() would
// throw on it.
std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool isV6(const std::string& cidr) { return cidr.find(':') != std::string::npos; }

Error prevError(const std::string& msg) { return makeError("prevResult: " + msg, kCniInvalidConfig); }

}  // namespace

Result<CniEndpoint> parseAgentEndpoint(const std::string& body) {
  auto bad = [](const std::string& why) { return makeError("malformed reply from the agent: " + why, kCniIoFailure); };
  if (body.size() > kCniMaxConfigBytes || jsonNestingDepth(body) > kCniMaxJsonDepth) return bad("too large");
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  CniEndpoint ep;
  struct Field {
    const char* key;
    std::string* out;
    bool required;
  };
  for (const Field& f : {Field{"ifname", &ep.ifname, true}, Field{"mac", &ep.mac, true}, Field{"ip", &ep.ip, true},
                         Field{"gateway", &ep.gateway, true}, Field{"netns", &ep.netns, false}}) {
    auto it = j.find(f.key);
    if (it == j.end() || it->is_null()) {
      if (f.required) return bad(std::string("field '") + f.key + "' is missing");
      continue;
    }
    if (!it->is_string()) return bad(std::string("field '") + f.key + "' is not a string");
    *f.out = it->get<std::string>();
  }
  if (ep.ip.find('/') == std::string::npos) return bad("field 'ip' is not an address/prefix");
  return ep;
}

Result<std::string> renderCniAddResult(const std::string& version, const CniEndpoint& ep, const Json& prev_result) {
  Json interfaces = Json::array(), ips = Json::array(), routes = Json::array(), dns = Json::object();
  if (prev_result.is_object()) {
    using Field = std::pair<const char*, Json*>;
    for (auto [key, out] : {Field{"interfaces", &interfaces}, Field{"ips", &ips}, Field{"routes", &routes}}) {
      auto it = prev_result.find(key);
      if (it == prev_result.end() || it->is_null()) continue;
      if (!it->is_array()) return prevError(std::string("field '") + key + "' must be an array");
      *out = *it;
    }
    if (auto it = prev_result.find("dns"); it != prev_result.end() && it->is_object()) dns = *it;
  }

  size_t index = interfaces.size();
  interfaces.push_back(Json{{"name", ep.ifname}, {"mac", ep.mac}, {"sandbox", ep.netns}});
  Json ip = Json::object();
  // Before 1.0.0 every IP config named its family.
  if (!cniVersionAtLeast(version, "1.0.0")) ip["version"] = isV6(ep.ip) ? "6" : "4";
  ip["address"] = ep.ip;
  ip["gateway"] = ep.gateway;
  ip["interface"] = index;
  ips.push_back(ip);
  std::string dst = isV6(ep.ip) ? "::/0" : "0.0.0.0/0";
  bool have_default = std::any_of(routes.begin(), routes.end(),
                                  [&](const Json& r) { return r.is_object() && r.contains("dst") && r["dst"] == dst; });
  if (!have_default) routes.push_back(Json{{"dst", dst}, {"gw", ep.gateway}});

  Json out = Json::object();
  out["cniVersion"] = version;
  out["interfaces"] = std::move(interfaces);
  out["ips"] = std::move(ips);
  out["routes"] = std::move(routes);
  out["dns"] = std::move(dns);
  return dump(out);
}

std::string renderCniError(const std::string& version, int code, const std::string& msg, const std::string& details) {
  Json j = Json::object();
  j["cniVersion"] = version;
  j["code"] = code;
  j["msg"] = msg;
  if (!details.empty()) j["details"] = details;
  return dump(j);
}

std::string renderCniVersion() {
  Json j = Json::object();
  j["cniVersion"] = kCniLatestVersion;
  j["supportedVersions"] = cniSupportedVersions();
  return dump(j);
}

Status checkPrevResult(const Json& prev, const std::string& ifname, const CniEndpoint& ep) {
  if (!prev.is_object()) return prevError("missing; CHECK compares the agent's view with the result of ADD");
  auto ifs = prev.find("interfaces");
  if (ifs == prev.end() || !ifs->is_array()) return prevError("has no 'interfaces' list");
  const Json* mine = nullptr;
  for (const Json& i : *ifs) {
    if (i.is_object() && i.contains("name") && i["name"] == ifname) mine = &i;
  }
  if (!mine) return prevError("names no interface '" + ifname + "'");
  if (mine->contains("mac")) {
    const Json& mac = (*mine)["mac"];
    if (!mac.is_string()) return prevError("the mac of '" + ifname + "' is not a string");
    if (lower(mac.get<std::string>()) != lower(ep.mac)) {
      return prevError("'" + ifname + "' has mac " + mac.get<std::string>() + " but the agent's endpoint has " +
                       ep.mac + "; the interface was replaced, delete and re-add the pod's network");
    }
  }
  auto ips = prev.find("ips");
  if (ips == prev.end() || !ips->is_array()) return prevError("has no 'ips' list");
  std::string listed;
  for (const Json& i : *ips) {
    if (!i.is_object() || !i.contains("address") || !i["address"].is_string()) continue;
    auto address = i["address"].get<std::string>();
    if (address == ep.ip) return okStatus();
    if (listed.size() < 200) listed += (listed.empty() ? "" : ", ") + address;
  }
  return prevError("lists [" + listed + "] but the agent's endpoint for '" + ifname + "' has " + ep.ip +
                   "; delete and re-add the pod's network");
}

}  // namespace offcore
