// YAML -> Resource. yaml-cpp throws (syntax errors, depth limit, bad
// conversions); everything it does happens inside parseResources' try.
// Maps are walked by hand instead of node[key], which would accept duplicate
// keys silently and could throw on a non-map.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "svc/resources.h"

namespace offcore::svc {

namespace {

constexpr size_t kMaxErrors = 50;

int nodeLine(const YAML::Node& n, int fallback) {
  YAML::Mark m = n.Mark();
  return m.is_null() ? fallback : m.line + 1;
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: {
      std::string s = n.Scalar().size() > 40 ? n.Scalar().substr(0, 40) + "..." : n.Scalar();
      return "\"" + s + "\"";
    }
  }
}

// Error collection for one document; the resource label fills in once
// metadata has been read.
struct Doc {
  std::string file;
  std::vector<std::string>* errors;
  std::string label;  // `Service "web": `

  void error(int at, const std::string& field, const std::string& msg) {
    if (errors->size() >= kMaxErrors) return;
    errors->push_back(file + ":" + std::to_string(at) + ": " + label + (field.empty() ? "" : field + ": ") + msg);
  }
};

// One YAML mapping: lookups mark keys as known; finish() reports the rest.
class Fields {
 public:
  // line: where the section starts (its key), for missing-field errors.
  Fields(Doc& doc, const YAML::Node& node, std::string path, int line) : doc_(doc), path_(std::move(path)), line_(line) {
    if (node.IsNull()) return;  // an empty section: every field is absent
    if (!node.IsMap()) {
      doc_.error(line_, path_, "must be a mapping (got " + describe(node) + ")");
      valid_ = false;
      return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      int kl = nodeLine(it->first, line_);
      if (!it->first.IsScalar()) {
        doc_.error(kl, path_, "keys must be plain strings");
        continue;
      }
      const std::string& k = it->first.Scalar();
      if (!entries_.emplace(k, Entry{it->second, kl}).second) doc_.error(kl, field(k), "duplicate field");
    }
  }

  int line() const { return line_; }
  bool valid() const { return valid_; }
  int keyLine(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? line_ : it->second.key_line;
  }
  std::string field(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  // The value of key, or nullptr when absent (a missing required field is reported).
  const YAML::Node* get(const std::string& key, bool required) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (required) doc_.error(line_, field(key), "required field is missing");
      return nullptr;
    }
    it->second.used = true;
    return &it->second.value;
  }
  int lineOf(const std::string& key) const {
    auto it = entries_.find(key);
    if (it == entries_.end()) return line_;
    // An empty value's mark is where the parser stopped, often the next line.
    return it->second.value.IsNull() ? it->second.key_line : nodeLine(it->second.value, it->second.key_line);
  }

  bool str(const std::string& key, std::string& out, bool required) {
    const YAML::Node* v = get(key, required);
    if (!v) return false;
    if (!v->IsScalar()) {
      doc_.error(lineOf(key), field(key), "must be a string (got " + describe(*v) + ")");
      return false;
    }
    out = v->Scalar();
    return true;
  }

  // A plain (unquoted) decimal integer in [lo, hi].
  bool integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi, bool required) {
    const YAML::Node* v = get(key, required);
    if (!v) return false;
    int at = lineOf(key);
    if (!v->IsScalar() || v->Tag() != "?") {
      doc_.error(at, field(key), "must be an integer (got " + describe(*v) + (v->IsScalar() ? ", quoted" : "") + ")");
      return false;
    }
    const std::string& s = v->Scalar();
    size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
    bool digits = i < s.size() && s.size() - i <= 12;
    for (size_t k = i; k < s.size() && digits; ++k) digits = s[k] >= '0' && s[k] <= '9';
    if (!digits) {
      doc_.error(at, field(key), "must be an integer (got \"" + s + "\")");
      return false;
    }
    out = std::stoll(s);
    if (out < lo || out > hi) {
      doc_.error(at, field(key),
                 "must be " + std::to_string(lo) + "-" + std::to_string(hi) + " (got " + s + ")");
      return false;
    }
    return true;
  }

  // A string that must be one of `allowed`.
  bool oneOf(const std::string& key, std::string& out, const std::vector<std::string>& allowed, bool required) {
    std::string v;
    if (!str(key, v, required)) return false;
    for (const auto& a : allowed) {
      if (v == a) {
        out = v;
        return true;
      }
    }
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
    doc_.error(lineOf(key), field(key), "must be " + list + " (got \"" + v + "\")");
    return false;
  }

  bool ipv4(const std::string& key, std::string& out, bool required) {
    std::string v;
    if (!str(key, v, required)) return false;
    if (!parseIpv4(v)) {
      doc_.error(lineOf(key), field(key), "must be an IPv4 address like 10.1.0.5 (got \"" + v + "\")");
      return false;
    }
    out = v;
    return true;
  }

  bool name(const std::string& key, std::string& out, bool required) {
    std::string v;
    if (!str(key, v, required)) return false;
    if (!isDnsLabel(v)) {
      doc_.error(lineOf(key), field(key),
                 "\"" + v + "\" is not a valid name (1-63 of a-z, 0-9 and '-', starting and ending alphanumeric)");
      return false;
    }
    out = v;
    return true;
  }

  void labels(const std::string& key, Labels& out, bool required);

  void finish() {
    for (const auto& [k, e] : entries_) {
      if (!e.used) doc_.error(e.key_line, field(k), "unknown field");
    }
  }

 private:
  struct Entry {
    YAML::Node value;
    int key_line;
    bool used = false;
  };
  Doc& doc_;
  std::string path_;
  int line_ = 0;
  bool valid_ = true;
  std::map<std::string, Entry> entries_;
};

