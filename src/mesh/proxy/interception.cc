#include "mesh/proxy/interception.h"

#include <set>
#include <sstream>
#include <vector>

#include "base/subprocess.h"
#include "dpu/netns.h"
#include "net/bpf/dataplane_abi.h"
#include "net/dataplane.h"

namespace offcore::mesh {

namespace {

constexpr const char* kTable = "offcore_mesh";
constexpr const char* kInputComment = "offcore-mesh";
constexpr const char* kReturnLinkGlob = "ocm*";  // meshReturnLink(vni) and its peer

std::string hex(uint32_t v) {
  std::ostringstream o;
  o << "0x" << std::hex << v;
  return o.str();
}

// argv in `netns` ("" = the calling process's, the proxy's case).
std::vector<std::string> in(const std::string& netns, std::vector<std::string> argv) {
  if (netns.empty()) return argv;
  std::vector<std::string> full{"ip", "netns", "exec", netns};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

Status run(const std::string& netns, std::vector<std::string> argv) { return runChecked(in(netns, std::move(argv))); }

Status nft(const std::string& netns, const std::string& script) {
  SpawnOptions opts;
  opts.stdin_data = script;
  return runChecked(in(netns, {"nft", "-f", "-"}), opts);
}

// Handles of our rules in the SoC's `ip offcore input` chain.
Result<std::vector<std::string>> inputRuleHandles(const std::string& netns) {
  OC_ASSIGN_OR_RETURN(auto out, runCapture(in(netns, {"nft", "-a", "list", "chain", "ip", "offcore", "input"})));
  std::vector<std::string> handles;
  if (out.exit_code != 0) return handles;  // no such chain: nothing of ours
  std::istringstream in(out.out);
  for (std::string line; std::getline(in, line);) {
    if (line.find(kInputComment) == std::string::npos) continue;
    auto at = line.rfind("# handle ");
    if (at != std::string::npos) handles.push_back(line.substr(at + 9));
  }
  return handles;
}

}  // namespace

std::string interceptionRuleset(const InterceptionPorts& ports) {
  // One statement per line: nft 1.0.6 rejects a rule closed by "}" on its line.
  const std::string local = hex(OC_MARK_MESH_LOCAL);
  std::string s;
  s += "table ip " + std::string(kTable) + " {\n";
  s += "  chain prerouting {\n";
  s += "    type filter hook prerouting priority mangle; policy accept;\n";
  s += "    meta mark != { " + hex(OC_MARK_MESH_OUT) + ", " + hex(OC_MARK_MESH_IN) + " } return\n";
  // A packet of a connection the proxy holds (its accepted socket, or an
  // upstream socket bound to the client's address).
  s += "    meta l4proto tcp socket transparent 1 meta mark set " + local + " accept\n";
  s += "    meta mark " + hex(OC_MARK_MESH_OUT) +
       " tcp flags & (syn | ack) == syn tproxy to :" + std::to_string(ports.outbound) + " meta mark set " + local +
       " accept\n";
  s += "    meta mark " + hex(OC_MARK_MESH_IN) +
       " tcp flags & (syn | ack) == syn tproxy to :" + std::to_string(ports.inbound) + " meta mark set " + local +
       " accept\n";
  // The rest (a connection whose proxy is gone) is forwarded as it is: the
  // pod answers with a reset, so the client fails fast instead of hanging.
  s += "  }\n";
  // The mesh return links (net/dataplane.h) tunnel whatever enters them as
  // a mesh pod's: only the proxy's own sockets may send there, nothing the
  // SoC forwards (a packet from the fabric or the host with a forged source).
  s += "  chain forward {\n";
  s += "    type filter hook forward priority filter; policy accept;\n";
  s += "    oifname \"" + std::string(kReturnLinkGlob) + "\" counter drop\n";
  s += "  }\n";
  s += "}\n";
  return s;
}

Status installInterception(const std::string& netns, const InterceptionPorts& ports, const std::string& uplink_if) {
  // Replace our table as a whole (add + delete + add makes the script
  // idempotent).
  OC_TRY(nft(netns, "add table ip " + std::string(kTable) + "\ndelete table ip " + kTable + "\n" +
                        interceptionRuleset(ports)));
  // The SoC's input chain drops by default: let in what the proxy owns.
  OC_ASSIGN_OR_RETURN(auto handles, inputRuleHandles(netns));
  if (handles.empty()) {
    const std::string comment = std::string("\"") + kInputComment + "\"";
    OC_TRY(run(netns, {"nft", "insert", "rule", "ip", "offcore", "input", "meta", "mark", hex(OC_MARK_MESH_LOCAL),
                       "accept", "comment", comment}));
    OC_TRY(run(netns, {"nft", "insert", "rule", "ip", "offcore", "input", "iifname", uplink_if, "tcp", "dport",
                       std::to_string(ports.hbone), "accept", "comment", comment}));
  }
  const std::string table = std::to_string(kMeshRouteTable);
  OC_ASSIGN_OR_RETURN(auto rules, ipOutput(netns, {"rule", "show"}));
  if (rules.find("lookup " + table) == std::string::npos) {
    OC_TRY(ipCmd(netns, {"rule", "add", "fwmark", hex(OC_MARK_MESH_LOCAL), "lookup", table, "pref", table}));
  }
  OC_TRY(ipCmd(netns, {"route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", table}));
  // Replies come back on the representor a pod sent from, to addresses the
  // SoC routes through other interfaces: no reverse-path filter.
  for (const char* key : {"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"}) {
    OC_TRY(run(netns, {"sysctl", "-qw", std::string(key) + "=0"}));
  }
  return okStatus();
}

Status removeInterception(const std::string& netns) {
  (void)nft(netns, "add table ip " + std::string(kTable) + "\ndelete table ip " + kTable + "\n");
  if (auto handles = inputRuleHandles(netns); handles.ok()) {
    for (const auto& h : *handles) (void)run(netns, {"nft", "delete", "rule", "ip", "offcore", "input", "handle", h});
  }
  const std::string table = std::to_string(kMeshRouteTable);
  (void)ipCmd(netns, {"rule", "del", "fwmark", hex(OC_MARK_MESH_LOCAL), "lookup", table});
  (void)ipCmd(netns, {"route", "flush", "table", table});
  (void)ipCmd(netns, {"route", "flush", "proto", std::to_string(kMeshRouteProto)});
  return okStatus();
}

std::map<std::string, std::string> podRouteTargets(const std::vector<MeshWorkload>& workloads,
                                                   const std::string& self_node,
                                                   const std::function<bool(uint32_t vni)>& has_link) {
  std::map<std::string, std::string> want;
  std::map<uint32_t, bool> links;  // one check per VPC
  for (const auto& w : workloads) {
    if (w.node == self_node) {
      if (!w.representor.empty()) want[w.ip] = w.representor;
      continue;
    }
    // Mesh pods elsewhere are HBONE's; a VPC with no mesh pod here has no link.
    if (w.mesh || w.vni == 0) continue;
    auto [it, fresh] = links.try_emplace(w.vni, false);
    if (fresh) it->second = has_link(w.vni);
    if (it->second) want[w.ip] = meshReturnLink(w.vni);
  }
  return want;
}

Status syncPodRoutes(const std::map<std::string, std::string>& want) {
  OC_ASSIGN_OR_RETURN(auto out, ipOutput("", {"-4", "route", "show", "proto", std::to_string(kMeshRouteProto)}));
  std::map<std::string, std::string> have;  // ip -> dev
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string dst, w, dev;
    words >> dst;
    while (words >> w) {
      if (w == "dev") words >> dev;
    }
    if (!dst.empty()) have[dst.substr(0, dst.find('/'))] = dev;
  }
  const std::string proto = std::to_string(kMeshRouteProto);
  for (const auto& [ip, rep] : want) {
    auto it = have.find(ip);
    if (it != have.end() && it->second == rep) continue;
    OC_TRY(ipCmd("", {"route", "replace", ip + "/32", "dev", rep, "proto", proto}));
  }
  for (const auto& [ip, dev] : have) {
    if (!want.count(ip)) (void)ipCmd("", {"route", "del", ip + "/32", "proto", proto});
  }
  return okStatus();
}

}  // namespace offcore::mesh
