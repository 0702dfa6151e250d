// CRC32C (Castagnoli), the checksum of every journal record and checkpoint.
// Chainable: crc32c(crc32c(0, a), b) == crc32c(0, a + b).
#pragma once

#include <cstddef>
#include <cstdint>

namespace offcore {

uint32_t crc32c(uint32_t crc, const void* data, size_t len);

}  // namespace offcore
