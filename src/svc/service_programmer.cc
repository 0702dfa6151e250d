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
      t.keys.push_back(k);
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
  unreferenced_.insert(key);  // until a table names it
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

bool ServiceProgrammer::usable(const ClusterState& state, const Endpoint& e) const {
  return !state.nodes.count(e.node) || live_.count(e.node);
}

bool ServiceProgrammer::endpointEntry(const ClusterState& state, const Endpoint& ep, oc_ep_key& k, oc_ep_val& v) const {
  auto vpc = state.vpcs.find(ep.vpc);
  k = oc_ep_key{vpc == state.vpcs.end() ? 0 : vpc->second.vni, ipNet(ep.ip)};
  if (k.vpc == 0 || k.ip == 0 || !usable(state, ep)) return false;
  v = oc_ep_val{};
  if (ep.node == self_.name) {
    v.ifindex = ep.representor.empty() ? 0 : ::if_nametoindex(ep.representor.c_str());
    if (v.ifindex == 0 || !parseMac(ep.mac, v.mac)) return false;  // its VF is not (or no longer) there
    v.flags = OC_EP_LOCAL;
  } else {
    auto n = state.nodes.find(ep.node);
    v.node_ip = n == state.nodes.end() ? 0 : ipNet(n->second.fabric_ip);
    if (v.node_ip == 0) return false;
    // A natively routed VPC's endpoint on a node whose uplink MAC is known
    // (else its node would not take the frames in: tunnel it).
    uint8_t mac[6];
    bool native = vpc->second.native() && parseMac(n->second.fabric_mac, mac);
    v.flags = OC_EP_REMOTE | (native ? OC_EP_NATIVE : 0);
  }
  if (ep.mesh) v.flags |= OC_EP_MESH;
  return true;
}

