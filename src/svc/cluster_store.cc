#include "svc/cluster_store.h"

#include <set>

namespace offcore::svc {

namespace {

std::string inQuotes(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

ClusterStore::ClusterStore(std::string dir, AddressPlan plan)
    : storage_(makeDirStorage(std::move(dir))), plan_(std::move(plan)) {}

ClusterStore::ClusterStore(std::shared_ptr<StateStorage> storage, AddressPlan plan)
    : storage_(std::move(storage)), plan_(std::move(plan)) {}

Result<ClusterStore> ClusterStore::open(const Config& config, const std::string& location) {
  OC_ASSIGN_OR_RETURN(auto storage, openStateStorage(config, location));
  return ClusterStore(std::move(storage), AddressPlan(config.service_cidr, config.eip_pool));
}

Result<ClusterState> ClusterStore::load() const { return storage_->load(); }

namespace {

// What applying docs reads and writes: Services that take their addresses
// from the plan are checked against VPCs and Services only (allocating a
// ClusterIP looks at other Services' addresses alone); anything with a
// fixed address, and every other kind, is checked against everything.
unsigned sectionsOf(const std::vector<Resource>& docs) {
  for (const auto& r : docs) {
    const auto* s = std::get_if<Service>(&r.value);
    if (!s || !s->cluster_ip.empty() || !s->eip.empty() || s->type == "LoadBalancer") return kAllSections;
  }
  return kVpcsSection | kSubnetsSection | kServicesSection;
}

}  // namespace

Result<ApplyResult> ClusterStore::apply(const std::vector<Resource>& docs) {
  ApplyResult out;
  OC_TRY(storage_->modify(
      [&](ClusterState& s) -> Status {
        OC_ASSIGN_OR_RETURN(out, applyToState(s, docs, plan_));
        return okStatus();
      },
      &out.generation, sectionsOf(docs)));
  return out;
}

Status ClusterStore::remove(const std::string& kind, const std::string& name) {
  return storage_->modify(
      [&](ClusterState& s) -> Status {
        auto erase = [&](auto& map) -> Status {
          if (!map.count(name))
            return makeError(kind + " " + inQuotes(name) + " not found (see `offcore svc list`)", ENOENT);
          std::string why = removalBlocker(s, kind, name);
          if (!why.empty()) return makeError("cannot delete " + kind + " " + inQuotes(name) + ": " + why);
          map.erase(name);
          return okStatus();
        };
        if (kind == "VPC") return erase(s.vpcs);
        if (kind == "Subnet") return erase(s.subnets);
        if (kind == "Backend") return erase(s.backends);
        if (kind == "Service") return erase(s.services);
        if (kind == "NetworkProbe") return erase(s.probes);
        return makeError("unknown kind '" + kind + "' (use VPC, Subnet, Backend, Service or NetworkProbe)");
      },
      nullptr);
}

Result<Endpoint> ClusterStore::addEndpoint(const EndpointRequest& req) {
  if (!isPlainName(req.node) || !isPlainName(req.container_id) || !isPlainName(req.ifname))
    return makeError("endpoint: node, container id and ifname must be non-empty and contain no '/'");
  if (req.subnet.empty()) return makeError("endpoint: no subnet given; name one in the CNI network config");
  std::string id = req.node + "/" + req.container_id + "/" + req.ifname;
  Endpoint out;
  OC_TRY(storage_->modify(
      [&](ClusterState& s) -> Status {
        auto sub = s.subnets.find(req.subnet);
        if (sub == s.subnets.end())
          return makeError("endpoint " + id + ": Subnet " + inQuotes(req.subnet) +
                           " does not exist; create it with `offcore svc apply -f`");
        const Subnet& subnet = sub->second;
        if (!req.vpc.empty() && req.vpc != subnet.vpc)
          return makeError("endpoint " + id + ": Subnet " + inQuotes(req.subnet) + " belongs to VPC " +
                           inQuotes(subnet.vpc) + ", not " + inQuotes(req.vpc) + "; fix the CNI network config");
        if (auto e = s.endpoints.find(id); e != s.endpoints.end()) {
          if (e->second.subnet != req.subnet)
            return makeError("endpoint " + id + " already has an address in Subnet " + inQuotes(e->second.subnet) +
                             "; release it first (CNI DEL)");
          out = e->second;  // a retried ADD gets the same address
          return okStatus();
        }
        auto cidr = parseCidr(subnet.cidr);
        if (!cidr.ok()) return cidr.error().wrap("Subnet " + inQuotes(subnet.name));
        std::set<uint32_t> used;
        if (auto gw = parseIpv4(subnet.gateway)) used.insert(*gw);
        for (const auto& [eid, e] : s.endpoints) {
          if (e.vpc == subnet.vpc) {
            if (auto ip = parseIpv4(e.ip)) used.insert(*ip);
          }
        }
        for (const auto& [n, b] : s.backends) {
          if (b.kind != "pod" && b.vpc == subnet.vpc) {
            if (auto ip = parseIpv4(b.ip)) used.insert(*ip);
          }
        }
        for (uint64_t ip = uint64_t{cidr->network} + 1; ip < cidr->broadcast(); ++ip) {
          if (used.count(static_cast<uint32_t>(ip))) continue;
          out = Endpoint{};
          out.id = id;
          out.node = req.node;
          out.container_id = req.container_id;
          out.ifname = req.ifname;
          out.pod_name = req.pod_name;
          out.netns = req.netns;
          out.vpc = subnet.vpc;
          out.subnet = subnet.name;
          out.ip = formatIpv4(static_cast<uint32_t>(ip));
          out.prefix_len = cidr->prefix;
          out.mesh = req.mesh;
          out.ns = req.ns;
          out.service_account = req.service_account;
          out.vm = req.vm;
          s.endpoints[id] = out;
          return okStatus();
        }
        return makeError("Subnet " + inQuotes(subnet.name) + " (" + subnet.cidr +
                         ") has no free address; apply a larger subnet or delete pods");
      },
      nullptr));
  return out;
}

Status ClusterStore::setEndpointDetails(const std::string& id, const std::string& mac, const std::string& representor) {
  return storage_->modify(
      [&](ClusterState& s) -> Status {
        auto e = s.endpoints.find(id);
        if (e == s.endpoints.end()) return makeError("no endpoint " + id + " (was it released by CNI DEL?)");
        e->second.mac = mac;
        e->second.representor = representor;
        return okStatus();
      },
      nullptr);
}

Status ClusterStore::removeEndpoint(const std::string& id) {
  return storage_->modify(
      [&](ClusterState& s) -> Status {
        s.endpoints.erase(id);
        return okStatus();
      },
      nullptr);
}

Result<Endpoint> ClusterStore::moveEndpoint(const std::string& id, const std::string& node) {
  if (!isPlainName(node)) return makeError("move endpoint: bad node name '" + node + "'");
  Endpoint out;
  OC_TRY(storage_->modify(
      [&](ClusterState& s) -> Status {
        auto e = s.endpoints.find(id);
        if (e == s.endpoints.end()) return makeError("no endpoint " + id + " to move (was it released?)");
        out = e->second;
        s.endpoints.erase(e);
        out.node = node;
        out.id = node + "/" + out.container_id + "/" + out.ifname;
        out.representor.clear();
        s.endpoints[out.id] = out;
        return okStatus();
      },
      nullptr));
  return out;
}

Status ClusterStore::registerNode(const NodeRecord& node) {
  if (!isPlainName(node.name)) return makeError("register node: bad node name '" + node.name + "'");
  return storage_->modify(
      [&](ClusterState& s) -> Status {
        s.nodes[node.name] = node;
        return okStatus();
      },
      nullptr);
}

Status ClusterStore::unregisterNode(const std::string& name) {
  if (!isPlainName(name)) return makeError("unregister node: bad node name '" + name + "'");
  OC_TRY(storage_->modify(
      [&](ClusterState& s) -> Status {
        s.nodes.erase(name);
        for (auto it = s.endpoints.begin(); it != s.endpoints.end();) {
          it = it->second.node == name ? s.endpoints.erase(it) : std::next(it);
        }
        return okStatus();
      },
      nullptr));
  return storage_->forgetNode(name);
}

}  // namespace offcore::svc
