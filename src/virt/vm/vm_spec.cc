#include "virt/vm/vm_spec.h"

#include <algorithm>
#include <cctype>

namespace offcore::virt {

using nlohmann::json;

namespace {

bool validName(const std::string& s) {
  if (s.empty() || s.size() > 32 || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

bool noComma(const std::string& s) { return s.find(',') == std::string::npos; }

bool validMac(const std::string& s) {
  if (s.size() != 17) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool colon = i % 3 == 2;
    if (colon != (s[i] == ':')) return false;
    if (!colon && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// a.b.c.d/n: digits, dots and one slash (it reaches the kernel command line).
bool validCidr(const std::string& s) {
  if (s.empty() || s.size() > 18 || std::count(s.begin(), s.end(), '/') != 1) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '/'; });
}

}  // namespace

Status validateVmSpec(const VmSpec& s) {
  if (!validName(s.name)) return makeError("VM name '" + s.name + "' must be 1-32 of [a-z0-9-]");
  if (s.node.empty()) return makeError("VM " + s.name + ": --node is required");
  // The node names paths that reach QEMU's options: same charset as VM names.
  if (!validName(s.node) || s.node.size() > 10) return makeError("VM " + s.name + ": bad node name '" + s.node + "'");
  if (s.cpus < 1 || s.cpus > 64) return makeError("VM " + s.name + ": --cpus must be 1..64");
  if (s.mem_bytes < (64ull << 20) || s.mem_bytes > (64ull << 30) || s.mem_bytes % (2ull << 20) != 0) {
    return makeError("VM " + s.name + ": --mem must be a multiple of 2M between 64M and 64G");
  }
  if (s.disk.empty()) return makeError("VM " + s.name + ": --disk is required (nvme-tcp://... or a file path)");
  if (s.disk.rfind("nvme-tcp://", 0) != 0 && s.disk.front() != '/') {
    return makeError("VM " + s.name + ": --disk must be nvme-tcp://ADDR:PORT/NQN or an absolute file path");
  }
  if (!s.disk_secret_file.empty() && (s.disk_secret_file.front() != '/' || s.disk.rfind("nvme-tcp://", 0) != 0)) {
    return makeError("VM " + s.name + ": --disk-secret-file must be an absolute path, for an nvme-tcp:// disk");
  }
  if (s.disk_queues < 0 || s.disk_queues > 64) return makeError("VM " + s.name + ": disk queues must be 0..64");
  if (s.disk_ring != "split" && s.disk_ring != "packed") {
    return makeError("VM " + s.name + ": --disk-ring must be split or packed, not '" + s.disk_ring + "'");
  }
  if (!s.net.empty() && std::count(s.net.begin(), s.net.end(), '/') != 1) {
    return makeError("VM " + s.name + ": --net must be VPC/SUBNET");
  }
  if (!s.net_mac.empty() && !validMac(s.net_mac))
    return makeError("VM " + s.name + ": bad NIC MAC '" + s.net_mac + "'");
  if (!s.net_ip.empty() && !validCidr(s.net_ip))
    return makeError("VM " + s.name + ": bad NIC address '" + s.net_ip + "'");
  if (s.kernel.empty() && (!s.initrd.empty() || !s.append.empty())) {
    return makeError("VM " + s.name + ": --initrd and --append need --kernel");
  }
  // QEMU's option syntax splits on commas; paths reach it inside options.
  for (const auto* p : {&s.disk, &s.kernel, &s.initrd}) {
    if (!noComma(*p)) return makeError("VM " + s.name + ": paths may not contain ',' (" + *p + ")");
  }
  return okStatus();
}

json vmSpecToJson(const VmSpec& s) {
  return json{{"name", s.name},
              {"node", s.node},
              {"cpus", s.cpus},
              {"mem_bytes", s.mem_bytes},
              {"disk", s.disk},
              {"disk_queues", s.disk_queues},
              {"disk_ring", s.disk_ring},
              {"disk_secret_file", s.disk_secret_file},
              {"net", s.net},
              {"net_ip", s.net_ip},
              {"net_mac", s.net_mac},
              {"kernel", s.kernel},
              {"initrd", s.initrd},
              {"append", s.append}};
}

Result<VmSpec> vmSpecFromJson(const json& doc) {
  if (!doc.is_object()) return makeError("VM record is not a JSON object");
  VmSpec s;
  auto str = [&](const char* key, std::string& out) -> Status {
    auto it = doc.find(key);
    if (it == doc.end()) return okStatus();
    if (!it->is_string()) return makeError(std::string("VM record: '") + key + "' must be a string");
    out = it->get<std::string>();
    return okStatus();
  };
  auto num = [&](const char* key, auto& out) -> Status {
    auto it = doc.find(key);
    if (it == doc.end()) return okStatus();
    bool ok = it->is_number_unsigned() || (it->is_number_integer() && it->template get<int64_t>() >= 0);
    if (!ok) return makeError(std::string("VM record: '") + key + "' must be a number");
    out = it->get<std::decay_t<decltype(out)>>();
    return okStatus();
  };
  OC_TRY(str("name", s.name));
  OC_TRY(str("node", s.node));
  OC_TRY(num("cpus", s.cpus));
  OC_TRY(num("mem_bytes", s.mem_bytes));
  OC_TRY(str("disk", s.disk));
  OC_TRY(num("disk_queues", s.disk_queues));
  OC_TRY(str("disk_ring", s.disk_ring));  // records from before it: split
  OC_TRY(str("disk_secret_file", s.disk_secret_file));
  OC_TRY(str("net", s.net));
  OC_TRY(str("net_ip", s.net_ip));
  OC_TRY(str("net_mac", s.net_mac));
  OC_TRY(str("kernel", s.kernel));
  OC_TRY(str("initrd", s.initrd));
  OC_TRY(str("append", s.append));
  OC_TRY(validateVmSpec(s));
  return s;
}

VmPaths vmPaths(const std::string& run_root, const std::string& node, const std::string& name) {
  VmPaths p;
  p.dir = run_root + "/" + node + "/vms/" + name;
  p.blk_socket = p.dir + "/blk.sock";
  p.net_socket = p.dir + "/net.sock";
  p.qmp_socket = p.dir + "/qmp.sock";
  p.console_socket = p.dir + "/console.sock";
  p.console_log = p.dir + "/console.log";
  return p;
}

std::vector<std::string> qemuArgv(const VmSpec& s, const VmPaths& p, const QemuLaunch& launch) {
  std::string mem = std::to_string(s.mem_bytes >> 20) + "M";
  int queues = s.disk_queues > 0 ? s.disk_queues : s.cpus;
  std::vector<std::string> a{
      launch.binary, "-name", s.name, "-machine", "pc,accel=kvm:tcg", "-smp", std::to_string(s.cpus), "-m", mem,
      // The back ends map guest RAM: it must be a shared memfd.
      "-object", "memory-backend-memfd,id=mem0,size=" + mem + ",share=on", "-numa", "node,memdev=mem0", "-nodefaults",
      "-no-user-config", "-display", "none",
      // reconnect: a restarted back end is picked up again (it resubmits what was in flight: INFLIGHT_SHMFD).
      "-chardev", "socket,id=blk0,path=" + p.blk_socket + ",reconnect=1", "-device",
      "vhost-user-blk-pci,chardev=blk0,num-queues=" + std::to_string(queues) +
          (s.disk_ring == "packed" ? ",packed=on" : "") + (s.kernel.empty() ? ",bootindex=1" : ""),
      "-chardev", "socket,id=con0,path=" + p.console_socket + ",server=on,wait=off,logfile=" + p.console_log, "-serial",
      "chardev:con0", "-qmp", "unix:" + p.qmp_socket + ",server=on,wait=off"};
  bool nic = !s.net.empty() && !s.net_mac.empty();
  if (nic) {
    // vectors=0: QEMU 7.2's vhost-user-net crashes with MSI-X under TCG.
    a.insert(a.end(), {"-chardev", "socket,id=net0c,path=" + p.net_socket + ",reconnect=1", "-netdev",
                       "vhost-user,id=net0,chardev=net0c", "-device",
                       "virtio-net-pci,netdev=net0,mac=" + s.net_mac + ",vectors=0"});
  }
  if (!s.kernel.empty()) {
    a.insert(a.end(), {"-kernel", s.kernel});
    if (!s.initrd.empty()) a.insert(a.end(), {"-initrd", s.initrd});
    std::string append = s.append.empty() ? "console=ttyS0" : s.append;
    if (nic && !s.net_ip.empty()) {
      append += std::string(" offcore.ip=") + s.net_ip + " offcore.gw=" + kVmNetGateway +
                " offcore.mtu=" + std::to_string(kVmNetMtu);
    }
    a.insert(a.end(), {"-append", append});
  }
  if (launch.incoming) a.insert(a.end(), {"-incoming", "defer"});
  return a;
}

}  // namespace offcore::virt
