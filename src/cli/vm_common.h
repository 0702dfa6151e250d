// Shared pieces of `offcore vm`: the VM records (the cluster store's),
// the agent service names, and the back end's command line.
#pragma once

#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "cli/common.h"
#include "virt/vm/vm_spec.h"

namespace offcore::virt {
class VhostUserServer;
}

namespace offcore {

class ApiClient;
class NodeManager;
struct NodeState;

// The VM records (volumes/record_store.h, kVmRecords): <cluster_dir>/vms/
// NAME.json (0600), or /offcore/vms/v1/records/NAME in etcd. Created once
// (EEXIST when the name is taken, even racing), never overwritten.
Status saveNewVm(const CliContext& ctx, const virt::VmSpec& spec);
// Rewrites an existing record (a migration moves the VM to another node).
Status saveVm(const CliContext& ctx, const virt::VmSpec& spec);
Result<virt::VmSpec> loadVm(const CliContext& ctx, const std::string& name);
Result<std::vector<std::string>> listVmNames(const CliContext& ctx);
Status removeVmRecord(const CliContext& ctx, const std::string& name);

virt::VmPaths vmPathsFor(const CliContext& ctx, const virt::VmSpec& spec);
inline std::string blkService(const std::string& vm) { return "vm-" + vm + "-blk"; }
inline std::string qemuService(const std::string& vm) { return "vm-" + vm + "-qemu"; }
inline std::string netService(const std::string& vm) { return "vm-" + vm + "-net"; }

// `offcore vm blk-serve ...` for the VM's disk.
std::vector<std::string> blkServeArgv(const virt::VmSpec& spec, const virt::VmPaths& paths);

// A service's state as the node's agent reports it ("stopped" when unknown
// to it), and a wait for it to end.
std::string vmServiceState(ApiClient& agent, const std::string& service);
bool waitVmServiceEnded(ApiClient& agent, const std::string& service, std::chrono::milliseconds timeout);
// Starts the VM's disk back end on spec.node and waits for its socket.
Status startVmBackend(const CliContext& ctx, ApiClient& agent, const virt::VmSpec& spec, const virt::VmPaths& paths);
// Starts QEMU (`vm qemu-exec NAME EXTRA...`) as the agent's service.
Status startVmQemu(ApiClient& agent, const std::string& name, const std::vector<std::string>& extra);

// The NIC (vm_net.cc), for a VM created with --net VPC/SUBNET.
enum class NicPhase {
  // An address in the subnet (the one it had, if any), the tap, the
  // dataplane; a NIC on another node (a migration) moves here with its
  // address and MAC: the VM record says where the VM runs.
  kAttach,
  kPrepare,  // a migration's destination: only the tap
};
// Asks spec.node's agent (through agent); fills spec.net_ip and net_mac
// (except kPrepare) and returns the tap's name.
Result<std::string> attachVmNic(ApiClient& agent, virt::VmSpec& spec, NicPhase phase);
// Deletes the tap and, unless tap_only, gives the address back.
Status releaseVmNic(ApiClient& agent, const virt::VmSpec& spec, bool tap_only);
// Starts `vm net-serve` on tap as the agent's service and waits for its socket.
Status startVmNetBackend(const CliContext& ctx, ApiClient& agent, const virt::VmSpec& spec, const virt::VmPaths& paths,
                         const std::string& tap);

// The host domain of node, and the root network namespace when the node's
// host is the root one (the caller is an agent service in the SoC's).
Status enterVmHostDomain(NodeManager& nodes, const NodeState& node);

// `vm blk-serve` / `vm net-serve`: runs the server until a signal in mask
// (blocked by the caller before any thread starts) or until it fails on its
// own, then stops it (each queue finishes what it holds) and returns run()'s
// status. `what` names the command in the log. The socket file goes with the
// server object.
Status serveUntilSignal(virt::VhostUserServer& server, const sigset_t& mask, const std::string& what);

void registerVmLifecycle(CLI::App& vm, CliContext& ctx);
void registerVmMigrate(CLI::App& vm, CliContext& ctx);
// `vm blk-serve` (vm_blk_serve.cc).
void registerVmBlkServe(CLI::App& vm, CliContext& ctx);
// `vm net-serve` (vm_net_serve.cc).
void registerVmNetServe(CLI::App& vm, CliContext& ctx);

}  // namespace offcore
