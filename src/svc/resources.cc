#include "svc/resources.h"

#include <cctype>

namespace offcore::svc {

using nlohmann::json;

const char* Resource::kind() const {
  static const char* kNames[] = {"VPC", "Subnet", "Backend", "Service", "NetworkProbe"};
  return kNames[value.index()];
}

const std::string& Resource::name() const {
  return std::visit([](const auto& r) -> const std::string& { return r.name; }, value);
}

std::string Resource::where(int at_line) const {
  std::string n = name().empty() ? std::string() : " \"" + name() + "\"";
  return file + ":" + std::to_string(at_line > 0 ? at_line : line) + ": " + kind() + n + ": ";
}

Result<std::string> canonicalKind(const std::string& text) {
  std::string t;
  for (char c : text) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "vpc" || t == "vpcs") return std::string("VPC");
  if (t == "subnet" || t == "subnets") return std::string("Subnet");
  if (t == "backend" || t == "backends") return std::string("Backend");
  if (t == "service" || t == "services" || t == "svc") return std::string("Service");
  if (t == "networkprobe" || t == "networkprobes" || t == "probe" || t == "probes") return std::string("NetworkProbe");
  return makeError("unknown kind '" + text + "' (use VPC, Subnet, Backend, Service or NetworkProbe)");
}

const std::vector<std::string>& kindsInDependencyOrder() {
  static const std::vector<std::string> kOrder = {"VPC", "Subnet", "Backend", "Service", "NetworkProbe"};
  return kOrder;
}

bool isDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

std::optional<uint32_t> parseIpv4(const std::string& s) {
  uint32_t ip = 0;
  size_t i = 0;
  for (int part = 0; part < 4; ++part) {
    if (part > 0) {
      if (i >= s.size() || s[i] != '.') return std::nullopt;
      ++i;
    }
    size_t start = i;
    uint32_t v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3)
      v = v * 10 + static_cast<uint32_t>(s[i++] - '0');
    // No empty octets, no leading zeros (010 reads as octal elsewhere).
    if (i == start || v > 255 || (s[start] == '0' && i - start > 1)) return std::nullopt;
    ip = (ip << 8) | v;
  }
  if (i != s.size()) return std::nullopt;
  return ip;
}

std::string formatIpv4(uint32_t ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 255) + "." + std::to_string((ip >> 8) & 255) +
         "." + std::to_string(ip & 255);
}

Result<Cidr> parseCidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return makeError("'" + s + "' is not a CIDR (write e.g. 10.1.0.0/24)");
  auto ip = parseIpv4(s.substr(0, slash));
  std::string len = s.substr(slash + 1);
  if (!ip || len.empty() || len.size() > 2 || !std::isdigit(static_cast<unsigned char>(len[0])) ||
      (len.size() == 2 && !std::isdigit(static_cast<unsigned char>(len[1]))))
    return makeError("'" + s + "' is not a CIDR (write e.g. 10.1.0.0/24)");
  Cidr c{*ip, std::stoi(len)};
  if (c.prefix > 32) return makeError("'" + s + "': prefix length must be 0-32");
  if ((c.network & ~c.mask()) != 0)
    return makeError("'" + s + "' has host bits set (did you mean " + formatIpv4(c.network & c.mask()) + "/" + len +
                     "?)");
  return c;
}

// --- JSON (state.json) -----------------------------------------------------

json toJson(const Vpc& v) { return {{"name", v.name}, {"vni", v.vni}, {"routing", v.routing}}; }

json toJson(const Subnet& s) { return {{"name", s.name}, {"vpc", s.vpc}, {"cidr", s.cidr}, {"gateway", s.gateway}}; }

json toJson(const Backend& b) {
  return {{"name", b.name}, {"labels", b.labels}, {"kind", b.kind}, {"vpc", b.vpc},
          {"pod", b.pod},   {"ip", b.ip},         {"node", b.node}};
}

json toJson(const Service& s) {
  json ports = json::array();
  for (const auto& p : s.ports) {
    json pj = {{"name", p.name}, {"port", p.port}, {"targetPort", p.target_port}, {"protocol", p.protocol}};
    if (!p.app_protocol.empty()) pj["appProtocol"] = p.app_protocol;
    ports.push_back(std::move(pj));
  }
  return {{"name", s.name},
          {"type", s.type},
          {"vpc", s.vpc},
          {"scope", s.scope},
          {"ports", ports},
          {"selector", s.selector},
          {"clusterIP", s.cluster_ip},
          {"eip", s.eip}};
}

json toJson(const NetworkProbe& p) {
  return {{"name", p.name},
          {"backend", p.backend},
          {"type", p.type},
          {"port", p.port},
          {"path", p.path},
          {"intervalMs", p.interval_ms},
          {"timeoutMs", p.timeout_ms},
          {"successThreshold", p.success_threshold},
          {"failureThreshold", p.failure_threshold}};
}

