#include "base/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace offcore {

uint32_t crc32c(uint32_t crc, const void* data, size_t len) {
  // isa-l works on the raw register; the standard CRC inverts it on the way
  // in and out. Its length is an int, so very large buffers go in pieces.
  uint32_t state = ~crc;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (len > 0) {
    int piece = len > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(len);
    state = crc32_iscsi(p, piece, state);
    p += piece;
    len -= static_cast<size_t>(piece);
  }
  return ~state;
}

}  // namespace offcore
