#include "mesh/route/router.h"

#include <algorithm>
#include <cctype>

namespace offcore::mesh::route {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

const std::string* header(const HeaderList* headers, std::string_view name) {
  if (!headers) return nullptr;
  for (const auto& [k, v] : *headers)
    if (iequals(k, name)) return &v;
  return nullptr;
}

std::string stripPort(const std::string& authority) {
  if (!authority.empty() && authority[0] == '[') return authority.substr(0, authority.find(']') + 1);
  auto colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(':') == colon) return authority.substr(0, colon);
  return authority;
}

bool labelsMatch(const Labels& want, const Labels& have) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

void overlay(TrafficPolicy& base, const TrafficPolicy& over) {
  if (over.load_balancer) base.load_balancer = over.load_balancer;
  if (over.connection_pool) base.connection_pool = over.connection_pool;
  if (over.outlier_detection) base.outlier_detection = over.outlier_detection;
  if (over.retry_budget) base.retry_budget = over.retry_budget;
}

}  // namespace

const RouteDestination* pickWeighted(const std::vector<RouteDestination>& dests, Random& random) {
  if (dests.empty()) return nullptr;
  if (dests.size() == 1) return &dests[0];
  uint64_t total = 0;
  for (const auto& d : dests) total += d.weight;
  if (total == 0) return &dests[random.below(dests.size())];
  uint64_t r = random.below(total);
  for (const auto& d : dests) {
    if (r < d.weight) return &d;
    r -= d.weight;
  }
  return &dests.back();
}

std::shared_ptr<const RouteTable> RouteTable::build(std::shared_ptr<const Snapshot> snapshot) {
  auto t = std::shared_ptr<RouteTable>(new RouteTable());
  t->snapshot_ = std::move(snapshot);
  for (const auto& s : t->snapshot_->services) {
    t->by_name_[s.name] = &s;
    if (!s.vip.empty()) t->by_vip_[s.vip] = &s;
  }
  for (const auto& vs : t->snapshot_->config.virtual_services) {
    for (const auto& h : vs.hosts) t->vs_by_host_[canonicalHost(h)].push_back(&vs);
    for (const auto& r : vs.http) {
      for (const auto& m : r.match) {
        std::vector<const StringMatch*> all = {m.uri ? &*m.uri : nullptr, m.method ? &*m.method : nullptr,
                                               m.authority ? &*m.authority : nullptr};
        for (const auto& [k, v] : m.headers) all.push_back(&v);
        for (const StringMatch* sm : all) {
          if (!sm || sm->kind != StringMatch::Kind::kRegex) continue;
          // Left out when it does not compile: it never matches (the YAML
          // parser and the xDS translation report it to the user).
          if (auto re = Regex::compile(sm->value); re.ok()) t->regexes_.emplace(sm, std::move(*re));
        }
      }
    }
  }
  for (const auto& dr : t->snapshot_->config.destination_rules) t->dr_by_host_[canonicalHost(dr.host)] = &dr;
  return t;
}

