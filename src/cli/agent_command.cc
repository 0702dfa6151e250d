// `offcore agent --name N`: the SoC agent. Started by `dpu up` inside the
// SoC domain; not meant to be run by hand.
#include "agent/agent.h"
#include "base/log.h"
#include "cli/common.h"

namespace offcore {

void registerAgentCommand(CLI::App& app, CliContext& ctx) {
  auto name = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("agent", "run a node's SoC agent (started by `dpu up`)");
  sub->add_option("--name", *name, "node name")->required();
  sub->callback([&ctx, name] {
    ctx.action = [&ctx, name]() -> int {
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("agent", nodes.error());
      auto state = nodes->state(*name);
      if (!state.ok()) return fail("agent", state.error());
      Agent agent(ctx.config, *state, std::move(*nodes));
      auto ran = agent.run();
      if (!ran.ok()) return fail("agent", ran.error());
      return 0;
    };
  });
}

}  // namespace offcore
