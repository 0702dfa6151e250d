#include "gateway/client.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"

namespace offcore {

using nlohmann::json;

namespace {

json hostsField(json body, const HostList& hosts) {
  if (hosts) body["allowed_hosts"] = *hosts;
  return body;
}

json accessList(const std::vector<HostAccess>& hosts) {
  json arr = json::array();
  for (const auto& h : hosts) {
    json e{{"nqn", h.nqn}};
    if (!h.dhchap_secret.empty()) e["dhchap_secret"] = h.dhchap_secret;
    if (!h.dhchap_ctrl_secret.empty()) e["dhchap_ctrl_secret"] = h.dhchap_ctrl_secret;
    arr.push_back(e.size() == 1 ? json(h.nqn) : e);
  }
  return arr;
}

// The only live gateway on this machine (a SIGKILLed one leaves its socket).
Result<std::string> onlyGatewaySocket(const std::string& run_root) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run_root + "/targets", ec)) {
    std::string sock = e.path().string() + "/api.sock";
    if (pathExists(sock) && ApiClient(sock, 1000).get("/v1/target").ok()) found.push_back(sock);
  }
  if (found.size() == 1) return found[0];
  if (found.empty()) return makeError("no gateway is running (start one with `offcore target serve`)");
  return makeError("several gateways are running; name one with --target");
}

}  // namespace

Result<GatewayVolume> parseGatewayVolume(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("name") || !j["name"].is_string()) {
    return makeError("the gateway sent a malformed volume document");
  }
  GatewayVolume v;
  v.name = j.value("name", "");
  v.nqn = j.value("nqn", "");
  v.uri = j.value("uri", "");
  v.size_bytes = j.value("size_bytes", 0ULL);
  v.allocated_bytes = j.value("allocated_bytes", 0ULL);
  v.read_only = j.value("read_only", false);
  if (j.contains("parent") && j["parent"].is_string()) v.parent = j["parent"].get<std::string>();
  for (const char* k : {"clones", "allowed_hosts"}) {
    if (!j.contains(k) || !j[k].is_array()) continue;
    auto& out = std::string(k) == "clones" ? v.clones : v.allowed_hosts;
    for (const auto& e : j[k]) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  v.controllers = j.value("controllers", 0);
  if (j.contains("new_secrets") && j["new_secrets"].is_array()) {
    for (const auto& e : j["new_secrets"]) {
      if (e.is_object() && e.contains("dhchap_secret") && e["dhchap_secret"].is_string()) {
        v.new_secrets[e.value("nqn", "")] = e["dhchap_secret"].get<std::string>();
      }
    }
  }
  v.json = dumpJson(j);
  return v;
}

