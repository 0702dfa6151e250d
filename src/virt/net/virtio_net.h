// VirtioNet: the virtio-net device (virtio 1.1 §5.1) over a Tap, as a
// VhostDevice. Queue 2k receives (device-driven: frames read from the tap's
// fd k fill the guest's chains), queue 2k+1 transmits (each chain is one
// frame written to fd k). QEMU keeps the control queue, the MAC and STATUS.
//
// The virtio-net header goes through unchanged both ways: the tap speaks the
// same header (IFF_VNET_HDR), so checksum and TSO offloads pass between the
// guest and the tap's netns. A malformed chain is dropped and counted, never
// a crash; a frame that finds no receive buffer stays in hand (one per queue
// pair, the tap's own queue holds the rest) until the guest posts some.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "virt/net/tap.h"
#include "virt/vhost/device.h"

namespace offcore::virt {

// virtio-net constants (virtio 1.1 §5.1). <linux/virtio_net.h> has a member
// named `class` and does not compile as C++.
namespace vnet {
inline constexpr unsigned kFCsum = 0, kFGuestCsum = 1, kFGuestTso4 = 7, kFGuestTso6 = 8, kFGuestEcn = 9,
                          kFHostTso4 = 11, kFHostTso6 = 12, kFHostEcn = 13, kFMrgRxbuf = 15, kFMq = 22;
// struct virtio_net_hdr (10 bytes) and the num_buffers that follows it with
// VERSION_1 or MRG_RXBUF (12), little-endian.
inline constexpr size_t kHdrLegacy = 10, kHdrV1 = 12, kNumBuffersOffset = 10;
inline constexpr uint8_t kHdrFNeedsCsum = 1, kGsoTcpv4 = 1;
inline constexpr uint16_t kStatusLinkUp = 1;
}  // namespace vnet

struct VirtioNetStats {
  uint64_t txFrames = 0, txBytes = 0;  // written to the tap (frame bytes, no header)
  uint64_t txDropped = 0;              // the tap refused the write (down, full, bad GSO header)
  uint64_t txMalformed = 0;            // chains shorter than the header, or with writable segments
  uint64_t rxFrames = 0, rxBytes = 0;  // delivered to the guest
  uint64_t rxDropped = 0;              // frames that no buffer could ever hold, or shorter than the header
  uint64_t rxMalformed = 0;            // receive chains with readable segments or no room
};

class VirtioNet : public VhostDevice {
 public:
  // Safe from any thread (relaxed counters).
  virtual VirtioNetStats stats() const = 0;
};

// One queue pair per tap fd. The tap must outlive the device.
std::unique_ptr<VirtioNet> makeVirtioNet(Tap& tap);

}  // namespace offcore::virt
