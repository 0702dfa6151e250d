// `offcore svc ...`: apply, list, inspect and delete the cluster's network
// resources (VPCs, Subnets, Backends, Services, NetworkProbes) in the
// cluster store (src/svc/cluster_store.h) that every node's agent follows.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/files.h"
#include "base/json.h"
#include "cli/common.h"
#include "svc/cluster_store.h"
#include "svc/liveness.h"
#include "svc/resolve.h"

namespace offcore {

using nlohmann::json;
using namespace offcore::svc;

namespace {

struct SvcOpts {
  std::string cluster_dir;
  std::vector<std::string> files, args;
  std::string kind;
  bool json = false;
};

Result<ClusterStore> storeFor(const CliContext& ctx, const SvcOpts& o) {
  return ClusterStore::open(ctx.config, o.cluster_dir);
}

void addDirOption(CLI::App* cmd, SvcOpts& o) {
  cmd->add_option("--cluster,--cluster-dir", o.cluster_dir,
                  "cluster store: a directory or etcd://host:port[,host:port...] (default: cluster_store, else "
                  "cluster_dir of the config)");
}

// Multi-line errors (one problem per line, each naming file:line) go out as
// they are, then one line saying what happened.
int failLines(const std::string& what, const Error& e, const std::string& then) {
  for (const auto& line : splitLines(e.message)) std::fprintf(stderr, "%s\n", line.c_str());
  std::fprintf(stderr, "offcore: %s: %s\n", what.c_str(), then.c_str());
  return 1;
}

// Every resource of every file; all files are read and parsed before the
// first error is returned, so one run shows every problem.
Result<std::vector<Resource>> readFiles(const std::vector<std::string>& files) {
  std::vector<Resource> all;
  std::string errors;
  for (const auto& f : files) {
    auto text = readFile(f);
    auto parsed = text.ok() ? parseResources(*text, f) : Result<std::vector<Resource>>(text.error());
    if (!parsed.ok())
      errors += (errors.empty() ? "" : "\n") + parsed.error().message;
    else
      all.insert(all.end(), parsed->begin(), parsed->end());
  }
  if (!errors.empty()) return makeError(errors);
  return all;
}

std::string joinLabels(const Labels& l) {
  std::string s;
  for (const auto& [k, v] : l) s += (s.empty() ? "" : ",") + k + "=" + v;
  return s;
}

std::string portsText(const Service& s) {
  std::string out;
  for (const auto& p : s.ports) {
    out += (out.empty() ? "" : " ") + std::to_string(p.port) + "/" + p.protocol;
    if (p.target_port != p.port) out += "->" + std::to_string(p.target_port);
  }
  return out;
}

std::map<std::string, Liveness> livenessOf(const CliContext& ctx, const ClusterStore& store, const ClusterState& s) {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch());
  return nodeLiveness(s, store.loadHeartbeats(), static_cast<uint64_t>(now.count()),
                      static_cast<uint64_t>(ctx.config.node_expiry_ms));
}

std::string livenessText(const Liveness& l) {
  if (l.heartbeat_ms == 0) return "expired (no heartbeat or lease on record)";
  char age[32];
  std::snprintf(age, sizeof age, "%.1f s", static_cast<double>(l.age_ms) / 1000.0);
  return std::string(l.live ? "live (beat " : "expired (last beat ") + age + " ago)";
}

// One row per resource: KIND NAME VPC DETAILS, plus a JSON object.
// claims: the store's EIP holders (etcd); without one, the live node the
// hash picks (what every agent picks).
void listRows(const ClusterState& s, const std::map<std::string, Liveness>& liveness,
              const std::map<std::string, std::string>& claims, const std::string& kind,
              std::vector<std::vector<std::string>>& rows, json& arr) {
  std::set<std::string> live = liveNodes(liveness);
  auto want = [&](const char* k) { return kind.empty() || kind == k; };
  auto add = [&](const char* k, const std::string& name, const std::string& vpc, const std::string& details, json j) {
    rows.push_back({k, name, vpc.empty() ? "-" : vpc, details});
    j["kind"] = k;
    arr.push_back(std::move(j));
  };
  if (want("VPC"))
    for (const auto& [n, v] : s.vpcs) add("VPC", n, n, "vni " + std::to_string(v.vni), toJson(v));
  if (want("Subnet"))
    for (const auto& [n, v] : s.subnets) {
      size_t eps = 0;
      for (const auto& [id, e] : s.endpoints) eps += e.subnet == n;
      add("Subnet", n, v.vpc, v.cidr + " gw " + v.gateway + ", " + std::to_string(eps) + " endpoint(s)", toJson(v));
    }
  if (want("Backend"))
    for (const auto& [n, b] : s.backends)
      add("Backend", n, b.vpc,
          b.kind + " " + (b.kind == "pod" ? b.pod : b.ip + (b.node.empty() ? " (fabric)" : " on " + b.node)) + " " +
              joinLabels(b.labels),
          toJson(b));
  if (want("Service"))
    for (const auto& [n, v] : s.services) {
      std::string owner = v.eip.empty() ? "" : ownerOf(v.eip, live);
      if (auto c = claims.find(v.eip); !claims.empty() && !v.eip.empty()) owner = c == claims.end() ? "" : c->second;
      json j = toJson(v);
      if (!v.eip.empty()) j["eipOwner"] = owner;
      add("Service", n, v.vpc,
          v.type + " " + v.cluster_ip +
              (v.eip.empty() ? "" : " eip " + v.eip + " on " + (owner.empty() ? "no live node" : owner)) + " " +
              portsText(v) + " -> " + joinLabels(v.selector) + (v.scope == "cluster" ? " (any VPC)" : ""),
          j);
    }
  if (want("NetworkProbe"))
    for (const auto& [n, p] : s.probes)
      add("NetworkProbe", n, "",
          p.backend + " " + p.type + ":" + std::to_string(p.port) + p.path + " every " + std::to_string(p.interval_ms) +
              "ms",
          toJson(p));
  if (want("Endpoint"))
    for (const auto& [id, e] : s.endpoints)
      add("Endpoint", id, e.vpc,
          e.ip + "/" + std::to_string(e.prefix_len) + (e.vm.empty() ? " pod " + e.pod_name : " vm " + e.vm) + " " +
              e.mac,
          {{"id", id},
           {"pod", e.pod_name},
           {"vm", e.vm},
           {"ip", e.ip},
           {"subnet", e.subnet},
           {"node", e.node},
           {"mac", e.mac},
           {"representor", e.representor}});
  if (want("Node"))
    for (const auto& [n, node] : s.nodes) {
      Liveness l = liveness.count(n) ? liveness.at(n) : Liveness{};
      add("Node", n, "", "fabric " + node.fabric_ip + " host " + node.host_ip + ", " + livenessText(l),
          {{"name", n},
           {"fabricIp", node.fabric_ip},
           {"hostIp", node.host_ip},
           {"hostMac", node.host_mac},
           {"live", l.live},
           {"heartbeatMs", l.heartbeat_ms},
           {"heartbeatAgeMs", l.age_ms}});
    }
}

// The health of a backend: the freshest report of any node.
json healthOf(const std::map<std::string, NodeHealth>& health, const std::string& backend) {
  const BackendHealth* best = nullptr;
  std::string by;
  uint64_t at = 0;
  for (const auto& [node, h] : health) {
    auto it = h.backends.find(backend);
    if (it != h.backends.end() && (!best || h.updated_ms > at)) best = &it->second, by = node, at = h.updated_ms;
  }
  if (!best) return {{"health", "unknown"}, {"lastError", ""}, {"probe", ""}, {"reportedBy", ""}};
  return {{"health", best->healthy ? "healthy" : "unhealthy"},
          {"lastError", best->last_error},
          {"probe", best->probe},
          {"reportedBy", by},
          {"sinceMs", best->since_ms}};
}

json serviceDetails(const ClusterState& s, const Service& svc, const std::map<std::string, NodeHealth>& health,
                    const std::map<std::string, uint64_t>& programmed_by_node) {
  json doc = {{"kind", "Service"},           {"name", svc.name}, {"generation", s.generation}, {"spec", toJson(svc)},
              {"clusterIP", svc.cluster_ip}, {"eip", svc.eip}};
  json eps = json::array();
  for (const auto& r : resolveService(s, svc)) {
    json ports = json::array();
    for (size_t i = 0; i < svc.ports.size(); ++i)
      ports.push_back(
          {{"port", svc.ports[i].port}, {"targetPort", r.target_ports[i]}, {"protocol", svc.ports[i].protocol}});
    json e = {{"backend", r.name}, {"kind", r.kind}, {"ip", r.ip},  {"ports", ports},
              {"node", r.node},    {"vpc", r.vpc},   {"vni", r.vni}};
    e.update(healthOf(health, r.name));
    eps.push_back(std::move(e));
  }
  doc["endpoints"] = eps;
  doc["pending"] = pendingBackends(s, svc);
  json programmed = json::object();
  for (const auto& [node, gen] : programmed_by_node) programmed[node] = gen;
  doc["programmed"] = programmed;
  return doc;
}

void printService(const json& d) {
  const json& spec = d["spec"];
  std::printf("Service %s (store generation %llu)\n", d["name"].get<std::string>().c_str(),
              static_cast<unsigned long long>(d["generation"].get<uint64_t>()));
  std::printf("  type %s, scope %s, vpc %s\n", spec["type"].get<std::string>().c_str(),
              spec["scope"].get<std::string>().c_str(), spec["vpc"].get<std::string>().c_str());
  std::printf("  clusterIP %s%s\n", d["clusterIP"].get<std::string>().c_str(),
              d["eip"].get<std::string>().empty() ? "" : (", eip " + d["eip"].get<std::string>()).c_str());
  std::vector<std::vector<std::string>> rows = {
      {"  BACKEND", "IP", "PORTS", "NODE", "VPC", "HEALTH", "PROBE", "LAST ERROR"}};
  for (const auto& e : d["endpoints"]) {
    std::string ports;
    for (const auto& p : e["ports"])
      ports += (ports.empty() ? "" : ",") + std::to_string(p["targetPort"].get<int>()) + "/" +
               p["protocol"].get<std::string>();
    auto str = [&](const char* k) {
      std::string v = e[k].get<std::string>();
      return v.empty() ? std::string("-") : v;
    };
    rows.push_back({"  " + e["backend"].get<std::string>(), str("ip"), ports,
                    e["node"].get<std::string>().empty() ? "(fabric)" : str("node"), str("vpc"), str("health"),
                    str("probe"), str("lastError")});
  }
  if (rows.size() == 1)
    std::printf("  no backend has an address yet\n");
  else
    std::printf("%s", renderTable(rows).c_str());
  for (const auto& p : d["pending"])
    std::printf("  pending: Backend %s (its pod has no endpoint yet)\n", p.get<std::string>().c_str());
  std::string prog;
  for (auto it = d["programmed"].begin(); it != d["programmed"].end(); ++it)
    prog += " " + it.key() + "=" + std::to_string(it.value().get<uint64_t>()) +
            (it.value().get<uint64_t>() < d["generation"].get<uint64_t>() ? " (behind)" : "");
  std::printf("  programmed:%s\n", prog.empty() ? " (no agent has reported yet)" : prog.c_str());
}

int runApply(const CliContext& ctx, const SvcOpts& o) {
  auto docs = readFiles(o.files);
  if (!docs.ok())
    return failLines("svc apply", docs.error(), "nothing was applied; fix the errors above and apply again");
  if (docs->empty()) return fail("svc apply", makeError("no resources in the given files"));
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("svc apply", store.error());
  auto r = store->apply(*docs);
  if (!r.ok()) return failLines("svc apply", r.error(), "nothing was applied; fix the errors above and apply again");
  for (const auto& n : r->created) std::printf("%s created\n", n.c_str());
  for (const auto& n : r->updated) std::printf("%s updated\n", n.c_str());
  for (const auto& n : r->unchanged) std::printf("%s unchanged\n", n.c_str());
  return 0;
}

int runList(const CliContext& ctx, const SvcOpts& o) {
  std::string kind;
  if (!o.kind.empty()) {
    auto k = canonicalKind(o.kind);
    if (o.kind == "endpoint" || o.kind == "Endpoint" || o.kind == "endpoints")
      kind = "Endpoint";
    else if (o.kind == "node" || o.kind == "Node" || o.kind == "nodes")
      kind = "Node";
    else if (!k.ok())
      return fail("svc list", makeError(k.error().message + "; Endpoint and Node are listed too"));
    else
      kind = *k;
  }
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("svc list", store.error());
  auto state = store->load();
  if (!state.ok()) return fail("svc list", state.error());
  std::vector<std::vector<std::string>> rows = {{"KIND", "NAME", "VPC", "DETAILS"}};
  json arr = json::array();
  listRows(*state, livenessOf(ctx, *store, *state), store->claims().valueOr({}), kind, rows, arr);
  if (o.json)
    std::printf("%s\n", dumpJson(arr, 2).c_str());
  else
    std::printf("%s", renderTable(rows).c_str());
  return 0;
}

int runGet(const CliContext& ctx, const SvcOpts& o) {
  std::string kind = "Service", name = o.args.back();
  if (o.args.size() == 2) {
    auto k = canonicalKind(o.args[0]);
    if (!k.ok()) return fail("svc get", k.error());
    kind = *k;
  }
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("svc get", store.error());
  auto state = store->load();
  if (!state.ok()) return fail("svc get", state.error());
  json arr = json::array();
  std::vector<std::vector<std::string>> rows;
  listRows(*state, livenessOf(ctx, *store, *state), store->claims().valueOr({}), kind, rows, arr);
  auto it = std::find_if(arr.begin(), arr.end(), [&](const json& j) { return j["name"] == name; });
  if (it == arr.end())
    return fail("svc get",
                makeError(kind + " \"" + name + "\" not found (see `offcore svc list --kind " + kind + "`)"));
  json doc = *it;
  if (kind == "Service") {
    auto health = store->loadHealth();
    if (!health.ok()) return fail("svc get", health.error());
    auto programmed = store->loadProgrammed();
    if (!programmed.ok()) return fail("svc get", programmed.error());
    json owner = it->value("eipOwner", json());
    doc = serviceDetails(*state, state->services.at(name), *health, *programmed);
    if (!owner.is_null()) doc["eipOwner"] = owner;
    if (!o.json) {
      printService(doc);
      return 0;
    }
  }
  std::printf("%s\n", dumpJson(doc, 2).c_str());
  return 0;
}

int runDelete(const CliContext& ctx, const SvcOpts& o) {
  std::vector<std::pair<std::string, std::string>> targets;  // kind, name
  bool from_files = !o.files.empty();
  if (from_files == !o.args.empty())
    return fail("svc delete", makeError("give either KIND NAME or -f FILE (e.g. `offcore svc delete Service web`)"));
  if (from_files) {
    auto docs = readFiles(o.files);
    if (!docs.ok()) return failLines("svc delete", docs.error(), "nothing was deleted; fix the files and try again");
    for (const auto& r : *docs) targets.emplace_back(r.kind(), r.name());
    const auto& order = kindsInDependencyOrder();
    auto rank = [&](const std::string& k) { return std::find(order.begin(), order.end(), k) - order.begin(); };
    // Dependents first: probes before backends, subnets before their VPC.
    std::stable_sort(targets.begin(), targets.end(),
                     [&](const auto& a, const auto& b) { return rank(a.first) > rank(b.first); });
  } else {
    if (o.args.size() != 2) return fail("svc delete", makeError("usage: offcore svc delete KIND NAME"));
    auto k = canonicalKind(o.args[0]);
    if (!k.ok()) return fail("svc delete", k.error());
    targets.emplace_back(*k, o.args[1]);
  }
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("svc delete", store.error());
  int rc = 0;
  for (const auto& [kind, name] : targets) {
    auto st = store->remove(kind, name);
    if (st.ok()) {
      std::printf("%s/%s deleted\n", kind.c_str(), name.c_str());
    } else if (from_files && st.error().code == ENOENT) {
      std::printf("%s/%s not found (skipped)\n", kind.c_str(), name.c_str());
    } else {
      rc = fail("svc delete", st.error());
    }
  }
  return rc;
}

}  // namespace

