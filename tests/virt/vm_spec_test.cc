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

}  // namespace
}  // namespace offcore::virt
