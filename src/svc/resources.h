// The cluster-scoped network resources (VPC, Subnet, Backend, Service,
// NetworkProbe) as users write them: Kubernetes-shaped YAML documents,
// `apiVersion: offcore.io/v1`. Parsing checks each document on its own
// (types, ranges, required and unknown fields); references between
// resources are checked when they are applied (apply.cc), against the
// documents of the apply plus the store.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"

namespace offcore::svc {

inline constexpr const char* kApiVersion = "offcore.io/v1";
inline constexpr const char* kDefaultVpc = "default";
inline constexpr uint32_t kDefaultVni = 1;
inline constexpr uint32_t kMaxVni = 16777215;

using Labels = std::map<std::string, std::string>;

struct Vpc {
  std::string name;
  uint32_t vni = 0;  // 0 in a document = assign the lowest free >= 2 on apply
  // How its traffic crosses between nodes: "tunnel" (VXLAN, VNI = vni; any
  // addresses) or "native" (routed on the fabric as it is, no
  // encapsulation; its subnets must overlap no other VPC's, since the
  // address is then all that says which VPC a packet is in).
  std::string routing = "tunnel";
  bool native() const { return routing == "native"; }
  bool operator==(const Vpc&) const = default;
};

struct Subnet {
  std::string name, vpc;
  std::string cidr;     // canonical "a.b.c.d/len", network address
  std::string gateway;  // never handed out; "" in a document = first host
  bool operator==(const Subnet&) const = default;
};

struct Backend {
  std::string name;
  Labels labels;
  std::string kind;  // pod | vm | baremetal | ip
  std::string vpc;
  std::string pod;   // kind pod: the pod name the CNI registered
  std::string ip;    // other kinds
  std::string node;  // other kinds: the hosting node, "" = over the fabric
  bool operator==(const Backend&) const = default;
};

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint16_t target_port = 0;
  std::string protocol = "TCP";  // TCP | UDP
  // Kubernetes appProtocol, what the mesh speaks on it: http | http2 | grpc
  // | tcp; "" = sniff. TCP ports only.
  std::string app_protocol;
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  std::string name;
  std::string type = "ClusterIP";  // ClusterIP | LoadBalancer
  std::string vpc;
  std::string scope = "vpc";  // vpc | cluster (LoadBalancer only: the service gateway)
  std::vector<ServicePort> ports;
  Labels selector;
  std::string cluster_ip;  // "" in a document = allocate from the service CIDR
  std::string eip;         // LoadBalancer only
  bool operator==(const Service&) const = default;
};

struct NetworkProbe {
  std::string name;
  std::string backend;
  std::string type;  // tcp | http
  uint16_t port = 0;
  std::string path;  // http only
  uint32_t interval_ms = 1000;
  uint32_t timeout_ms = 500;
  uint32_t success_threshold = 1;
  uint32_t failure_threshold = 3;
  bool operator==(const NetworkProbe&) const = default;
};

// One parsed document and where it came from (errors name file:line).
struct Resource {
  std::variant<Vpc, Subnet, Backend, Service, NetworkProbe> value;
  std::string file;
  int line = 0;  // 1-based line of the document's `kind:`

  const char* kind() const;
  const std::string& name() const;
  // `file:line: Kind "name": ` - the prefix of every error about it.
  std::string where(int at_line = 0) const;
};

// Parses a multi-document YAML text. All problems are reported, one per
// line of the error message, each `file:line: Kind "name": field: what`;
// nothing is returned unless every document is valid. Never throws.
Result<std::vector<Resource>> parseResources(const std::string& text, const std::string& file);

// Canonical kind for user spellings ("svc", "vpc", "probe", ...).
Result<std::string> canonicalKind(const std::string& text);
// Kinds in dependency order: a kind only refers to kinds before it.
const std::vector<std::string>& kindsInDependencyOrder();

// Names are DNS-1123 labels: lowercase alnum and '-', 1..63, alnum at the ends.
bool isDnsLabel(const std::string& s);

// IPv4 helpers; addresses are host-order uint32.
std::optional<uint32_t> parseIpv4(const std::string& s);
std::string formatIpv4(uint32_t ip);
struct Cidr {
  uint32_t network = 0;
  int prefix = 0;
  uint32_t mask() const { return prefix == 0 ? 0 : ~0u << (32 - prefix); }
  uint32_t broadcast() const { return network | ~mask(); }
  bool contains(uint32_t ip) const { return (ip & mask()) == network; }
  bool overlaps(const Cidr& o) const { return contains(o.network) || o.contains(network); }
  std::string str() const { return formatIpv4(network) + "/" + std::to_string(prefix); }
};
// "a.b.c.d/len" with host bits zero.
Result<Cidr> parseCidr(const std::string& s);

// The JSON form used by state.json and `svc get --json`.
nlohmann::json toJson(const Vpc& v);
nlohmann::json toJson(const Subnet& s);
nlohmann::json toJson(const Backend& b);
nlohmann::json toJson(const Service& s);
nlohmann::json toJson(const NetworkProbe& p);
// Inverse of toJson; `where` prefixes errors. Never throws.
Result<Vpc> vpcFromJson(const nlohmann::json& j, const std::string& where);
Result<Subnet> subnetFromJson(const nlohmann::json& j, const std::string& where);
Result<Backend> backendFromJson(const nlohmann::json& j, const std::string& where);
Result<Service> serviceFromJson(const nlohmann::json& j, const std::string& where);
Result<NetworkProbe> probeFromJson(const nlohmann::json& j, const std::string& where);

}  // namespace offcore::svc
