// Applying documents to the cluster state: the checks that need more than
// one resource (references, overlaps, uniqueness, immutable fields) and the
// assignments (VNIs, ClusterIPs). Everything is checked against the state as
// it would be after the apply, so one file may hold a VPC and its Subnets.
#include <algorithm>
#include <set>

#include "svc/cluster_store.h"

namespace offcore::svc {

namespace {

std::string key(const Resource& r) { return std::string(r.kind()) + "/" + r.name(); }

std::string inQuotes(const std::string& s) { return "\"" + s + "\""; }

class Applier {
 public:
  Applier(const ClusterState& old, const std::vector<Resource>& docs, const AddressPlan& plan)
      : old_(old), next_(old), docs_(docs), service_cidr_(plan.service_cidr), eip_pool_(plan.eip_pool) {}

  Result<ApplyResult> run();
  ClusterState& next() { return next_; }

 private:
  void error(const Resource& r, const std::string& field, const std::string& msg) {
    errors_.push_back(r.where() + (field.empty() ? "" : field + ": ") + msg);
  }
  bool vpcExists(const Resource& r, const std::string& vpc) {
    if (next_.vpcs.count(vpc)) return true;
    error(r, "spec.vpc", "VPC " + inQuotes(vpc) + " does not exist; apply it first or in the same file");
    return false;
  }
  void checkVpc(const Resource& r, Vpc& v);
  void assignVni(Vpc& v);
  void checkSubnet(const Resource& r, const Subnet& s);
  std::string nativeOverlap(const Subnet& s) const;
  std::string nodeAddressIn(const Subnet& s) const;
  void checkBackend(const Resource& r, const Backend& b);
  void checkService(const Resource& r, Service& s, bool allocate);
  void checkProbe(const Resource& r, const NetworkProbe& p);
  // Why `ip` cannot be a Service address ("" = it can): a pod's, a
  // Backend's or a node's address, or inside a Subnet (of `vpc`; any VPC's
  // when vpc is empty, as for an EIP on the fabric).
  std::string addressConflict(const std::string& ip, const std::string& vpc) const;
  void indexClaims();
  std::string claimedBy(const std::map<std::string, std::set<std::string>>& claims, const std::string& what,
                        const std::string& except) const;
  // An address within a VPC: "vpc/ip".
  static std::string addressKey(const std::string& vpc, const std::string& ip) { return vpc + "/" + ip; }

