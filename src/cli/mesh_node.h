// The mesh's node-side commands (`mesh up/down/status/serve`), shared by the
// `mesh` noun's registration and the proxy process.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/common.h"

namespace offcore {

// <run_dir>/mesh.json, written by `mesh up`.
struct MeshNodeSettings {
  std::string trust_domain = "cluster.local";
  int cert_ttl_s = 3600;   // workload certificates' lifetime (rotated at half)
  std::string xds_server;  // host:port of an ADS server; "" = config from the cluster state
  // SCHED_FIFO priority of the proxy's threads (1-99; 0 = the normal
  // scheduler): the data path preempts the SoC's housekeeping at once
  // instead of waiting out its time slice (docs/MESH.md, "Latency").
  int rt_priority = 0;
};
Result<MeshNodeSettings> readMeshSettings(const std::string& path);

// The keeper (`mesh serve`, the agent's service) and one proxy epoch
// (`mesh worker`, the keeper's child).
int serveMesh(const CliContext& ctx, const std::string& node);
int runMeshWorker(const CliContext& ctx, const std::string& node, int epoch, const std::string& fds);

// up, down, status, serve under `mesh`.
void addMeshNodeCommands(CLI::App& mesh, CliContext& ctx);

}  // namespace offcore
