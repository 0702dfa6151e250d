#include "svc/maglev.h"

#include <xxhash.h>

#include <numeric>
#include <set>

namespace offcore {

namespace {

// Two independent hashes of a backend's key give its permutation of the
// table: start at offset, step by skip (never 0, so with a prime size every
// slot is visited once).
constexpr uint64_t kOffsetSeed = 0x6d61676c65762d6full;  // "maglev-o"
constexpr uint64_t kSkipSeed = 0x6d61676c65762d73ull;    // "maglev-s"

}  // namespace

bool isPrime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint32_t d = 3; static_cast<uint64_t>(d) * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

uint32_t MaglevTable::sizeFor(size_t backends) {
  uint64_t want = std::max<uint64_t>(65537, 100ull * backends);
  uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(want, 0xfffffffbull));
  while (!isPrime(n)) ++n;
  return n;
}

Result<MaglevTable> MaglevTable::build(const std::vector<MaglevBackend>& backends, uint32_t size) {
  if (size == 0) size = sizeFor(backends.size());
  if (!isPrime(size)) return makeError("Maglev table size " + std::to_string(size) + " is not prime");
  if (backends.size() > size) return makeError("more backends than Maglev table slots");
  std::set<std::string> seen;
  for (const auto& b : backends) {
    if (b.key.empty()) return makeError("a Maglev backend has an empty key");
    if (b.weight == 0 || b.weight > 1000) return makeError("backend " + b.key + ": weight must be 1..1000");
    if (!seen.insert(b.key).second) return makeError("backend " + b.key + " is listed twice");
  }
  MaglevTable t;
  t.slots_.assign(size, -1);
  if (backends.empty()) return t;
  const size_t n = backends.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const auto& k = backends[i].key;
    offset[i] = XXH64(k.data(), k.size(), kOffsetSeed) % size;
    skip[i] = XXH64(k.data(), k.size(), kSkipSeed) % (size - 1) + 1;
  }
  // Weighted round robin over the permutations: in each round a backend
  // claims as many slots as its weight (the paper's equal-share fill is the
  // all-weights-1 case).
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < n && filled < size; ++i) {
      for (uint32_t w = 0; w < backends[i].weight && filled < size; ++w) {
        uint64_t slot = (offset[i] + next[i] * skip[i]) % size;
        while (t.slots_[slot] >= 0) {
          ++next[i];
          slot = (offset[i] + next[i] * skip[i]) % size;
        }
        t.slots_[slot] = static_cast<int32_t>(i);
        ++next[i];
        ++filled;
      }
    }
  }
  return t;
}

}  // namespace offcore
