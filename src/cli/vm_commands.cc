// `offcore vm`: VMs whose devices the SoC serves over vhost-user (src/virt).
#include "cli/common.h"
#include "cli/vm_common.h"

namespace offcore {

void registerVmCommands(CLI::App& app, CliContext& ctx) {
  auto* vm = app.add_subcommand("vm", "VMs whose disks and NICs the SoC serves over vhost-user");
  vm->require_subcommand(1);
  registerVmLifecycle(*vm, ctx);
  registerVmMigrate(*vm, ctx);
  registerVmBlkServe(*vm, ctx);
  registerVmNetServe(*vm, ctx);
}

}  // namespace offcore
