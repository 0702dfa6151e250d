#include "nvme/host/host_identity.h"

#include "base/crc32c.h"
#include "nvme/spec.h"

namespace offcore::nvme {

std::string nodeHostNqn(const std::string& node) { return "nqn.2026-11.io.offcore:node:" + node; }

std::array<uint8_t, 16> nodeHostId(const std::string& node) {
  std::array<uint8_t, 16> id{};
  for (int i = 0; i < 4; ++i) {
    std::string salted = node + "#" + std::to_string(i);
    putLe32(id.data() + 4 * i, offcore::crc32c(0, reinterpret_cast<const uint8_t*>(salted.data()), salted.size()));
  }
  return id;
}

}  // namespace offcore::nvme
