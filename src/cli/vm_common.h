// Shared pieces of `offcore vm`: the VM records in the cluster directory,
// the agent service names, and the back end's command line.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "cli/common.h"
#include "virt/vm/vm_spec.h"

namespace offcore {

class NodeManager;
struct NodeState;

// <cluster_dir>/vms/NAME.json, 0600; created once, never overwritten.
Status saveNewVm(const CliContext& ctx, const virt::VmSpec& spec);
// Rewrites an existing record (a migration moves the VM to another node).
Status saveVm(const CliContext& ctx, const virt::VmSpec& spec);
Result<virt::VmSpec> loadVm(const CliContext& ctx, const std::string& name);
Result<std::vector<std::string>> listVmNames(const CliContext& ctx);
Status removeVmRecord(const CliContext& ctx, const std::string& name);

virt::VmPaths vmPathsFor(const CliContext& ctx, const virt::VmSpec& spec);
inline std::string blkService(const std::string& vm) { return "vm-" + vm + "-blk"; }
inline std::string qemuService(const std::string& vm) { return "vm-" + vm + "-qemu"; }

// `offcore vm blk-serve ...` for the VM's disk.
std::vector<std::string> blkServeArgv(const virt::VmSpec& spec, const virt::VmPaths& paths);

// The host domain of node, and the root network namespace when the node's
// host is the root one (the caller is an agent service in the SoC's).
Status enterVmHostDomain(NodeManager& nodes, const NodeState& node);

void registerVmLifecycle(CLI::App& vm, CliContext& ctx);

}  // namespace offcore
