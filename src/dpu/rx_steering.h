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

// Threaded NAPI instead of RPS, for the SoC's receiving ends (config
// `rx_steering_mode: napi`, the default). With GRO on, a veth receives
// through NAPI; threaded, that NAPI runs in a kernel thread
// ("napi/IFNAME-ID"), which is pinned to `cpus`. RPS hands every burst to
// the other cpu with an IPI; a NAPI thread that is busy takes packet after
// packet with none, which on this VM (a trapped MSR write per IPI) is most of
// the cost (bench/results/svc.md). RPS is turned off on the device. Needs
// the device up (its NAPI and thread exist only while it is).
Status steerRxNapi(const std::string& netns_path, const std::string& ifname, const CpuSet& cpus);

// A veth accepts its peer's locally generated TCP into NAPI only when the
// peer does no TSO; the ends that send into a NAPI-steered device turn it
// off (GSO still batches in the stack). Runs ethtool(8) in the namespace.
Status disableTso(const std::string& netns_path, const std::string& ifname);

}  // namespace offcore
