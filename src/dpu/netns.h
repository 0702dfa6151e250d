// Network namespaces and links, driven through iproute2 and nft. The names
// here are iproute2's named namespaces (/run/netns/NAME); "" means the
// namespace of the calling process.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "base/subprocess.h"

namespace offcore {

bool netnsExists(const std::string& name);
Status netnsAdd(const std::string& name);
// Missing namespaces are fine: deleting is idempotent.
Status netnsDelete(const std::string& name);
// Path usable by setns() and by `ip ... netns PATH`.
std::string netnsPath(const std::string& name);
// offcore's own named namespaces: SoCs (oc-*), the fabric, fabric hosts (ocf-*).
bool isOffcoreNetnsName(const std::string& name);
// A path a CNI caller gives as a pod's namespace must be a network namespace
// (nsfs), and neither the machine's root namespace, the caller's own, nor
// one of offcore's (compared by inode, so bind mounts and /proc paths count).
Status checkPodNetnsPath(const std::string& path);

// `ip [-n netns] args...`
Status ipCmd(const std::string& netns, std::vector<std::string> args);
Result<std::string> ipOutput(const std::string& netns, std::vector<std::string> args);
// Runs argv inside a named namespace (`ip netns exec`), e.g. sysctl or nft.
Status runInNetns(const std::string& netns, std::vector<std::string> argv, const std::string& stdin_data = "");
bool linkExists(const std::string& netns, const std::string& ifname);
Status linkDelete(const std::string& netns, const std::string& ifname);

// For SpawnOptions::in_child: setns into a named namespace.
Status enterNetns(const std::string& name);
// Joins the network namespace a handle (an nsfs bind mount) pins.
Status enterNetnsAt(const std::string& path);

struct LinkCounters {
  uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
};
Result<LinkCounters> linkCounters(const std::string& netns, const std::string& ifname);

}  // namespace offcore
