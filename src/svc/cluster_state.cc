// state.json and health/<node>.json: the on-disk forms of ClusterState and
// NodeHealth. Both are read by several processes; a document that does not
// parse is reported with its file name and never replaced by an empty one.
#include "svc/cluster_state.h"
#include "base/json.h"
#include "base/log.h"

namespace offcore::svc {

using nlohmann::json;

namespace {

constexpr int kStateVersion = 1;

json endpointJson(const Endpoint& e) {
  return {{"id", e.id},
          {"node", e.node},
          {"containerId", e.container_id},
          {"ifname", e.ifname},
          {"podName", e.pod_name},
          {"netns", e.netns},
          {"vpc", e.vpc},
          {"subnet", e.subnet},
          {"ip", e.ip},
          {"prefixLen", e.prefix_len},
          {"mac", e.mac},
          {"representor", e.representor},
          {"mesh", e.mesh},
          {"namespace", e.ns},
          {"serviceAccount", e.service_account},
          {"vm", e.vm}};
}

Status readString(const json& j, const char* key, std::string& out, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return makeError(where + "." + key + ": expected a string");
  out = it->get<std::string>();
  return okStatus();
}

Result<Endpoint> endpointFromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return makeError(where + ": expected an object");
  Endpoint e;
  OC_TRY(readString(j, "id", e.id, where));
  OC_TRY(readString(j, "node", e.node, where));
  OC_TRY(readString(j, "containerId", e.container_id, where));
  OC_TRY(readString(j, "ifname", e.ifname, where));
  OC_TRY(readString(j, "podName", e.pod_name, where));
  OC_TRY(readString(j, "netns", e.netns, where));
  OC_TRY(readString(j, "vpc", e.vpc, where));
  OC_TRY(readString(j, "subnet", e.subnet, where));
  OC_TRY(readString(j, "ip", e.ip, where));
  OC_TRY(readString(j, "mac", e.mac, where));
  OC_TRY(readString(j, "representor", e.representor, where));
  auto p = j.find("prefixLen");
  if (p == j.end() || !p->is_number_integer() || p->get<int64_t>() < 0 || p->get<int64_t>() > 32)
    return makeError(where + ".prefixLen: expected 0-32");
  e.prefix_len = static_cast<int>(p->get<int64_t>());
  // Mesh fields came later: absent = not in the mesh.
  if (auto m = j.find("mesh"); m != j.end()) {
    if (!m->is_boolean()) return makeError(where + ".mesh: expected true or false");
    e.mesh = m->get<bool>();
  }
  if (j.contains("namespace")) OC_TRY(readString(j, "namespace", e.ns, where));
  if (j.contains("serviceAccount")) OC_TRY(readString(j, "serviceAccount", e.service_account, where));
  // VM NICs came later: absent = a pod.
  if (j.contains("vm")) OC_TRY(readString(j, "vm", e.vm, where));
  if (!parseIpv4(e.ip)) return makeError(where + ".ip: not an IPv4 address");
  return e;
}

Result<NodeRecord> nodeFromJson(const json& j, const std::string& where) {
  if (!j.is_object()) return makeError(where + ": expected an object");
  NodeRecord n;
  OC_TRY(readString(j, "name", n.name, where));
  OC_TRY(readString(j, "fabricIp", n.fabric_ip, where));
  OC_TRY(readString(j, "hostIp", n.host_ip, where));
  OC_TRY(readString(j, "hostMac", n.host_mac, where));
  // Nodes registered before native routing have none until they re-register.
  if (j.contains("fabricMac")) OC_TRY(readString(j, "fabricMac", n.fabric_mac, where));
  return n;
}

// Reads doc[section] (an object keyed by name) into out with parse().
template <typename T, typename Parse>
Status readSection(const json& doc, const char* section, std::map<std::string, T>& out, Parse parse) {
  auto it = doc.find(section);
  if (it == doc.end()) return okStatus();
  if (!it->is_object()) return makeError(std::string(section) + ": expected an object");
  for (auto e = it->begin(); e != it->end(); ++e) {
    std::string where = std::string(section) + "." + e.key();
    OC_ASSIGN_OR_RETURN(T value, parse(e.value(), where));
    out[e.key()] = std::move(value);
  }
  return okStatus();
}

}  // namespace

ClusterState ClusterState::empty() {
  ClusterState s;
  s.vpcs[kDefaultVpc] = Vpc{kDefaultVpc, kDefaultVni, "tunnel"};
  return s;
}

