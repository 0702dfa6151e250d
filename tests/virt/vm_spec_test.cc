#include "virt/vm/vm_spec.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace offcore::virt {
namespace {

VmSpec good() {
  VmSpec s;
  s.name = "vm1";
  s.node = "a";
  s.cpus = 2;
  s.mem_bytes = 512ull << 20;
  s.disk = "/var/lib/disk.raw";
  s.kernel = "/k/vmlinuz";
  s.initrd = "/k/initrd";
  return s;
}

bool has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST(VmSpec, ValidatesNamesSizesAndDisks) {
  EXPECT_TRUE(validateVmSpec(good()).ok());
  auto bad = [](auto mutate) {
    VmSpec s = good();
    mutate(s);
    return validateVmSpec(s);
  };
  EXPECT_FALSE(bad([](VmSpec& s) { s.name = "VM_1"; }).ok());
  EXPECT_FALSE(bad([](VmSpec& s) { s.name = "-x"; }).ok());
  EXPECT_FALSE(bad([](VmSpec& s) { s.cpus = 0; }).ok());
  EXPECT_FALSE(bad([](VmSpec& s) { s.mem_bytes = 100ull << 20 | 1; }).ok());
  EXPECT_FALSE(bad([](VmSpec& s) { s.disk = "relative.raw"; }).ok());
  EXPECT_FALSE(bad([](VmSpec& s) { s.disk = "/a,b.raw"; }).ok()) << "a comma would split QEMU's option";
  EXPECT_FALSE(bad([](VmSpec& s) { s.node = "a,server=on"; }).ok()) << "the node names the socket paths";
  EXPECT_FALSE(bad([](VmSpec& s) { s.kernel.clear(); }).ok()) << "--initrd without --kernel";
  EXPECT_TRUE(bad([](VmSpec& s) { s.disk = "nvme-tcp://10.77.1.2:4420/nqn.x:vol"; }).ok());
}

TEST(VmSpec, JsonRoundTripAndTypedErrors) {
  auto back = vmSpecFromJson(vmSpecToJson(good()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->mem_bytes, good().mem_bytes);
  EXPECT_EQ(back->kernel, "/k/vmlinuz");
  auto doc = vmSpecToJson(good());
  doc["cpus"] = "two";
  auto e = vmSpecFromJson(doc);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("cpus"), std::string::npos);
  EXPECT_FALSE(vmSpecFromJson(nlohmann::json::array()).ok());
}

TEST(VmSpec, QemuGetsSharedMemoryAndOnlyVhostUserDevices) {
  VmSpec s = good();
  auto p = vmPaths("/run/offcore", "a", "vm1");
  EXPECT_EQ(p.blk_socket, "/run/offcore/a/vms/vm1/blk.sock");
  auto argv = qemuArgv(s, p, QemuLaunch{});
  EXPECT_TRUE(has(argv, "memory-backend-memfd,id=mem0,size=512M,share=on"));
  EXPECT_TRUE(has(argv, "socket,id=blk0,path=/run/offcore/a/vms/vm1/blk.sock,reconnect=1"));
  EXPECT_TRUE(has(argv, "vhost-user-blk-pci,chardev=blk0,num-queues=2")) << "one queue per vCPU by default";
  EXPECT_TRUE(has(argv, "-nodefaults"));
  EXPECT_TRUE(has(argv, "/k/initrd"));
  EXPECT_FALSE(has(argv, "-incoming"));
  for (const auto& a : argv) EXPECT_EQ(a.find("if=virtio"), std::string::npos) << "no in-QEMU disk";

  s.kernel.clear();
  s.initrd.clear();
  s.disk_queues = 1;
  argv = qemuArgv(s, p, QemuLaunch{"qemu", true});
  EXPECT_TRUE(has(argv, "vhost-user-blk-pci,chardev=blk0,num-queues=1,bootindex=1"));
  EXPECT_TRUE(has(argv, "-incoming"));
  EXPECT_FALSE(has(argv, "-kernel"));
}

TEST(VmSpec, APackedDiskRingIsRecordedAndAskedOfQemuOnlyForTheDisk) {
  VmSpec s = good();
  EXPECT_EQ(s.disk_ring, "split");
  auto p = vmPaths("/run/offcore", "a", "vm1");
  EXPECT_TRUE(has(qemuArgv(s, p, QemuLaunch{}), "vhost-user-blk-pci,chardev=blk0,num-queues=2"));
  s.disk_ring = "packed";
  s.net = "vpc/sub";
  s.net_mac = "52:54:00:12:34:56";
  ASSERT_TRUE(validateVmSpec(s).ok());
  auto argv = qemuArgv(s, p, QemuLaunch{});
  EXPECT_TRUE(has(argv, "vhost-user-blk-pci,chardev=blk0,num-queues=2,packed=on"));
  for (const auto& a : argv) {
    if (a.rfind("virtio-net-pci", 0) == 0) {
      EXPECT_EQ(a.find("packed"), std::string::npos) << a;
    }
  }
  auto back = vmSpecFromJson(vmSpecToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->disk_ring, "packed");
  // A record written before the field existed is split.
  auto doc = vmSpecToJson(good());
  doc.erase("disk_ring");
  back = vmSpecFromJson(doc);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->disk_ring, "split");
  s.disk_ring = "ring";
  EXPECT_FALSE(validateVmSpec(s).ok());
  doc["disk_ring"] = 1;
  EXPECT_FALSE(vmSpecFromJson(doc).ok());
}

TEST(VmSpec, ANicIsVhostUserNetWithItsAddressOnTheKernelCommandLine) {
  VmSpec s = good();
  auto p = vmPaths("/run/offcore", "a", "vm1");
  s.net = "vpc1/sub1";
  auto argv = qemuArgv(s, p, QemuLaunch{});
  EXPECT_FALSE(has(argv, "vhost-user,id=net0,chardev=net0c")) << "no NIC before the agent gave it a MAC";
  s.net_ip = "10.61.1.5/32";
  s.net_mac = "02:0d:aa:bb:cc:dd";
  ASSERT_TRUE(validateVmSpec(s).ok());
  argv = qemuArgv(s, p, QemuLaunch{});
  EXPECT_TRUE(has(argv, "socket,id=net0c,path=/run/offcore/a/vms/vm1/net.sock,reconnect=1"));
  EXPECT_TRUE(has(argv, "vhost-user,id=net0,chardev=net0c"));
  EXPECT_TRUE(has(argv, "virtio-net-pci,netdev=net0,mac=02:0d:aa:bb:cc:dd,vectors=0")) << "QEMU 7.2: no MSI-X";
  bool cmdline = false;
  for (const auto& a : argv)
    cmdline |= a.find("offcore.ip=10.61.1.5/32 offcore.gw=169.254.1.1 offcore.mtu=1450") != std::string::npos;
  EXPECT_TRUE(cmdline);

  auto back = vmSpecFromJson(vmSpecToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->net_mac, s.net_mac);
  EXPECT_EQ(back->net_ip, s.net_ip);
  auto old = vmSpecToJson(good());
  old.erase("net_ip");
  old.erase("net_mac");
  EXPECT_TRUE(vmSpecFromJson(old).ok()) << "records from before NICs load";
  VmSpec v = s;
  v.net_mac = "02:0d:aa:bb:cc";
  EXPECT_FALSE(validateVmSpec(v).ok());
  v = s;
  v.net_ip = "10.0.0.1/32 init=/bin/sh";
  EXPECT_FALSE(validateVmSpec(v).ok()) << "nothing else reaches the kernel command line";
}

}  // namespace
}  // namespace offcore::virt
