// Gratuitous ARP: tells every neighbour on a link that an address now lives
// at this link's MAC. A node that takes over an EIP sends one, so fabric
// clients stop sending to the MAC of the node that left (they would
// otherwise keep it until their neighbour entry fails, ~8 s).
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

// One ARP request for ip from ip, broadcast on ifname (current namespace).
Status sendGratuitousArp(const std::string& ifname, const std::string& ip);

}  // namespace offcore
