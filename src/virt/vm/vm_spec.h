// VmSpec: what `offcore vm create` records about a VM, and the pure
// functions around it: validation, JSON, and the QEMU command line the SoC
// launches in the host domain (every device vhost-user, RAM in a shared
// memfd so the SoC's back ends can map it).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::virt {

struct VmSpec {
  std::string name;  // [a-z0-9-], at most 32
  std::string node;  // the node whose SoC owns it
  int cpus = 1;
  uint64_t mem_bytes = 256ull << 20;
  std::string disk;     // nvme-tcp://ADDR:PORT/NQN, or an absolute path of a file
  int disk_queues = 0;  // 0: one per vCPU
  // The disk's virtqueue layout: "split" or "packed" (QEMU's packed=on,
  // VIRTIO_F_RING_PACKED). The NIC stays split (vhost-user-net offers no
  // packed ring yet).
  std::string disk_ring = "split";
  // A 0600 file with dhchap_secret=... for a volume that demands DH-HMAC-CHAP
  // (every node the VM may run on must be allowed with this secret).
  std::string disk_secret_file;
  std::string net;  // VPC/SUBNET, or "" for none
  // The NIC's address (IP/32) and MAC, from the node's agent on the first
  // `vm start` (a VM keeps them until `vm delete`, across migrations).
  std::string net_ip, net_mac;
  std::string kernel;  // direct kernel boot; "" boots from the disk (bootindex)
  std::string initrd;
  std::string append;
};

Status validateVmSpec(const VmSpec& spec);
nlohmann::json vmSpecToJson(const VmSpec& spec);
// Fails with the field at fault on a missing or mistyped member.
Result<VmSpec> vmSpecFromJson(const nlohmann::json& doc);

// Where a running VM's sockets and logs live: <run_root>/<node>/vms/<name>/.
struct VmPaths {
  std::string dir;
  std::string blk_socket;      // the vhost-user-blk back end listens here
  std::string net_socket;      // the vhost-user-net back end listens here
  std::string qmp_socket;      // QEMU's monitor
  std::string console_socket;  // the serial console (server, one client)
  std::string console_log;     // everything the guest printed
};
VmPaths vmPaths(const std::string& run_root, const std::string& node, const std::string& name);

struct QemuLaunch {
  std::string binary = "qemu-system-x86_64";
  bool incoming = false;  // wait for a migration stream (-incoming defer)
};

// The pod gateway every NIC routes through (the tap in the SoC answers ARP
// for it), and the MTU that leaves room for VXLAN.
inline constexpr const char* kVmNetGateway = "169.254.1.1";
inline constexpr int kVmNetMtu = 1450;

// The QEMU argv for spec, with its sockets in paths. A VM with a NIC gets a
// vhost-user virtio-net device, and with --kernel the kernel command line
// carries offcore.ip=IP/32 offcore.gw=GW offcore.mtu=N for the guest to
// configure eth0 from (scripts/guest: test scripts read /proc/cmdline).
std::vector<std::string> qemuArgv(const VmSpec& spec, const VmPaths& paths, const QemuLaunch& launch);

}  // namespace offcore::virt
