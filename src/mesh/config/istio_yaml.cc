// The document level of the Istio YAML parser: apiVersion, kind, metadata,
// the helpers every spec walker shares, durations and kind spellings.
#include "mesh/config/istio_yaml.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <tuple>

#include "mesh/config/istio_yaml_detail.h"

namespace offcore::mesh {

using namespace offcore::yaml;
using namespace offcore::mesh::detail;

namespace detail {

void eachItem(Fields& f, const std::string& key, bool required, bool non_empty, Doc& doc,
              const std::function<void(const YAML::Node&, const std::string&, int)>& each) {
  const YAML::Node* v = f.get(key, required);
  if (!v) return;
  int at = f.lineOf(key);
  if (!v->IsSequence()) {
    doc.error(at, f.field(key), "must be a list (got " + describe(*v) + ")");
    return;
  }
  if (non_empty && v->size() == 0) doc.error(at, f.field(key), "must not be empty");
  for (size_t i = 0; i < v->size(); ++i)
    each((*v)[i], f.field(key) + "[" + std::to_string(i) + "]", doc.lineOf((*v)[i], at));
}

void strList(Fields& f, const std::string& key, std::vector<std::string>& out, Doc& doc) {
  eachItem(f, key, false, false, doc, [&](const YAML::Node& n, const std::string& path, int line) {
    if (!n.IsScalar() || n.Scalar().empty())
      doc.error(line, path, "must be a non-empty string (got " + describe(n) + ")");
    else
      out.push_back(n.Scalar());
  });
}

bool duration(Fields& f, const std::string& key, Millis& out, Millis min, bool required) {
  std::string text;
  bool ok = f.checked(key, text, required, [&](const std::string& v) -> std::string {
    auto d = parseDuration(v);
    if (!d.ok()) return d.error().message;
    if (*d < min) return "must be at least " + formatDuration(min) + " (got " + v + ")";
    return "";
  });
  if (ok) out = *parseDuration(text);
  return ok;
}

bool percentage(Fields& f, const std::string& key, double& out, Doc& doc, bool required) {
  bool found = false;
  section(f, key, required, doc, [&](Fields& p) {
    std::string text;
    found = p.checked("value", text, true, [&](const std::string& v) -> std::string {
      bool plain = !v.empty() && v.size() <= 20 && v.find_first_not_of("0123456789.") == std::string::npos;
      char* end = nullptr;
      double d = plain ? std::strtod(v.c_str(), &end) : NAN;
      if (std::isnan(d) || end != v.c_str() + v.size() || d < 0 || d > 100)
        return "must be a number 0-100 (got \"" + v + "\")";
      out = d;
      return "";
    });
  });
  return found;
}

bool number(Fields& f, const std::string& key, double& out, double lo, double hi, Doc& doc, bool required) {
  const YAML::Node* v = f.get(key, required);
  if (!v) return false;
  std::string text = v->IsScalar() && v->Tag() == "?" ? v->Scalar() : "";
  bool plain = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789.") == std::string::npos;
  char* end = nullptr;
  double d = plain ? std::strtod(text.c_str(), &end) : NAN;
  if (std::isnan(d) || end != text.c_str() + text.size() || d < lo || d > hi) {
    char range[64];
    std::snprintf(range, sizeof range, "%g-%g", lo, hi);
    std::string got =
        v->IsScalar() ? "\"" + v->Scalar() + "\"" + (v->Tag() == "?" ? "" : ", quoted") : yaml::describe(*v);
    doc.error(f.lineOf(key), f.field(key), std::string("must be a number ") + range + " (got " + got + ")");
    return false;
  }
  out = d;
  return true;
}

bool section(Fields& f, const std::string& key, bool required, Doc& doc, const std::function<void(Fields&)>& fn) {
  const YAML::Node* v = f.get(key, required);
  if (!v) return false;
  Fields s(doc, *v, f.field(key), f.keyLine(key));
  if (!s.valid()) return false;
  fn(s);
  s.finish();
  return true;
}

void selector(Fields& spec, Labels& out, Doc& doc) {
  section(spec, "selector", false, doc, [&](Fields& s) { s.labels("matchLabels", out, true); });
}

std::string labelProblem(const std::string& v) {
  bool ok = !v.empty() && v.size() <= 63 && std::isalnum(static_cast<unsigned char>(v.front())) &&
            std::isalnum(static_cast<unsigned char>(v.back()));
  for (char c : v) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  return ok ? "" : "\"" + v + "\" is not a valid name (1-63 of a-z, 0-9 and '-', starting and ending alphanumeric)";
}

}  // namespace detail

namespace {

// metadata.name: a DNS-1123 subdomain, as Kubernetes requires.
std::string nameProblem(const std::string& v) {
  bool ok = !v.empty() && v.size() <= 253 && std::isalnum(static_cast<unsigned char>(v.front())) &&
            std::isalnum(static_cast<unsigned char>(v.back()));
  for (char c : v) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
  return ok ? "" : "\"" + v + "\" is not a valid name (lower-case letters, digits, '-' and '.')";
}

struct KindInfo {
  const char* kind;
  const char* group;
  std::vector<std::string> versions;
};
const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> k = {
      {kVirtualService, "networking.istio.io", {"v1alpha3", "v1beta1", "v1"}},
      {kDestinationRule, "networking.istio.io", {"v1alpha3", "v1beta1", "v1"}},
      {kPeerAuthentication, "security.istio.io", {"v1beta1", "v1"}},
      {kAuthorizationPolicy, "security.istio.io", {"v1beta1", "v1"}},
  };
  return k;
}

void parseDocument(const YAML::Node& root, Doc& doc, ParsedMesh& out, std::set<std::string>& seen) {
  size_t errors_before = doc.errors->size();
  doc.unknown_field = "not supported by offcore";
  std::string kind = peek(root, "kind"), name = peek(peekNode(root, "metadata"), "name");
  if (name.size() > 80) name = name.substr(0, 80) + "...";
  if (!kind.empty()) doc.label = kind + (name.empty() ? "" : " \"" + name + "\"") + ": ";
  Fields top(doc, root, "", doc.lineOf(root, doc.line_offset + 1));
  if (!top.valid()) return;
  MeshDocument md;
  md.file = doc.file;
  md.line = top.line();
  top.str("kind", kind, true);
  const KindInfo* info = nullptr;
  for (const auto& k : kinds()) info = kind == k.kind ? &k : info;
  if (!info) {
    if (!kind.empty())
      doc.error(top.lineOf("kind"), "kind",
                "kind \"" + kind +
                    "\" is not supported by offcore (use VirtualService, DestinationRule, PeerAuthentication or "
                    "AuthorizationPolicy)");
    return;  // the other fields mean nothing without a kind
  }
  md.kind = info->kind;
  std::string api;
  if (top.str("apiVersion", api, true)) {
    std::string want;
    bool ok = false;
    for (const auto& v : info->versions) {
      want += (want.empty() ? "" : ", ") + std::string(info->group) + "/" + v;
      ok = ok || api == std::string(info->group) + "/" + v;
    }
    if (!ok) doc.error(top.lineOf("apiVersion"), "apiVersion", "must be one of " + want + " (got \"" + api + "\")");
  }
  md.ns = "default";
  section(top, "metadata", true, doc, [&](Fields& meta) {
    meta.checked("name", md.name, true, nameProblem);
    meta.checked("namespace", md.ns, false, labelProblem);
  });
  Ctx c{doc, md};
  section(top, "spec", true, doc, [&](Fields& spec) {
    if (md.kind == kVirtualService) {
      VirtualService v;
      parseVirtualService(spec, v, c);
      v.name = md.name, v.ns = md.ns;
      md.index = out.config.virtual_services.size();
      out.config.virtual_services.push_back(std::move(v));
    } else if (md.kind == kDestinationRule) {
      DestinationRule d;
      parseDestinationRule(spec, d, c);
      d.name = md.name, d.ns = md.ns;
      md.index = out.config.destination_rules.size();
      out.config.destination_rules.push_back(std::move(d));
    } else if (md.kind == kPeerAuthentication) {
      PeerAuthentication p;
      parsePeerAuthentication(spec, p, c);
      p.name = md.name, p.ns = md.ns;
      md.index = out.config.peer_authentications.size();
      out.config.peer_authentications.push_back(std::move(p));
    } else {
      AuthorizationPolicy a;
      parseAuthorizationPolicy(spec, a, c);
      a.name = md.name, a.ns = md.ns;
      md.index = out.config.authorization_policies.size();
      out.config.authorization_policies.push_back(std::move(a));
    }
  });
  top.finish();
  if (!md.name.empty() && !seen.insert(md.kind + "/" + md.ns + "/" + md.name).second)
    doc.error(md.line, "", "defined twice in this file (namespace \"" + md.ns + "\")");
  if (doc.errors->size() == errors_before) out.documents.push_back(std::move(md));
}

}  // namespace