Result<GatewayClient> GatewayClient::open(const std::string& run_root, const std::string& target, long timeout_ms) {
  std::string sock;
  if (target.empty()) {
    OC_ASSIGN_OR_RETURN(sock, onlyGatewaySocket(run_root));
  } else {
    OC_ASSIGN_OR_RETURN(sock, resolveGatewaySocket(run_root, target));
  }
  ApiClient api(sock, timeout_ms);
  OC_ASSIGN_OR_RETURN(std::string info, api.call("GET", "/v1/target"));
  json j = json::parse(info, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError("gateway " + target + " answered with malformed JSON");
  return GatewayClient(std::move(api), sock, j.value("name", target));
}

Result<std::string> GatewayClient::targetJson() const { return api_.call("GET", "/v1/target"); }

Result<std::vector<GatewayVolume>> GatewayClient::list() const {
  OC_ASSIGN_OR_RETURN(std::string body, api_.call("GET", "/v1/volumes"));
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return makeError("gateway " + name_ + " sent a malformed volume list");
  std::vector<GatewayVolume> out;
  for (const auto& e : j) {
    OC_ASSIGN_OR_RETURN(auto v, parseGatewayVolume(dumpJson(e)));
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::optional<GatewayVolume>> GatewayClient::find(const std::string& name) const {
  OC_ASSIGN_OR_RETURN(auto reply, api_.get("/v1/volumes/" + name));
  if (reply.status == 404) return std::optional<GatewayVolume>();
  if (reply.status != 200) return makeError("gateway " + name_ + ": volume " + name + ": " + trim(reply.body));
  OC_ASSIGN_OR_RETURN(auto v, parseGatewayVolume(reply.body));
  return std::optional<GatewayVolume>(std::move(v));
}

Result<GatewayVolume> GatewayClient::create(const std::string& name, uint64_t size_bytes, const HostList& hosts) const {
  json body = hostsField({{"name", name}, {"size", size_bytes}}, hosts);
  OC_ASSIGN_OR_RETURN(std::string reply, api_.call("POST", "/v1/volumes", dumpJson(body)));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::create(const std::string& name, uint64_t size_bytes,
                                            const std::vector<HostAccess>& hosts) const {
  json body{{"name", name}, {"size", size_bytes}};
  if (!hosts.empty()) body["allowed_hosts"] = accessList(hosts);
  OC_ASSIGN_OR_RETURN(std::string reply, api_.call("POST", "/v1/volumes", dumpJson(body)));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::setHostAccess(const std::string& name,
                                                   const std::vector<HostAccess>& hosts) const {
  OC_ASSIGN_OR_RETURN(std::string reply, api_.call("POST", "/v1/volumes/" + name + "/hosts",
                                                   dumpJson(json{{"allowed_hosts", accessList(hosts)}})));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::snapshot(const std::string& source, const std::string& name,
                                              const HostList& hosts) const {
  json body = hostsField({{"name", name}}, hosts);
  OC_ASSIGN_OR_RETURN(std::string reply, api_.call("POST", "/v1/volumes/" + source + "/snapshot", dumpJson(body)));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::clone(const std::string& snapshot, const std::string& name,
                                           const HostList& hosts) const {
  json body = hostsField({{"name", name}}, hosts);
  OC_ASSIGN_OR_RETURN(std::string reply, api_.call("POST", "/v1/volumes/" + snapshot + "/clone", dumpJson(body)));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::resize(const std::string& name, uint64_t size_bytes) const {
  OC_ASSIGN_OR_RETURN(std::string reply,
                      api_.call("POST", "/v1/volumes/" + name + "/resize", dumpJson(json{{"size", size_bytes}})));
  return parseGatewayVolume(reply);
}

Result<GatewayVolume> GatewayClient::setHosts(const std::string& name, const std::vector<std::string>& hosts) const {
  OC_ASSIGN_OR_RETURN(std::string reply,
                      api_.call("POST", "/v1/volumes/" + name + "/hosts", dumpJson(json{{"allowed_hosts", hosts}})));
  return parseGatewayVolume(reply);
}

Status GatewayClient::remove(const std::string& name, bool force) const {
  OC_ASSIGN_OR_RETURN(auto reply, api_.del("/v1/volumes/" + name + (force ? "?force=true" : "")));
  if (reply.status == 404 || reply.status == 200) return {};
  json j = json::parse(reply.body, nullptr, false);
  std::string why = !j.is_discarded() && j.is_object() ? j.value("error", reply.body) : reply.body;
  return makeError("gateway " + name_ + ": delete " + name + ": " + trim(why), reply.status == 409 ? EBUSY : EIO);
}

std::string gatewaySocketPath(const std::string& run_root, const std::string& name) {
  return run_root + "/targets/" + name + "/api.sock";
}

Result<std::string> resolveGatewaySocket(const std::string& run_root, const std::string& target) {
  if (target.find('/') != std::string::npos) return target;
  std::string dir = run_root + "/targets";
  if (target.find(':') == std::string::npos) {
    std::string sock = gatewaySocketPath(run_root, target);
    if (!pathExists(sock)) {
      return makeError("no running gateway '" + target + "' (start one with `offcore target serve --name " + target +
                       " ...`)");
    }
    return sock;
  }
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    auto info = readFile(e.path().string() + "/target.json");
    if (!info.ok()) continue;
    auto j = json::parse(*info, nullptr, false);
    if (j.is_discarded()) continue;
    std::string listen = j.value("listen", "");
    std::string port = std::to_string(j.value("port", 0));
    if (listen + ":" + port == target ||
        ("0.0.0.0:" + port == listen + ":" + port && target.substr(target.rfind(':') + 1) == port)) {
      return e.path().string() + "/api.sock";
    }
  }
  return makeError("no running gateway listens on " + target + " (see `offcore target list`)");
}

}  // namespace offcore
