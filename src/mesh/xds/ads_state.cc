// ADS bookkeeping (see ads_state.h).
#include "mesh/xds/ads_state.h"

namespace offcore::mesh::xds {

namespace {

bool sameSnapshot(const Snapshot& a, const Snapshot& b) {
  return a.config == b.config && a.services == b.services && a.trust_domain == b.trust_domain;
}

// Decodes every resource of one response into `out`, checking each alone.
template <typename Msg, typename Check>
Status decodeAll(const DiscoveryResponse& resp, std::map<std::string, Msg>& out, const char* what, Check check) {
  out.clear();
  for (const auto& any : resp.resources()) {
    if (any.type_url() != resp.type_url())
      return makeError(std::string(what) + ": a resource of type " + any.type_url() + " in a " + resp.type_url() +
                       " response");
    Msg m;
    if (!any.UnpackTo(&m)) return makeError(std::string(what) + ": a resource does not decode");
    OC_TRY(check(m));
    std::string name = m.GetDescriptor()->FindFieldByName("name")
                           ? m.GetReflection()->GetString(m, m.GetDescriptor()->FindFieldByName("name"))
                           : "";
    if (name.empty()) return makeError(std::string(what) + ": a resource without a name");
    if (!out.emplace(name, std::move(m)).second) return makeError(std::string(what) + " " + name + " twice");
  }
  return okStatus();
}

}  // namespace

std::string shortType(const std::string& t) {
  if (t == kListenerType) return "lds";
  if (t == kRouteType) return "rds";
  if (t == kClusterType) return "cds";
  if (t == kEndpointType) return "eds";
  return "";
}

DiscoveryRequest AdsState::request(const std::string& type_url, bool with_node) {
  DiscoveryRequest req;
  const auto& ts = types_[type_url];
  req.set_type_url(type_url);
  req.set_version_info(ts.version);
  req.set_response_nonce(ts.nonce);
  for (const auto& n : ts.names) req.add_resource_names(n);
  if (with_node || !node_sent_) *req.mutable_node() = node_;
  node_sent_ = true;
  return req;
}

std::vector<DiscoveryRequest> AdsState::onConnect() {
  node_sent_ = false;
  std::vector<DiscoveryRequest> out;
  // A new stream has no nonces; versions tell the server what we hold.
  for (auto& [_, ts] : types_) ts.nonce.clear();
  out.push_back(request(kListenerType, true));
  out.push_back(request(kClusterType, false));
  for (const char* t : {kRouteType, kEndpointType})
    if (!types_[t].names.empty()) out.push_back(request(t, false));
  return out;
}

std::string AdsState::acceptedVersion(const std::string& type_url) const {
  auto it = types_.find(type_url);
  return it == types_.end() ? "" : it->second.version;
}

Status AdsState::apply(const DiscoveryResponse& resp, Resources& next) {
  const auto& t = resp.type_url();
  if (t == kListenerType)
    return decodeAll(resp, next.listeners, "listener", [](const auto& l) -> Status {
      return translateListener(l).ok() ? okStatus() : translateListener(l).error();
    });
  if (t == kRouteType)
    return decodeAll(resp, next.routes, "route configuration", [](const auto& rc) -> Status {
      auto v = translateRoutes(rc);
      return v.ok() ? okStatus() : v.error();
    });
  if (t == kClusterType)
    return decodeAll(resp, next.clusters, "cluster", [](const auto& c) -> Status {
      OC_TRY(parseClusterName(c.name()));
      OC_TRY(translateCluster(c));
      return okStatus();
    });
  if (t == kEndpointType) {
    // Assignments are named by cluster_name, not name.
    next.endpoints.clear();
    for (const auto& any : resp.resources()) {
      envoy::config::endpoint::v3::ClusterLoadAssignment cla;
      if (any.type_url() != t || !any.UnpackTo(&cla)) return makeError("assignment: a resource does not decode");
      if (cla.cluster_name().empty()) return makeError("assignment: a resource without cluster_name");
      OC_TRY(translateEndpoints(cla));
      next.endpoints[cla.cluster_name()] = std::move(cla);
    }
    return okStatus();
  }
  return makeError("type " + t + " is not supported (LDS, RDS, CDS, EDS only)");
}

void AdsState::resubscribe(const std::string& type_url, const std::vector<std::string>& names, AdsOutcome& out) {
  auto& ts = types_[type_url];
  if (ts.names == names) return;
  ts.names = names;
  out.requests.push_back(request(type_url, false));
}

AdsOutcome AdsState::onResponse(const DiscoveryResponse& resp) {
  AdsOutcome out;
  auto& ts = types_[resp.type_url()];
  ts.nonce = resp.nonce();
  Resources next = resources_;
  Status st = apply(resp, next);
  if (st.ok()) {
    std::string missing;
    if (complete(next, &missing)) {
      auto snap = buildSnapshot(next);
      if (!snap.ok()) {
        st = snap.error();
      } else if (!last_ || !sameSnapshot(*last_, *snap)) {
        last_ = *snap;
        snap->version = ++version_;
        out.update = XdsUpdate{std::move(*snap), {}};
      }
      missing.clear();
    }
    if (st.ok()) incomplete_ = missing;
  }
  if (!st.ok()) {
    // NACK: the last accepted version, this nonce, and why; nothing changes.
    nacks_++;
    out.nack = st.error().message;
    auto req = request(resp.type_url(), false);
    req.mutable_error_detail()->set_code(3);  // INVALID_ARGUMENT
    req.mutable_error_detail()->set_message(out.nack);
    out.requests.push_back(std::move(req));
    return out;
  }
  acks_++;
  ts.version = resp.version_info();
  ts.received = true;
  resources_ = std::move(next);
  out.requests.push_back(request(resp.type_url(), false));
  resubscribe(kRouteType, referencedRoutes(resources_), out);
  resubscribe(kEndpointType, referencedEndpoints(resources_), out);
  if (out.update)
    for (const char* t : {kListenerType, kRouteType, kClusterType, kEndpointType})
      out.update->versions[shortType(t)] = types_[t].version;
  return out;
}

}  // namespace offcore::mesh::xds
