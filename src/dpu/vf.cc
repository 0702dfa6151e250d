#include "dpu/vf.h"
#include "base/json.h"

#include <arpa/inet.h>

#include <spdlog/spdlog.h>
#include <cctype>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "base/files.h"
#include "dpu/netns.h"
#include "dpu/rx_steering.h"

namespace offcore {

using nlohmann::json;

namespace {

std::string netnsFsPath(const std::string& netns) {
  return netns.find('/') == std::string::npos ? netnsPath(netns) : netns;
}

// iproute2 in the pod's namespace; nsenter takes names and paths alike.
Status podIp(const std::string& netns, std::vector<std::string> args) {
  std::vector<std::string> argv{"nsenter", "--net=" + netnsFsPath(netns), "ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return runChecked(argv);
}

}  // namespace

Status validateCidr(const std::string& cidr) {
  auto slash = cidr.find('/');
  if (slash == std::string::npos) return makeError("bad address '" + cidr + "': expected CIDR like 10.1.0.5/24");
  in_addr addr{};
  if (::inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &addr) != 1) {
    return makeError("bad address '" + cidr + "': not an IPv4 address");
  }
  std::string len = cidr.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(len) > 32) {
    return makeError("bad address '" + cidr + "': prefix length must be 0-32");
  }
  return okStatus();
}

Status validateMac(const std::string& mac) {
  unsigned b[6];
  char tail;
  if (std::sscanf(mac.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6 ||
      mac.size() != 17) {
    return makeError("bad MAC '" + mac + "' (write it like 02:00:00:00:00:01)");
  }
  if (b[0] & 1) return makeError("bad MAC '" + mac + "': multicast addresses cannot be a VF's");
  return okStatus();
}

namespace {
// Letters, digits, '_', '-', '.', starting with a letter or digit: nothing
// iproute2 could read as an option ("-h") or a path.
bool plainToken(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max || !std::isalnum(static_cast<unsigned char>(s[0]))) return false;
  for (unsigned char c : s) {
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}
}  // namespace

Status validateIfname(const std::string& ifname) {
  if (!plainToken(ifname, 15)) {
    return makeError("bad interface name '" + ifname +
                     "' (1-15 letters, digits, '_', '-' or '.', starting with a letter or digit)");
  }
  return okStatus();
}

Status validateNetnsName(const std::string& name) {
  if (!plainToken(name, 64)) {
    return makeError("bad namespace name '" + name +
                     "' (letters, digits, '_', '-' or '.', starting with a letter or digit)");
  }
  if (isOffcoreNetnsName(name)) return makeError("'" + name + "' is one of offcore's own namespaces, not a pod's");
  return okStatus();
}

std::string vfsToJson(const std::vector<Vf>& vfs) {
  json arr = json::array();
  for (const auto& v : vfs) {
    arr.push_back({{"index", v.index},
                   {"representor", v.representor},
                   {"netns", v.netns},
                   {"ifname", v.ifname},
                   {"ip", v.ip},
                   {"mac", v.mac}});
  }
  return dumpJson(arr);
}

VfManager::VfManager(std::string state_path, int node_index, CpuSet soc_cpus, CpuSet host_cpus, bool napi)
    : state_path_(std::move(state_path)),
      node_index_(node_index),
      soc_cpus_(std::move(soc_cpus)),
      host_cpus_(std::move(host_cpus)),
      napi_(napi) {}

Status VfManager::load() {
  vfs_.clear();
  if (!pathExists(state_path_)) return okStatus();
  OC_ASSIGN_OR_RETURN(std::string text, readFile(state_path_));
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) return makeError(state_path_ + ": not a JSON array");
  for (const auto& j : doc) {
    Vf v{j.value("index", 0),   j.value("representor", ""), j.value("netns", ""),
         j.value("ifname", ""), j.value("ip", ""),          j.value("mac", "")};
    if (linkExists("", v.representor)) vfs_.push_back(v);
  }
  return save();
}

Status VfManager::save() const { return writeFileAtomic(state_path_, vfsToJson(vfs_) + "\n"); }

