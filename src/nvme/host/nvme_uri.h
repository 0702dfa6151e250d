// nvme-tcp://ADDR[:PORT][/NQN]: how a disk and an image volume name the
// namespace they attach (the port defaults to 4420, the IANA NVMe/TCP port).
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore::nvme {

struct NvmeUri {
  std::string address;
  uint16_t port = 4420;
  std::string nqn;  // "" when the URI names no subsystem
};

// Refuses a missing address, a bad port and an NQN over 223 bytes; the
// error says the expected form.
Result<NvmeUri> parseNvmeUri(const std::string& uri);

}  // namespace offcore::nvme