namespace {

json nodeJson(const NodeRecord& n) {
  return json{{"name", n.name},
              {"fabricIp", n.fabric_ip},
              {"fabricMac", n.fabric_mac},
              {"hostIp", n.host_ip},
              {"hostMac", n.host_mac}};
}

// Calls fn(section, name, object) for every object of s, sections in state.json's order.
template <typename Fn>
void forEachObject(const ClusterState& s, Fn&& fn) {
  auto section = [&](const char* name, const auto& map, auto convert) {
    for (const auto& [k, v] : map) fn(name, k, convert(v));
  };
  auto plain = [](const auto& v) { return svc::toJson(v); };
  section("vpcs", s.vpcs, plain);
  section("subnets", s.subnets, plain);
  section("backends", s.backends, plain);
  section("services", s.services, plain);
  section("probes", s.probes, plain);
  section("endpoints", s.endpoints, endpointJson);
  section("nodes", s.nodes, nodeJson);
}

// Parses doc[section][name]-shaped j into its map of s.
Status readObject(ClusterState& s, const std::string& section, const std::string& name, const json& j,
                  const std::string& where) {
  auto one = [&](auto& map, auto parse) -> Status {
    OC_ASSIGN_OR_RETURN(auto value, parse(j, where));
    map[name] = std::move(value);
    return okStatus();
  };
  if (section == "vpcs") return one(s.vpcs, vpcFromJson);
  if (section == "subnets") return one(s.subnets, subnetFromJson);
  if (section == "backends") return one(s.backends, backendFromJson);
  if (section == "services") return one(s.services, serviceFromJson);
  if (section == "probes") return one(s.probes, probeFromJson);
  if (section == "endpoints") return one(s.endpoints, endpointFromJson);
  if (section == "nodes") return one(s.nodes, nodeFromJson);
  return makeError(where + ": unknown section '" + section + "'");
}

}  // namespace

std::string ClusterState::toJson() const {
  json doc = {{"version", kStateVersion}, {"generation", generation}};
  for (const char* name : {"vpcs", "subnets", "backends", "services", "probes", "endpoints", "nodes"}) {
    doc[name] = json::object();
  }
  forEachObject(*this,
                [&](const char* section, const std::string& name, json obj) { doc[section][name] = std::move(obj); });
  return dumpJson(doc, 2) + "\n";
}

std::map<std::string, std::string> stateObjects(const ClusterState& s) {
  std::map<std::string, std::string> out;
  forEachObject(s, [&](const char* section, const std::string& name, const json& obj) {
    out[std::string(section) + "/" + name] = dumpJson(obj);
  });
  return out;
}

unsigned sectionOf(const std::string& key) {
  const std::string section = key.substr(0, key.find('/'));
  const std::pair<const char*, unsigned> known[] = {{"vpcs", kVpcsSection},         {"subnets", kSubnetsSection},
                                                    {"backends", kBackendsSection}, {"services", kServicesSection},
                                                    {"probes", kProbesSection},     {"endpoints", kEndpointsSection},
                                                    {"nodes", kNodesSection}};
  for (const auto& [name, bit] : known) {
    if (section == name) return bit;
  }
  return 0;
}

void diffStateObjects(const ClusterState& before, const ClusterState& after, std::map<std::string, std::string>& puts,
                      std::vector<std::string>& deletes, unsigned sections) {
  auto section = [&](const char* name, const auto& was, const auto& now, auto convert) {
    if (!(sectionOf(name) & sections)) return;
    const std::string prefix = std::string(name) + "/";
    for (const auto& [k, v] : now) {
      auto it = was.find(k);
      if (it == was.end() || !(it->second == v)) puts[prefix + k] = dumpJson(convert(v));
    }
    for (const auto& [k, v] : was) {
      if (!now.count(k)) deletes.push_back(prefix + k);
    }
  };
  auto plain = [](const auto& v) { return svc::toJson(v); };
  section("vpcs", before.vpcs, after.vpcs, plain);
  section("subnets", before.subnets, after.subnets, plain);
  section("backends", before.backends, after.backends, plain);
  section("services", before.services, after.services, plain);
  section("probes", before.probes, after.probes, plain);
  section("endpoints", before.endpoints, after.endpoints, endpointJson);
  section("nodes", before.nodes, after.nodes, nodeJson);
}

bool isStateObjectKey(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == key.size()) return false;
  return sectionOf(key) != 0;
}

void eraseStateObject(ClusterState& s, const std::string& key) {
  if (!isStateObjectKey(key)) return;
  size_t slash = key.find('/');
  const std::string section = key.substr(0, slash), name = key.substr(slash + 1);
  if (section == "vpcs" && name != kDefaultVpc) s.vpcs.erase(name);
  if (section == "subnets") s.subnets.erase(name);
  if (section == "backends") s.backends.erase(name);
  if (section == "services") s.services.erase(name);
  if (section == "probes") s.probes.erase(name);
  if (section == "endpoints") s.endpoints.erase(name);
  if (section == "nodes") s.nodes.erase(name);
}

void copyStateObject(const ClusterState& from, ClusterState& to, const std::string& key) {
  if (!isStateObjectKey(key)) return;
  size_t slash = key.find('/');
  const std::string section = key.substr(0, slash), name = key.substr(slash + 1);
  auto one = [&](const auto& src, auto& dst) {
    auto it = src.find(name);
    if (it != src.end()) {
      dst[name] = it->second;
    } else {
      dst.erase(name);
    }
  };
  if (section == "vpcs" && name != kDefaultVpc) one(from.vpcs, to.vpcs);
  if (section == "vpcs" && name == kDefaultVpc && from.vpcs.count(name)) to.vpcs[name] = from.vpcs.at(name);
  if (section == "subnets") one(from.subnets, to.subnets);
  if (section == "backends") one(from.backends, to.backends);
  if (section == "services") one(from.services, to.services);
  if (section == "probes") one(from.probes, to.probes);
  if (section == "endpoints") one(from.endpoints, to.endpoints);
  if (section == "nodes") one(from.nodes, to.nodes);
}