Status ServiceProgrammer::programEndpoints(const ClusterState& state, ProgramStats& stats) {
  std::map<oc_ep_key, oc_ep_val, EpKeyLess> want;
  ep_keys_.clear();
  for (const auto& [id, ep] : state.endpoints) {
    oc_ep_key k;
    oc_ep_val v;
    if (!endpointEntry(state, ep, k, v)) continue;
    want[k] = v;
    ep_keys_[id] = k;
  }
  auto vniOf = [&](const std::string& vpc) -> uint32_t {
    auto it = state.vpcs.find(vpc);
    return it == state.vpcs.end() ? 0 : it->second.vni;
  };
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
      uint8_t mac[6];
      auto d = state.vpcs.find(kDefaultVpc);
      bool native = d != state.vpcs.end() && d->second.native() && parseMac(n.fabric_mac, mac);
      v.flags = OC_EP_REMOTE | (native ? OC_EP_NATIVE : 0);
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

Status ServiceProgrammer::setEndpointEntries(const std::set<std::string>& ids, const ClusterState& state,
                                             ProgramStats& stats) {
  // Two passes: an address may move between ids in one delta (a VM's NIC
  // migrating, a pod's address reused), so the keys the changed ids held
  // go only if none of them holds the key now.
  std::set<oc_ep_key, EpKeyLess> released, taken;
  for (const auto& id : ids) {
    if (auto old = ep_keys_.find(id); old != ep_keys_.end()) {
      released.insert(old->second);
      ep_keys_.erase(old);
    }
  }
  for (const auto& id : ids) {
    oc_ep_key k{};
    oc_ep_val v{};
    auto ep = state.endpoints.find(id);
    if (ep == state.endpoints.end() || !endpointEntry(state, ep->second, k, v)) continue;
    ep_keys_[id] = k;
    taken.insert(k);
    auto it = endpoints_.find(k);
    if (it != endpoints_.end() && sameEp(it->second, v)) continue;
    OC_TRY(dp_.upsertEndpoint(k, v));
    ++stats.writes;
    endpoints_[k] = v;
  }
  for (const auto& k : released) {
    if (taken.count(k) || !endpoints_.erase(k)) continue;
    OC_TRY(dp_.removeEndpoint(k));
    ++stats.writes;
  }
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
  next.keys = backends;
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
  if (existing != tables_.end()) {
    if (existing->second.value.ring_size > 0 && existing->second.value.ring_offset != value.ring_offset)
      freeRing(existing->second.value.ring_offset, existing->second.value.ring_size);
    for (const auto& b : existing->second.keys) {
      --backend_refs_[b];
      unreferenced_.insert(b);
    }
  }
  for (const auto& b : backends) ++backend_refs_[b];
  next.value = value;
  tables_[key] = std::move(next);
  return okStatus();
}

Status ServiceProgrammer::removeTable(const oc_svc_key& key, ProgramStats& stats) {
  auto it = tables_.find(key);
  if (it == tables_.end()) return okStatus();
  OC_TRY(dp_.removeService(key));
  ++stats.writes;
  freeRing(it->second.value.ring_offset, it->second.value.ring_size);
  for (const auto& b : it->second.keys) {
    --backend_refs_[b];
    unreferenced_.insert(b);
  }
  tables_.erase(it);
  return okStatus();
}

Status ServiceProgrammer::releaseUnusedBackends(ProgramStats& stats) {
  // A backend no table names any more: clear it, so a conntrack entry that
  // still points at it picks again (the program checks the flags). Only
  // those that lost a reference (or were never given one) can be unused.
  std::set<BackendKey> candidates;
  std::swap(candidates, unreferenced_);
  for (const auto& key : candidates) {
    auto id = backend_ids_.find(key);
    if (id == backend_ids_.end()) continue;
    auto r = backend_refs_.find(key);
    if (r != backend_refs_.end() && r->second > 0) continue;
    OC_TRY(dp_.setBackend(id->second, oc_backend_val{}));
    ++stats.writes;
    free_backend_ids_.insert(id->second);
    if (r != backend_refs_.end()) backend_refs_.erase(r);
    backend_ids_.erase(id);
  }
  return okStatus();
}

void ServiceProgrammer::indexService(const std::string& name, const Service* now) {
  if (auto it = pair_of_svc_.find(name); it != pair_of_svc_.end()) {
    unindex(svc_by_pair_, it->second, name);
    pair_of_svc_.erase(it);
  }
  if (!now || now->selector.empty()) return;
  const auto& first = *now->selector.begin();
  pair_of_svc_[name] = ResolveIndex::pair(first.first, first.second);
  svc_by_pair_[pair_of_svc_[name]].insert(name);
}

void ServiceProgrammer::servicesFor(const std::vector<std::string>& pairs, std::set<std::string>& out) const {
  for (const auto& p : pairs) {
    if (auto it = svc_by_pair_.find(p); it != svc_by_pair_.end()) out.insert(it->second.begin(), it->second.end());
  }
}

Status ServiceProgrammer::programServiceNamed(const ClusterState& state, const std::string& name, ProgramStats& stats) {
  std::vector<oc_svc_key> keys;
  auto found = state.services.find(name);
  auto vpc = found == state.services.end() ? state.vpcs.end() : state.vpcs.find(found->second.vpc);
  if (vpc != state.vpcs.end()) {
    const Service& svc = found->second;
    auto resolved = index_.resolve(state, svc, [&](const Endpoint& e) { return usable(state, e); });
    bool gateway = svc.scope == "cluster";
    for (size_t p = 0; p < svc.ports.size(); ++p) {
      const auto& port = svc.ports[p];
      uint8_t proto = port.protocol == "UDP" ? IPPROTO_UDP : IPPROTO_TCP;
      std::vector<BackendKey> backends;
      for (const auto& rb : resolved) {
        if (unhealthy_.count(rb.name)) continue;
        uint16_t target = p < rb.target_ports.size() ? rb.target_ports[p] : port.target_port;
        backends.emplace_back(rb.vni, ipNet(rb.ip), htons(target));
      }
      std::sort(backends.begin(), backends.end());
      backends.erase(std::unique(backends.begin(), backends.end()), backends.end());
      oc_svc_val value{};
      if (gateway) {
        value.flags = OC_SVC_SNAT;
        value.snat_ip = self_.fabric_ip;
      }
      std::vector<oc_svc_key> mine;
      mine.push_back({vpc->second.vni, ipNet(svc.cluster_ip), htons(port.port), proto, 0});
      if (svc.type == "LoadBalancer" && !svc.eip.empty()) {
        mine.push_back({OC_VPC_EXTERNAL, ipNet(svc.eip), htons(port.port), proto, 0});
      }
      for (const auto& k : mine) {
        if (k.vip == 0) continue;
        OC_TRY(programService(k, value, backends, stats));
        key_owner_[k] = name;
        keys.push_back(k);
      }
    }
  }
  // Tables it had and has no more (a port, its EIP, or the Service gone),
  // unless another Service took the address meanwhile (its table is its own).
  if (auto had = svc_keys_.find(name); had != svc_keys_.end()) {
    for (const auto& k : had->second) {
      bool kept = std::any_of(keys.begin(), keys.end(),
                              [&](const oc_svc_key& n) { return !SvcKeyLess()(n, k) && !SvcKeyLess()(k, n); });
      auto owner = key_owner_.find(k);
      if (kept || (owner != key_owner_.end() && owner->second != name)) continue;
      if (owner != key_owner_.end()) key_owner_.erase(owner);
      OC_TRY(removeTable(k, stats));
    }
  }
  if (keys.empty()) {
    svc_keys_.erase(name);
  } else {
    svc_keys_[name] = std::move(keys);
  }
  return okStatus();
}

Status ServiceProgrammer::programAll(const ClusterState& state, ProgramStats& stats) {
  OC_TRY(programNodes(state, stats));
  // Where natively routed frames are taken in before any endpoint sends so.
  OC_TRY(programNativeNets(state, stats));
  OC_TRY(programEndpoints(state, stats));
  index_.build(state);
  svc_by_pair_.clear();
  pair_of_svc_.clear();
  std::map<std::string, std::vector<oc_svc_key>, std::less<>> before;
  std::swap(before, svc_keys_);
  key_owner_.clear();
  for (const auto& [name, keys] : before) {
    for (const auto& k : keys) key_owner_[k] = name;
  }
  for (const auto& [name, svc] : state.services) {
    indexService(name, &svc);
    if (auto b = before.find(name); b != before.end()) svc_keys_[name] = std::move(b->second);
    OC_TRY(programServiceNamed(state, name, stats));
  }
  // Tables no Service wants: of Services gone, or adopted from the maps.
  std::set<oc_svc_key, SvcKeyLess> wanted;
  for (const auto& [name, keys] : svc_keys_) wanted.insert(keys.begin(), keys.end());
  std::vector<oc_svc_key> stale;
  for (const auto& [k, t] : tables_) {
    if (!wanted.count(k)) stale.push_back(k);
  }
  for (const auto& k : stale) {
    key_owner_.erase(k);
    OC_TRY(removeTable(k, stats));
  }
  backend_refs_.clear();
  for (const auto& [k, t] : tables_) {
    for (const auto& b : t.keys) ++backend_refs_[b];
  }
  for (const auto& [k, id] : backend_ids_) unreferenced_.insert(k);  // adopted ones too
  return okStatus();
}

Status ServiceProgrammer::programChanged(const ClusterState& state, const StateDelta& delta, ProgramStats& stats) {
  std::set<std::string> services, endpoints;
  std::set<std::pair<std::string, std::string>> pods;
  for (const auto& key : delta.objects) {
    size_t slash = key.find('/');
    const std::string section = key.substr(0, slash), name = key.substr(slash + 1);
    if (section == "services") {
      services.insert(name);
      auto s = state.services.find(name);
      indexService(name, s == state.services.end() ? nullptr : &s->second);
    } else if (section == "backends") {
      auto b = state.backends.find(name);
      servicesFor(index_.labelsOf(name), services);  // the Services that selected it
      index_.setBackend(name, b == state.backends.end() ? nullptr : &b->second);
      servicesFor(index_.labelsOf(name), services);  // and those that select it now
    } else if (section == "endpoints") {
      auto e = state.endpoints.find(name);
      pods.insert(index_.podOfEndpoint(name));
      index_.setEndpoint(name, e == state.endpoints.end() ? nullptr : &e->second);
      pods.insert(index_.podOfEndpoint(name));
      endpoints.insert(name);
    }
  }
  OC_TRY(setEndpointEntries(endpoints, state, stats));
  // A pod's address changed: the Services of the Backends that name it.
  for (const auto& [pod, vpc] : pods) {
    for (const auto& b : index_.ofPod(pod, vpc)) servicesFor(index_.labelsOf(b), services);
  }
  for (const auto& name : services) OC_TRY(programServiceNamed(state, name, stats));
  stats.endpoints = endpoints_.size();
  return okStatus();
}

Result<ProgramStats> ServiceProgrammer::program(const ClusterState& state,
                                                const std::map<std::string, NodeHealth>& health) {
  std::set<std::string> live;
  for (const auto& [name, n] : state.nodes) live.insert(name);
  return program(state, health, live, StateDelta());
}

Result<ProgramStats> ServiceProgrammer::program(const ClusterState& state,
                                                const std::map<std::string, NodeHealth>& health,
                                                const std::set<std::string>& live, const StateDelta& delta) {
  ProgramStats stats;
  bool everything = !programmed_ || delta.full || delta.health || live != live_;
  for (const auto& key : delta.objects) {
    if (everything) break;
    // VPCs, Subnets and nodes reach every endpoint and Service.
    everything = key.compare(0, 8, "services") != 0 && key.compare(0, 8, "backends") != 0 &&
                 key.compare(0, 9, "endpoints") != 0 && key.compare(0, 6, "probes") != 0;
  }
  if (everything) {
    programmed_ = false;  // until this pass succeeds: a failed one is redone in full
    live_ = live;
    unhealthy_.clear();
    for (const auto& [node, h] : health) {
      for (const auto& [name, b] : h.backends) {
        if (!b.healthy) unhealthy_.insert(name);
      }
    }
    OC_TRY(programAll(state, stats));
    programmed_ = true;
  } else {
    OC_TRY(programChanged(state, delta, stats));
  }
  OC_TRY(releaseUnusedBackends(stats));
  stats.nodes = nodes_.size();
  stats.services = tables_.size();
  stats.backends = backend_ids_.size();
  return stats;
}

}  // namespace offcore::svc