std::string MeshDocument::where(const std::string& field) const {
  auto it = field_lines.find(field);
  int at = it == field_lines.end() ? line : it->second;
  return file + ":" + std::to_string(at) + ": " + kind + " \"" + name + "\": " + (field.empty() ? "" : field + ": ");
}

Result<ParsedMesh> parseMeshDocuments(const std::string& text, const std::string& file) {
  std::vector<std::string> errors;
  ParsedMesh out;
  std::set<std::string> seen;
  forEachDocument(text, file, errors, [&](const YAML::Node& root, Doc& doc) { parseDocument(root, doc, out, seen); });
  if (!errors.empty()) return makeError(joinErrors(errors));
  return out;
}

Result<MeshConfig> parseMeshYaml(const std::string& text, const std::string& file) {
  OC_ASSIGN_OR_RETURN(ParsedMesh p, parseMeshDocuments(text, file));
  return std::move(p.config);
}

Result<std::string> canonicalMeshKind(const std::string& text) {
  std::string t;
  for (char c : text) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!t.empty() && t.back() == 's' && t != "vs") t.pop_back();
  if (t == "virtualservice" || t == "vs") return std::string(kVirtualService);
  if (t == "destinationrule" || t == "dr") return std::string(kDestinationRule);
  if (t == "peerauthentication" || t == "pa") return std::string(kPeerAuthentication);
  if (t == "authorizationpolicy" || t == "authorizationpolicie" || t == "ap") return std::string(kAuthorizationPolicy);
  return makeError("unknown mesh kind \"" + text +
                   "\" (use virtualservice, destinationrule, peerauthentication or authorizationpolicy)");
}