Status readStateObject(ClusterState& s, const std::string& key, const std::string& text, const std::string& where) {
  size_t slash = key.find('/');
  if (slash == std::string::npos || slash + 1 == key.size()) return makeError(where + ": not <section>/<name>");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return makeError(where + ": not JSON; restore it from a backup");
  auto st = readObject(s, key.substr(0, slash), key.substr(slash + 1), j, where);
  if (!st.ok()) return st.error().wrap("corrupt cluster state");
  // The default VPC always exists with vni 1; its routing is the user's.
  s.vpcs[kDefaultVpc].name = kDefaultVpc;
  s.vpcs[kDefaultVpc].vni = kDefaultVni;
  return okStatus();
}

Result<ClusterState> ClusterState::fromJson(const std::string& text, const std::string& origin) {
  auto corrupt = [&](const std::string& what) {
    return makeError(origin + " is corrupt (" + what +
                     "); restore it from a backup or move it away to start from an empty cluster state");
  };
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return corrupt("not a JSON object");
  auto v = doc.find("version");
  if (v == doc.end() || !v->is_number_integer() || v->get<int64_t>() != kStateVersion)
    return corrupt("version must be " + std::to_string(kStateVersion) + "; written by another offcore?");
  auto g = doc.find("generation");
  if (g == doc.end() || !g->is_number_unsigned()) return corrupt("generation: expected an unsigned integer");
  ClusterState s;
  s.generation = g->get<uint64_t>();
  Status st = readSection(doc, "vpcs", s.vpcs, vpcFromJson);
  if (st.ok()) st = readSection(doc, "subnets", s.subnets, subnetFromJson);
  if (st.ok()) st = readSection(doc, "backends", s.backends, backendFromJson);
  if (st.ok()) st = readSection(doc, "services", s.services, serviceFromJson);
  if (st.ok()) st = readSection(doc, "probes", s.probes, probeFromJson);
  if (st.ok()) st = readSection(doc, "endpoints", s.endpoints, endpointFromJson);
  if (st.ok()) st = readSection(doc, "nodes", s.nodes, nodeFromJson);
  if (!st.ok()) return corrupt(st.error().message);
  // The default VPC always exists with vni 1; its routing is the user's.
  s.vpcs[kDefaultVpc].name = kDefaultVpc;
  s.vpcs[kDefaultVpc].vni = kDefaultVni;
  return s;
}

std::string healthToJson(const NodeHealth& h) {
  json backends = json::object();
  for (const auto& [name, b] : h.backends)
    backends[name] = {{"healthy", b.healthy}, {"sinceMs", b.since_ms}, {"lastError", b.last_error}, {"probe", b.probe}};
  json doc = {{"node", h.node},
              {"programmedGeneration", h.programmed_generation},
              {"updatedMs", h.updated_ms},
              {"backends", backends}};
  return dumpJson(doc, 2) + "\n";
}

std::optional<NodeHealth> readableHealth(const Result<std::string>& text, const std::string& origin) {
  auto h = text.ok() ? healthFromJson(*text, origin) : Result<NodeHealth>(text.error());
  if (h.ok()) return std::move(*h);
  spdlog::warn("skipping health record: {}", h.error().message);
  return std::nullopt;
}

bool isPlainName(const std::string& s) {
  return !s.empty() && s.find('/') == std::string::npos && s != "." && s != "..";
}

Result<NodeHealth> healthFromJson(const std::string& text, const std::string& origin) {
  auto bad = [&](const std::string& what) { return makeError(origin + ": " + what); };
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  NodeHealth h;
  Status st = readString(doc, "node", h.node, "node");
  if (!st.ok()) return bad(st.error().message);
  auto u64 = [&](const json& j, const char* key, uint64_t& out) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_unsigned()) return false;
    out = it->get<uint64_t>();
    return true;
  };
  if (!u64(doc, "programmedGeneration", h.programmed_generation) || !u64(doc, "updatedMs", h.updated_ms))
    return bad("programmedGeneration and updatedMs must be unsigned integers");
  auto bs = doc.find("backends");
  if (bs == doc.end() || !bs->is_object()) return bad("backends: expected an object");
  for (auto it = bs->begin(); it != bs->end(); ++it) {
    BackendHealth b;
    const json& j = it.value();
    auto healthy = j.is_object() ? j.find("healthy") : j.end();
    if (!j.is_object() || healthy == j.end() || !healthy->is_boolean() || !u64(j, "sinceMs", b.since_ms) ||
        !readString(j, "lastError", b.last_error, "").ok() || !readString(j, "probe", b.probe, "").ok())
      return bad("backends." + it.key() + ": expected {healthy, sinceMs, lastError, probe}");
    b.healthy = healthy->get<bool>();
    h.backends[it.key()] = std::move(b);
  }
  return h;
}

}  // namespace offcore::svc
