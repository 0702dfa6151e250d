// Inflight I/O tracking for a packed virtqueue (vhost-user spec, "Inflight
// I/O tracking", the packed layout): one queue's region and the spec's steps
// on it; pure logic over bytes, used by the packed VirtQueue.
//
// Region layout (little-endian, as QEMU's spec and other back ends lay it out):
//   u64 features, u16 version, u16 desc_num, u16 free_head, u16 old_free_head,
//   u16 used_idx, u16 old_used_idx, u8 used_wrap_counter,
//   u8 old_used_wrap_counter, u8 padding[7], (3 bytes of alignment), then at
//   byte 32 desc_num x 32-byte entries {u8 inflight, u8 padding, u16 next,
//   u16 last, u16 num, u64 counter, u16 id, u16 flags, u32 len, u64 addr}.
//
// Unlike the split layout, an entry is not a ring slot: entries come from a
// free list, one per ring descriptor a chain took, holding a copy of it (the
// device writes used descriptors over the ring, so the ring cannot be read
// back). A chain's first entry (its "head" entry) carries inflight, counter,
// num (ring slots) and last (its last entry); the chain's entries are linked
// by next. The old_* fields are the state after the last whole pop or push,
// so a back end killed half-way through either is rolled back (or, when the
// used descriptor was already published, rolled forward) on recovery.
//
// The region is shared with the front end, so this class writes it but keeps
// its own copy of every link it follows; recover() reads it once, bounded,
// and starts the region over when it is inconsistent.
//
// Owner: the queue thread (docs/CONCURRENCY.md "vhost-user").
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace offcore::virt {

// Bytes of one queue's packed region for `queueSize` descriptors (64-aligned).
uint64_t packedInflightQueueBytes(uint16_t queueSize);

// One packed ring descriptor as the driver made it available.
struct PackedDesc {
  uint64_t addr = 0;
  uint32_t len = 0;
  uint16_t id = 0;
  uint16_t flags = 0;
};

// A chain the previous back end took and did not return.
struct PackedInflightChain {
  uint16_t entry = 0;             // its head entry in the region
  std::vector<PackedDesc> descs;  // its ring descriptors, in order
};

struct PackedRecovery {
  // Where the device's used position is: the region's, after the repair;
  // the caller's (the vring base) for a region set up anew.
  uint16_t usedIdx = 0;
  bool usedWrap = true;
  // The chains still in flight, oldest (lowest counter) first. The avail
  // position follows the used one by the sum of their descriptors.
  std::vector<PackedInflightChain> chains;
  bool reset = false;  // the region was unused or inconsistent and set up anew
};

class PackedInflightRing {
 public:
  // region holds packedInflightQueueBytes(size) bytes and outlives this object.
  PackedInflightRing(uint8_t* region, uint16_t size);

  // On queue setup, with the ring's descriptors (size x 16 bytes) and the
  // used position the front end sent: repairs a half-finished pop or push
  // (spec "When reconnecting") and returns what is still in flight.
  PackedRecovery recover(const uint8_t* descRing, uint16_t usedIdx, bool usedWrap);

  // After a chain was taken from the ring and checked: records it in flight.
  // Needs descs.size() free entries (the caller bounds what is in flight by
  // the ring size); returns the chain's head entry.
  uint16_t begin(std::span<const PackedDesc> descs);
  // Pushing a batch: release() each chain's entries to the free list, then
  // setUsed() with the used position after the batch, publish the used
  // descriptors, done() each head entry, and commit().
  void release(uint16_t entry);
  void setUsed(uint16_t idx, bool wrap);
  void done(uint16_t entry);
  void commit();
  // A chain popped and given back untouched (VirtQueue::unpop).
  void abandon(uint16_t entry);

 private:
  uint8_t* entry(uint16_t i) const;
  void init(uint16_t usedIdx, bool usedWrap);

  uint8_t* r_;
  uint16_t size_;
  // Our copy of the links: next per entry, last per head entry.
  std::vector<uint16_t> next_;
  std::vector<uint16_t> last_;
  uint16_t freeHead_ = 0;
  uint16_t usedIdx_ = 0;
  bool usedWrap_ = true;
  uint64_t counter_ = 1;
};

}  // namespace offcore::virt
