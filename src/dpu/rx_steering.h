// Receive steering: on a card, what the host sends to a VF is processed by
// the card's cores, and what the card sends to the host by the host's. A
// veth pair processes a packet in the sender's softirq instead (the
// receiver's whole receive path, BPF included, on the sending CPU), so the
// software DPU sets RPS on each receiving end: the SoC-side ends
// (representors, the uplink, the host-VF) to the SoC's cpus, the host-side
// ends (a pod's VF, the host's end of the host-VF) to the host's cpus.
//
// The masks live on the devices, so deleting a device removes them.
#pragma once

#include <string>

#include "base/cpu_list.h"
#include "base/result.h"

namespace offcore {

// `cpus` as an rps_cpus bitmap: hex words of 32 cpus, most significant
// first, joined by commas ("2", "ff,00000001"). Empty set -> "0" (off).
std::string rpsMask(const CpuSet& cpus);

// Writes rps_cpus of every receive queue of `ifname` in the network
// namespace a path names (/run/netns/NAME, /proc/PID/ns/net, "" = the
// caller's). sysfs shows the devices of the namespace that mounted it, so
// this runs in a child with its own mount namespace and a fresh sysfs.
Status steerRx(const std::string& netns_path, const std::string& ifname, const CpuSet& cpus);

// The rps_cpus of the device's first receive queue, as the kernel prints it.
Result<std::string> rxSteering(const std::string& netns_path, const std::string& ifname);

}  // namespace offcore
