// YAML -> Resource. yaml-cpp throws (syntax errors, depth limit, bad
// conversions); everything it does happens inside parseResources' try.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "base/yaml_fields.h"
#include "svc/resources.h"

namespace offcore::svc {
namespace {

using namespace offcore::yaml;

// The svc-specific checks on top of the generic walker.
bool ipv4(Fields& f, const std::string& key, std::string& out, bool required) {
  return f.checked(key, out, required, [](const std::string& v) {
    return parseIpv4(v) ? std::string() : "must be an IPv4 address like 10.1.0.5 (got \"" + v + "\")";
  });
}

bool name(Fields& f, const std::string& key, std::string& out, bool required) {
  return f.checked(key, out, required, [](const std::string& v) {
    return isDnsLabel(v)
               ? std::string()
               : "\"" + v + "\" is not a valid name (1-63 of a-z, 0-9 and '-', starting and ending alphanumeric)";
  });
}

void parseVpc(Fields& spec, Vpc& v, Doc& doc) {
  int64_t vni = 0;
  if (spec.integer("vni", vni, 1, kMaxVni, false)) {
    v.vni = static_cast<uint32_t>(vni);
    if (v.name == kDefaultVpc && v.vni != kDefaultVni)
      doc.error(spec.lineOf("vni"), "spec.vni", "the default VPC's vni is always 1 (got " + std::to_string(vni) + ")");
    else if (v.name != kDefaultVpc && v.vni == kDefaultVni)
      doc.error(spec.lineOf("vni"), "spec.vni", "vni 1 belongs to the default VPC; pick another or leave it out");
  }
  spec.oneOf("routing", v.routing, {"tunnel", "native"}, false);
}

void parseSubnet(Fields& spec, Subnet& s, Doc& doc) {
  s.vpc = kDefaultVpc;
  name(spec, "vpc", s.vpc, false);
  std::string cidr_text;
  std::optional<Cidr> cidr;
  if (spec.str("cidr", cidr_text, true)) {
    auto c = parseCidr(cidr_text);
    if (!c.ok())
      doc.error(spec.lineOf("cidr"), "spec.cidr", c.error().message);
    else if (c->prefix < 8 || c->prefix > 30)
      doc.error(spec.lineOf("cidr"), "spec.cidr",
                "prefix length must be 8-30 (got /" + std::to_string(c->prefix) + ")");
    else
      cidr = *c, s.cidr = c->str();
  }
  if (ipv4(spec, "gateway", s.gateway, false) && cidr) {
    uint32_t gw = *parseIpv4(s.gateway);
    if (!cidr->contains(gw) || gw == cidr->network || gw == cidr->broadcast())
      doc.error(spec.lineOf("gateway"), "spec.gateway", s.gateway + " is not a host address of " + cidr->str());
  }
  if (s.gateway.empty() && cidr) s.gateway = formatIpv4(cidr->network + 1);
}

void parseBackend(Fields& spec, Backend& b, Doc& doc) {
  b.vpc = kDefaultVpc;
  spec.oneOf("kind", b.kind, {"pod", "vm", "baremetal", "ip"}, true);
  name(spec, "vpc", b.vpc, false);
  bool pod = b.kind == "pod";
  if (spec.str("pod", b.pod, pod) && !pod)
    doc.error(spec.lineOf("pod"), "spec.pod", "only a kind pod backend names a pod");
  if (pod && !b.pod.empty() && !labelPart(b.pod, 253))
    doc.error(spec.lineOf("pod"), "spec.pod", "\"" + b.pod + "\" is not a valid pod name");
  if (ipv4(spec, "ip", b.ip, !pod && !b.kind.empty()) && pod)
    doc.error(spec.lineOf("ip"), "spec.ip", "a kind pod backend takes its address from the pod's endpoint; remove ip");
  if (name(spec, "node", b.node, false) && pod)
    doc.error(spec.lineOf("node"), "spec.node", "a kind pod backend runs where its pod runs; remove node");
}

void parsePorts(Fields& spec, Service& s, Doc& doc) {
  const YAML::Node* ports = spec.get("ports", true);
  if (!ports) return;
  int at = spec.lineOf("ports");
  if (!ports->IsSequence() || ports->size() == 0) {
    doc.error(at, "spec.ports", "must be a non-empty list of {port, targetPort, protocol}");
    return;
  }
  std::set<std::pair<int, std::string>> seen;
  for (size_t i = 0; i < ports->size(); ++i) {
    std::string path = "spec.ports[" + std::to_string(i) + "]";
    Fields pf(doc, (*ports)[i], path, doc.lineOf((*ports)[i], at));
    ServicePort p;
    int64_t v = 0;
    if (pf.integer("port", v, 1, 65535, true)) p.port = static_cast<uint16_t>(v);
    p.target_port = p.port;
    if (pf.integer("targetPort", v, 1, 65535, false)) p.target_port = static_cast<uint16_t>(v);
    pf.oneOf("protocol", p.protocol, {"TCP", "UDP"}, false);
    if (pf.oneOf("appProtocol", p.app_protocol, {"http", "http2", "grpc", "tcp"}, false) && p.protocol != "TCP")
      doc.error(pf.lineOf("appProtocol"), path + ".appProtocol", "only a TCP port has an appProtocol");
    name(pf, "name", p.name, false);
    pf.finish();
    if (p.port != 0 && !seen.emplace(p.port, p.protocol).second)
      doc.error(pf.line(), path, "port " + std::to_string(p.port) + "/" + p.protocol + " is listed twice");
    s.ports.push_back(p);
  }
}

void parseService(Fields& spec, Service& s, Doc& doc) {
  s.vpc = kDefaultVpc;
  spec.oneOf("type", s.type, {"ClusterIP", "LoadBalancer"}, false);
  name(spec, "vpc", s.vpc, false);
  bool lb = s.type == "LoadBalancer";
  if (spec.oneOf("scope", s.scope, {"vpc", "cluster"}, false) && s.scope == "cluster" && !lb)
    doc.error(spec.lineOf("scope"), "spec.scope", "scope cluster needs type LoadBalancer (the service gateway)");
  parsePorts(spec, s, doc);
  spec.labels("selector", s.selector, true);
  ipv4(spec, "clusterIP", s.cluster_ip, false);
  if (ipv4(spec, "eip", s.eip, lb) && !lb)
    doc.error(spec.lineOf("eip"), "spec.eip", "only a LoadBalancer service has an eip; set type: LoadBalancer");
}

void parseProbe(Fields& spec, NetworkProbe& p, Doc& doc) {
  int64_t v = 0;
  name(spec, "backend", p.backend, true);
  spec.oneOf("type", p.type, {"tcp", "http"}, true);
  if (spec.integer("port", v, 1, 65535, true)) p.port = static_cast<uint16_t>(v);
  if (spec.str("path", p.path, false)) {
    if (p.type != "http")
      doc.error(spec.lineOf("path"), "spec.path", "only an http probe has a path");
    else if (p.path.empty() || p.path[0] != '/' ||
             !std::all_of(p.path.begin(), p.path.end(), [](char c) { return c > ' ' && c < 127; }))
      doc.error(spec.lineOf("path"), "spec.path", "must be a URL path like /healthz (got \"" + p.path + "\")");
  }
  if (p.type == "http" && p.path.empty()) p.path = "/";
  if (spec.integer("intervalMs", v, 100, 3600000, false)) p.interval_ms = static_cast<uint32_t>(v);
  if (spec.integer("timeoutMs", v, 1, 3600000, false)) p.timeout_ms = static_cast<uint32_t>(v);
  if (p.timeout_ms >= p.interval_ms)
    doc.error(
        spec.lineOf("timeoutMs"), "spec.timeoutMs",
        "must be less than intervalMs (" + std::to_string(p.timeout_ms) + " >= " + std::to_string(p.interval_ms) + ")");
  if (spec.integer("successThreshold", v, 1, 100, false)) p.success_threshold = static_cast<uint32_t>(v);
  if (spec.integer("failureThreshold", v, 1, 100, false)) p.failure_threshold = static_cast<uint32_t>(v);
}

// One document; appends to out when it is valid.
void parseDocument(const YAML::Node& root, Doc& doc, std::vector<Resource>& out) {
  size_t errors_before = doc.errors->size();
  // Kind and name first, so that every error names the resource.
  std::string kind = peek(root, "kind"), name = peek(peekNode(root, "metadata"), "name");
  if (name.size() > 80) name = name.substr(0, 80) + "...";
  if (!kind.empty()) doc.label = kind + (name.empty() ? "" : " \"" + name + "\"") + ": ";
  Fields top(doc, root, "", doc.lineOf(root, doc.line_offset + 1));
  if (!top.valid()) return;
  std::string api;
  top.str("kind", kind, true);
  const YAML::Node* meta_node = top.get("metadata", true);
  Fields meta(doc, meta_node ? *meta_node : YAML::Node(), "metadata", top.keyLine("metadata"));
  if (meta_node) meta.str("name", name, true);
  if (top.str("apiVersion", api, true) && api != kApiVersion)
    doc.error(top.lineOf("apiVersion"), "apiVersion", "must be " + std::string(kApiVersion) + " (got \"" + api + "\")");
  Resource r;
  r.file = doc.file;
  r.line = top.line();
  if (kind == "VPC")
    r.value = Vpc{};
  else if (kind == "Subnet")
    r.value = Subnet{};
  else if (kind == "Backend")
    r.value = Backend{};
  else if (kind == "Service")
    r.value = Service{};
  else if (kind == "NetworkProbe")
    r.value = NetworkProbe{};
  else {
    if (!kind.empty())
      doc.error(top.lineOf("kind"), "kind",
                "unknown kind \"" + kind + "\" (use VPC, Subnet, Backend, Service or NetworkProbe)");
    return;  // the other fields mean nothing without a kind
  }
  Labels labels;
  if (meta_node) {
    if (!name.empty() && !isDnsLabel(name))
      doc.error(meta.lineOf("name"), "metadata.name",
                "not a valid name (1-63 of a-z, 0-9 and '-', starting and ending alphanumeric)");
    meta.labels("labels", labels, false);
    meta.finish();
  }
  std::visit([&](auto& v) { v.name = name; }, r.value);
  const YAML::Node* spec_node = top.get("spec", kind != "VPC");
  Fields spec(doc, spec_node ? *spec_node : YAML::Node(), "spec", top.keyLine("spec"));
  if (!spec.valid()) {
    // Nothing to check inside a spec that is not a mapping.
  } else if (auto* v = std::get_if<Vpc>(&r.value))
    parseVpc(spec, *v, doc);
  else if (auto* s = std::get_if<Subnet>(&r.value))
    parseSubnet(spec, *s, doc);
  else if (auto* b = std::get_if<Backend>(&r.value))
    b->labels = labels, parseBackend(spec, *b, doc);
  else if (auto* svc = std::get_if<Service>(&r.value))
    parseService(spec, *svc, doc);
  else
    parseProbe(spec, std::get<NetworkProbe>(r.value), doc);
  if (spec_node) spec.finish();
  top.finish();
  if (doc.errors->size() == errors_before) out.push_back(std::move(r));
}

}  // namespace

Result<std::vector<Resource>> parseResources(const std::string& text, const std::string& file) {
  std::vector<std::string> errors;
  std::vector<Resource> out;
  forEachDocument(text, file, errors, [&](const YAML::Node& root, Doc& doc) { parseDocument(root, doc, out); });
  if (!errors.empty()) return makeError(joinErrors(errors));
  return out;
}

}  // namespace offcore::svc
