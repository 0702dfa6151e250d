// The NVMe host identity (host NQN + host ID) a node's SoC presents to
// gateways. Derived from the node name so every initiator on the node (disks,
// image layers, flat rootfs clones) is one host to the target's ACLs.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace offcore::nvme {

std::string nodeHostNqn(const std::string& node);
std::array<uint8_t, 16> nodeHostId(const std::string& node);

}  // namespace offcore::nvme