const MeshService* RouteTable::service(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

bool RouteTable::matchString(const StringMatch& m, const std::string& value) const {
  switch (m.kind) {
    case StringMatch::Kind::kExact: return value == m.value;
    case StringMatch::Kind::kPrefix: return value.compare(0, m.value.size(), m.value) == 0;
    case StringMatch::Kind::kRegex: {
      auto it = regexes_.find(&m);
      return it != regexes_.end() && it->second.fullMatch(value);
    }
  }
  return false;
}

bool RouteTable::matches(const HttpMatch& m, const RequestAttrs& req) const {
  if (m.uri && !matchString(*m.uri, req.path)) return false;
  if (m.method && !matchString(*m.method, req.method)) return false;
  if (m.authority && !matchString(*m.authority, req.authority)) return false;
  if (m.port != 0 && m.port != req.dst_port) return false;
  for (const auto& [name, sm] : m.headers) {
    const std::string* v = header(req.headers, name);
    if (!v || !matchString(sm, *v)) return false;
  }
  return true;
}

const MeshService* RouteTable::resolve(const RequestAttrs& req) const {
  if (!req.authority.empty()) {
    std::string host = stripPort(req.authority);
    if (const MeshService* s = service(canonicalHost(host))) return s;
    auto it = by_vip_.find(host);
    if (it != by_vip_.end()) return it->second;
  }
  auto it = by_vip_.find(req.dst_ip);
  return it == by_vip_.end() ? nullptr : it->second;
}

RouteResult RouteTable::match(const RequestAttrs& req, Random& random) const {
  RouteResult out;
  const MeshService* svc = resolve(req);
  if (!svc) {
    if (req.dst_ip.empty() || by_vip_.count(req.dst_ip)) {
      out.why = "no Service for host '" + req.authority + "'";
      return out;
    }
    out.kind = RouteResult::Kind::kPassthrough;
    return out;
  }
  out.service = svc;
  // The service port: the one dialled when it is this Service's, else the first.
  uint16_t port = svc->ports.empty() ? req.dst_port : svc->ports[0].port;
  for (const auto& p : svc->ports)
    if (p.port == req.dst_port) port = p.port;

  auto vs_it = vs_by_host_.find(svc->name);
  if (vs_it != vs_by_host_.end()) {
    for (const VirtualService* vs : vs_it->second) {
      for (size_t i = 0; i < vs->http.size(); ++i) {
        const HttpRoute& r = vs->http[i];
        bool hit = r.match.empty();
        for (const auto& m : r.match) hit = hit || matches(m, req);
        if (!hit) continue;
        const RouteDestination* d = pickWeighted(r.route, random);
        if (!d) {
          out.why = "route " + vs->name + " has no destination";
          return out;
        }
        out.kind = RouteResult::Kind::kRoute;
        out.route = &r;
        out.route_name = vs->name + "/" + (r.name.empty() ? std::to_string(i) : r.name);
        std::string host = canonicalHost(d->destination.host);
        const MeshService* dst = service(host);
        out.cluster = ClusterKey{host, d->destination.subset, d->destination.port ? d->destination.port : port};
        if (dst && d->destination.port == 0 && dst != svc) {
          // Another Service: the same port number if it has it, else its first.
          uint16_t p2 = dst->ports.empty() ? port : dst->ports[0].port;
          for (const auto& p : dst->ports)
            if (p.port == port) p2 = port;
          out.cluster.port = p2;
        }
        return out;
      }
    }
    out.why = "no route of the VirtualService for '" + svc->name + "' matches " + req.method + " " + req.path;
    return out;
  }
  out.kind = RouteResult::Kind::kRoute;
  out.route_name = "default";
  out.cluster = ClusterKey{svc->name, "", port};
  return out;
}

std::vector<MeshEndpoint> RouteTable::endpoints(const ClusterKey& key) const {
  std::vector<MeshEndpoint> out;
  const MeshService* svc = service(key.service);
  if (!svc) return out;
  uint16_t target = key.port;
  for (const auto& p : svc->ports)
    if (p.port == key.port && p.target_port) target = p.target_port;
  const Labels* subset_labels = nullptr;
  auto dr = dr_by_host_.find(key.service);
  if (!key.subset.empty()) {
    if (dr == dr_by_host_.end()) return out;  // an unknown subset has no endpoints
    for (const auto& s : dr->second->subsets)
      if (s.name == key.subset) subset_labels = &s.labels;
    if (!subset_labels) return out;
  }
  for (const auto& ep : svc->endpoints) {
    if (!ep.healthy) continue;
    if (subset_labels && !labelsMatch(*subset_labels, ep.labels)) continue;
    MeshEndpoint e = ep;
    if (e.port == 0) e.port = target;
    out.push_back(std::move(e));
  }
  return out;
}

TrafficPolicy RouteTable::policy(const ClusterKey& key) const {
  auto dr = dr_by_host_.find(key.service);
  if (dr == dr_by_host_.end()) return {};
  TrafficPolicy p = dr->second->traffic_policy;
  for (const auto& s : dr->second->subsets)
    if (s.name == key.subset && s.traffic_policy) overlay(p, *s.traffic_policy);
  return p;
}

}  // namespace offcore::mesh::route