std::string lowerKind(const std::string& kind) {
  std::string t;
  for (char c : kind) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

Result<Millis> parseDuration(const std::string& text) {
  static const std::vector<std::pair<std::string, double>> units = {
      {"ms", 1.0}, {"h", 3600000.0}, {"m", 60000.0}, {"s", 1000.0}};
  auto bad = [&] {
    return makeError("must be a duration like 2s, 1.5s or 200ms (got \"" + text.substr(0, 40) + "\")");
  };
  for (const auto& [unit, scale] : units) {
    if (text.size() <= unit.size() || text.compare(text.size() - unit.size(), unit.size(), unit) != 0) continue;
    std::string num = text.substr(0, text.size() - unit.size());
    bool dot = false, digits = false;
    for (char c : num) {
      if (c == '.' && !dot)
        dot = true;
      else if (c >= '0' && c <= '9')
        digits = true;
      else
        return bad();
    }
    if (!digits || num.size() > 15) return bad();
    double ms = std::strtod(num.c_str(), nullptr) * scale;
    if (ms > 86400000.0 * 365) return makeError("must be at most a year (got \"" + text + "\")");
    double whole = std::round(ms);
    if (std::fabs(ms - whole) > 1e-6) return makeError("must be whole milliseconds (got \"" + text + "\")");
    return Millis(static_cast<int64_t>(whole));
  }
  return bad();
}

std::string formatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 1000 != 0 && ms < 1000) return std::to_string(ms) + "ms";
  std::string s = std::to_string(ms / 1000);
  int64_t frac = ms % 1000;
  if (frac != 0) {
    std::string f = std::to_string(1000 + frac).substr(1);
    while (f.back() == '0') f.pop_back();
    s += "." + f;
  }
  return s + "s";
}

}  // namespace offcore::mesh
