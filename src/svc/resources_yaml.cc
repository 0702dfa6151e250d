// YAML -> Resource. yaml-cpp throws (syntax errors, depth limit, bad
// conversions); everything it does happens inside parseResources' try.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "svc/resources.h"
#include "svc/yaml_fields.h"

namespace offcore::svc {
namespace {

using namespace detail;

void parseVpc(Fields& spec, Vpc& v, Doc& doc) {
  int64_t vni = 0;
  if (spec.integer("vni", vni, 1, kMaxVni, false)) {
    v.vni = static_cast<uint32_t>(vni);
    if (v.name == kDefaultVpc && v.vni != kDefaultVni)
      doc.error(spec.lineOf("vni"), "spec.vni", "the default VPC's vni is always 1 (got " + std::to_string(vni) + ")");
    else if (v.name != kDefaultVpc && v.vni == kDefaultVni)
      doc.error(spec.lineOf("vni"), "spec.vni", "vni 1 belongs to the default VPC; pick another or leave it out");
  }
}

void parseSubnet(Fields& spec, Subnet& s, Doc& doc) {
  s.vpc = kDefaultVpc;
  spec.name("vpc", s.vpc, false);
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
  if (spec.ipv4("gateway", s.gateway, false) && cidr) {
    uint32_t gw = *parseIpv4(s.gateway);
    if (!cidr->contains(gw) || gw == cidr->network || gw == cidr->broadcast())
      doc.error(spec.lineOf("gateway"), "spec.gateway", s.gateway + " is not a host address of " + cidr->str());
  }
  if (s.gateway.empty() && cidr) s.gateway = formatIpv4(cidr->network + 1);
}

void parseBackend(Fields& spec, Backend& b, Doc& doc) {
  b.vpc = kDefaultVpc;
  spec.oneOf("kind", b.kind, {"pod", "vm", "baremetal", "ip"}, true);
  spec.name("vpc", b.vpc, false);
  bool pod = b.kind == "pod";
  if (spec.str("pod", b.pod, pod) && !pod)
    doc.error(spec.lineOf("pod"), "spec.pod", "only a kind pod backend names a pod");
  if (pod && !b.pod.empty() && !labelPart(b.pod, 253))
    doc.error(spec.lineOf("pod"), "spec.pod", "\"" + b.pod + "\" is not a valid pod name");
  if (spec.ipv4("ip", b.ip, !pod && !b.kind.empty()) && pod)
    doc.error(spec.lineOf("ip"), "spec.ip", "a kind pod backend takes its address from the pod's endpoint; remove ip");
  if (spec.name("node", b.node, false) && pod)
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
    pf.name("name", p.name, false);
    pf.finish();
    if (p.port != 0 && !seen.emplace(p.port, p.protocol).second)
      doc.error(pf.line(), path, "port " + std::to_string(p.port) + "/" + p.protocol + " is listed twice");
    s.ports.push_back(p);
  }
}

void parseService(Fields& spec, Service& s, Doc& doc) {
  s.vpc = kDefaultVpc;
  spec.oneOf("type", s.type, {"ClusterIP", "LoadBalancer"}, false);
  spec.name("vpc", s.vpc, false);
  bool lb = s.type == "LoadBalancer";
  if (spec.oneOf("scope", s.scope, {"vpc", "cluster"}, false) && s.scope == "cluster" && !lb)
    doc.error(spec.lineOf("scope"), "spec.scope", "scope cluster needs type LoadBalancer (the service gateway)");
  parsePorts(spec, s, doc);
  spec.labels("selector", s.selector, true);
  spec.ipv4("clusterIP", s.cluster_ip, false);
  if (spec.ipv4("eip", s.eip, lb) && !lb)
    doc.error(spec.lineOf("eip"), "spec.eip", "only a LoadBalancer service has an eip; set type: LoadBalancer");
}

void parseProbe(Fields& spec, NetworkProbe& p, Doc& doc) {
  int64_t v = 0;
  spec.name("backend", p.backend, true);
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

// One document's text. yaml-cpp 0.7's LoadAll() loops forever, allocating,
// on some invalid input (a lone ','; fixed upstream in 0.8.x), so the stream
// is split here and each document goes through Load(). Splitting on marker
// lines is exact: `---` and `...` at column 0 cannot occur inside content.
struct Chunk {
  std::string text;
  int first_line = 0;    // lines before it in the file
  int content_line = 0;  // 1-based line of its first content, 0 = only comments and markers
  bool started = false;  // holds a `---`
  bool ended = false;    // holds a `...`
};

bool isMarker(const std::string& line, const char* marker) {
  if (line.compare(0, 3, marker) != 0) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r';
}

std::vector<Chunk> splitDocuments(const std::string& text) {
  std::vector<Chunk> out(1);
  int lineno = 0;
  for (size_t pos = 0; pos < text.size(); ++lineno) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    std::string line = text.substr(pos, end - pos);
    pos = end;
    if (!line.empty() && line.back() == '\n') line.pop_back();
    bool start = isMarker(line, "---"), finish = isMarker(line, "...");
    std::string rest = start ? line.substr(3) : line;
    size_t first = rest.find_first_not_of(" \t\r");
    bool content = !finish && first != std::string::npos && rest[first] != '#' && line[0] != '%';
    // A new document: a `---` after another `---` or after content, or
    // anything after `...`. Comments and directives before a `---` stay
    // with the document it starts.
    const Chunk& cur = out.back();
    if ((start && (cur.started || cur.content_line > 0)) || (cur.ended && (start || content)))
      out.push_back(Chunk{"", lineno});
    Chunk& c = out.back();
    if (c.text.empty()) c.first_line = lineno;
    c.text += line + "\n";
    c.started = c.started || start;
    c.ended = c.ended || finish;
    if (content && c.content_line == 0) c.content_line = lineno + 1;
  }
  return out;
}

// The first value of key in a mapping, without marking anything.
YAML::Node peekNode(const YAML::Node& map, const std::string& key) {
  if (!map.IsMap()) return YAML::Node();
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
  }
  return YAML::Node();
}

std::string peek(const YAML::Node& map, const std::string& key) {
  YAML::Node v = peekNode(map, key);
  return v.IsScalar() ? v.Scalar() : std::string();
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
  for (const auto& chunk : splitDocuments(text)) {
    if (errors.size() >= kMaxErrors) break;
    try {
      YAML::Node root = YAML::Load(chunk.text);
      if (root.IsNull()) {
        // yaml-cpp 0.7 returns null for some invalid documents (a lone ',')
        // instead of throwing; only comments and markers may be empty.
        if (chunk.content_line > 0)
          errors.push_back(file + ":" + std::to_string(chunk.content_line) +
                           ": YAML syntax error: cannot parse this document (a stray ',', ']' or '}'?)");
        continue;
      }
      Doc doc{file, &errors, "", chunk.first_line};
      parseDocument(root, doc, out);
    } catch (const YAML::Exception& e) {
      int line = chunk.first_line + (e.mark.is_null() ? 1 : e.mark.line + 1);
      errors.push_back(file + ":" + std::to_string(line) + ": YAML syntax error: " + e.msg);
    } catch (const std::exception& e) {
      errors.push_back(file + ":" + std::to_string(chunk.first_line + 1) + ": cannot read YAML: " + e.what());
    }
  }
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
    return makeError(msg);
  }
  return out;
}

}  // namespace offcore::svc
