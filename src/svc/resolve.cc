#include "svc/resolve.h"

#include <algorithm>
#include <optional>
#include <tuple>

namespace offcore::svc {

namespace {

// The address of b, or nullopt while it has none. podEndpoint: the
// endpoint a pod backend resolves to, or nullptr.
template <typename PodEndpoint>
std::optional<ResolvedBackend> address(const ClusterState& state, const Backend& b, PodEndpoint&& podEndpoint) {
  ResolvedBackend r;
  r.name = b.name;
  r.kind = b.kind;
  r.vpc = b.vpc;
  if (b.kind == "pod") {
    const Endpoint* found = podEndpoint(b);
    if (!found) return std::nullopt;
    r.ip = found->ip;
    r.node = found->node;
    r.endpoint_id = found->id;
  } else {
    if (b.ip.empty()) return std::nullopt;
    r.ip = b.ip;
    r.node = b.node;
  }
  auto v = state.vpcs.find(r.vpc);
  r.vni = v == state.vpcs.end() ? 0 : v->second.vni;
  return r;
}

// By scan: map order, the lowest id.
std::optional<ResolvedBackend> address(const ClusterState& state, const Backend& b) {
  return address(state, b, [&](const Backend& pb) -> const Endpoint* {
    for (const auto& [id, e] : state.endpoints) {
      if (e.pod_name == pb.pod && e.vpc == pb.vpc) return &e;
    }
    return nullptr;
  });
}

bool selects(const Service& service, const Backend& b) {
  if (service.scope != "cluster" && b.vpc != service.vpc) return false;
  return std::all_of(service.selector.begin(), service.selector.end(), [&](const auto& kv) {
    auto l = b.labels.find(kv.first);
    return l != b.labels.end() && l->second == kv.second;
  });
}

// Sorted by (vpc, ip), one per (vpc, ip).
template <typename Address>
std::vector<ResolvedBackend> resolveSelected(const std::vector<const Backend*>& selected, const Service& service,
                                             Address&& addressOf) {
  std::vector<ResolvedBackend> out;
  for (const Backend* b : selected) {
    auto r = addressOf(*b);
    if (!r) continue;
    for (const auto& p : service.ports) r->target_ports.push_back(p.target_port);
    out.push_back(std::move(*r));
  }
  auto ipKey = [](const ResolvedBackend& r) { return parseIpv4(r.ip).value_or(0); };
  std::stable_sort(out.begin(), out.end(), [&](const ResolvedBackend& a, const ResolvedBackend& b) {
    return std::make_tuple(a.vpc, ipKey(a), a.name) < std::make_tuple(b.vpc, ipKey(b), b.name);
  });
  out.erase(
      std::unique(out.begin(), out.end(),
                  [](const ResolvedBackend& a, const ResolvedBackend& b) { return a.vpc == b.vpc && a.ip == b.ip; }),
      out.end());
  return out;
}

const std::set<std::string> kNone;

}  // namespace

std::vector<const Backend*> selectBackends(const ClusterState& state, const Service& service) {
  std::vector<const Backend*> out;
  if (service.selector.empty()) return out;  // an empty selector selects nothing, never everything
  for (const auto& entry : state.backends) {
    if (selects(service, entry.second)) out.push_back(&entry.second);
  }
  return out;
}

std::vector<ResolvedBackend> resolveService(const ClusterState& state, const Service& service) {
  return resolveSelected(selectBackends(state, service), service, [&](const Backend& b) { return address(state, b); });
}

void ResolveIndex::build(const ClusterState& state) {
  *this = ResolveIndex();
  for (const auto& [name, b] : state.backends) setBackend(name, &b);
  for (const auto& [id, e] : state.endpoints) setEndpoint(id, &e);
}

void ResolveIndex::setBackend(const std::string& name, const Backend* now) {
  if (auto it = labels_of_.find(name); it != labels_of_.end()) {
    for (const auto& p : it->second) unindex(by_label_, p, name);
    labels_of_.erase(it);
  }
  if (auto it = pod_of_backend_.find(name); it != pod_of_backend_.end()) {
    unindex(backends_of_pod_, it->second, name);
    pod_of_backend_.erase(it);
  }
  if (!now) return;
  auto& pairs = labels_of_[name];
  for (const auto& [k, v] : now->labels) {
    pairs.push_back(pair(k, v));
    by_label_[pairs.back()].insert(name);
  }
  if (now->kind == "pod") {
    pod_of_backend_[name] = {now->pod, now->vpc};
    backends_of_pod_[{now->pod, now->vpc}].insert(name);
  }
}

void ResolveIndex::setEndpoint(const std::string& id, const Endpoint* now) {
  if (auto it = pod_of_endpoint_.find(id); it != pod_of_endpoint_.end()) {
    unindex(endpoints_of_pod_, it->second, id);
    pod_of_endpoint_.erase(it);
  }
  if (!now) return;
  pod_of_endpoint_[id] = {now->pod_name, now->vpc};
  endpoints_of_pod_[{now->pod_name, now->vpc}].insert(id);
}

std::vector<ResolvedBackend> ResolveIndex::resolve(const ClusterState& state, const Service& service,
                                                   const Usable& usable) const {
  std::vector<const Backend*> selected;
  if (!service.selector.empty()) {
    // The backends of the pair fewest hold are the candidates; each must match all pairs.
    const std::set<std::string>* fewest = nullptr;
    for (const auto& [k, v] : service.selector) {
      const auto& with = withLabel(pair(k, v));
      if (!fewest || with.size() < fewest->size()) fewest = &with;
    }
    for (const auto& name : *fewest) {
      auto b = state.backends.find(name);
      if (b != state.backends.end() && selects(service, b->second)) selected.push_back(&b->second);
    }
  }
  return resolveSelected(selected, service, [&](const Backend& b) {
    return address(state, b, [&](const Backend& pb) -> const Endpoint* {
      auto p = endpoints_of_pod_.find({pb.pod, pb.vpc});
      if (p == endpoints_of_pod_.end()) return nullptr;
      for (const auto& id : p->second) {  // the lowest usable id
        auto e = state.endpoints.find(id);
        if (e != state.endpoints.end() && usable(e->second)) return &e->second;
      }
      return nullptr;
    });
  });
}

const std::set<std::string>& ResolveIndex::withLabel(const std::string& p) const {
  auto it = by_label_.find(p);
  return it == by_label_.end() ? kNone : it->second;
}

const std::set<std::string>& ResolveIndex::ofPod(const std::string& pod, const std::string& vpc) const {
  auto it = backends_of_pod_.find({pod, vpc});
  return it == backends_of_pod_.end() ? kNone : it->second;
}

std::vector<std::string> ResolveIndex::labelsOf(const std::string& backend) const {
  auto it = labels_of_.find(backend);
  return it == labels_of_.end() ? std::vector<std::string>() : it->second;
}

std::pair<std::string, std::string> ResolveIndex::podOfBackend(const std::string& backend) const {
  auto it = pod_of_backend_.find(backend);
  return it == pod_of_backend_.end() ? Pod() : it->second;
}

std::pair<std::string, std::string> ResolveIndex::podOfEndpoint(const std::string& id) const {
  auto it = pod_of_endpoint_.find(id);
  return it == pod_of_endpoint_.end() ? Pod() : it->second;
}

std::vector<std::string> pendingBackends(const ClusterState& state, const Service& service) {
  std::vector<std::string> out;
  for (const Backend* b : selectBackends(state, service)) {
    if (!address(state, *b)) out.push_back(b->name);
  }
  return out;
}

}  // namespace offcore::svc