bool labelPart(const std::string& s, size_t max) {
  if (s.empty()) return true;
  if (s.size() > max) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return std::isalnum(static_cast<unsigned char>(s.front())) && std::isalnum(static_cast<unsigned char>(s.back()));
}

void Fields::labels(const std::string& key, Labels& out, bool required) {
  const YAML::Node* v = get(key, required);
  if (!v) return;
  Fields m(doc_, *v, field(key), keyLine(key));
  for (const auto& [k, e] : m.entries_) {
    std::string value;
    if (!m.str(k, value, true)) continue;
    auto slash = k.rfind('/');
    std::string prefix = slash == std::string::npos ? "" : k.substr(0, slash);
    std::string base = slash == std::string::npos ? k : k.substr(slash + 1);
    if (base.empty() || !labelPart(base, 63) || !labelPart(prefix, 253) || (slash != std::string::npos && prefix.empty()))
      doc_.error(e.key_line, m.field(k), "not a valid label key (a-z, 0-9, '-', '_', '.', optional prefix/)");
    else if (!labelPart(value, 63))
      doc_.error(m.lineOf(k), m.field(k), "not a valid label value (up to 63 of a-z, 0-9, '-', '_', '.')");
    else
      out[k] = value;
  }
  if (required && out.empty() && m.entries_.empty()) doc_.error(m.line(), field(key), "must not be empty");
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
}

void parseSubnet(Fields& spec, Subnet& s, Doc& doc) {
  s.vpc = kDefaultVpc;
  spec.name("vpc", s.vpc, false);
  std::string cidr_text;
  std::optional<Cidr> cidr;
  if (spec.str("cidr", cidr_text, true)) {
    auto c = parseCidr(cidr_text);
    if (!c.ok()) doc.error(spec.lineOf("cidr"), "spec.cidr", c.error().message);
    else if (c->prefix < 8 || c->prefix > 30)
      doc.error(spec.lineOf("cidr"), "spec.cidr", "prefix length must be 8-30 (got /" + std::to_string(c->prefix) + ")");
    else cidr = *c, s.cidr = c->str();
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
  if (spec.str("pod", b.pod, pod) && !pod) doc.error(spec.lineOf("pod"), "spec.pod", "only a kind pod backend names a pod");
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
    Fields pf(doc, (*ports)[i], path, nodeLine((*ports)[i], at));
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
    if (p.type != "http") doc.error(spec.lineOf("path"), "spec.path", "only an http probe has a path");
    else if (p.path.empty() || p.path[0] != '/' ||
             !std::all_of(p.path.begin(), p.path.end(), [](char c) { return c > ' ' && c < 127; }))
      doc.error(spec.lineOf("path"), "spec.path", "must be a URL path like /healthz (got \"" + p.path + "\")");
  }
  if (p.type == "http" && p.path.empty()) p.path = "/";
  if (spec.integer("intervalMs", v, 100, 3600000, false)) p.interval_ms = static_cast<uint32_t>(v);
  if (spec.integer("timeoutMs", v, 1, 3600000, false)) p.timeout_ms = static_cast<uint32_t>(v);
  if (p.timeout_ms >= p.interval_ms)
    doc.error(spec.lineOf("timeoutMs"), "spec.timeoutMs",
              "must be less than intervalMs (" + std::to_string(p.timeout_ms) + " >= " + std::to_string(p.interval_ms) + ")");
  if (spec.integer("successThreshold", v, 1, 100, false)) p.success_threshold = static_cast<uint32_t>(v);
  if (spec.integer("failureThreshold", v, 1, 100, false)) p.failure_threshold = static_cast<uint32_t>(v);
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
  Fields top(doc, root, "", nodeLine(root, 1));
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
  if (kind == "VPC") r.value = Vpc{};
  else if (kind == "Subnet") r.value = Subnet{};
  else if (kind == "Backend") r.value = Backend{};
  else if (kind == "Service") r.value = Service{};
  else if (kind == "NetworkProbe") r.value = NetworkProbe{};
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
  } else if (auto* v = std::get_if<Vpc>(&r.value)) parseVpc(spec, *v, doc);
  else if (auto* s = std::get_if<Subnet>(&r.value)) parseSubnet(spec, *s, doc);
  else if (auto* b = std::get_if<Backend>(&r.value)) b->labels = labels, parseBackend(spec, *b, doc);
  else if (auto* svc = std::get_if<Service>(&r.value)) parseService(spec, *svc, doc);
  else parseProbe(spec, std::get<NetworkProbe>(r.value), doc);
  if (spec_node) spec.finish();
  top.finish();
  if (doc.errors->size() == errors_before) out.push_back(std::move(r));
}

}  // namespace

Result<std::vector<Resource>> parseResources(const std::string& text, const std::string& file) {
  std::vector<std::string> errors;
  std::vector<Resource> out;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    for (const auto& root : docs) {
      if (root.IsNull()) continue;  // an empty document (`---` alone, comments)
      Doc doc{file, &errors, ""};
      parseDocument(root, doc, out);
    }
  } catch (const YAML::Exception& e) {
    int line = e.mark.is_null() ? 1 : e.mark.line + 1;
    errors.push_back(file + ":" + std::to_string(line) + ": YAML syntax error: " + e.msg);
  } catch (const std::exception& e) {
    errors.push_back(file + ": cannot read YAML: " + e.what());
  }
  if (!errors.empty()) {
    std::string msg;
    for (const auto& e : errors) msg += (msg.empty() ? "" : "\n") + e;
    return makeError(msg);
  }
  return out;
}

}  // namespace offcore::svc
