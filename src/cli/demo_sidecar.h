// `offcore demo`, mesh: the baseline the node proxy replaces. The same client
// and servers as plain pods, each with a haproxy sidecar in its own
// namespace (nftables REDIRECT outbound to 15001 and inbound to 15006, mTLS
// between sidecars, the same 80/20 split), as Istio's sidecar mode deploys
// Envoy. Everything it makes goes on the caller's undo stack.
#pragma once

#include <string>
#include <vector>

#include "cli/demo_common.h"

namespace offcore::demo {

struct SidecarPod {
  std::string name, node, ip;
  int weight = 0;  // servers: share of the split; 0 = the client
};

struct SidecarSpec {
  std::string dir;     // scratch dir (certificates, configs, logs)
  std::string subnet;  // the offcore Subnet the pods join
  std::string vip;     // the address the client calls; redirected in its namespace
  std::string server;  // python HTTP server program (argv: NAME), port 8080
  std::vector<SidecarPod> pods;
};

// Pods, servers, certificates, sidecars and their rules; fills in each pod's ip.
Status deploySidecars(Context& ctx, Cleanup& undo, SidecarSpec& spec);

}  // namespace offcore::demo
