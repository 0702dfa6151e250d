#include "svc/resolve.h"

#include <algorithm>
#include <optional>
#include <tuple>

namespace offcore::svc {

namespace {

// The address of b, or nullopt while it has none.
std::optional<ResolvedBackend> address(const ClusterState& state, const Backend& b) {
  ResolvedBackend r;
  r.name = b.name;
  r.kind = b.kind;
  r.vpc = b.vpc;
  if (b.kind == "pod") {
    const Endpoint* found = nullptr;
    for (const auto& [id, e] : state.endpoints) {
      if (e.pod_name == b.pod && e.vpc == b.vpc) {
        found = &e;
        break;  // map order: the lowest id
      }
    }
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

}  // namespace

std::vector<const Backend*> selectBackends(const ClusterState& state, const Service& service) {
  std::vector<const Backend*> out;
  if (service.selector.empty()) return out;  // an empty selector selects nothing, never everything
  for (const auto& entry : state.backends) {
    // (A named reference, not a structured binding: clang 14 cannot
    // capture those in the lambda below.)
    const Backend& b = entry.second;
    if (service.scope != "cluster" && b.vpc != service.vpc) continue;
    bool match = std::all_of(service.selector.begin(), service.selector.end(), [&](const auto& kv) {
      auto l = b.labels.find(kv.first);
      return l != b.labels.end() && l->second == kv.second;
    });
    if (match) out.push_back(&b);
  }
  return out;
}

std::vector<ResolvedBackend> resolveService(const ClusterState& state, const Service& service) {
  std::vector<ResolvedBackend> out;
  for (const Backend* b : selectBackends(state, service)) {
    auto r = address(state, *b);
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

std::vector<std::string> pendingBackends(const ClusterState& state, const Service& service) {
  std::vector<std::string> out;
  for (const Backend* b : selectBackends(state, service)) {
    if (!address(state, *b)) out.push_back(b->name);
  }
  return out;
}

}  // namespace offcore::svc