namespace {

// Typed reads from our own state file; a wrong type is corruption, reported
// with the path of the field, never a throw.
class JsonReader {
 public:
  JsonReader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  Status object() const {
    if (!j_.is_object()) return makeError(where_ + ": expected an object");
    return okStatus();
  }
  Status str(const char* key, std::string& out) const {
    auto it = j_.find(key);
    if (it == j_.end() || !it->is_string()) return makeError(where_ + "." + key + ": expected a string");
    out = it->get<std::string>();
    return okStatus();
  }
  template <typename T>
  Status uint(const char* key, T& out, uint64_t max) const {
    auto it = j_.find(key);
    if (it == j_.end() || !it->is_number_unsigned() || it->get<uint64_t>() > max)
      return makeError(where_ + "." + key + ": expected an unsigned integer <= " + std::to_string(max));
    out = static_cast<T>(it->get<uint64_t>());
    return okStatus();
  }
  Status labels(const char* key, Labels& out) const {
    auto it = j_.find(key);
    if (it == j_.end() || !it->is_object()) return makeError(where_ + "." + key + ": expected an object");
    for (auto l = it->begin(); l != it->end(); ++l) {
      if (!l->is_string()) return makeError(where_ + "." + key + "." + l.key() + ": expected a string");
      out[l.key()] = l->get<std::string>();
    }
    return okStatus();
  }

 private:
  const json& j_;
  std::string where_;
};

}  // namespace

Result<Vpc> vpcFromJson(const json& j, const std::string& where) {
  JsonReader r(j, where);
  Vpc v;
  OC_TRY(r.object());
  OC_TRY(r.str("name", v.name));
  OC_TRY(r.uint("vni", v.vni, kMaxVni));
  // Older state has no routing: the tunnel.
  if (j.contains("routing")) OC_TRY(r.str("routing", v.routing));
  if (v.routing != "tunnel" && v.routing != "native") {
    return makeError(where + ".routing: expected tunnel or native, got \"" + v.routing + "\"");
  }
  return v;
}

Result<Subnet> subnetFromJson(const json& j, const std::string& where) {
  JsonReader r(j, where);
  Subnet s;
  OC_TRY(r.object());
  OC_TRY(r.str("name", s.name));
  OC_TRY(r.str("vpc", s.vpc));
  OC_TRY(r.str("cidr", s.cidr));
  OC_TRY(r.str("gateway", s.gateway));
  if (!parseCidr(s.cidr).ok() || !parseIpv4(s.gateway)) return makeError(where + ": bad cidr or gateway");
  return s;
}

Result<Backend> backendFromJson(const json& j, const std::string& where) {
  JsonReader r(j, where);
  Backend b;
  OC_TRY(r.object());
  OC_TRY(r.str("name", b.name));
  OC_TRY(r.labels("labels", b.labels));
  OC_TRY(r.str("kind", b.kind));
  OC_TRY(r.str("vpc", b.vpc));
  OC_TRY(r.str("pod", b.pod));
  OC_TRY(r.str("ip", b.ip));
  OC_TRY(r.str("node", b.node));
  return b;
}

Result<Service> serviceFromJson(const json& j, const std::string& where) {
  JsonReader r(j, where);
  Service s;
  OC_TRY(r.object());
  OC_TRY(r.str("name", s.name));
  OC_TRY(r.str("type", s.type));
  OC_TRY(r.str("vpc", s.vpc));
  OC_TRY(r.str("scope", s.scope));
  OC_TRY(r.labels("selector", s.selector));
  OC_TRY(r.str("clusterIP", s.cluster_ip));
  OC_TRY(r.str("eip", s.eip));
  auto ports = j.find("ports");
  if (ports == j.end() || !ports->is_array()) return makeError(where + ".ports: expected an array");
  for (size_t i = 0; i < ports->size(); ++i) {
    JsonReader pr((*ports)[i], where + ".ports[" + std::to_string(i) + "]");
    ServicePort p;
    OC_TRY(pr.object());
    OC_TRY(pr.str("name", p.name));
    OC_TRY(pr.uint("port", p.port, 65535));
    OC_TRY(pr.uint("targetPort", p.target_port, 65535));
    OC_TRY(pr.str("protocol", p.protocol));
    if ((*ports)[i].contains("appProtocol")) OC_TRY(pr.str("appProtocol", p.app_protocol));  // absent = sniff
    s.ports.push_back(p);
  }
  return s;
}

Result<NetworkProbe> probeFromJson(const json& j, const std::string& where) {
  JsonReader r(j, where);
  NetworkProbe p;
  OC_TRY(r.object());
  OC_TRY(r.str("name", p.name));
  OC_TRY(r.str("backend", p.backend));
  OC_TRY(r.str("type", p.type));
  OC_TRY(r.uint("port", p.port, 65535));
  OC_TRY(r.str("path", p.path));
  OC_TRY(r.uint("intervalMs", p.interval_ms, UINT32_MAX));
  OC_TRY(r.uint("timeoutMs", p.timeout_ms, UINT32_MAX));
  OC_TRY(r.uint("successThreshold", p.success_threshold, UINT32_MAX));
  OC_TRY(r.uint("failureThreshold", p.failure_threshold, UINT32_MAX));
  return p;
}

}  // namespace offcore::svc
