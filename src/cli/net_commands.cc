// `offcore net ...`: a node's pod networking as its agent sees it.
#include <nlohmann/json.hpp>

#include "api/api_client.h"
#include "cli/common.h"
#include "dpu/layout.h"

namespace offcore {

using nlohmann::json;

void registerNetCommands(CLI::App& app, CliContext& ctx) {
  auto* net = app.add_subcommand("net", "pod networking: the BPF dataplane and its counters");
  net->require_subcommand(1);
  struct Opts {
    std::string node;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* status = net->add_subcommand("status", "dataplane counters, programmed generation, probes");
  status->add_option("--node,--name", o->node, "the node")->required();
  status->add_flag("--json", o->json, "machine-readable output");
  status->callback([&ctx, o] {
    ctx.action = [&ctx, o]() -> int {
      NodeLayout l = NodeLayout::forNode(ctx.config, o->node);
      auto body = ApiClient(l.api_socket).call("GET", "/v1/net/status");
      if (!body.ok()) {
        return fail("net status", body.error().wrap("is node " + o->node + " up? (`offcore dpu list`)"));
      }
      if (o->json) {
        std::printf("%s", body->c_str());
        return 0;
      }
      auto doc = json::parse(*body, nullptr, false);
      if (doc.is_discarded()) return fail("net status", makeError("the agent sent malformed JSON"));
      std::printf("node %s: pod networking %s, programmed generation %llu%s\n", o->node.c_str(),
                  doc.value("running", false) ? "running" : "NOT running",
                  static_cast<unsigned long long>(doc.value("programmed_generation", 0ull)),
                  doc.value("last_error", std::string()).empty()
                      ? ""
                      : (" (last error: " + doc.value("last_error", std::string()) + ")").c_str());
      std::vector<std::vector<std::string>> rows{{"COUNTER", "PACKETS"}};
      if (doc.contains("dataplane")) {
        for (auto& [k, v] : doc["dataplane"].items()) rows.push_back({k, std::to_string(v.get<uint64_t>())});
      }
      std::printf("%s", renderTable(rows).c_str());
      for (auto& [b, p] : doc["probes"].items()) {
        std::printf("probe %s: %s %s\n", b.c_str(), p.value("healthy", false) ? "healthy" : "unhealthy",
                    p.value("last_error", std::string()).c_str());
      }
      return 0;
    };
  });
}

}  // namespace offcore
