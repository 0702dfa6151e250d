#include "svc/maglev.h"

#include <xxhash.h>

#include <map>
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

uint32_t MaglevTable::sizeFor(size_t backends, uint32_t min_size) {
  uint64_t want = std::max<uint64_t>(min_size, 100ull * backends);
  uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(want, 0xfffffffbull));
  while (!isPrime(n)) ++n;
  return n;
}

namespace {

Status validateBackends(const std::vector<MaglevBackend>& backends, uint32_t size) {
  if (!isPrime(size)) return makeError("Maglev table size " + std::to_string(size) + " is not prime");
  if (backends.size() > size) return makeError("more backends than Maglev table slots");
  std::set<std::string> seen;
  for (const auto& b : backends) {
    if (b.key.empty()) return makeError("a Maglev backend has an empty key");
    if (b.weight == 0 || b.weight > 1000) return makeError("backend " + b.key + ": weight must be 1..1000");
    if (!seen.insert(b.key).second) return makeError("backend " + b.key + " is listed twice");
  }
  return okStatus();
}

struct Permutation {
  uint64_t offset, skip, next = 0;
  uint64_t nextSlot(uint32_t size) { return (offset + next++ * skip) % size; }
};

Permutation permutationOf(const std::string& key, uint32_t size) {
  return {XXH64(key.data(), key.size(), kOffsetSeed) % size, XXH64(key.data(), key.size(), kSkipSeed) % (size - 1) + 1};
}

}  // namespace

Result<MaglevTable> MaglevTable::build(const std::vector<MaglevBackend>& backends, uint32_t size) {
  if (size == 0) size = sizeFor(backends.size());
  OC_TRY(validateBackends(backends, size));
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

namespace offcore {

Result<MaglevTable> MaglevTable::update(const MaglevTable& previous,
                                        const std::vector<MaglevBackend>& previous_backends,
                                        const std::vector<MaglevBackend>& backends) {
  const uint32_t size = previous.size();
  if (size == 0) return build(backends);
  OC_TRY(validateBackends(backends, size));
  MaglevTable t;
  t.slots_.assign(size, -1);
  if (backends.empty()) return t;
  const size_t n = backends.size();
  std::map<std::string, int32_t> index_of;
  uint64_t total_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    index_of[backends[i].key] = static_cast<int32_t>(i);
    total_weight += backends[i].weight;
  }
  // Each backend's fair share; the remainder goes to the first ones so the
  // targets add up to the table size.
  std::vector<uint32_t> target(n), have(n, 0);
  uint64_t assigned = 0;
  for (size_t i = 0; i < n; ++i) {
    target[i] = static_cast<uint32_t>(size * backends[i].weight / total_weight);
    assigned += target[i];
  }
  for (size_t i = 0; assigned < size; i = (i + 1) % n, ++assigned) ++target[i];
  // Keep every slot whose owner survives, up to its share.
  for (uint32_t s = 0; s < size; ++s) {
    int32_t old = previous.slots_[s];
    if (old < 0 || static_cast<size_t>(old) >= previous_backends.size()) continue;
    auto it = index_of.find(previous_backends[static_cast<size_t>(old)].key);
    if (it == index_of.end() || have[static_cast<size_t>(it->second)] >= target[static_cast<size_t>(it->second)])
      continue;
    t.slots_[s] = it->second;
    ++have[static_cast<size_t>(it->second)];
  }
  // Refill the free slots Maglev-style: round robin, each backend below its
  // share takes the next free slot of its permutation.
  std::vector<Permutation> perm;
  perm.reserve(n);
  for (const auto& b : backends) perm.push_back(permutationOf(b.key, size));
  uint32_t free_slots = 0;
  for (int32_t s : t.slots_) free_slots += s < 0;
  while (free_slots > 0) {
    for (size_t i = 0; i < n && free_slots > 0; ++i) {
      if (have[i] >= target[i]) continue;
      uint64_t slot = perm[i].nextSlot(size);
      while (t.slots_[slot] >= 0) slot = perm[i].nextSlot(size);
      t.slots_[slot] = static_cast<int32_t>(i);
      ++have[i];
      --free_slots;
    }
  }
  return t;
}

}  // namespace offcore
