// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4). The control
// plane builds the lookup table; the dataplane picks a backend for a new
// flow with table[flow_hash % size]. Every node computes the same table from
// the same backend set (stable hashes, no randomness), so a Service behaves
// the same wherever a flow enters, and removing one of N backends moves only
// about 1/N of the slots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

struct MaglevBackend {
  std::string key;      // stable identity, e.g. "10.1.0.5:8080"
  uint32_t weight = 1;  // relative share of the table, 1..1000
  bool operator==(const MaglevBackend&) const = default;
};

class MaglevTable {
 public:
  // The smallest prime >= 100 * backends and >= min_size. A fresh build()
  // moves more than the ideal 1/N of the slots on a removal, the more so the
  // smaller M/N is (measured 1.9/N at M = 100 N for N = 50, 1.3/N at
  // M = 1300 N); update() moves exactly the removed backend's slots.
  static uint32_t sizeFor(size_t backends, uint32_t min_size = 65537);

  // size 0 picks sizeFor(backends.size()); an explicit size must be prime.
  // A Service must keep its size while backends come and go (grow it only
  // when they outnumber size/100): a new size reshuffles every slot.
  static Result<MaglevTable> build(const std::vector<MaglevBackend>& backends, uint32_t size = 0);

  // The minimal-disruption successor of `previous` (built for
  // previous_backends) for a new backend set, same size: slots of surviving
  // backends stay put unless a newcomer needs its share, and freed or taken
  // slots are refilled in Maglev's permutation order. Removing one of N
  // backends moves exactly its slots (1/N); adding one moves ~1/(N+1).
  // The result depends on history, which is fine for a conntrack-backed
  // dataplane: a flow is pinned by the node it enters.
  static Result<MaglevTable> update(const MaglevTable& previous, const std::vector<MaglevBackend>& previous_backends,
                                    const std::vector<MaglevBackend>& backends);

  // A table read back from a dataplane (slot -> backend index).
  static MaglevTable fromSlots(std::vector<int32_t> slots) {
    MaglevTable t;
    t.slots_ = std::move(slots);
    return t;
  }

  uint32_t size() const { return static_cast<uint32_t>(slots_.size()); }
  // Backend index per slot; empty backends give -1 everywhere.
  const std::vector<int32_t>& slots() const { return slots_; }
  int32_t lookup(uint64_t flow_hash) const { return slots_.empty() ? -1 : slots_[flow_hash % slots_.size()]; }

 private:
  std::vector<int32_t> slots_;
};

bool isPrime(uint32_t n);

}  // namespace offcore
