// A hostile packed inflight region: the fuzzer's bytes are one queue's region
// as a killed back end (or a front end that scribbled on the shared memfd)
// left it, and the descriptor ring recovery looks at. Recovery must stay
// inside both (vectors of exactly their size, so ASan sees any overrun), and
// may only return chains whose entries are distinct, below the queue size,
// and fit in the ring together. Serving every recovered chain and a ring's
// worth of new ones must then leave a region that a second recovery finds
// empty, with the used position where the pushes left it.
//
// Input: bytes 0-1 = queue size - 1 (LE, mod 512), bytes 2-3 = the vring
// base's used half (index mod size in bits 0-14, wrap counter bit 15); then
// the region from offset 0, then the descriptor ring.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "virt/vhost/packed_inflight.h"

namespace {

void advance(uint16_t& idx, bool& wrap, uint32_t n, uint16_t size) {
  uint32_t next = idx + n;
  while (next >= size) {
    next -= size;
    wrap = !wrap;
  }
  idx = static_cast<uint16_t>(next);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 4) return 0;
  const auto qsize = static_cast<uint16_t>(1 + (data[0] | (data[1] << 8)) % 512);
  const uint16_t base = static_cast<uint16_t>(data[2] | (data[3] << 8));
  uint16_t usedIdx = static_cast<uint16_t>((base & 0x7fff) % qsize);
  bool usedWrap = (base & 0x8000) != 0;
  data += 4, size -= 4;
  std::vector<uint8_t> region(packedInflightQueueBytes(qsize), 0);
  size_t n = std::min(region.size(), size);
  std::memcpy(region.data(), data, n);
  data += n, size -= n;
  std::vector<uint8_t> ring(16ull * qsize, 0);
  std::memcpy(ring.data(), data, std::min(ring.size(), size));

  PackedInflightRing r(region.data(), qsize);
  PackedRecovery rec = r.recover(ring.data(), usedIdx, usedWrap);
  if (rec.usedIdx >= qsize) __builtin_trap();
  uint32_t slots = 0;
  std::vector<bool> head(qsize, false);
  for (const auto& c : rec.chains) {
    if (c.entry >= qsize || head[c.entry] || c.descs.empty()) __builtin_trap();
    head[c.entry] = true;
    slots += static_cast<uint32_t>(c.descs.size());
  }
  if (slots > qsize) __builtin_trap();

  // The restarted queue serves them, oldest first, one push each.
  usedIdx = rec.usedIdx, usedWrap = rec.usedWrap;
  for (const auto& c : rec.chains) {
    r.release(c.entry);
    advance(usedIdx, usedWrap, static_cast<uint32_t>(c.descs.size()), qsize);
    r.setUsed(usedIdx, usedWrap);
    r.done(c.entry);
    r.commit();
  }
  // Then the whole ring in single descriptors and a batch of two-descriptor
  // chains, every entry taken once: the free list must hold them all.
  std::vector<uint16_t> taken;
  PackedDesc one[1] = {{0x1000, 512, 1, 0}};
  PackedDesc two[2] = {{0x1000, 16, 2, 1}, {0x2000, 512, 2, 2}};
  uint32_t left = qsize;
  while (left > 0) {
    const bool pair = left >= 2 && (left & 1) == 0;
    taken.push_back(pair ? r.begin(two) : r.begin(one));
    left -= pair ? 2 : 1;
  }
  for (uint16_t e : taken) r.release(e);
  advance(usedIdx, usedWrap, qsize, qsize);
  r.setUsed(usedIdx, usedWrap);
  for (uint16_t e : taken) r.done(e);
  r.commit();

  PackedInflightRing again(region.data(), qsize);
  PackedRecovery after = again.recover(ring.data(), 0, true);
  if (!after.chains.empty() || after.reset || after.usedIdx != usedIdx || after.usedWrap != usedWrap) {
    __builtin_trap();
  }
  return 0;
}
