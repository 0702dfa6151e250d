#include "svc/service_programmer.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "svc/resolve.h"

namespace offcore::svc {

namespace {

uint32_t ipNet(const std::string& s) {
  in_addr a{};
  return ::inet_pton(AF_INET, s.c_str(), &a) == 1 ? a.s_addr : 0;
}

bool parseMac(const std::string& s, uint8_t out[6]) {
  unsigned b[6];
  if (std::sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(b[i]);
  return true;
}

std::string backendLabel(uint32_t vni, uint32_t ip, uint16_t port) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{ip};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::to_string(vni) + "/" + buf + ":" + std::to_string(ntohs(port));
}

bool sameEp(const oc_ep_val& a, const oc_ep_val& b) { return std::memcmp(&a, &b, sizeof a) == 0; }
bool sameSvc(const oc_svc_val& a, const oc_svc_val& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

bool ServiceProgrammer::SvcKeyLess::operator()(const oc_svc_key& a, const oc_svc_key& b) const {
  return std::tie(a.vpc, a.vip, a.port, a.proto) < std::tie(b.vpc, b.vip, b.port, b.proto);
}
bool ServiceProgrammer::EpKeyLess::operator()(const oc_ep_key& a, const oc_ep_key& b) const {
  return std::tie(a.vpc, a.ip) < std::tie(b.vpc, b.ip);
}

bool backendHealthy(const std::map<std::string, NodeHealth>& health, const std::string& backend) {
  // Only the node that probes a backend reports it; no report = not probed
  // (or not yet), which counts as healthy, as Kubernetes does without a
  // readiness probe.
  for (const auto& [node, h] : health) {
    auto it = h.backends.find(backend);
    if (it != h.backends.end() && !it->second.healthy) return false;
  }
  return true;
}

Status ServiceProgrammer::adopt() {
  // Endpoints and nodes the maps hold are known, so a reconcile removes
  // those the cluster state no longer has (a node gone while the agent was
  // down must not stay a trusted VXLAN source).
  OC_ASSIGN_OR_RETURN(auto endpoints, dp_.endpoints());
  for (const auto& [k, v] : endpoints) endpoints_[k] = v;
  OC_ASSIGN_OR_RETURN(auto nodes, dp_.nodes());
  nodes_.insert(nodes.begin(), nodes.end());
  OC_ASSIGN_OR_RETURN(auto nets, dp_.nativeNets());
  for (const auto& [k, v] : nets) native_nets_[{k.addr, k.prefixlen}] = v.vpc;
  OC_ASSIGN_OR_RETURN(auto backends, dp_.backends());
  std::map<uint32_t, BackendKey> by_id;
  for (const auto& [id, v] : backends) {
    BackendKey k{v.vpc, v.ip, v.port};
    backend_ids_[k] = id;
    by_id[id] = k;
    next_backend_id_ = std::max(next_backend_id_, id + 1);
  }
  OC_ASSIGN_OR_RETURN(auto services, dp_.services());
  auto ring = dp_.ring();
  for (const auto& [key, val] : services) {
    Table t;
    t.value = val;
    next_service_id_ = std::max(next_service_id_, val.id + 1);
    ring_top_ = std::max(ring_top_, val.ring_offset + val.ring_size);
    // Rebuild the table's history from its slots, with the backends in the
    // order program() lists them (sorted keys), so an unchanged state is
    // recognised as such and nothing is rewritten.
    std::map<BackendKey, uint32_t> present;
    for (uint32_t s = 0; s < val.ring_size; ++s) {
      auto b = by_id.find(ring[val.ring_offset + s].backend_id);
      if (b != by_id.end()) present.emplace(b->second, b->first);
    }
    std::map<uint32_t, int32_t> index_of;
    for (const auto& [k, id] : present) {
      auto [vni, ip, port] = k;
      index_of[id] = static_cast<int32_t>(t.backends.size());
      t.backends.push_back({backendLabel(vni, ip, port), 1});
      t.ids.push_back(id);
    }
    std::vector<int32_t> slots(val.ring_size, -1);
    for (uint32_t s = 0; s < val.ring_size; ++s) {
      auto it = index_of.find(ring[val.ring_offset + s].backend_id);
      if (it != index_of.end()) slots[s] = it->second;
    }
    t.table = MaglevTable::fromSlots(std::move(slots));
    tables_[key] = std::move(t);
  }
  return okStatus();
}

Result<uint32_t> ServiceProgrammer::backendId(const BackendKey& key, ProgramStats& stats) {
  if (auto it = backend_ids_.find(key); it != backend_ids_.end()) return it->second;
  uint32_t id;
  if (!free_backend_ids_.empty()) {
    id = *free_backend_ids_.begin();
    free_backend_ids_.erase(free_backend_ids_.begin());
  } else {
    if (next_backend_id_ >= OC_MAX_BACKENDS) return makeError("too many backends for the dataplane");
    id = next_backend_id_++;
  }
  auto [vni, ip, port] = key;
  OC_TRY(dp_.setBackend(id, {vni, ip, port, 1}));
  ++stats.writes;
  backend_ids_[key] = id;
  return id;
}

Result<uint32_t> ServiceProgrammer::allocateRing(uint32_t size) {
  if (auto it = free_rings_.find(size); it != free_rings_.end()) {
    uint32_t offset = it->second;
    free_rings_.erase(it);
    return offset;
  }
  if (static_cast<uint64_t>(ring_top_) + size > OC_RING_SLOTS) {
    return makeError("the Maglev ring map is full (" + std::to_string(OC_RING_SLOTS) + " slots)");
  }
  uint32_t offset = ring_top_;
  ring_top_ += size;
  return offset;
}

void ServiceProgrammer::freeRing(uint32_t offset, uint32_t size) {
  if (size > 0) free_rings_.emplace(size, offset);
}

Status ServiceProgrammer::programEndpoints(const ClusterState& state, ProgramStats& stats) {
  std::map<oc_ep_key, oc_ep_val, EpKeyLess> want;
  auto vniOf = [&](const std::string& vpc) -> uint32_t {
    auto it = state.vpcs.find(vpc);
    return it == state.vpcs.end() ? 0 : it->second.vni;
  };
  auto nodeIp = [&](const std::string& node) -> uint32_t {
    auto it = state.nodes.find(node);
    return it == state.nodes.end() ? 0 : ipNet(it->second.fabric_ip);
  };
  // A remote endpoint of a natively routed VPC, on a node whose uplink MAC
  // is known (else its node would not take the frames in: tunnel it).
  auto native = [&](const std::string& vpc, const std::string& node) -> uint16_t {
    auto v = state.vpcs.find(vpc);
    auto n = state.nodes.find(node);
    uint8_t mac[6];
    bool known = n != state.nodes.end() && parseMac(n->second.fabric_mac, mac);
    return v != state.vpcs.end() && v->second.native() && known ? OC_EP_NATIVE : 0;
  };
  for (const auto& [id, ep] : state.endpoints) {
    oc_ep_key k{vniOf(ep.vpc), ipNet(ep.ip)};
    if (k.vpc == 0 || k.ip == 0) continue;
    oc_ep_val v{};
    if (ep.node == self_.name) {
      v.ifindex = ep.representor.empty() ? 0 : ::if_nametoindex(ep.representor.c_str());
      if (v.ifindex == 0 || !parseMac(ep.mac, v.mac)) continue;  // its VF is not (or no longer) there
      v.flags = OC_EP_LOCAL;
    } else {
      v.node_ip = nodeIp(ep.node);
      if (v.node_ip == 0) continue;
      v.flags = OC_EP_REMOTE | native(ep.vpc, ep.node);
    }
    if (ep.mesh) v.flags |= OC_EP_MESH;
    want[k] = v;
  }
  // Every node's host domain is an endpoint of the default VPC.
  uint32_t default_vni = vniOf("default");
  for (const auto& [name, n] : state.nodes) {
    oc_ep_key k{default_vni, ipNet(n.host_ip)};
    if (k.ip == 0) continue;
    oc_ep_val v{};
    if (name == self_.name) {
      if (!parseMac(n.host_mac, v.mac) || self_.host_ifindex == 0) continue;
      v.ifindex = self_.host_ifindex;
      v.flags = OC_EP_LOCAL;
    } else {
      v.node_ip = ipNet(n.fabric_ip);
      v.flags = OC_EP_REMOTE | native(kDefaultVpc, name);
    }
    want[k] = v;
  }
  for (const auto& [k, v] : want) {
    auto it = endpoints_.find(k);
    if (it != endpoints_.end() && sameEp(it->second, v)) continue;
    OC_TRY(dp_.upsertEndpoint(k, v));
    ++stats.writes;
  }
  for (const auto& [k, v] : endpoints_) {
    if (!want.count(k)) {
      OC_TRY(dp_.removeEndpoint(k));
      ++stats.writes;
    }
  }
  endpoints_ = std::move(want);
  stats.endpoints = endpoints_.size();
  return okStatus();
}

Status ServiceProgrammer::programNodes(const ClusterState& state, ProgramStats& stats) {
  std::map<uint32_t, oc_node_val> want;
  for (const auto& [name, n] : state.nodes) {
    uint32_t ip = ipNet(n.fabric_ip);
    if (ip == 0) continue;
    oc_node_val v{};
    if (!parseMac(n.fabric_mac, v.mac)) std::memset(v.mac, 0, sizeof v.mac);
    want[ip] = v;
  }
  // Removals first: a node back under a new address with its old MAC must
  // not lose the MAC entry its new record just wrote.
  for (const auto& [ip, v] : nodes_) {
    if (want.count(ip)) continue;
    OC_TRY(dp_.removeNode(ip));
    ++stats.writes;
  }
  for (const auto& [ip, v] : want) {
    auto it = nodes_.find(ip);
    if (it != nodes_.end() && std::memcmp(it->second.mac, v.mac, sizeof v.mac) == 0) continue;
    OC_TRY(dp_.upsertNode(ip, v));
    ++stats.writes;
  }
  nodes_ = std::move(want);
  stats.nodes = nodes_.size();
  return okStatus();
}

Status ServiceProgrammer::programNativeNets(const ClusterState& state, ProgramStats& stats) {
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> want;  // (addr, prefixlen) -> vni
  for (const auto& [name, s] : state.subnets) {
    auto v = state.vpcs.find(s.vpc);
    auto c = parseCidr(s.cidr);
    if (v == state.vpcs.end() || !v->second.native() || !c.ok()) continue;
    want[{htonl(c->network), static_cast<uint32_t>(c->prefix)}] = v->second.vni;
  }
  // Each node's host domain is an address of the default VPC.
  if (auto d = state.vpcs.find(kDefaultVpc); d != state.vpcs.end() && d->second.native()) {
    for (const auto& [name, n] : state.nodes) {
      if (uint32_t ip = ipNet(n.host_ip); ip != 0) want[{ip, 32}] = d->second.vni;
    }
  }
  for (const auto& [k, vni] : want) {
    auto it = native_nets_.find(k);
    if (it != native_nets_.end() && it->second == vni) continue;
    OC_TRY(dp_.upsertNativeNet(oc_lpm_v4{k.second, k.first}, oc_native_val{vni, 0}));
    ++stats.writes;
  }
  for (const auto& [k, vni] : native_nets_) {
    if (want.count(k)) continue;
    OC_TRY(dp_.removeNativeNet(oc_lpm_v4{k.second, k.first}));
    ++stats.writes;
  }
  native_nets_ = std::move(want);
  return okStatus();
}

Status ServiceProgrammer::programService(const oc_svc_key& key, oc_svc_val value,
                                         const std::vector<BackendKey>& backends, ProgramStats& stats) {
  std::vector<MaglevBackend> mb;
  std::vector<uint32_t> ids;
  for (const auto& b : backends) {
    OC_ASSIGN_OR_RETURN(uint32_t id, backendId(b, stats));
    auto [vni, ip, port] = b;
    mb.push_back({backendLabel(vni, ip, port), 1});
    ids.push_back(id);
  }
  auto existing = tables_.find(key);
  Table next;
  next.backends = mb;
  next.ids = ids;
  bool reuse = existing != tables_.end() && existing->second.table.size() > 0 &&
               static_cast<uint64_t>(mb.size()) * 100 <= existing->second.table.size();
  if (existing != tables_.end() && existing->second.backends == mb && existing->second.ids == ids &&
      (mb.empty() || existing->second.table.size() > 0)) {
    // Same backends: only the service entry may differ (flags, SNAT address).
    value.id = existing->second.value.id;
    value.ring_offset = existing->second.value.ring_offset;
    value.ring_size = mb.empty() ? 0 : existing->second.value.ring_size;
    if (!sameSvc(value, existing->second.value)) {
      OC_TRY(dp_.upsertService(key, value));
      ++stats.writes;
      existing->second.value = value;
    }
    return okStatus();
  }
  if (mb.empty()) {
    next.table = MaglevTable();
  } else if (reuse) {
    OC_ASSIGN_OR_RETURN(next.table, MaglevTable::update(existing->second.table, existing->second.backends, mb));
  } else {
    OC_ASSIGN_OR_RETURN(next.table, MaglevTable::build(mb, MaglevTable::sizeFor(mb.size(), kMinTableSize)));
  }
  value.id = existing != tables_.end() ? existing->second.value.id : next_service_id_++;
  uint32_t size = next.table.size();
  if (existing != tables_.end() && existing->second.value.ring_size == size && size > 0) {
    value.ring_offset = existing->second.value.ring_offset;
  } else if (size > 0) {
    OC_ASSIGN_OR_RETURN(value.ring_offset, allocateRing(size));
  } else {
    value.ring_offset = 0;
  }
  value.ring_size = size;
  if (size > 0) {
    std::vector<oc_ring_slot> slots(size);
    for (uint32_t s = 0; s < size; ++s) slots[s].backend_id = ids[static_cast<size_t>(next.table.slots()[s])];
    OC_TRY(dp_.writeRing(value.ring_offset, slots));
    ++stats.writes;
  }
  OC_TRY(dp_.upsertService(key, value));
  ++stats.writes;
  if (existing != tables_.end() && existing->second.value.ring_size > 0 &&
      existing->second.value.ring_offset != value.ring_offset) {
    freeRing(existing->second.value.ring_offset, existing->second.value.ring_size);
  }
  next.value = value;
  tables_[key] = std::move(next);
  return okStatus();
}

Result<ProgramStats> ServiceProgrammer::program(const ClusterState& state,
                                                const std::map<std::string, NodeHealth>& health) {
  ProgramStats stats;
  OC_TRY(programNodes(state, stats));
  // Where natively routed frames are taken in before any endpoint sends so.
  OC_TRY(programNativeNets(state, stats));
  OC_TRY(programEndpoints(state, stats));

  std::set<oc_svc_key, SvcKeyLess> wanted;
  std::set<BackendKey> used_backends;
  for (const auto& [name, svc] : state.services) {
    auto vpc = state.vpcs.find(svc.vpc);
    if (vpc == state.vpcs.end()) continue;
    auto resolved = resolveService(state, svc);
    bool gateway = svc.scope == "cluster";
    for (size_t p = 0; p < svc.ports.size(); ++p) {
      const auto& port = svc.ports[p];
      uint8_t proto = port.protocol == "UDP" ? IPPROTO_UDP : IPPROTO_TCP;
      std::vector<BackendKey> backends;
      for (const auto& rb : resolved) {
        if (!backendHealthy(health, rb.name)) continue;
        uint16_t target = p < rb.target_ports.size() ? rb.target_ports[p] : port.target_port;
        backends.emplace_back(rb.vni, ipNet(rb.ip), htons(target));
      }
      std::sort(backends.begin(), backends.end());
      backends.erase(std::unique(backends.begin(), backends.end()), backends.end());
      for (const auto& b : backends) used_backends.insert(b);
      oc_svc_val value{};
      if (gateway) {
        value.flags = OC_SVC_SNAT;
        value.snat_ip = self_.fabric_ip;
      }
      std::vector<oc_svc_key> keys;
      keys.push_back({vpc->second.vni, ipNet(svc.cluster_ip), htons(port.port), proto, 0});
      if (svc.type == "LoadBalancer" && !svc.eip.empty()) {
        keys.push_back({OC_VPC_EXTERNAL, ipNet(svc.eip), htons(port.port), proto, 0});
      }
      for (const auto& k : keys) {
        if (k.vip == 0) continue;
        OC_TRY(programService(k, value, backends, stats));
        wanted.insert(k);
      }
    }
  }
  for (auto it = tables_.begin(); it != tables_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    OC_TRY(dp_.removeService(it->first));
    ++stats.writes;
    freeRing(it->second.value.ring_offset, it->second.value.ring_size);
    it = tables_.erase(it);
  }
  // A backend no table names any more: clear it, so a conntrack entry that
  // still points at it picks again (the program checks the flags).
  for (auto it = backend_ids_.begin(); it != backend_ids_.end();) {
    if (used_backends.count(it->first)) {
      ++it;
      continue;
    }
    OC_TRY(dp_.setBackend(it->second, oc_backend_val{}));
    ++stats.writes;
    free_backend_ids_.insert(it->second);
    it = backend_ids_.erase(it);
  }
  stats.services = tables_.size();
  stats.backends = backend_ids_.size();
  return stats;
}

}  // namespace offcore::svc
