// CRC32C (Castagnoli), computed by isa-l: NVMe/TCP digests, journal records
// and checkpoints all use it. Chainable: crc32c(crc32c(0, a), b) equals
// crc32c(0, a + b); crc32c(0, "123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>

namespace offcore {

uint32_t crc32c(uint32_t crc, const void* data, size_t len);

}  // namespace offcore
