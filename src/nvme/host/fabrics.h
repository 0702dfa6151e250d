// The Fabrics commands a host sends to bring up an association, shared by
// NvmeTcpHost and tools that drive their own I/O queues (tests/tools
// offcore-nvme-perf). Facts from NVMe over Fabrics 1.1, §3.3 and §6.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "nvme/host/host.h"
#include "nvme/host/queue.h"
#include "nvme/pdu.h"

namespace offcore::nvme {

// Connect for queue `qid` with SQSIZE (0-based) and KATO (ms, admin only).
Sqe fabricsConnect(uint16_t qid, uint16_t sqsize, uint32_t kato);
// Connect's 1024 bytes of data: host ID, controller ID, SUBNQN, HOSTNQN.
std::vector<uint8_t> connectData(const HostOptions& o, uint16_t cntlid, const std::string& subnqn);
// An admin or I/O command with its opcode and NSID set, the rest zero.
Sqe adminSqe(uint8_t opcode, uint32_t nsid = 0);
// Brings a fresh admin queue to CSTS.RDY: Connect, authentication, CC.EN=1,
// wait. Returns the controller ID.
Result<uint16_t> connectAdmin(HostQueue& q, const HostOptions& o, const std::string& subnqn, uint32_t kato);

}  // namespace offcore::nvme
