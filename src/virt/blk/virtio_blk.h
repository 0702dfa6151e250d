// VirtioBlk: the virtio-blk device (virtio 1.1 §5.2) over a BlockDevice, as
// a VhostDevice. Requests: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES;
// anything else is VIRTIO_BLK_S_UNSUPP. Request framing is checked (header
// readable, status byte writable, data sized in 512-byte sectors, within
// capacity) and a bad request gets VIRTIO_BLK_S_IOERR, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "block/block_device.h"
#include "virt/vhost/device.h"

namespace offcore::virt {

struct VirtioBlkOptions {
  std::string serial = "offcore";  // GET_ID (at most 20 bytes)
  uint16_t numQueues = 1;
  uint32_t segMax = 126;
  bool readOnly = false;
  VhostDevice::Coalescing coalescing;  // interrupt coalescing (device.h); off by default
  uint32_t pollUs = 0;                 // adaptive polling window (device.h pollUs())
};

std::unique_ptr<VhostDevice> makeVirtioBlk(BlockDevice& dev, const VirtioBlkOptions& opts);

}  // namespace offcore::virt
