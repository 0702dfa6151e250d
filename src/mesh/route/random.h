// Randomness for routing decisions, injectable so tests are deterministic.
#pragma once

#include <cstdint>

namespace offcore::mesh::route {

class Random {
 public:
  virtual ~Random() = default;
  virtual uint64_t next() = 0;
  // [0, 1)
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // [0, n), n > 0
  uint64_t below(uint64_t n) { return next() % n; }
};

// splitmix64: fast, good enough for load balancing and percentages.
class SplitMixRandom : public Random {
 public:
  explicit SplitMixRandom(uint64_t seed) : state_(seed) {}
  uint64_t next() override {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// 64-bit FNV-1a (consistent hashing keys).
inline uint64_t fnv1a(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

}  // namespace offcore::mesh::route