Result<Vf> VfManager::add(const VfSpec& spec) {
  if (spec.netns.empty()) return makeError("--netns is required: the pod's namespace");
  if (!pathExists(netnsFsPath(spec.netns))) {
    return makeError("network namespace '" + spec.netns + "' does not exist (create it with `ip netns add`)");
  }
  OC_TRY(validateIfname(spec.ifname));
  if (!spec.ip.empty()) OC_TRY(validateCidr(spec.ip));
  if (!spec.mac.empty()) OC_TRY(validateMac(spec.mac));
  std::set<int> used;
  for (const auto& v : vfs_) {
    used.insert(v.index);
    if (v.netns == spec.netns && v.ifname == spec.ifname) {
      return makeError("namespace '" + spec.netns + "' already has VF " + spec.ifname + " (representor " +
                       v.representor + ")");
    }
  }
  int index = 0;
  while (used.count(index)) ++index;
  if (index > 4095) return makeError("this node has 4096 VFs already");

  Vf vf;
  vf.index = index;
  vf.representor = "pf0vf" + std::to_string(index);
  vf.netns = spec.netns;
  vf.ifname = spec.ifname;
  vf.ip = spec.ip;
  if (spec.mac.empty()) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "02:0c:%02x:%02x:%02x:%02x", node_index_ & 0xff, (index >> 8) & 0xff, index & 0xff,
                  0x01);
    vf.mac = buf;
  } else {
    vf.mac = spec.mac;
  }

  auto rollback = [&](const Error& e) -> Error {
    (void)linkDelete("", vf.representor);
    return e.wrap("vf add");
  };
  // A stale representor of the same name (agent crash mid-add) goes first.
  (void)linkDelete("", vf.representor);
  // The VF end is born in the SoC under a temporary name and steered here:
  // a container's sysfs is read-only (runc mounts it so, and every sysfs
  // mount of that namespace shares the superblock), while the rx queues'
  // RPS maps move with the device. Then it goes to the pod as ifname.
  const std::string tmp = "ocvf" + std::to_string(index);
  (void)linkDelete("", tmp);
  if (auto s = ipCmd("", {"link", "add", vf.representor, "type", "veth", "peer", "name", tmp}); !s.ok()) {
    return rollback(s.error());
  }
  if (!host_cpus_.empty()) {
    if (auto s = steerRx("", tmp, host_cpus_); !s.ok()) return rollback(s.error());
  }
  // What the pod sends must be GRO-eligible for the representor's NAPI.
  if (napi_ && !soc_cpus_.empty()) {
    if (auto s = disableTso("", tmp); !s.ok()) return rollback(s.error());
  }
  if (auto s = ipCmd("", {"link", "set", "dev", tmp, "netns", netnsFsPath(vf.netns)}); !s.ok()) {
    return rollback(s.error());
  }
  std::vector<std::vector<std::string>> pod_steps = {{"link", "set", "dev", tmp, "name", vf.ifname},
                                                     {"link", "set", "lo", "up"},
                                                     {"link", "set", vf.ifname, "address", vf.mac},
                                                     {"link", "set", vf.ifname, "up"}};
  if (spec.mtu > 0) pod_steps.push_back({"link", "set", vf.ifname, "mtu", std::to_string(spec.mtu)});
  if (!vf.ip.empty()) {
    pod_steps.push_back({"addr", "add", vf.ip, "dev", vf.ifname});
  }
  for (const auto& step : pod_steps) {
    if (auto s = podIp(vf.netns, step); !s.ok()) return rollback(s.error());
  }
  if (auto s = ipCmd("", {"link", "set", vf.representor, "up"}); !s.ok()) return rollback(s.error());
  // What the pod sends is received (BPF dataplane included) on the SoC's
  // cpus, what the SoC sends the pod on the host's, as with a card.
  if (!soc_cpus_.empty()) {
    auto s = napi_ ? steerRxNapi("", vf.representor, soc_cpus_) : steerRx("", vf.representor, soc_cpus_);
    if (!s.ok()) return rollback(s.error());
  }
  // The pod's end, with NAPI steering: a NAPI thread of its own on the
  // host's cpus instead of RPS (no IPI per burst; +5-10% req/s across nodes,
  // docs/NETWORK.md), which needs the representor to send without TSO. Its
  // `threaded` switch exists only while the device is up, so it is set in
  // the pod's namespace; where that namespace's sysfs is read-only (runc
  // mounted it so) the RPS mask set above stays.
  if (napi_ && !host_cpus_.empty()) {
    if (auto s = disableTso("", vf.representor); !s.ok()) return rollback(s.error());
    if (auto s = steerRxNapi(netnsFsPath(vf.netns), vf.ifname, host_cpus_); !s.ok()) {
      spdlog::warn("VF {}: the pod's end keeps RPS to the host's cpus ({})", vf.representor, s.error().message);
    }
  }
  if (!vf.ip.empty()) {
    // The pod's gateway is a link-local address (169.254.1.1) reached on-link;
    // a pod that has no default route yet gets one through it.
    auto has_default = runCapture({"nsenter", "--net=" + netnsFsPath(vf.netns), "ip", "route", "show", "default"});
    if (has_default.ok() && trim(has_default->out).empty()) {
      if (auto s = podIp(vf.netns, {"route", "add", "default", "via", kPodGateway, "dev", vf.ifname, "onlink"});
          !s.ok()) {
        return rollback(s.error());
      }
    }
    // The gateway address is local on every representor, so the SoC answers
    // the pod's ARP for it without proxy ARP or a default route of its own.
    if (auto s = ipCmd("", {"addr", "add", std::string(kPodGateway) + "/32", "dev", vf.representor}); !s.ok()) {
      return rollback(s.error());
    }
    std::string host = vf.ip.substr(0, vf.ip.find('/')) + "/32";
    if (spec.soc_route) {
      if (auto s = ipCmd("", {"route", "add", host, "dev", vf.representor}); !s.ok()) return rollback(s.error());
    }
  }
  vfs_.push_back(vf);
  if (auto s = save(); !s.ok()) {
    vfs_.pop_back();
    return rollback(s.error());
  }
  return vf;
}

Status VfManager::remove(const std::string& id) {
  for (auto it = vfs_.begin(); it != vfs_.end(); ++it) {
    if (it->representor == id || it->netns + "/" + it->ifname == id) {
      OC_TRY(linkDelete("", it->representor));
      vfs_.erase(it);
      return save();
    }
  }
  return makeError("no VF '" + id + "' (see `offcore dpu vf list`)");
}

}  // namespace offcore
