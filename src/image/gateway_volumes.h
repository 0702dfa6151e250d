// Reaching a gateway volume's blocks: connecting an initiator identity (a
// node's, or the converter's) to a volume's nvme-tcp:// URI. The volume
// operations themselves are gateway/client.h.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "nvme/host/host.h"

namespace offcore {

// The host NQN image conversion writes layer volumes with. It is not a node
// identity: finished layer volumes admit nodes only (kNodeHostsPattern).
inline constexpr char kConverterHostNqn[] = "nqn.2026-11.io.offcore:converter";
// The allow-list entry admitting every node's initiator (nvme::nodeHostNqn).
std::string nodeHostsPattern();

// Connects the node's initiator identity to a volume's NVMe/TCP URI.
Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolume(const std::string& uri, const std::string& node,
                                                         std::chrono::milliseconds io_timeout);
// The same with the converter's identity, authenticating with the
// DH-HMAC-CHAP secret the gateway generated for it (empty: NQN only).
Result<std::shared_ptr<nvme::NvmeTcpHost>> connectVolumeAsConverter(const std::string& uri,
                                                                    std::chrono::milliseconds io_timeout,
                                                                    const std::string& dhchap_secret);

}  // namespace offcore
