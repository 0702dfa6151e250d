// `offcore mesh xds-dump`: the xDS client alone, against a control plane.
#pragma once

#include <CLI/CLI.hpp>

namespace offcore {

// Adds `xds-dump` under the `mesh` noun. The command runs from its CLI11
// callback and reports a failure as CLI::RuntimeError(exit code).
void addMeshXdsCommands(CLI::App& mesh);

}  // namespace offcore
