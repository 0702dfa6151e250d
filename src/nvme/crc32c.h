// CRC32C (Castagnoli), as NVMe/TCP header and data digests use it, computed
// by isa-l. crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace offcore::nvme {

uint32_t crc32c(const uint8_t* data, size_t len);
// Incremental form: start with kCrc32cInit, feed pieces, finish with crc32cFinal.
inline constexpr uint32_t kCrc32cInit = 0xFFFFFFFFu;
uint32_t crc32cUpdate(uint32_t state, const uint8_t* data, size_t len);
inline uint32_t crc32cFinal(uint32_t state) { return ~state; }

}  // namespace offcore::nvme
