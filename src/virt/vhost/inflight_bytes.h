// Loads and stores of inflight-region fields (inflight.cc,
// packed_inflight.cc): little-endian, and atomic with release/acquire order,
// because the front end shares the region and a back end killed between two
// steps must leave the earlier ones in it, never a later one without an
// earlier one.
#pragma once

#include <endian.h>

#include <atomic>
#include <cstdint>

namespace offcore::virt::inflight_bytes {

// Both layouts (split and packed): each queue's region is 64-byte aligned,
// and the header's version field holds 1.
inline constexpr uint64_t kAlign = 64;
inline constexpr uint16_t kVersion = 1;

template <typename T>
void put(uint8_t* p, T v) {
  if constexpr (sizeof(T) == 8) v = htole64(v);
  if constexpr (sizeof(T) == 4) v = htole32(v);
  if constexpr (sizeof(T) == 2) v = htole16(v);
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(v, std::memory_order_release);
}

template <typename T>
T get(const uint8_t* p) {
  T v = std::atomic_ref<T>(*const_cast<T*>(reinterpret_cast<const T*>(p))).load(std::memory_order_acquire);
  if constexpr (sizeof(T) == 8) v = le64toh(v);
  if constexpr (sizeof(T) == 4) v = le32toh(v);
  if constexpr (sizeof(T) == 2) v = le16toh(v);
  return v;
}

}  // namespace offcore::virt::inflight_bytes
