// The CNI side of NetController: what `offcore-cni` asks the agent for.
// Every handler is idempotent, so a runtime may retry ADD and DEL freely,
// and DEL succeeds when the pod, its namespace or its VF are already gone.
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <optional>
#include <set>

#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "dpu/netns.h"
#include "netctl/net_controller.h"

namespace offcore {

using nlohmann::json;

namespace {

Result<json> parseCniBody(const std::string& body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return makeError("request body must be a JSON object");
  for (const char* key : {"containerId", "ifname"}) {
    if (!doc.contains(key) || !doc[key].is_string() || doc[key].get<std::string>().empty()) {
      return makeError(std::string("field '") + key + "' is required (a non-empty string)");
    }
  }
  return doc;
}

std::string str(const json& doc, const char* key, const std::string& fallback = "") {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() && !it->get<std::string>().empty() ? it->get<std::string>() : fallback;
}

// The store's endpoint id for a CNI attachment on this node.
std::string endpointId(const std::string& node, const json& doc) {
  return node + "/" + str(doc, "containerId") + "/" + str(doc, "ifname");
}

json cniReply(const svc::Endpoint& ep, const std::string& netns) {
  return {{"ifname", ep.ifname},
          {"mac", ep.mac},
          {"netns", netns},
          {"ip", ep.ip + "/32"},
          {"gateway", VfManager::kPodGateway},
          {"representor", ep.representor},
          {"endpoint", ep.id},
          {"vpc", ep.vpc},
          {"subnet", ep.subnet}};
}

const Vf* findVf(const VfManager& vfs, const std::string& representor) {
  for (const auto& v : vfs.list()) {
    if (v.representor == representor) return &v;
  }
  return nullptr;
}

// Up with ARP off, read in this namespace without a fork (nullopt: no such link).
std::optional<bool> upWithoutArp(const std::string& ifname) {
  ifreq req{};
  if (ifname.size() >= sizeof req.ifr_name) return std::nullopt;
  std::memcpy(req.ifr_name, ifname.c_str(), ifname.size());
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  int rc = ::ioctl(fd, SIOCGIFFLAGS, &req);
  ::close(fd);
  if (rc != 0) return std::nullopt;
  return (req.ifr_flags & IFF_UP) && (req.ifr_flags & IFF_NOARP);
}

}  // namespace

Status NetController::ensureMeshReturnLink(uint32_t vni) {
  const std::string link = meshReturnLink(vni), peer = link + "p";
  const std::string mtu = std::to_string(kPodMtu);  // the tunnel's, as the pods'
  // Every CNI ADD of a mesh pod comes here: once the pair is up, only the
  // (idempotent) attach is left.
  if (upWithoutArp(link).value_or(false) && upWithoutArp(peer).value_or(false)) {
    return dp_->attach(peer, {vni, 0, OC_IF_PROXY});
  }
  if (!upWithoutArp(link)) {
    OC_TRY(ipCmd("", {"link", "add", link, "mtu", mtu, "type", "veth", "peer", "name", peer, "mtu", mtu}));
  }
  // No ARP: the SoC's stack addresses frames to the link's own MAC, and the
  // program on the peer takes every one of them.
  OC_TRY(ipCmd("", {"link", "set", link, "arp", "off", "up"}));
  OC_TRY(ipCmd("", {"link", "set", peer, "arp", "off", "up"}));
  return dp_->attach(peer, {vni, 0, OC_IF_PROXY});
}

void NetController::syncMeshReturnLinks(const svc::ClusterState& state) {
  std::set<std::string> want;
  for (const auto& [id, ep] : state.endpoints) {
    if (ep.node != node_.name || !ep.mesh) continue;
    auto vpc = state.vpcs.find(ep.vpc);  // as at attach: an unknown VPC is VNI 0
    want.insert(meshReturnLink(vpc != state.vpcs.end() ? vpc->second.vni : 0));
  }
  // The links of this namespace, without a fork: ocm<digits> (the peers end in "p").
  std::vector<std::string> stale;
  if (struct if_nameindex* names = ::if_nameindex()) {
    for (struct if_nameindex* n = names; n->if_index != 0 && n->if_name; ++n) {
      std::string name = n->if_name;
      bool ours = name.size() > 3 && name.compare(0, 3, "ocm") == 0 &&
                  name.find_first_not_of("0123456789", 3) == std::string::npos;
      if (ours && !want.count(name)) stale.push_back(name);
    }
    ::if_freenameindex(names);
  }
  for (const auto& link : stale) {
    if (dp_) (void)dp_->detach(link + "p");
    if (auto s = ipCmd("", {"link", "delete", "dev", link}); !s.ok()) {
      spdlog::warn("net: mesh return link {}: {}", link, s.error().message);
    } else {
      spdlog::info("net: removed mesh return link {} (no mesh pod of its VPC here)", link);
    }
  }
}

ApiResponse NetController::cniAdd(const ApiRequest& req) {
  auto doc = parseCniBody(req.body);
  if (!doc.ok()) return ApiResponse::error(400, doc.error().message);
  if (!ready_) return ApiResponse::error(503, "pod networking is not running on this node: " + last_error_);
  svc::EndpointRequest er;
  er.node = node_.name;
  er.container_id = str(*doc, "containerId");
  er.ifname = str(*doc, "ifname");
  er.netns = str(*doc, "netns");
  er.pod_name = str(*doc, "podName", er.container_id);
  er.vpc = str(*doc, "vpc");
  er.subnet = str(*doc, "subnet");
  int mtu = doc->value("mtu", kPodMtu);
  er.mesh = doc->value("mesh", false);
  er.ns = str(*doc, "podNamespace", "default");
  er.service_account = str(*doc, "serviceAccount", "default");
  if (er.mesh && ::access(layout_.mesh_file.c_str(), F_OK) != 0) {
    return ApiResponse::error(409, "the pod asks for the service mesh, which node " + node_.name +
                                       " does not run: start it with `offcore mesh up --node " + node_.name + "`");
  }
  if (er.netns.empty()) return ApiResponse::error(400, "field 'netns' is required: the pod's network namespace path");
  if (::access(er.netns.c_str(), F_OK) != 0) {
    return ApiResponse::error(404, "network namespace " + er.netns + " does not exist");
  }
  if (auto ok = checkPodNetnsPath(er.netns); !ok.ok()) return ApiResponse::error(400, ok.error().message);
  if (er.subnet.empty())
    return ApiResponse::error(400, "field 'subnet' is required (see `offcore svc list --kind Subnet`)");

  auto before = store_.load();
  bool existed = before.ok() && before->endpoints.count(endpointId(node_.name, *doc));
  auto ep = store_.addEndpoint(er);
  if (!ep.ok()) return ApiResponse::error(400, ep.error().message);
  auto rollback = [&](int code, const std::string& msg) {
    if (!existed) (void)store_.removeEndpoint(ep->id);
    return ApiResponse::error(code, msg);
  };

  // The VF: reuse the one a previous ADD made, else create it.
  const Vf* vf = ep->representor.empty() ? nullptr : findVf(vfs_, ep->representor);
  if (vf == nullptr || !linkExists("", vf->representor)) {
    if (vf != nullptr) (void)vfs_.remove(vf->representor);
    VfSpec spec;
    spec.netns = er.netns;
    spec.ifname = er.ifname;
    spec.ip = ep->ip + "/32";
    spec.soc_route = false;
    spec.mtu = mtu;
    auto made = vfs_.add(spec);
    if (!made.ok()) return rollback(409, made.error().message);
    if (auto s = store_.setEndpointDetails(ep->id, made->mac, made->representor); !s.ok()) {
      (void)vfs_.remove(made->representor);
      return rollback(500, s.error().message);
    }
    ep->mac = made->mac;
    ep->representor = made->representor;
  }
  auto vni = vniOf(ep->vpc);
  if (!vni.ok()) return ApiResponse::error(500, vni.error().message);
  in_addr a{};
  ::inet_pton(AF_INET, ep->ip.c_str(), &a);
  uint32_t role = ep->mesh ? (OC_IF_POD | OC_IF_MESH) : OC_IF_POD;
  if (auto s = dp_->attach(ep->representor, {*vni, a.s_addr, role}); !s.ok()) {
    return ApiResponse::error(500, s.error().message);
  }
  if (ep->mesh) {
    if (auto s = ensureMeshReturnLink(*vni); !s.ok()) return ApiResponse::error(500, s.error().message);
  }
  // Program before answering: the pod may send its first packet right away.
  if (auto s = reconcile(svc::StateDelta::of("endpoints/" + ep->id)); !s.ok())
    return ApiResponse::error(500, "programming the dataplane: " + s.error().message);
  counters_["cni_add"]++;
  return ApiResponse::json(200, dumpJson(cniReply(*ep, er.netns)) + "\n");
}

ApiResponse NetController::cniDel(const ApiRequest& req) {
  auto doc = parseCniBody(req.body);
  if (!doc.ok()) return ApiResponse::error(400, doc.error().message);
  std::string id = endpointId(node_.name, *doc);
  auto state = store_.load();
  if (!state.ok()) return ApiResponse::error(500, state.error().message);
  auto it = state->endpoints.find(id);
  if (it != state->endpoints.end() && !it->second.representor.empty()) {
    const std::string& rep = it->second.representor;
    if (dp_) (void)dp_->detach(rep);
    if (linkExists("", rep)) {
      if (auto s = vfs_.remove(rep); !s.ok()) (void)linkDelete("", rep);
    } else {
      (void)vfs_.load();  // drops VFs whose representor went with the pod's namespace
    }
  }
  if (auto s = store_.removeEndpoint(id); !s.ok()) return ApiResponse::error(500, s.error().message);
  if (ready_) {
    if (auto s = reconcile(svc::StateDelta::of("endpoints/" + id)); !s.ok())
      spdlog::warn("net: reconcile after DEL: {}", s.error().message);
  }
  counters_["cni_del"]++;
  return ApiResponse::json(200, "{\"ok\":true}\n");
}

ApiResponse NetController::cniCheck(const ApiRequest& req) {
  auto doc = parseCniBody(req.body);
  if (!doc.ok()) return ApiResponse::error(400, doc.error().message);
  std::string id = endpointId(node_.name, *doc);
  auto state = store_.load();
  if (!state.ok()) return ApiResponse::error(500, state.error().message);
  auto it = state->endpoints.find(id);
  if (it == state->endpoints.end()) return ApiResponse::error(404, "no endpoint " + id + " (was ADD called?)");
  const auto& ep = it->second;
  if (ep.representor.empty() || !linkExists("", ep.representor)) {
    return ApiResponse::error(409, "endpoint " + id + ": its VF is gone (representor " + ep.representor + ")");
  }
  std::string netns = str(*doc, "netns", ep.netns);
  auto out = runCapture({"nsenter", "--net=" + netns, "ip", "-o", "-4", "addr", "show", "dev", ep.ifname});
  if (!out.ok() || out->exit_code != 0 || out->out.find(" " + ep.ip + "/") == std::string::npos) {
    return ApiResponse::error(409, "endpoint " + id + ": " + ep.ifname + " in " + netns + " does not carry " + ep.ip);
  }
  return ApiResponse::json(200, dumpJson(cniReply(ep, netns)) + "\n");
}

ApiResponse NetController::status() {
  json doc{{"node", node_.name},
           {"running", ready_},
           {"programmed_generation", programmed_generation_},
           {"last_error", last_error_},
           {"counters", counters_}};
  if (dp_) {
    static const char* names[] = {"rx",          "local",         "tunnel",          "uplink",
                                  "stack",       "dnat",          "ct_hit",          "rev_nat",
                                  "drop_spoof",  "drop_no_route", "drop_no_backend", "drop_malformed",
                                  "drop_tunnel", "mesh_out",      "mesh_in",         "native"};
    if (auto st = dp_->stats(); st.ok()) {
      json d;
      for (size_t i = 0; i < std::size(names); ++i) d[names[i]] = (*st)[i];
      doc["dataplane"] = d;
    }
    if (auto rx = dp_->statPerCpu(OC_STAT_RX); rx.ok()) doc["dataplane_rx_by_cpu"] = *rx;
  }
  json probes = json::object();
  for (const auto& [b, h] : health_.backends) {
    probes[b] = {{"healthy", h.healthy}, {"probe", h.probe}, {"last_error", h.last_error}};
  }
  doc["probes"] = probes;
  return ApiResponse::json(200, dumpJson(doc) + "\n");
}

void NetController::registerRoutes(ApiServer& api) {
  api.route("POST", "/v1/net/cni/add", [this](const ApiRequest& r) { return cniAdd(r); });
  api.route("POST", "/v1/net/cni/del", [this](const ApiRequest& r) { return cniDel(r); });
  api.route("POST", "/v1/net/cni/check", [this](const ApiRequest& r) { return cniCheck(r); });
  api.route("POST", "/v1/net/vm/add", [this](const ApiRequest& r) { return vmAdd(r); });
  api.route("POST", "/v1/net/vm/del", [this](const ApiRequest& r) { return vmDel(r); });
  api.route("POST", "/v1/net/vm/check", [this](const ApiRequest& r) { return vmCheck(r); });
  api.route("GET", "/v1/net/status", [this](const ApiRequest&) { return status(); });
}

}  // namespace offcore
