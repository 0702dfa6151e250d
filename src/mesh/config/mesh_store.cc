#include "mesh/config/mesh_store.h"

#include <algorithm>
#include <cerrno>

#include "kv/etcd_client.h"
#include "kv/etcd_config.h"

namespace offcore::mesh {

namespace {

std::string q(const std::string& s) { return "\"" + s + "\""; }

template <typename T>
auto findNamed(std::vector<T>& v, const std::string& ns, const std::string& name) {
  return std::find_if(v.begin(), v.end(), [&](const T& x) { return x.ns == ns && x.name == name; });
}

// Puts item into v by (ns, name); says which of created/configured/unchanged.
template <typename T>
int put(std::vector<T>& v, const T& item) {
  auto it = findNamed(v, item.ns, item.name);
  if (it == v.end()) {
    v.push_back(item);
    return 0;
  }
  if (*it == item) return 2;
  *it = item;
  return 1;
}

const DestinationRule* ruleFor(const MeshConfig& c, const std::string& host) {
  for (const auto& d : c.destination_rules)
    if (d.host == host) return &d;
  return nullptr;
}

bool definesSubset(const DestinationRule* dr, const std::string& subset) {
  if (!dr) return false;
  return std::any_of(dr->subsets.begin(), dr->subsets.end(), [&](const Subset& s) { return s.name == subset; });
}

// Every (field path, destination) of a VirtualService's routes.
std::vector<std::pair<std::string, const Destination*>> destinations(const VirtualService& vs) {
  std::vector<std::pair<std::string, const Destination*>> out;
  for (size_t i = 0; i < vs.http.size(); ++i)
    for (size_t j = 0; j < vs.http[i].route.size(); ++j)
      out.emplace_back("spec.http[" + std::to_string(i) + "].route[" + std::to_string(j) + "].destination",
                       &vs.http[i].route[j].destination);
  for (size_t i = 0; i < vs.tcp.size(); ++i)
    for (size_t j = 0; j < vs.tcp[i].route.size(); ++j)
      out.emplace_back("spec.tcp[" + std::to_string(i) + "].route[" + std::to_string(j) + "].destination",
                       &vs.tcp[i].route[j].destination);
  return out;
}

std::string noService(const std::string& host) {
  return "Service " + q(host) + " does not exist; create it with `offcore svc apply -f` first (see `offcore svc list`)";
}

// The checks against the cluster state and the merged config.
void check(const MeshConfig& merged, const ParsedMesh& parsed, const svc::ClusterState& cluster,
           std::vector<std::string>& errors) {
  for (const auto& d : parsed.documents) {
    if (d.kind == kVirtualService) {
      const VirtualService& vs = parsed.config.virtual_services[d.index];
      for (size_t i = 0; i < vs.hosts.size(); ++i) {
        std::string f = "spec.hosts[" + std::to_string(i) + "]";
        if (!cluster.services.count(vs.hosts[i])) errors.push_back(d.where(f) + noService(vs.hosts[i]));
      }
      for (const auto& [path, dest] : destinations(vs)) {
        if (!cluster.services.count(dest->host)) {
          errors.push_back(d.where(path + ".host") + noService(dest->host));
          continue;
        }
        if (!dest->subset.empty() && !definesSubset(ruleFor(merged, dest->host), dest->subset))
          errors.push_back(d.where(path + ".subset") + "subset " + q(dest->subset) + " of host " + q(dest->host) +
                           " is not defined by any DestinationRule; define it in the DestinationRule of " +
                           q(dest->host) + " (this apply or an earlier one)");
      }
    } else if (d.kind == kDestinationRule) {
      const DestinationRule& dr = parsed.config.destination_rules[d.index];
      if (!cluster.services.count(dr.host)) errors.push_back(d.where("spec.host") + noService(dr.host));
      for (const auto& other : merged.destination_rules)
        if (other.host == dr.host && (other.ns != dr.ns || other.name != dr.name))
          errors.push_back(d.where("spec.host") + "host " + q(dr.host) + " already has DestinationRule " +
                           q(other.ns + "/" + other.name) + "; offcore takes one DestinationRule per host: merge them");
    }
  }
  // Stored VirtualServices whose subsets this apply took away.
  for (const auto& vs : merged.virtual_services) {
    bool in_apply = std::any_of(parsed.documents.begin(), parsed.documents.end(), [&](const MeshDocument& d) {
      return d.kind == kVirtualService && d.ns == vs.ns && d.name == vs.name;
    });
    if (in_apply) continue;
    for (const auto& [path, dest] : destinations(vs))
      if (!dest->subset.empty() && !definesSubset(ruleFor(merged, dest->host), dest->subset))
        errors.push_back("VirtualService " + q(vs.ns + "/" + vs.name) + " (applied earlier): " + path +
                         ".subset: subset " + q(dest->subset) + " of " + q(dest->host) +
                         " would no longer be defined; keep it in the DestinationRule or change that VirtualService");
  }
}

}  // namespace

Result<MeshApplyResult> applyToMesh(MeshConfig& config, const ParsedMesh& parsed, const svc::ClusterState& cluster) {
  MeshConfig merged = config;
  MeshApplyResult out;
  for (const auto& d : parsed.documents) {
    int r = 0;
    if (d.kind == kVirtualService)
      r = put(merged.virtual_services, parsed.config.virtual_services.at(d.index));
    else if (d.kind == kDestinationRule)
      r = put(merged.destination_rules, parsed.config.destination_rules.at(d.index));
    else if (d.kind == kPeerAuthentication)
      r = put(merged.peer_authentications, parsed.config.peer_authentications.at(d.index));
    else
      r = put(merged.authorization_policies, parsed.config.authorization_policies.at(d.index));
    std::string id = lowerKind(d.kind) + "/" + d.name;
    (r == 0 ? out.created : r == 1 ? out.configured : out.unchanged).push_back(id);
  }
  std::vector<std::string> errors;
  check(merged, parsed, cluster, errors);
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
    return makeError(msg);
  }
  config = std::move(merged);
  return out;
}

