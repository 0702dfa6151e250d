// The VM side of NetController: a VM's NIC as a dataplane endpoint. What a
// VF is to a pod, a persistent tap in the SoC is to a VM: the agent makes
// it, gives it the pod gateway's address (so the SoC answers the guest's ARP
// for 169.254.1.1, as a DPU's representor would), and attaches the
// dataplane; the VM's network back end moves frames between the tap and the
// guest. Every handler is idempotent, like the CNI ones.
#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "base/log.h"
#include "dpu/netns.h"
#include "netctl/net_controller.h"
#include "netctl/tap.h"

namespace offcore {

using nlohmann::json;

namespace {

struct VmNicRequest {
  std::string vm, vpc, subnet, mac;
  int queues = 1;
  bool prepare = false;  // a migration's destination: only the tap, the store stays
  bool move = false;     // take the NIC over from the node it is on (after a migration)
};

Result<VmNicRequest> parseVmBody(const std::string& body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return makeError("request body must be a JSON object");
  VmNicRequest r;
  auto str = [&](const char* key, std::string& out) -> Status {
    auto it = doc.find(key);
    if (it == doc.end()) return okStatus();
    if (!it->is_string()) return makeError(std::string("field '") + key + "' must be a string");
    out = it->get<std::string>();
    return okStatus();
  };
  OC_TRY(str("vm", r.vm));
  OC_TRY(str("vpc", r.vpc));
  OC_TRY(str("subnet", r.subnet));
  OC_TRY(str("mac", r.mac));
  if (r.vm.empty() || r.vm.size() > 32 || r.vm.find('/') != std::string::npos)
    return makeError("field 'vm' is required: the VM's name (1-32 characters, no '/')");
  if (!r.mac.empty()) OC_TRY(validateMac(r.mac));
  if (auto q = doc.find("queues"); q != doc.end()) {
    if (!q->is_number_integer() || q->get<int64_t>() < 1 || q->get<int64_t>() > 64)
      return makeError("field 'queues' must be 1..64");
    r.queues = static_cast<int>(q->get<int64_t>());
  }
  r.prepare = doc.value("prepare", false);
  r.move = doc.value("move", false);
  return r;
}

std::string vmContainerId(const std::string& vm) { return "vm-" + vm; }

json vmReply(const svc::Endpoint& ep) {
  return {{"vm", ep.vm},
          {"ip", ep.ip},
          {"prefix", ep.prefix_len},
          {"gateway", VfManager::kPodGateway},
          {"mac", ep.mac},
          {"tap", ep.representor},
          {"mtu", NetController::kPodMtu},
          {"endpoint", ep.id},
          {"node", ep.node},
          {"vpc", ep.vpc},
          {"subnet", ep.subnet}};
}

// The gateway's MAC as every VM sees it, the same on every node's tap (as a
// fabric's anycast router MAC): a migrated guest keeps its ARP entry for the
// gateway, so frames it sends to the SoC itself are not dropped as another
// host's while the entry ages out.
constexpr const char* kVmGatewayMac = "02:0c:0f:ff:ff:01";

// The tap up, with the gateway address and MAC the guest ARPs for.
Status ensureTap(const std::string& tap, int queues) {
  if (!linkExists("", tap)) OC_TRY(createPersistentTap(tap, queues));
  OC_TRY(
      ipCmd("", {"link", "set", tap, "address", kVmGatewayMac, "mtu", std::to_string(NetController::kPodMtu), "up"}));
  return ipCmd("", {"addr", "replace", std::string(VfManager::kPodGateway) + "/32", "dev", tap});
}

}  // namespace

ApiResponse NetController::vmAdd(const ApiRequest& req) {
  auto r = parseVmBody(req.body);
  if (!r.ok()) return ApiResponse::error(400, r.error().message);
  if (!ready_) return ApiResponse::error(503, "pod networking is not running on this node: " + last_error_);
  std::string tap = vmTapName(r->vm);
  if (r->prepare) {
    if (auto s = ensureTap(tap, r->queues); !s.ok()) return ApiResponse::error(409, s.error().message);
    return ApiResponse::json(200, dumpJson(json{{"vm", r->vm}, {"tap", tap}}) + "\n");
  }
  if (r->subnet.empty())
    return ApiResponse::error(400, "field 'subnet' is required (see `offcore svc list --kind Subnet`)");
  auto before = store_.load();
  if (!before.ok()) return ApiResponse::error(500, before.error().message);
  std::string id = node_.name + "/" + vmContainerId(r->vm) + "/eth0";
  bool existed = before->endpoints.count(id) > 0;
  // The NIC on another node: a migration moves it (move=true), else refuse.
  if (!existed) {
    for (const auto& [eid, e] : before->endpoints) {
      if (e.vm != r->vm || e.node == node_.name) continue;
      if (!r->move) {
        return ApiResponse::error(409, "VM " + r->vm + " has its NIC on node " + e.node +
                                           "; `offcore vm migrate` moves it, or delete the VM there first");
      }
      if (auto m = store_.moveEndpoint(eid, node_.name); !m.ok()) return ApiResponse::error(500, m.error().message);
      existed = true;
      break;
    }
  }
  svc::EndpointRequest er;
  er.node = node_.name;
  er.container_id = vmContainerId(r->vm);
  er.ifname = "eth0";
  er.vpc = r->vpc;
  er.subnet = r->subnet;
  er.vm = r->vm;
  auto ep = store_.addEndpoint(er);
  if (!ep.ok()) return ApiResponse::error(400, ep.error().message);
  auto rollback = [&](int code, const std::string& msg) {
    if (!existed) (void)store_.removeEndpoint(ep->id);
    return ApiResponse::error(code, msg);
  };
  std::string mac = !r->mac.empty() ? r->mac : (!ep->mac.empty() ? ep->mac : vmMac(r->vm));
  if (auto s = ensureTap(tap, r->queues); !s.ok()) return rollback(409, s.error().message);
  if (ep->mac != mac || ep->representor != tap) {
    if (auto s = store_.setEndpointDetails(ep->id, mac, tap); !s.ok()) return rollback(500, s.error().message);
    ep->mac = mac;
    ep->representor = tap;
  }
  auto vni = vniOf(ep->vpc);
  if (!vni.ok()) return ApiResponse::error(500, vni.error().message);
  in_addr a{};
  ::inet_pton(AF_INET, ep->ip.c_str(), &a);
  if (auto s = dp_->attach(tap, {*vni, a.s_addr, OC_IF_POD}); !s.ok())
    return ApiResponse::error(500, s.error().message);
  if (auto s = reconcile(svc::StateDelta::of("endpoints/" + ep->id)); !s.ok())
    return ApiResponse::error(500, "programming the dataplane: " + s.error().message);
  counters_["vm_add"]++;
  return ApiResponse::json(200, dumpJson(vmReply(*ep)) + "\n");
}

ApiResponse NetController::vmDel(const ApiRequest& req) {
  auto r = parseVmBody(req.body);
  if (!r.ok()) return ApiResponse::error(400, r.error().message);
  // The tap goes whether or not the store still names it here (a migrated
  // VM's NIC belongs to its new node by now).
  std::string tap = vmTapName(r->vm);
  if (dp_) (void)dp_->detach(tap);
  if (linkExists("", tap)) {
    if (auto s = linkDelete("", tap); !s.ok()) return ApiResponse::error(500, s.error().message);
  }
  if (!r->prepare) {
    std::string id = node_.name + "/" + vmContainerId(r->vm) + "/eth0";
    if (auto s = store_.removeEndpoint(id); !s.ok()) return ApiResponse::error(500, s.error().message);
  }
  if (ready_) {
    if (auto s = reconcile(r->prepare
                               ? svc::StateDelta()
                               : svc::StateDelta::of("endpoints/" + node_.name + "/" + vmContainerId(r->vm) + "/eth0"));
        !s.ok())
      spdlog::warn("net: reconcile after VM DEL: {}", s.error().message);
  }
  counters_["vm_del"]++;
  return ApiResponse::json(200, "{\"ok\":true}\n");
}

ApiResponse NetController::vmCheck(const ApiRequest& req) {
  auto r = parseVmBody(req.body);
  if (!r.ok()) return ApiResponse::error(400, r.error().message);
  auto state = store_.load();
  if (!state.ok()) return ApiResponse::error(500, state.error().message);
  std::string id = node_.name + "/" + vmContainerId(r->vm) + "/eth0";
  auto it = state->endpoints.find(id);
  if (it == state->endpoints.end()) return ApiResponse::error(404, "VM " + r->vm + " has no NIC on this node");
  if (!linkExists("", it->second.representor)) {
    return ApiResponse::error(409, "VM " + r->vm + ": its tap " + it->second.representor + " is gone (ADD again)");
  }
  return ApiResponse::json(200, dumpJson(vmReply(it->second)) + "\n");
}

}  // namespace offcore
