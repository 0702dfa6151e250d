// `offcore mesh ...`: apply, show and delete the Istio-shaped mesh config
// (VirtualService, DestinationRule, PeerAuthentication,
// AuthorizationPolicy) kept in the mesh store next to the cluster store
// (src/mesh/config/mesh_store.h). Node proxies follow it.
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "cli/common.h"
#include "cli/mesh_node.h"
#include "cli/mesh_xds.h"
#include "mesh/config/istio_yaml.h"
#include "mesh/config/mesh_store.h"

namespace offcore {

using nlohmann::json;
using namespace offcore::mesh;

namespace {

struct MeshOpts {
  std::string cluster_dir;
  std::vector<std::string> files, args;
  std::string ns;  // "" = every namespace (get) / "default" (delete)
  bool json = false;
};

Result<MeshStore> storeFor(const CliContext& ctx, const MeshOpts& o) {
  return openMeshStore(ctx.config, o.cluster_dir);
}

int failLines(const std::string& what, const Error& e, const std::string& then) {
  for (const auto& line : splitLines(e.message)) std::fprintf(stderr, "%s\n", line.c_str());
  std::fprintf(stderr, "offcore: %s: %s\n", what.c_str(), then.c_str());
  return 1;
}

// Every document of every file, in order; all files are parsed before the
// first error is returned, so one run shows every problem.
Result<ParsedMesh> readFiles(const std::vector<std::string>& files) {
  ParsedMesh all;
  std::string errors;
  for (const auto& f : files) {
    auto text = readFile(f);
    auto parsed = text.ok() ? parseMeshDocuments(*text, f) : Result<ParsedMesh>(text.error().wrap(f));
    if (!parsed.ok()) {
      errors += (errors.empty() ? "" : "\n") + parsed.error().message;
      continue;
    }
    for (auto d : parsed->documents) {
      const MeshConfig& c = parsed->config;
      if (d.kind == kVirtualService)
        all.config.virtual_services.push_back(c.virtual_services[d.index]),
            d.index = all.config.virtual_services.size() - 1;
      else if (d.kind == kDestinationRule)
        all.config.destination_rules.push_back(c.destination_rules[d.index]),
            d.index = all.config.destination_rules.size() - 1;
      else if (d.kind == kPeerAuthentication)
        all.config.peer_authentications.push_back(c.peer_authentications[d.index]),
            d.index = all.config.peer_authentications.size() - 1;
      else
        all.config.authorization_policies.push_back(c.authorization_policies[d.index]),
            d.index = all.config.authorization_policies.size() - 1;
      all.documents.push_back(std::move(d));
    }
  }
  if (!errors.empty()) return makeError(errors);
  return all;
}

int runApply(const CliContext& ctx, const MeshOpts& o) {
  auto parsed = readFiles(o.files);
  if (!parsed.ok())
    return failLines("mesh apply", parsed.error(), "nothing was applied; fix the errors above and apply again");
  if (parsed->documents.empty()) return fail("mesh apply", makeError("no mesh documents in the given files"));
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("mesh apply", store.error());
  auto r = store->apply(*parsed);
  if (!r.ok()) return failLines("mesh apply", r.error(), "nothing was applied; fix the errors above and apply again");
  for (const auto& n : r->created) std::printf("%s created\n", n.c_str());
  for (const auto& n : r->configured) std::printf("%s configured\n", n.c_str());
  for (const auto& n : r->unchanged) std::printf("%s unchanged\n", n.c_str());
  return 0;
}

std::string matchText(const StringMatch& m) {
  return (m.kind == StringMatch::Kind::kExact ? "=" : m.kind == StringMatch::Kind::kPrefix ? "^" : "~") + m.value;
}

std::string routeText(const std::vector<RouteDestination>& r) {
  std::string s;
  for (const auto& d : r) {
    s += (s.empty() ? "" : ",") + d.destination.host + (d.destination.subset.empty() ? "" : "/" + d.destination.subset);
    if (r.size() > 1) s += ":" + std::to_string(d.weight) + "%";
  }
  return s;
}

std::string vsDetails(const VirtualService& v) {
  std::string s = "hosts";
  for (const auto& h : v.hosts) s += " " + h;
  for (const auto& r : v.http) {
    std::string m = r.match.empty() || !r.match[0].uri ? "*" : matchText(*r.match[0].uri);
    s += "; http " + m + " -> " + routeText(r.route);
  }
  for (const auto& t : v.tcp)
    s += "; tcp " + (t.port ? std::to_string(t.port) : std::string("*")) + " -> " + routeText(t.route);
  return s;
}

std::string drDetails(const DestinationRule& d) {
  std::string s = "host " + d.host;
  if (!d.subsets.empty()) {
    s += "; subsets";
    for (const auto& x : d.subsets) s += " " + x.name;
  }
  return s;
}

std::string modeText(MtlsMode m) {
  const char* n[] = {"UNSET", "STRICT", "PERMISSIVE", "DISABLE"};
  return n[static_cast<int>(m)];
}

std::string labelsText(const Labels& l) {
  std::string s;
  for (const auto& [k, v] : l) s += (s.empty() ? "" : ",") + k + "=" + v;
  return s.empty() ? "(namespace-wide)" : s;
}

int runGet(const CliContext& ctx, const MeshOpts& o) {
  std::string kind, name;
  if (!o.args.empty()) {
    auto k = canonicalMeshKind(o.args[0]);
    if (!k.ok()) return fail("mesh get", k.error());
    kind = *k;
  }
  if (o.args.size() == 2) name = o.args[1];
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("mesh get", store.error());
  auto stored = store->load();
  if (!stored.ok()) return fail("mesh get", stored.error());
  std::vector<std::vector<std::string>> rows = {{"KIND", "NAMESPACE", "NAME", "DETAILS"}};
  json arr = json::array();
  auto add = [&](const char* k, const auto& item, const std::string& details) {
    if ((!kind.empty() && kind != k) || (!name.empty() && item.name != name) || (!o.ns.empty() && item.ns != o.ns))
      return;
    rows.push_back({lowerKind(k), item.ns, item.name, details});
    json j = toJson(item);
    j["kind"] = k;
    arr.push_back(std::move(j));
  };
  const MeshConfig& c = stored->config;
  for (const auto& v : c.virtual_services) add(kVirtualService, v, vsDetails(v));
  for (const auto& d : c.destination_rules) add(kDestinationRule, d, drDetails(d));
  for (const auto& p : c.peer_authentications)
    add(kPeerAuthentication, p, "mtls " + modeText(p.mode) + " for " + labelsText(p.selector));
  for (const auto& a : c.authorization_policies)
    add(kAuthorizationPolicy, a,
        std::string(a.action == AuthorizationPolicy::Action::kAllow ? "ALLOW" : "DENY") + " " +
            std::to_string(a.rules.size()) + " rule(s) for " + labelsText(a.selector));
  if (!name.empty() && arr.empty())
    return fail("mesh get", makeError(kind + " \"" + name + "\"" + (o.ns.empty() ? "" : " in namespace " + o.ns) +
                                      " not found (see `offcore mesh get`)"));
  if (o.json) {
    json doc = {{"generation", stored->generation}, {"items", arr}};
    std::printf("%s\n", dumpJson(!name.empty() ? arr[0] : doc, 2).c_str());
  } else if (rows.size() == 1) {
    std::printf("no mesh config%s; apply some with `offcore mesh apply -f FILE.yaml`\n",
                kind.empty() ? "" : (" of kind " + kind).c_str());
  } else {
    std::printf("%s", renderTable(rows).c_str());
  }
  return 0;
}

int runDelete(const CliContext& ctx, const MeshOpts& o) {
  if (o.args.size() != 2) return fail("mesh delete", makeError("usage: offcore mesh delete KIND NAME [-n NAMESPACE]"));
  auto k = canonicalMeshKind(o.args[0]);
  if (!k.ok()) return fail("mesh delete", k.error());
  std::string ns = o.ns.empty() ? "default" : o.ns;
  auto store = storeFor(ctx, o);
  if (!store.ok()) return fail("mesh delete", store.error());
  auto st = store->remove(*k, ns, o.args[1]);
  if (!st.ok()) return fail("mesh delete", st.error());
  std::printf("%s/%s deleted\n", lowerKind(*k).c_str(), o.args[1].c_str());
  return 0;
}

}  // namespace

void registerMeshCommands(CLI::App& app, CliContext& ctx) {
  auto* mesh = app.add_subcommand("mesh", "the service mesh: one proxy per node in its SoC, Istio-shaped config");
  mesh->require_subcommand(1);
  addMeshNodeCommands(*mesh, ctx);
  addMeshXdsCommands(*mesh);
  auto o = std::make_shared<MeshOpts>();
  auto dirOption = [&](CLI::App* cmd) {
    cmd->add_option("--cluster,--cluster-dir", o->cluster_dir,
                    "cluster store: a directory or etcd://host:port[,...] (default: the config's)");
  };

  auto* apply = mesh->add_subcommand(
      "apply",
      "create or replace VirtualService, DestinationRule, PeerAuthentication, AuthorizationPolicy (all or nothing)");
  apply->add_option("-f,--filename", o->files, "YAML file (repeatable)")->required()->allow_extra_args(false);
  dirOption(apply);
  apply->callback([&ctx, o] { ctx.action = [&ctx, o] { return runApply(ctx, *o); }; });

  auto* get = mesh->add_subcommand("get", "list the applied mesh config, or one document");
  get->add_option("args", o->args, "[KIND [NAME]]")->expected(0, 2);
  get->add_option("-n,--namespace", o->ns, "only this namespace");
  get->add_flag("--json", o->json, "machine-readable output");
  dirOption(get);
  get->callback([&ctx, o] { ctx.action = [&ctx, o] { return runGet(ctx, *o); }; });

  auto* del = mesh->add_subcommand("delete", "delete KIND NAME");
  del->add_option("args", o->args, "KIND NAME")->expected(2);
  del->add_option("-n,--namespace", o->ns, "namespace (default: default)");
  dirOption(del);
  del->callback([&ctx, o] { ctx.action = [&ctx, o] { return runDelete(ctx, *o); }; });
}

}  // namespace offcore
