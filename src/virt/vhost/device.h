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
  // GET_CONFIG: the device config space (virtio_blk_config...), whole.
  virtual std::vector<uint8_t> configSpace(uint16_t numQueues) const = 0;

  // Serves one chain popped from queue `queue`, synchronously, on that
  // queue's thread. Returns the bytes written into the chain's
  // device-writable segments (what push() reports). A malformed request is
  // answered per the device spec (VIRTIO_BLK_S_IOERR / UNSUPP), never by
  // failing the queue.
  virtual uint32_t handle(uint16_t queue, const Chain& chain) = 0;
};

}  // namespace offcore::virt