  const ClusterState& old_;
  ClusterState next_;
  const std::vector<Resource>& docs_;
  std::string service_cidr_;
  std::string eip_pool_;
  std::vector<std::string> errors_;
  // Who claims what, over the merged state, so that each uniqueness check
  // is a lookup rather than a scan of every Service (10k Services in one
  // apply would otherwise be 10^8 comparisons). Names sort as the state's
  // maps do, so errors name the same first claimant.
  std::map<std::string, std::set<std::string>> cluster_ips_;   // "vpc/ip" -> Services
  std::map<std::string, std::set<std::string>> eips_;          // eip -> Services
  std::map<std::string, std::set<std::string>> probes_;        // backend -> NetworkProbes
  std::map<std::string, std::set<std::string>> backend_ips_;   // "vpc/ip" -> non-pod Backends
  std::map<std::string, std::set<std::string>> endpoint_ips_;  // "vpc/ip" -> endpoint ids
  std::map<std::string, std::string> kept_;                    // "vpc/ip" -> re-applied Service that held it
  std::map<std::string, uint64_t> alloc_cursor_;               // VPC -> first address not known taken
};

void Applier::indexClaims() {
  for (const auto& [n, svc] : next_.services) {
    if (!svc.cluster_ip.empty()) cluster_ips_[addressKey(svc.vpc, svc.cluster_ip)].insert(n);
    if (!svc.eip.empty()) eips_[svc.eip].insert(n);
    // Re-applied without a clusterIP: it keeps its address, so a new
    // Service earlier in the file must not be handed that address.
    auto o = old_.services.find(n);
    if (svc.cluster_ip.empty() && o != old_.services.end() && o->second.vpc == svc.vpc && !o->second.cluster_ip.empty())
      kept_[addressKey(svc.vpc, o->second.cluster_ip)] = n;
  }
  for (const auto& [n, p] : next_.probes) probes_[p.backend].insert(n);
  for (const auto& [n, b] : next_.backends) {
    if (b.kind != "pod") backend_ips_[addressKey(b.vpc, b.ip)].insert(n);
  }
  for (const auto& [id, e] : next_.endpoints) endpoint_ips_[addressKey(e.vpc, e.ip)].insert(id);
}

std::string Applier::claimedBy(const std::map<std::string, std::set<std::string>>& claims, const std::string& what,
                               const std::string& except) const {
  auto it = claims.find(what);
  if (it == claims.end()) return "";
  for (const auto& n : it->second) {
    if (n != except) return n;
  }
  return "";
}

void Applier::checkVpc(const Resource& r, Vpc& v) {
  auto o = old_.vpcs.find(v.name);
  if (o == old_.vpcs.end()) return;
  if (v.vni == 0)
    v.vni = o->second.vni;  // re-applied without a vni: keep it
  else if (v.vni != o->second.vni)
    error(r, "spec.vni",
          "is immutable (stored " + std::to_string(o->second.vni) + ", got " + std::to_string(v.vni) +
              "); delete the VPC and apply it again to change it");
}

void Applier::assignVni(Vpc& v) {
  std::set<uint32_t> used;
  for (const auto& [n, o] : next_.vpcs) used.insert(o.vni);
  uint32_t vni = 2;
  while (used.count(vni)) ++vni;
  v.vni = vni;
}

void Applier::checkSubnet(const Resource& r, const Subnet& s) {
  auto o = old_.subnets.find(s.name);
  if (o != old_.subnets.end() && !(o->second == s)) {
    size_t users = 0;
    for (const auto& [id, e] : old_.endpoints) users += e.subnet == s.name;
    if (users > 0)
      error(r, "spec",
            "cannot change vpc, cidr or gateway while " + std::to_string(users) +
                " endpoint(s) use the subnet; delete their pods first");
  }
  if (!vpcExists(r, s.vpc)) return;
  if (auto v = next_.vpcs.find(s.vpc); v != next_.vpcs.end() && v->second.native()) {
    if (std::string a = nodeAddressIn(s); !a.empty())
      error(r, "spec.cidr", s.cidr + " holds the " + a + ", and a natively routed subnet may hold no node address");
  }
  if (std::string n = nativeOverlap(s); !n.empty()) {
    const Subnet& other = next_.subnets.at(n);
    error(r, "spec.cidr",
          s.cidr + " overlaps Subnet " + inQuotes(n) + " (" + other.cidr + ") of VPC " + inQuotes(other.vpc) +
              ", and a natively routed VPC's addresses must be its own; use other addresses or routing: tunnel");
  }
  Cidr mine = *parseCidr(s.cidr);
  for (const auto& [n, other] : next_.subnets) {
    if (n == s.name || other.vpc != s.vpc) continue;
    auto c = parseCidr(other.cidr);
    if (c.ok() && c->overlaps(mine))
      error(r, "spec.cidr",
            s.cidr + " overlaps Subnet " + inQuotes(n) + " (" + other.cidr + ") in VPC " + inQuotes(s.vpc) +
                "; subnets of one VPC must not overlap");
  }
}

// A node address (fabric or host domain) inside s, as "fabric address
// 10.77.0.10 of node a" ("" = none): a natively routed subnet may hold none,
// or that node's own traffic would be taken for the VPC's.
std::string Applier::nodeAddressIn(const Subnet& s) const {
  auto mine = parseCidr(s.cidr);
  if (!mine.ok()) return "";
  for (const auto& [name, n] : next_.nodes) {
    for (const auto& [what, addr] : {std::pair{"fabric", n.fabric_ip}, std::pair{"host-domain", n.host_ip}}) {
      auto ip = parseIpv4(addr.substr(0, addr.find('/')));
      if (ip && mine->contains(*ip))
        return std::string(what) + " address " + formatIpv4(*ip) + " of node " + inQuotes(name);
    }
  }
  return "";
}

// A subnet of another VPC that overlaps s where either VPC is natively
// routed (on the wire, only the address says which VPC a packet is in).
std::string Applier::nativeOverlap(const Subnet& s) const {
  auto nativeVpc = [&](const std::string& vpc) {
    auto it = next_.vpcs.find(vpc);
    return it != next_.vpcs.end() && it->second.native();
  };
  auto mine = parseCidr(s.cidr);
  if (!mine.ok()) return "";
  for (const auto& [n, other] : next_.subnets) {
    if (n == s.name || other.vpc == s.vpc || !(nativeVpc(s.vpc) || nativeVpc(other.vpc))) continue;
    auto c = parseCidr(other.cidr);
    if (c.ok() && c->overlaps(*mine)) return n;
  }
  return "";
}

void Applier::checkBackend(const Resource& r, const Backend& b) {
  if (!vpcExists(r, b.vpc) || b.kind == "pod") return;
  std::string where = addressKey(b.vpc, b.ip);
  for (const auto& n : backend_ips_[where]) {
    if (n != b.name)
      error(r, "spec.ip", b.ip + " is already the address of Backend " + inQuotes(n) + " in VPC " + inQuotes(b.vpc));
  }
  for (const auto& id : endpoint_ips_[where]) {
    // A Backend of kind vm stands for the VM whose NIC holds the address.
    const Endpoint& e = next_.endpoints.at(id);
    if (b.kind == "vm" && !e.vm.empty()) continue;
    error(r, "spec.ip",
          b.ip + " is already handed out to endpoint " + id +
              (e.vm.empty() ? " (pod " + inQuotes(e.pod_name) + ")" : " (VM " + inQuotes(e.vm) + "; use kind: vm)"));
  }
}

// allocate=false: the pass over fixed addresses; true: assigns the rest.
void Applier::checkService(const Resource& r, Service& s, bool allocate) {
  auto takenBy = [&](const std::string& ip) { return claimedBy(cluster_ips_, addressKey(s.vpc, ip), s.name); };
  auto claim = [&](const std::string& ip) {
    s.cluster_ip = ip;
    cluster_ips_[addressKey(s.vpc, ip)].insert(s.name);
  };
  if (!allocate) {
    if (!vpcExists(r, s.vpc)) return;
    if (!s.eip.empty()) {
      for (const auto& n : eips_[s.eip]) {
        if (n != s.name) error(r, "spec.eip", s.eip + " is already the eip of Service " + inQuotes(n));
      }
      auto pool = parseCidr(eip_pool_);
      auto ip = parseIpv4(s.eip);
      if (!eip_pool_.empty() && pool.ok() && ip && !pool->contains(*ip)) {
        error(r, "spec.eip", s.eip + " is outside the EIP pool " + pool->str() + " (config eip_pool)");
      } else if (std::string why = addressConflict(s.eip, ""); !why.empty()) {
        error(r, "spec.eip", s.eip + " " + why);
      }
    }
    if (!s.cluster_ip.empty()) {
      std::string other = takenBy(s.cluster_ip);
      if (!other.empty())
        error(r, "spec.clusterIP",
              s.cluster_ip + " is already the clusterIP of Service " + inQuotes(other) + " in VPC " + inQuotes(s.vpc));
      auto cidr = parseCidr(service_cidr_);
      auto ip = parseIpv4(s.cluster_ip);
      if (cidr.ok() && ip && !cidr->contains(*ip)) {
        error(r, "spec.clusterIP",
              s.cluster_ip + " is outside the service CIDR " + cidr->str() + " (config service_cidr)");
      } else if (std::string why = addressConflict(s.cluster_ip, s.vpc); !why.empty()) {
        error(r, "spec.clusterIP", s.cluster_ip + " " + why);
      }
    }
    return;
  }
  if (!s.cluster_ip.empty()) return;
  auto o = old_.services.find(s.name);
  if (o != old_.services.end() && !o->second.cluster_ip.empty() && takenBy(o->second.cluster_ip).empty()) {
    claim(o->second.cluster_ip);  // stable across re-applies
    return;
  }
  auto cidr = parseCidr(service_cidr_);
  if (!cidr.ok()) {
    error(r, "spec.clusterIP", "cannot allocate: config service_cidr: " + cidr.error().message);
    return;
  }
  // Addresses are only taken during an apply, never freed, so a per-VPC
  // cursor past the last allocation keeps a bulk apply linear.
  uint64_t& cursor = alloc_cursor_[s.vpc];
  cursor = std::max(cursor, uint64_t{cidr->network} + 1);
  for (uint64_t ip = cursor; ip < cidr->broadcast(); ++ip) {
    std::string candidate = formatIpv4(static_cast<uint32_t>(ip));
    std::string where = addressKey(s.vpc, candidate);
    auto kept = kept_.find(where);
    bool free = claimedBy(cluster_ips_, where, "").empty() && (kept == kept_.end() || kept->second == s.name);
    if (free) {
      claim(candidate);
      cursor = ip + 1;
      return;
    }
  }
  error(r, "spec.clusterIP",
        "service CIDR " + cidr->str() + " is full in VPC " + inQuotes(s.vpc) +
            "; delete unused services or widen service_cidr in the config");
}

std::string Applier::addressConflict(const std::string& ip, const std::string& vpc) const {
  auto addr = parseIpv4(ip);
  if (!addr) return "";  // the field parser already refused it
  for (const auto& [n, node] : next_.nodes) {
    auto cut = [](const std::string& a) { return a.substr(0, a.find('/')); };
    if (cut(node.fabric_ip) == ip) return "is node " + inQuotes(n) + "'s fabric address";
    if (cut(node.host_ip) == ip) return "is node " + inQuotes(n) + "'s host address";
  }
  for (const auto& [id, e] : next_.endpoints) {
    if ((vpc.empty() || e.vpc == vpc) && e.ip == ip)
      return "is the address of " + std::string(e.vm.empty() ? "pod " : "VM ") +
             inQuotes(e.vm.empty() ? e.pod_name : e.vm);
  }
  for (const auto& [n, b] : next_.backends) {
    if (b.kind != "pod" && (vpc.empty() || b.vpc == vpc) && b.ip == ip)
      return "is the address of Backend " + inQuotes(n);
  }
  for (const auto& [n, s] : next_.subnets) {
    if (!vpc.empty() && s.vpc != vpc) continue;
    auto c = parseCidr(s.cidr);
    if (c.ok() && c->contains(*addr))
      return "is inside Subnet " + inQuotes(n) + " (" + s.cidr + "), where pods get addresses";
  }
  return "";
}

void Applier::checkProbe(const Resource& r, const NetworkProbe& p) {
  if (!next_.backends.count(p.backend)) {
    error(r, "spec.backend", "Backend " + inQuotes(p.backend) + " does not exist; apply it first or in the same file");
    return;
  }
  for (const auto& n : probes_[p.backend]) {
    if (n != p.name)
      error(
          r, "spec.backend",
          "Backend " + inQuotes(p.backend) + " already has NetworkProbe " + inQuotes(n) + " (at most one per backend)");
  }
}

Result<ApplyResult> Applier::run() {
  std::map<std::string, const Resource*> seen;
  for (const auto& r : docs_) {
    auto [it, fresh] = seen.emplace(key(r), &r);
    if (!fresh)
      error(r, "metadata.name",
            "defined twice in this apply (also at " + it->second->file + ":" + std::to_string(it->second->line) + ")");
  }
  // Merge first, so every check sees the state as it would be afterwards.
  std::vector<Vpc*> unassigned;
  for (const auto& r : docs_) {
    if (auto* v = std::get_if<Vpc>(&r.value)) {
      Vpc& n = next_.vpcs[v->name] = *v;
      checkVpc(r, n);
    } else if (auto* s = std::get_if<Subnet>(&r.value)) {
      next_.subnets[s->name] = *s;
    } else if (auto* b = std::get_if<Backend>(&r.value)) {
      next_.backends[b->name] = *b;
    } else if (auto* svc = std::get_if<Service>(&r.value)) {
      next_.services[svc->name] = *svc;
    } else {
      const auto& p = std::get<NetworkProbe>(r.value);
      next_.probes[p.name] = p;
    }
  }
  for (const auto& r : docs_) {
    const auto* v = std::get_if<Vpc>(&r.value);
    if (v && v->native()) {
      for (const auto& [n, s] : next_.subnets) {
        if (s.vpc != v->name) continue;
        if (std::string a = nodeAddressIn(s); !a.empty())
          error(r, "spec.routing", "native, but Subnet " + inQuotes(n) + " (" + s.cidr + ") holds the " + a);
        if (std::string o = nativeOverlap(s); !o.empty())
          error(r, "spec.routing",
                "native needs addresses of its own, but Subnet " + inQuotes(n) + " (" + s.cidr + ") overlaps Subnet " +
                    inQuotes(o) + " (" + next_.subnets.at(o).cidr + ") of VPC " + inQuotes(next_.subnets.at(o).vpc));
      }
    }
    if (!v || next_.vpcs[v->name].vni == 0) continue;
    for (const auto& [n, other] : next_.vpcs) {
      if (n != v->name && other.vni == next_.vpcs[v->name].vni)
        error(r, "spec.vni", std::to_string(other.vni) + " is already the vni of VPC " + inQuotes(n));
    }
  }
  for (const auto& r : docs_) {
    if (auto* v = std::get_if<Vpc>(&r.value); v && next_.vpcs[v->name].vni == 0) assignVni(next_.vpcs[v->name]);
  }
  indexClaims();
  for (bool allocate : {false, true}) {
    for (const auto& r : docs_) {
      if (auto* s = std::get_if<Subnet>(&r.value); s && !allocate)
        checkSubnet(r, *s);
      else if (auto* b = std::get_if<Backend>(&r.value); b && !allocate)
        checkBackend(r, *b);
      else if (auto* svc = std::get_if<Service>(&r.value))
        checkService(r, next_.services[svc->name], allocate);
      else if (auto* p = std::get_if<NetworkProbe>(&r.value); p && !allocate)
        checkProbe(r, *p);
    }
  }
  if (!errors_.empty()) {
    std::string msg;
    for (const auto& e : errors_) msg += (msg.empty() ? "" : "\n") + e;
    return makeError(msg);
  }
  ApplyResult out;
  auto classify = [&](const Resource& r, const auto& old_map, const auto& next_map) {
    auto o = old_map.find(r.name());
    if (o == old_map.end())
      out.created.push_back(key(r));
    else if (o->second == next_map.at(r.name()))
      out.unchanged.push_back(key(r));
    else
      out.updated.push_back(key(r));
  };
  std::set<std::string> reported;
  for (const auto& r : docs_) {
    if (!reported.insert(key(r)).second) continue;
    if (std::holds_alternative<Vpc>(r.value))
      classify(r, old_.vpcs, next_.vpcs);
    else if (std::holds_alternative<Subnet>(r.value))
      classify(r, old_.subnets, next_.subnets);
    else if (std::holds_alternative<Backend>(r.value))
      classify(r, old_.backends, next_.backends);
    else if (std::holds_alternative<Service>(r.value))
      classify(r, old_.services, next_.services);
    else
      classify(r, old_.probes, next_.probes);
  }
  return out;
}

template <typename Map>
std::string users(const Map& map, const char* kind, const std::string& vpc) {
  std::string out;
  for (const auto& [n, v] : map) {
    if (v.vpc == vpc) out += std::string(out.empty() ? "" : ", ") + kind + "/" + n;
  }
  return out;
}

}  // namespace

Result<ApplyResult> applyToState(ClusterState& state, const std::vector<Resource>& docs, const AddressPlan& plan) {
  Applier a(state, docs, plan);
  OC_ASSIGN_OR_RETURN(ApplyResult result, a.run());
  state = std::move(a.next());
  return result;
}

std::string removalBlocker(const ClusterState& state, const std::string& kind, const std::string& name) {
  std::string by;
  if (kind == "VPC") {
    if (name == kDefaultVpc) return "the default VPC always exists";
    for (const std::string& u : {users(state.subnets, "Subnet", name), users(state.backends, "Backend", name),
                                 users(state.services, "Service", name), users(state.endpoints, "Endpoint", name)})
      if (!u.empty()) by += (by.empty() ? "" : ", ") + u;
    if (!by.empty()) return "VPC " + inQuotes(name) + " is still used by " + by + "; delete those first";
  } else if (kind == "Subnet") {
    for (const auto& [id, e] : state.endpoints) {
      if (e.subnet == name) by += (by.empty() ? "" : ", ") + id + " (pod " + inQuotes(e.pod_name) + ")";
    }
    if (!by.empty())
      return "Subnet " + inQuotes(name) + " still has endpoints " + by +
             "; delete those pods first (the CNI releases their addresses)";
  } else if (kind == "Backend") {
    for (const auto& [n, p] : state.probes) {
      if (p.backend == name)
        return "Backend " + inQuotes(name) + " is probed by NetworkProbe " + inQuotes(n) + "; delete the probe first";
    }
  }
  return "";
}

}  // namespace offcore::svc
