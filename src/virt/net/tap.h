// Tap: the VM's end of its network — a Linux tap device (/dev/net/tun) with
// a virtio-net header on every frame (IFF_VNET_HDR), one fd per queue pair
// (IFF_MULTI_QUEUE when there is more than one). The tap lives in the netns
// of the process that opens it; it is the VM's "representor" there.
//
// The interface is small so tests can put a SOCK_SEQPACKET socketpair
// behind it: frames are read and written with read()/writev() on queueFd(),
// one frame per call, header first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace offcore::virt {

class Tap {
 public:
  virtual ~Tap() = default;

  virtual const std::string& name() const = 0;
  virtual uint16_t queuePairs() const = 0;
  // The non-blocking fd of queue pair `pair` (< queuePairs()).
  virtual int queueFd(uint16_t pair) const = 0;
  // TUNSETVNETHDRSZ: 10 (legacy virtio_net_hdr) or 12 (with num_buffers).
  virtual Status setHeaderSize(int bytes) = 0;
  // TUNSETOFFLOAD: the TUN_F_* offloads the tap may hand us (what the guest
  // accepts: GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN).
  virtual Status setOffloads(unsigned tunFlags) = 0;
};

// Attaches to tap `ifname` in the current netns, or creates it (then it is
// not persistent: it goes away with the last fd). An existing tap must be a
// tap; with queuePairs > 1 it must be multi_queue (`ip tuntap add dev X mode
// tap multi_queue`); with one pair either kind is taken.
Result<std::unique_ptr<Tap>> openTap(const std::string& ifname, uint16_t queuePairs);

}  // namespace offcore::virt
