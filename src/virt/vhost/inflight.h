// Inflight I/O tracking (vhost-user spec, "Inflight I/O tracking"): a shared-memory record of which heads the back end took and
// has not yet returned, so a back end killed with -9 and started again
// resubmits exactly those requests instead of losing or repeating them.
//
//   InflightArea: the memfd (GET_INFLIGHT_FD) or the front end's copy of it
//                 (SET_INFLIGHT_FD), mapped, one region per queue, laid out
//                 for split or for packed rings (the negotiated
//                 VIRTIO_F_RING_PACKED: QEMU sets the features first).
//   InflightRing: the split layout of one queue's region and the spec's
//                 steps on it; pure logic over bytes, used by VirtQueue.
//                 The packed layout is PackedInflightRing (packed_inflight.h).
//
// Split region layout (little-endian, as libvhost-user and QEMU lay it out):
//   u64 features, u16 version, u16 desc_num, u16 last_batch_head, u16 used_idx,
//   then desc_num x {u8 inflight, u8 padding[5], u16 next, u64 counter}.
//
// Owner: a region is touched by its queue thread only; the area is created,
// replaced and dropped by the control thread with the queues stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"

namespace offcore::virt {

// Bytes of one queue's split region for `queueSize` descriptors (64-aligned).
uint64_t inflightQueueBytes(uint16_t queueSize);
// Bytes of one queue's region in the given layout.
uint64_t inflightQueueBytes(uint16_t queueSize, bool packed);

class InflightArea {
 public:
  // A zeroed memfd for numQueues regions of queueSize descriptors, mapped.
  static Result<std::unique_ptr<InflightArea>> create(uint16_t numQueues, uint16_t queueSize, bool packed = false);
  // Maps the area the front end hands back (takes fd; closes it after mmap).
  static Result<std::unique_ptr<InflightArea>> map(int fd, uint64_t size, uint64_t offset, uint16_t numQueues,
                                                   uint16_t queueSize, bool packed = false);
  ~InflightArea();
  InflightArea(const InflightArea&) = delete;
  InflightArea& operator=(const InflightArea&) = delete;

  // The memfd (create() only; -1 after map()); the caller dups it to send.
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  uint16_t numQueues() const { return numQueues_; }
  uint16_t queueSize() const { return queueSize_; }
  // The regions are laid out for packed rings (else split).
  bool packed() const { return packed_; }
  // Queue i's region, nullptr when i >= numQueues().
  uint8_t* queue(uint16_t i) const;

 private:
  InflightArea(int fd, void* map, size_t mapLen, uint8_t* base, uint64_t size, uint16_t numQueues, uint16_t queueSize,
               bool packed)
      : fd_(fd),
        map_(map),
        mapLen_(mapLen),
        base_(base),
        size_(size),
        numQueues_(numQueues),
        queueSize_(queueSize),
        packed_(packed) {}
  int fd_;
  void* map_;
  size_t mapLen_;
  uint8_t* base_;
  uint64_t size_;
  uint16_t numQueues_;
  uint16_t queueSize_;
  bool packed_;
};

class InflightRing {
 public:
  // region holds inflightQueueBytes(size) bytes and outlives this object.
  InflightRing(uint8_t* region, uint16_t size) : r_(region), size_(size) {}

  // On queue setup: repairs the last batch when the back end died between
  // publishing the used idx and recording it (spec "When reconnecting"),
  // and returns the heads still in flight, oldest (lowest counter) first.
  // A region never used (version 0) or written for another queue size is
  // (re)initialised and yields nothing.
  std::vector<uint16_t> recover(uint16_t ringUsedIdx);
  // After a head is taken from the avail ring, before it is processed.
  void begin(uint16_t head);
  // After the used element for head is written, before the used idx is
  // published.
  void linkBatch(uint16_t head);
  // After the used idx (now usedIdx) is published.
  void finish(uint16_t head, uint16_t usedIdx);

 private:
  uint8_t* desc(uint16_t i) const { return r_ + 16 + 16ull * i; }
  uint8_t* r_;
  uint16_t size_;
  uint64_t counter_ = 1;
};

}  // namespace offcore::virt
