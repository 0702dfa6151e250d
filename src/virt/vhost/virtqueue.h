// VirtQueue: one virtqueue in guest memory, split (virtio 1.1 §2.6) or packed
// (§2.7, packed_virtqueue.cc), as the device side walks it. Pure logic over GuestMemory: no sockets, no threads.
//
// The guest is hostile: every descriptor address and length is checked
// through GuestMemory, a chain that loops, is longer than the queue, nests
// indirect tables, or carries more than maxChainBytes is an error, and after
// an error the queue is broken (pop() keeps failing) until it is set up
// again. The back end never reads or writes outside the guest's regions.
//
// Owner: one queue thread (docs/CONCURRENCY.md "vhost-user").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "virt/vhost/dirty_log.h"
#include "virt/vhost/guest_memory.h"

namespace offcore::virt {

// SET_VRING_ADDR: ring addresses are front-end virtual addresses; the log
// address is guest-physical (used when VHOST_VRING_F_LOG is set in flags).
struct VringAddresses {
  uint64_t descUserAddr = 0;
  uint64_t availUserAddr = 0;
  uint64_t usedUserAddr = 0;
  uint64_t logGuestAddr = 0;
  uint32_t flags = 0;
};

// One buffer of a chain, already translated and bounds-checked.
struct Segment {
  uint8_t* data = nullptr;
  uint32_t len = 0;
  bool deviceWritable = false;
  uint64_t gpa = 0;  // for dirty logging
};

struct Chain {
  // Split: the head descriptor's index; packed: the buffer id. What push()
  // returns to the guest.
  uint16_t head = 0;
  // Packed: the ring slots the chain took (1 for an indirect table), how far
  // push() moves the used position. Unused by the split queue.
  uint16_t descs = 1;
  // Packed with inflight tracking: the chain's head entry in the region
  // (packed_inflight.h), what push() releases. Unused otherwise.
  uint16_t inflightEntry = 0;
  std::vector<Segment> segments;
};

struct VirtQueueConfig {
  uint16_t size = 0;     // SET_VRING_NUM: split, a power of two <= 32768; packed, 1..32768
  VringAddresses addrs;  // SET_VRING_ADDR; packed: desc ring, driver and device event areas
  // SET_VRING_BASE. Split: the next avail index. Packed (as QEMU 7.2 sends
  // it): bits 0-14 the avail index, bit 15 the avail wrap counter, bits
  // 16-30 the used index, bit 31 the used wrap counter.
  uint32_t lastAvailIdx = 0;
  bool packed = false;    // VIRTIO_F_RING_PACKED negotiated
  bool eventIdx = false;  // VIRTIO_RING_F_EVENT_IDX negotiated
  bool indirect = false;  // VIRTIO_RING_F_INDIRECT_DESC negotiated
  uint64_t maxChainBytes = 128ull << 20;
  // INFLIGHT_SHMFD: this queue's region, nullptr when not negotiated; laid
  // out for the ring's type (split: inflight.h, packed: packed_inflight.h).
  // With it, create() resubmits what an earlier back end left in flight:
  // pop() returns those chains first, oldest first, then continues after
  // them. Split: from used idx + their count (lastAvailIdx is superseded when
  // any are). Packed: both positions come from a region in use (QEMU 7.2
  // cannot restore a packed base after a crash and sends a stale one): used
  // from the region, avail used + their descriptors.
  uint8_t* inflight = nullptr;
};

// Marks in the dirty log the first `written` bytes of the chain's
// device-writable segments, in order: what a push() reports it wrote. Both
// ring layouts use it.
void markWritten(DirtyLog& log, const Chain& chain, uint32_t written);

class VirtQueue {
 public:
  virtual ~VirtQueue() = default;

  // Checks the rings lie in guest memory (sizes from cfg.size) and starts
  // from cfg.lastAvailIdx. mem and log (nullable: logging off) must outlive
  // the queue; they are swapped only through setup() again.
  static Result<std::unique_ptr<VirtQueue>> create(const GuestMemory& mem, const VirtQueueConfig& cfg, DirtyLog* log);

  // The next available chain, nullopt when the guest has posted nothing new,
  // or an error when the guest broke the ring (see above).
  virtual Result<std::optional<Chain>> pop() = 0;
  // Returns a chain to the guest with `written` bytes written into its
  // device-writable segments (logged dirty when logging is on, as is the
  // used ring entry and index).
  virtual void push(const Chain& chain, uint32_t written) = 0;
  // Returns several chains as one unit: every used entry is written before
  // the used idx moves once, so the guest never sees part of them (a merged
  // receive buffer, VIRTIO_NET_F_MRG_RXBUF). written[i] belongs to chains[i].
  virtual void pushMany(std::span<const Chain> chains, std::span<const uint32_t> written) = 0;
  // Gives back the last n chains popped and not pushed: the next pop()
  // returns them again (a receive that found too few buffers).
  virtual void unpop(uint16_t n) = 0;
  // Whether the guest wants an interrupt now (EVENT_IDX used_event, or
  // VRING_AVAIL_F_NO_INTERRUPT), given what was pushed since the last call.
  virtual bool shouldNotify() = 0;
  // Turn guest kicks off while draining and back on (VRING_USED_F_NO_NOTIFY
  // or avail_event); after enabling, callers pop() once more to close the race.
  // With EVENT_IDX, enabling asks for a kick on any chain past the last avail
  // idx read, also when chains were given back with unpop().
  virtual void setKicksEnabled(bool enabled) = 0;

  // GET_VRING_BASE: the next avail index the device will read (packed: with
  // the avail wrap counter in bit 15).
  virtual uint32_t lastAvailIdx() const = 0;
  // How many chains create() found in flight and pop() resubmits first.
  virtual uint16_t resubmitted() const = 0;
  virtual void setDirtyLog(DirtyLog* log) = 0;
};

}  // namespace offcore::virt
