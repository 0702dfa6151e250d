#include "dpu/fabric.h"
#include "base/json.h"

#include <nlohmann/json.hpp>
#include <set>

#include "dpu/layout.h"
#include "dpu/netns.h"

namespace offcore {

using nlohmann::json;

namespace {
constexpr int kMaxNodes = 240;   // <prefix>.0.10 .. .249
constexpr int kHostSlots = 240;  // <prefix>.1.10 .. .249
}  // namespace

Fabric::Fabric(const Config& config) : config_(config) {}

Result<FileLock> Fabric::lock() const {
  OC_TRY(makeDirs(dir()));
  return FileLock::acquire(dir() + "/.lock");
}

std::string Fabric::nodeUplinkIp(int index) const { return ipv4(config_.fabric_prefix, 0, 10 + index) + "/16"; }

std::string Fabric::subnet() const { return ipv4(config_.fabric_prefix, 0, 0) + "/16"; }

Fabric::Registry Fabric::load() const {
  Registry r;
  auto text = readFile(dir() + "/state.json");
  if (!text.ok()) return r;
  auto doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return r;
  const json nodes = doc.value("nodes", json::object());
  const json hosts = doc.value("hosts", json::object());
  for (const auto& [k, v] : nodes.items()) {
    if (v.is_number_integer()) r.nodes[k] = v.get<int>();
  }
  for (const auto& [k, v] : hosts.items()) {
    if (!v.is_object()) continue;
    r.hosts[k] = FabricHost{k, v.value("netns", ""), v.value("ifname", ""), v.value("ip", "")};
  }
  if (doc.contains("next_node") && doc["next_node"].is_number_integer()) r.next_node = doc["next_node"].get<int>();
  if (doc.contains("next_host") && doc["next_host"].is_number_integer()) r.next_host = doc["next_host"].get<int>();
  return r;
}

Status Fabric::save(const Registry& r) const {
  json doc{
      {"nodes", json::object()}, {"hosts", json::object()}, {"next_node", r.next_node}, {"next_host", r.next_host}};
  for (auto& [k, v] : r.nodes) doc["nodes"][k] = v;
  for (auto& [k, h] : r.hosts) doc["hosts"][k] = {{"netns", h.netns}, {"ifname", h.ifname}, {"ip", h.ip}};
  return writeFileAtomic(dir() + "/state.json", dumpJson(doc, 2) + "\n");
}

Status Fabric::ensure() {
  const std::string& ns = netns();
  if (!netnsExists(ns)) OC_TRY(netnsAdd(ns));
  if (!linkExists(ns, bridge())) {
    OC_TRY(ipCmd(ns, {"link", "add", bridge(), "type", "bridge"}));
  }
  OC_TRY(ipCmd(ns, {"link", "set", "lo", "up"}));
  OC_TRY(ipCmd(ns, {"link", "set", bridge(), "up"}));
  // Never out through the default route (see the header).
  OC_TRY(ipCmd("", {"route", "replace", "unreachable", subnet(), "metric", std::to_string(kUnreachableMetric)}));
  return okStatus();
}

Status Fabric::removeIfUnused() {
  Registry r = load();
  if (!r.nodes.empty() || !r.hosts.empty()) return okStatus();
  OC_TRY(netnsDelete(netns()));
  auto routes = ipOutput("", {"route", "show", subnet(), "type", "unreachable"});
  if (routes.ok() && !trim(*routes).empty()) {
    OC_TRY(ipCmd("", {"route", "del", "unreachable", subnet(), "metric", std::to_string(kUnreachableMetric)}));
  }
  // The registry stays: its cursors must outlive the fabric.
  return okStatus();
}

void Fabric::forgetNeighbour(const Registry& r, const std::string& ip) const {
  for (const auto& [node, _] : r.nodes) {
    std::string ns = NodeLayout::forNode(config_, node).soc_netns;
    if (netnsExists(ns)) (void)ipCmd(ns, {"neigh", "flush", "to", ip});
  }
  for (const auto& [_, h] : r.hosts) {
    if (netnsExists(h.netns)) (void)ipCmd(h.netns, {"neigh", "flush", "to", ip});
  }
}

Result<int> Fabric::allocateNode(const std::string& node) {
  Registry r = load();
  if (auto it = r.nodes.find(node); it != r.nodes.end()) return it->second;
  std::set<int> used;
  for (auto& [_, i] : r.nodes) used.insert(i);
  for (int n = 0; n < kMaxNodes; ++n) {
    int i = (r.next_node + n) % kMaxNodes;
    if (used.count(i)) continue;
    r.nodes[node] = i;
    r.next_node = (i + 1) % kMaxNodes;
    OC_TRY(save(r));
    forgetNeighbour(r, nodeUplinkIp(i).substr(0, nodeUplinkIp(i).find('/')));
    return i;
  }
  return makeError("the fabric is full (240 nodes); remove one with `offcore dpu down`");
}

Status Fabric::releaseNode(const std::string& node) {
  Registry r = load();
  if (r.nodes.erase(node) == 0) return okStatus();
  return save(r);
}

std::map<std::string, int> Fabric::nodes() const { return load().nodes; }

std::vector<FabricHost> Fabric::hosts() const {
  std::vector<FabricHost> out;
  for (auto& [_, h] : load().hosts) out.push_back(h);
  return out;
}

Result<FabricHost> Fabric::host(const std::string& name) const {
  Registry r = load();
  auto it = r.hosts.find(name);
  if (it == r.hosts.end()) {
    return makeError("no fabric host '" + name + "' (see `offcore fabric host list`)");
  }
  return it->second;
}

Result<FabricHost> Fabric::addHost(const std::string& name, const std::string& cidr) {
  OC_TRY(validateName("fabric host", name));
  Registry r = load();
  FabricHost h{name, "ocf-" + name, "ocf-" + name, cidr};
  if (r.hosts.count(name) || netnsExists(h.netns)) {
    return makeError("fabric host '" + name + "' already exists (remove it with `offcore fabric host del " + name +
                     "`)");
  }
  std::set<std::string> used_ips;
  for (auto& [_, other] : r.hosts) used_ips.insert(other.ip.substr(0, other.ip.find('/')));
  if (h.ip.empty()) {
    for (int n = 0; n < kHostSlots && h.ip.empty(); ++n) {
      int k = (r.next_host + n) % kHostSlots;
      std::string candidate = ipv4(config_.fabric_prefix, 1, 10 + k);
      if (used_ips.count(candidate)) continue;
      h.ip = candidate + "/16";
      r.next_host = (k + 1) % kHostSlots;
    }
    if (h.ip.empty()) return makeError("no free fabric host address; pass --ip");
  } else {
    if (h.ip.find('/') == std::string::npos) h.ip += "/16";
    if (used_ips.count(h.ip.substr(0, h.ip.find('/')))) {
      return makeError("address " + h.ip + " is already used by another fabric host");
    }
  }
  OC_TRY(ensure());
  auto rollback = [&](const Error& e) -> Error {
    (void)linkDelete(netns(), h.ifname);
    (void)netnsDelete(h.netns);
    return e.wrap("fabric host add " + name);
  };
  if (auto s = netnsAdd(h.netns); !s.ok()) return rollback(s.error());
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"link", "add", h.ifname, "type", "veth", "peer", "name", "eth0", "netns", h.netns},
           {"link", "set", h.ifname, "master", bridge(), "up"}}) {
    if (auto s = ipCmd(netns(), step); !s.ok()) return rollback(s.error());
  }
  for (const auto& step : std::vector<std::vector<std::string>>{
           {"link", "set", "lo", "up"}, {"addr", "add", h.ip, "dev", "eth0"}, {"link", "set", "eth0", "up"}}) {
    if (auto s = ipCmd(h.netns, step); !s.ok()) return rollback(s.error());
  }
  r.hosts[name] = h;
  if (auto s = save(r); !s.ok()) return rollback(s.error());
  forgetNeighbour(r, h.ip.substr(0, h.ip.find('/')));
  return h;
}

Status Fabric::deleteHost(const std::string& name) {
  OC_TRY(validateName("fabric host", name));
  Registry r = load();
  std::string ns = "ocf-" + name;
  (void)linkDelete(netns(), "ocf-" + name);
  OC_TRY(netnsDelete(ns));
  if (r.hosts.erase(name)) OC_TRY(save(r));
  return okStatus();
}

}  // namespace offcore
