// `offcore agent --name N`: the SoC agent. Started by `dpu up` inside the
// SoC domain; not meant to be run by hand. `offcore watchdog --name N`: the
// agent's watchdog, likewise.
#include "agent/agent.h"
#include "base/log.h"
#include "cli/common.h"
#include "dpu/agent_watchdog.h"

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

  auto watched = std::make_shared<std::string>();
  auto* dog = app.add_subcommand("watchdog", "restart a node's agent when it dies (started by `dpu up`)");
  dog->add_option("--name", *watched, "node name")->required();
  dog->callback([&ctx, watched] {
    ctx.action = [&ctx, watched]() -> int {
      if (auto s = validateName("node", *watched); !s.ok()) return fail("watchdog", s.error());
      if (auto s = runAgentWatchdog(ctx.config, *watched); !s.ok()) return fail("watchdog", s.error());
      return 0;
    };
  });
}

}  // namespace offcore
