#include "nvme/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace offcore::nvme {

uint32_t crc32cUpdate(uint32_t state, const uint8_t* data, size_t len) {
  // isa-l takes an int length; feed very large buffers in pieces.
  while (len > 0) {
    int piece = len > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(len);
    state = crc32_iscsi(const_cast<uint8_t*>(data), piece, state);
    data += piece;
    len -= static_cast<size_t>(piece);
  }
  return state;
}

uint32_t crc32c(const uint8_t* data, size_t len) { return crc32cFinal(crc32cUpdate(kCrc32cInit, data, len)); }

}  // namespace offcore::nvme
