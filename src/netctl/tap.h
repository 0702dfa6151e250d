// Persistent tap devices: the representor of a VM's NIC in the SoC. The
// VM's network back end (`offcore vm net-serve`, or QEMU's own tap netdev)
// opens the tap by name later; it stays while nobody has it open.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"

namespace offcore {

// Flags a reader must open the tap with: IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, and
// IFF_MULTI_QUEUE when queues > 1 (the kernel refuses a mismatch).
Status createPersistentTap(const std::string& ifname, int queues);

// Names derived from the VM's name alone, so every node picks the same ones
// (a migrated VM keeps its MAC) and a DEL finds the tap without the store.
std::string vmTapName(const std::string& vm);  // "ocvm" + 8 hex digits, 12 chars
std::string vmMac(const std::string& vm);      // 02:0d:xx:xx:xx:xx, locally administered

}  // namespace offcore
