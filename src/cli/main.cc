// offcore: one command, subcommands by noun.
#include <curl/curl.h>

#include "base/log.h"
#include "cli/common.h"

int main(int argc, char** argv) {
  using namespace offcore;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CLI::App app{"offcore: cloud-node infrastructure on a (software) DPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "offcore 0.1.0");

  auto config = loadConfig();
  if (!config.ok()) return fail("config", config.error());
  CliContext ctx{*config, nullptr};
  initLogging("offcore", config->log_level);

  registerAgentCommand(app, ctx);
  registerDpuCommands(app, ctx);
  registerFabricCommands(app, ctx);
  registerTargetCommands(app, ctx);
  registerVolumeCommands(app, ctx);
  registerDiskCommands(app, ctx);
  registerImageCommands(app, ctx);
  registerBenchCommands(app, ctx);
  registerDemoCommand(app, ctx);
  registerSnapshotterCommand(app, ctx);
  registerSvcCommands(app, ctx);
  registerNetCommands(app, ctx);
  registerMeshCommands(app, ctx);
  registerVmCommands(app, ctx);
  registerCsiCommand(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!ctx.action) return 0;
  try {
    return ctx.action();
  } catch (const std::exception& e) {
    // Only reachable through a malformed reply from an agent or a corrupt
    // state file; say so instead of aborting.
    return fail("internal error", makeError(std::string(e.what()) + " (see the agent log under /run/offcore)"));
  }
}
