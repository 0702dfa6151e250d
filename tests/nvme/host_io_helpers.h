// Helpers shared by the initiator's I/O tests against the real target.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme::test {

// n pseudo-random bytes, the same for the same seed.
inline std::vector<uint8_t> pattern(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// A host that notices a lost target quickly and waits long enough for it.
inline HostOptions ioHostOptions(int queues, uint32_t depth, bool polled) {
  using namespace std::chrono_literals;
  HostOptions o;
  o.host_nqn = kHostnqn;
  o.io_queues = queues;
  o.queue_depth = depth;
  o.kato_ms = 1000;
  o.connect_timeout = 500ms;
  o.io_timeout = 20s;
  o.polled = polled;
  return o;
}

}  // namespace offcore::nvme::test
