// VhostDevice: what a vhost-user back end serves, like SPDK's vhost device
// backend ops. The server (server.h) speaks the protocol, owns guest memory
// and the queues, and calls the device for the device-specific parts.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {

class VhostDevice {
 public:
  virtual ~VhostDevice() = default;

  // Device feature bits (VIRTIO_BLK_F_*, VIRTIO_NET_F_*); the server adds the
  // transport ones (VERSION_1, rings, LOG_ALL, PROTOCOL_FEATURES).
  virtual uint64_t deviceFeatures() const = 0;
  virtual uint16_t maxQueues() const = 0;
  // Whether the server offers VIRTIO_F_RING_PACKED for this device (its
  // in-flight requests are tracked as a split ring's: packed_inflight.h).
  virtual bool packedRing() const { return false; }
  // Interrupt coalescing for the request/response queues, as SPDK's vhost
  // target does it (delay_base_us, iops_threshold): while a queue completes
  // at least iopsThreshold requests per second (measured over 10 ms), its
  // interrupt waits up to delayUs after the ring ran empty, so chains the
  // guest posts meanwhile are served and announced by the same interrupt.
  // Below the threshold (a guest waiting on each request) nothing waits.
  // delayUs 0: off.
  struct Coalescing {
    uint32_t delayUs = 0;
    uint32_t iopsThreshold = 0;
  };
  virtual Coalescing coalescing() const { return {}; }
  // Adaptive polling, like QEMU's iothread poll-max-ns: when a
  // request/response queue's ring runs empty, its thread keeps looking at
  // the ring for up to this many microseconds, with guest kicks still off,
  // before it sleeps on the kick fd. A guest that posts within the window
  // pays no kick (a VM exit) and no wakeup; the window's CPU is the SoC's.
  // 0: sleep at once.
  virtual uint32_t pollUs() const { return 0; }
  // GET_CONFIG: the device config space (virtio_blk_config...), whole.
  virtual std::vector<uint8_t> configSpace(uint16_t numQueues) const = 0;

  // Serves one chain popped from queue `queue`, synchronously, on that
  // queue's thread. Returns the bytes written into the chain's
  // device-writable segments (what push() reports). A malformed request is
  // answered per the device spec (VIRTIO_BLK_S_IOERR / UNSUPP), never by
  // failing the queue.
  virtual uint32_t handle(uint16_t queue, const Chain& chain) = 0;

  // SET_FEATURES: the features the front end acked, while every queue is
  // stopped (virtio-net sizes its header and the tap's offloads here). An
  // error drops the connection.
  virtual Status setFeatures(uint64_t features) {
    (void)features;
    return okStatus();
  }

  // Device-driven queues (virtio-net receive: the device has frames, the
  // guest has posted buffers). sourceFd() is -1 for a request/response queue
  // (the default: its thread pops chains and calls handle()). Otherwise the
  // queue's thread polls that fd beside the kick and calls fill() when the fd
  // is readable, the guest kicked, or the queue started; handle() is never
  // called for it. The fd is the device's and stays open while it lives.
  virtual int sourceFd(uint16_t queue) const {
    (void)queue;
    return -1;
  }
  enum class Fill {
    kIdle,          // the source is drained: wait for it (and kicks)
    kNoBuffers,     // the source has more but the guest has no buffers:
                    // kicks are enabled, wait for a kick only (never spin)
    kMore,          // a budget was used up: call again (after notifying)
    kBroken,        // the guest broke the ring: wait for a new setup
    kSourceFailed,  // the source fd failed: stop polling it
  };
  // Moves what the source has into chains of `vq`, on that queue's thread,
  // within a bounded budget so stop() is never held long. The thread
  // notifies the guest after it returns.
  virtual Fill fill(uint16_t queue, VirtQueue& vq) {
    (void)queue;
    (void)vq;
    return Fill::kIdle;
  }
};

}  // namespace offcore::virt