void registerSvcCommands(CLI::App& app, CliContext& ctx) {
  auto* svc = app.add_subcommand("svc", "cluster network resources: VPCs, Subnets, Backends, Services, probes");
  svc->require_subcommand(1);
  auto o = std::make_shared<SvcOpts>();

  auto* apply = svc->add_subcommand("apply", "create or update the resources in YAML files (all or nothing)");
  apply->add_option("-f,--filename", o->files, "YAML file (repeatable)")->required()->allow_extra_args(false);
  addDirOption(apply, *o);
  apply->callback([&ctx, o] { ctx.action = [&ctx, o] { return runApply(ctx, *o); }; });

  auto* list = svc->add_subcommand("list", "list resources");
  list->add_option("--kind", o->kind, "VPC, Subnet, Backend, Service, NetworkProbe, Endpoint or Node");
  list->add_flag("--json", o->json, "machine-readable output");
  addDirOption(list, *o);
  list->callback([&ctx, o] { ctx.action = [&ctx, o] { return runList(ctx, *o); }; });

  auto* get = svc->add_subcommand("get", "show one resource; a Service with its resolved endpoints and health");
  get->add_option("args", o->args, "[KIND] NAME (KIND defaults to Service)")->required()->expected(1, 2);
  get->add_flag("--json", o->json, "machine-readable output");
  addDirOption(get, *o);
  get->callback([&ctx, o] { ctx.action = [&ctx, o] { return runGet(ctx, *o); }; });

  auto* del = svc->add_subcommand("delete", "delete KIND NAME, or every resource named in -f FILE");
  del->add_option("args", o->args, "KIND NAME")->expected(0, 2);
  del->add_option("-f,--filename", o->files, "YAML file (repeatable)")->allow_extra_args(false);
  addDirOption(del, *o);
  del->callback([&ctx, o] { ctx.action = [&ctx, o] { return runDelete(ctx, *o); }; });
}

}  // namespace offcore
