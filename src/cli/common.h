// Shared pieces of the `offcore` command line: error printing, JSON/table
// output, and the node status fetch every listing uses.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/config.h"
#include "base/result.h"

namespace offcore {

class NodeManager;

// What a subcommand does once parsing succeeded; returns the exit code.
using Action = std::function<int()>;

struct CliContext {
  Config config;
  Action action;  // set by the chosen subcommand's callback
};

// "offcore: <what>: <message>" on stderr; returns exit code 1.
int fail(const std::string& what, const Error& error);

// Aligned columns for human output.
std::string renderTable(const std::vector<std::vector<std::string>>& rows);
std::string humanBytes(uint64_t bytes);

// The status document for a node: from the agent when it answers, else
// built locally from the cgroups with the agent marked unreachable.
Result<nlohmann::json> fetchNodeStatus(NodeManager& nodes, const std::string& name);

// Subcommand registration, called explicitly from main().
void registerAgentCommand(CLI::App& app, CliContext& ctx);
void registerDpuCommands(CLI::App& app, CliContext& ctx);
void registerFabricCommands(CLI::App& app, CliContext& ctx);
void registerBenchCommands(CLI::App& app, CliContext& ctx);
void registerTargetCommands(CLI::App& app, CliContext& ctx);
void registerVolumeCommands(CLI::App& app, CliContext& ctx);
void registerDiskCommands(CLI::App& app, CliContext& ctx);
void registerDemoCommand(CLI::App& app, CliContext& ctx);
void registerImageCommands(CLI::App& app, CliContext& ctx);
void registerSnapshotterCommand(CLI::App& app, CliContext& ctx);
void registerSvcCommands(CLI::App& app, CliContext& ctx);
void registerNetCommands(CLI::App& app, CliContext& ctx);
void registerMeshCommands(CLI::App& app, CliContext& ctx);
void registerVmCommands(CLI::App& app, CliContext& ctx);
void registerCsiCommand(CLI::App& app, CliContext& ctx);

// `dpu top`; in its own file because of the terminal handling.
int runTop(NodeManager& nodes, const std::vector<std::string>& names, double interval_s, int iterations);

}  // namespace offcore