Status removeFromMesh(MeshConfig& config, const std::string& kind, const std::string& ns, const std::string& name) {
  auto notFound = [&] {
    return makeError(kind + " " + q(ns + "/" + name) + " not found (see `offcore mesh get " + lowerKind(kind) + "`)",
                     ENOENT);
  };
  auto erase = [&](auto& v) -> Status {
    auto it = findNamed(v, ns, name);
    if (it == v.end()) return notFound();
    v.erase(it);
    return okStatus();
  };
  if (kind == kVirtualService) return erase(config.virtual_services);
  if (kind == kPeerAuthentication) return erase(config.peer_authentications);
  if (kind == kAuthorizationPolicy) return erase(config.authorization_policies);
  if (kind != kDestinationRule) return makeError("unknown mesh kind " + q(kind));
  auto it = findNamed(config.destination_rules, ns, name);
  if (it == config.destination_rules.end()) return notFound();
  for (const auto& vs : config.virtual_services)
    for (const auto& [path, dest] : destinations(vs))
      if (dest->host == it->host && !dest->subset.empty())
        return makeError("cannot delete DestinationRule " + q(ns + "/" + name) + ": VirtualService " +
                         q(vs.ns + "/" + vs.name) + " routes to its subset " + q(dest->subset) +
                         "; delete or change that VirtualService first");
  config.destination_rules.erase(it);
  return okStatus();
}

MeshStore::MeshStore(std::string cluster_dir)
    : doc_(makeMeshDirDoc(cluster_dir)), cluster_(svc::makeDirStorage(cluster_dir)) {}

MeshStore::MeshStore(std::shared_ptr<MeshDocStorage> doc, std::shared_ptr<svc::StateStorage> cluster)
    : doc_(std::move(doc)), cluster_(std::move(cluster)) {}

Result<MeshApplyResult> MeshStore::apply(const ParsedMesh& parsed) {
  MeshApplyResult out;
  OC_TRY(doc_->modify(
      [&](MeshConfig& c) -> Status {
        OC_ASSIGN_OR_RETURN(svc::ClusterState cluster, cluster_->load());
        OC_ASSIGN_OR_RETURN(out, applyToMesh(c, parsed, cluster));
        return okStatus();
      },
      &out.generation));
  return out;
}

Status MeshStore::remove(const std::string& kind, const std::string& ns, const std::string& name) {
  return doc_->modify([&](MeshConfig& c) { return removeFromMesh(c, kind, ns, name); }, nullptr);
}

Result<MeshStore> openMeshStore(const Config& config, const std::string& location) {
  std::string where = !location.empty()               ? location
                      : !config.cluster_store.empty() ? config.cluster_store
                                                      : config.cluster_dir;
  if (!kv::isEtcdUrl(where)) return MeshStore(where);
  OC_ASSIGN_OR_RETURN(kv::EtcdOptions o, kv::etcdOptionsFor(config, where));
  // One client (one channel per member, one token) for both documents.
  std::shared_ptr<kv::KvClient> client = kv::makeEtcdClient(std::move(o));
  return MeshStore(makeMeshEtcdDoc(client), svc::makeEtcdStorage(client, svc::leaseTtlSeconds(config)));
}

}  // namespace offcore::mesh
