// PeerAuthentication and AuthorizationPolicy specs (security.istio.io).
#include "mesh/config/istio_yaml_detail.h"

namespace offcore::mesh::detail {

namespace {

bool mtlsMode(Fields& m, MtlsMode& out) {
  std::string mode;
  if (!m.oneOf("mode", mode, {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"}, true)) return false;
  out = mode == "STRICT"       ? MtlsMode::kStrict
        : mode == "PERMISSIVE" ? MtlsMode::kPermissive
        : mode == "DISABLE"    ? MtlsMode::kDisable
                               : MtlsMode::kUnset;
  return true;
}

// Istio writes ports as strings ("8080"); plain numbers are accepted too.
void portList(Fields& f, const std::string& key, std::vector<uint16_t>& out, Doc& doc) {
  std::vector<std::string> text;
  strList(f, key, text, doc);
  for (const auto& t : text) {
    bool digits = !t.empty() && t.size() <= 5;
    for (char ch : t) digits = digits && ch >= '0' && ch <= '9';
    int v = digits ? std::stoi(t) : 0;
    if (v < 1 || v > 65535)
      doc.error(f.lineOf(key), f.field(key), "ports must be 1-65535 (got \"" + t + "\")");
    else
      out.push_back(static_cast<uint16_t>(v));
  }
}

// principals and paths: exact, "prefix*", "*suffix" or "*".
void patternList(Fields& f, const std::string& key, std::vector<std::string>& out, Doc& doc) {
  strList(f, key, out, doc);
  for (const auto& p : out) {
    auto star = p.find('*');
    if (star != std::string::npos && star != 0 && star != p.size() - 1)
      doc.error(f.lineOf(key), f.field(key),
                "\"" + p + "\": '*' only as the whole value, a prefix (\"*x\") or a suffix (\"x*\")");
    else if (p.size() > 1 && p.front() == '*' && p.back() == '*')
      doc.error(f.lineOf(key), f.field(key), "\"" + p + "\": '*' at one end only");
  }
}

void methodList(Fields& f, const std::string& key, std::vector<std::string>& out, Doc& doc) {
  strList(f, key, out, doc);
  for (const auto& m : out) {
    bool token = m.size() <= 32;
    for (char ch : m) token = token && ch >= 'A' && ch <= 'Z';
    if (!token) doc.error(f.lineOf(key), f.field(key), "\"" + m + "\" is not an HTTP method like GET (upper case)");
  }
}

void rule(const YAML::Node& n, const std::string& path, int line, AuthorizationPolicy& ap, Ctx& c) {
  Fields r(c.doc, n, path, line);
  if (!r.valid()) return;
  AuthzRule out;
  eachItem(r, "from", false, true, c.doc, [&](const YAML::Node& fn, const std::string& p, int l) {
    Fields from(c.doc, fn, p, l);
    if (!from.valid()) return;
    AuthzSource src;
    section(from, "source", true, c.doc, [&](Fields& s) {
      patternList(s, "principals", src.principals, c.doc);
      patternList(s, "notPrincipals", src.not_principals, c.doc);
      strList(s, "namespaces", src.namespaces, c.doc);
      strList(s, "notNamespaces", src.not_namespaces, c.doc);
    });
    from.finish();
    out.from.push_back(std::move(src));
  });
  eachItem(r, "to", false, true, c.doc, [&](const YAML::Node& tn, const std::string& p, int l) {
    Fields to(c.doc, tn, p, l);
    if (!to.valid()) return;
    AuthzOperation op;
    section(to, "operation", true, c.doc, [&](Fields& o) {
      methodList(o, "methods", op.methods, c.doc);
      methodList(o, "notMethods", op.not_methods, c.doc);
      patternList(o, "paths", op.paths, c.doc);
      patternList(o, "notPaths", op.not_paths, c.doc);
      portList(o, "ports", op.ports, c.doc);
      portList(o, "notPorts", op.not_ports, c.doc);
    });
    to.finish();
    out.to.push_back(std::move(op));
  });
  r.finish();
  ap.rules.push_back(std::move(out));
}

}  // namespace

void parsePeerAuthentication(Fields& spec, PeerAuthentication& pa, Ctx& c) {
  selector(spec, pa.selector, c.doc);
  section(spec, "mtls", false, c.doc, [&](Fields& m) { mtlsMode(m, pa.mode); });
  section(spec, "portLevelMtls", false, c.doc, [&](Fields& p) {
    for (const auto& [key, kl] : p.keys()) {
      bool digits = !key.empty() && key.size() <= 5;
      for (char ch : key) digits = digits && ch >= '0' && ch <= '9';
      int port = digits ? std::stoi(key) : 0;
      const YAML::Node* v = p.get(key, true);
      if (port < 1 || port > 65535) {
        c.doc.error(kl, p.field(key), "keys must be port numbers 1-65535");
        continue;
      }
      Fields m(c.doc, *v, p.field(key), kl);
      if (!m.valid()) continue;
      MtlsMode mode = MtlsMode::kUnset;
      if (mtlsMode(m, mode)) pa.port_level[static_cast<uint16_t>(port)] = mode;
      m.finish();
    }
    if (pa.selector.empty() && !pa.port_level.empty())
      c.doc.error(p.line(), p.path(), "needs a selector: Istio applies port-level modes to selected workloads only");
  });
}

void parseAuthorizationPolicy(Fields& spec, AuthorizationPolicy& ap, Ctx& c) {
  selector(spec, ap.selector, c.doc);
  std::string action;
  if (spec.str("action", action, false)) {
    if (action == "ALLOW")
      ap.action = AuthorizationPolicy::Action::kAllow;
    else if (action == "DENY")
      ap.action = AuthorizationPolicy::Action::kDeny;
    else if (action == "AUDIT" || action == "CUSTOM")
      c.doc.error(spec.lineOf("action"), "spec.action",
                  "\"" + action + "\" is not supported by offcore (use ALLOW or DENY)");
    else
      c.doc.error(spec.lineOf("action"), "spec.action", "must be ALLOW or DENY (got \"" + action + "\")");
  }
  eachItem(spec, "rules", false, false, c.doc,
           [&](const YAML::Node& n, const std::string& path, int line) { rule(n, path, line, ap, c); });
}

}  // namespace offcore::mesh::detail
