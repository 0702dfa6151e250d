// A hostile inflight region: the fuzzer's bytes are one queue's region as a
// killed back end (or a front end that scribbled on the shared memfd) left
// it. Recovery must stay inside the region, which is a vector of exactly
// inflightQueueBytes(size) bytes so ASan sees any overrun, and may only
// return distinct heads below the queue size; a second recovery over what
// the first left (with the heads taken and returned again) must do the same.
//
// Input: byte 0 = log2(queue size) in bits 0-3 (1..32768 is too big to fuzz
// well: capped at 2^9), bytes 1-2 = the ring's used idx (LE), the rest fills
// the region from offset 0 (features, version, desc_num, last_batch_head,
// used_idx, then the descriptors).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "virt/vhost/inflight.h"

namespace {

void check(const std::vector<uint16_t>& heads, uint16_t size) {
  std::vector<bool> seen(size, false);
  if (heads.size() > size) __builtin_trap();
  for (uint16_t h : heads) {
    if (h >= size || seen[h]) __builtin_trap();
    seen[h] = true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 3) return 0;
  const auto qsize = static_cast<uint16_t>(1u << std::min(data[0] & 0x0f, 9));
  uint16_t usedIdx = static_cast<uint16_t>(data[1] | (data[2] << 8));
  std::vector<uint8_t> region(inflightQueueBytes(qsize), 0);
  std::memcpy(region.data(), data + 3, std::min(region.size(), size - 3));

  InflightRing ring(region.data(), qsize);
  std::vector<uint16_t> heads = ring.recover(usedIdx);
  check(heads, qsize);
  // The restarted queue serves them in order, as VirtQueue does.
  for (uint16_t h : heads) {
    ring.begin(h);
    ring.linkBatch(h);
    ring.finish(h, ++usedIdx);
  }
  InflightRing again(region.data(), qsize);
  std::vector<uint16_t> left = again.recover(usedIdx);
  check(left, qsize);
  // Recovery returned every head marked in flight and they were all
  // returned since: nothing is left.
  if (!left.empty()) __builtin_trap();
  return 0;
}
