// The CSI conformance cases (the ones csi-sanity runs, written here): they
// dial a controller and a node socket given in sanityTarget(). The unit
// tests point them at an in-process server over the fakes; the
// `offcore-csi-sanity` binary at a real `offcore csi` pair
// (tests/integration/csi_test.sh).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace offcore::test {

struct SanityTarget {
  std::string controller;  // unix socket paths
  std::string node;
  std::string work_dir;      // staging and target paths are made below it
  bool real_mounts = false;  // the node really mounts: write through one target, read through another
  std::string other_node;    // a second node id ("": skip the case that needs one)
  std::map<std::string, std::string> parameters;  // for every CreateVolume
  int64_t volume_bytes = 64LL << 20;
  int unplaceable_replicas = 0;
  std::string
      between;  // a shell command the Kubernetes flow runs while published (e.g. restart the plugins)  // a replica count the storage hosts cannot place (0: skip that case)
};

SanityTarget& sanityTarget();
// What a case calls when no endpoints are set (the unit tests start their
// fake plugin there, on first use: not before, so test processes that never
// run a CSI case do not get gRPC's threads).
std::function<void()>& sanityFallback();

}  // namespace offcore::test
