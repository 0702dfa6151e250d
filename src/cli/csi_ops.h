// The CSI driver's ops over offcore's own volumes (cli/README.md, "csi"):
// the controller places replicated volumes on a pool of storage hosts and
// keeps a small catalog of what CSI made (<cluster_dir>/csi/ID.json, 0600:
// the request's name, size, parameters and source, where it is published);
// the node attaches a volume in the node's SoC (`disk attach --volume`),
// formats and mounts it on the host, and bind-mounts it into pods.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/common.h"
#include "csi/ops.h"

namespace offcore {

struct CsiControllerConfig {
  // Storage class pools: name -> storage hosts (gateways). A volume's
  // "pool" parameter picks one ("default" when unset).
  std::map<std::string, std::vector<std::string>> pools;
  int default_replicas = 1;
};

std::unique_ptr<csi::ControllerOps> makeCsiController(const CliContext& ctx, CsiControllerConfig config);

struct CsiNodeConfig {
  std::string node;  // the offcore node whose SoC attaches the volumes
  int max_volumes = 0;
};

std::unique_ptr<csi::NodeOps> makeCsiNode(const CliContext& ctx, CsiNodeConfig config);

// The capabilities both halves serve: one node at a time (the SoC of the
// node that attaches a volume runs its nexus), block or ext4.
Status checkCsiCapability(const csi::Capability& cap);
// A CSI name as an offcore volume name: itself when it is one, else
// "csi-" and 24 hex digits of its SHA-256.
std::string csiVolumeIdFor(const std::string& name);
// The disk name a volume gets on a node.
std::string csiDiskNameFor(const std::string& volume_id);

}  // namespace offcore
