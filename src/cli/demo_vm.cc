// `offcore demo`, vm: a VM whose disk is an offcore volume served over
// vhost-user from the SoC (QEMU on the host keeps only the vCPUs), beside the
// same guest work with QEMU's own virtio-blk; then a live migration to a
// second node under guest writes, with the checksum and the downtime, while
// the VM's NIC (vhost-user-net in a VPC) pings its gateway.
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "base/files.h"
#include "base/json.h"
#include "cli/demo_common.h"
#include "nvme/auth/dhchap_key.h"

#ifndef OFFCORE_SOURCE_DIR
#define OFFCORE_SOURCE_DIR "."
#endif

namespace offcore::demo {

using nlohmann::json;

namespace {

// The guest's /test.sh: 16 MiB of random data with its sha256, then (unless
// oc.quick is on the command line) sequence-numbered O_DIRECT blocks that go
// on while the VM migrates, a check of every block, and the sha256 again.
const char* kGuestScript = R"SH(#!/bin/sh
dd if=/dev/urandom of=/tmp/r bs=1M count=16 2>/dev/null
dd if=/tmp/r of=/dev/vda bs=1M conv=fsync 2>/dev/null || echo "WRITE-ERR=16MiB"
SHA=$(sha256sum /tmp/r | cut -d' ' -f1)
# Per-MiB hashes of what was written, and of the disk read back with O_DIRECT
# before the migration: a mismatch later says which MiB and on which side.
mib() { m=0; while [ $m -lt 16 ]; do printf '%s ' "$(dd if="$1" bs=1M skip=$m count=1 $2 2>/dev/null | sha256sum | cut -c1-8)"; m=$((m + 1)); done; }
echo "MIBW=$(mib /tmp/r)"
echo "MIB0=$(mib /dev/vda iflag=direct)"
echo "SHA=$SHA"
rm /tmp/r
grep -q oc.quick /proc/cmdline && exit 0
# The NIC (the kit's /init set eth0 up from offcore.ip/gw): ping the
# gateway, the SoC behind the VM's tap, every 500 ms while the VM writes
# and migrates.
if [ -n "$OC_GW" ]; then
  ping -i 0.5 -W 1 "$OC_GW" 2>/dev/null | sed -n 's/.*seq=\([0-9]*\).*/PONG=\1/p' &
fi
i=1
while [ $i -le 3000 ]; do
  printf 'offcore-seq-%08d\n' $i >/tmp/b
  dd if=/tmp/b of=/dev/vda bs=4096 seek=$((4096 + i)) count=1 conv=sync,notrunc oflag=direct 2>/dev/null || { echo "WRITE-ERR=$i"; exit 1; }
  echo "ACK=$i"
  i=$((i + 1))
done
n=$(dd if=/dev/vda bs=4096 skip=4097 count=3000 iflag=direct 2>/dev/null | tr -d '\0' | grep -c '^offcore-seq-')
dd if=/dev/vda of=/tmp/s bs=1M count=16 iflag=direct 2>/dev/null || echo "READ-ERR=16MiB"
SHA2=$(sha256sum /tmp/s | cut -d' ' -f1)
rm /tmp/s
[ "$SHA2" = "$SHA" ] || echo "MIB2=$(mib /dev/vda iflag=direct)"
echo "SHA2=$SHA2"
echo "VERIFY=$n"
)SH";

// The last "KEY=value" line of a console log.
std::string lastValue(const std::string& log, const std::string& key) {
  std::ifstream in(log);
  std::string line, value;
  while (std::getline(in, line)) {
    if (line.rfind(key + "=", 0) == 0) value = trim(line.substr(key.size() + 1));
  }
  return value;
}

bool waitValue(const std::string& log, const std::string& key, int ms) {
  return waitFor([&] { return !lastValue(log, key).empty(); }, ms);
}

// Which MiB of the 16 differ from what was written (MIBW): read back on the
// source before the migration (MIB0) and on the destination after (MIB2);
// plus any I/O error the guest or its kernel reported.
std::string describeMismatch(const std::string& log_a, const std::string& log_b) {
  auto split = [](const std::string& v) {
    std::vector<std::string> out;
    std::istringstream in(v);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  };
  const auto want = split(lastValue(log_a, "MIBW"));
  auto differing = [&](const std::string& have_line) {
    const auto have = split(have_line);
    std::string out;
    for (size_t i = 0; i < want.size(); ++i) {
      if (i >= have.size() || have[i] != want[i]) out += (out.empty() ? "" : ",") + std::to_string(i);
    }
    return out.empty() ? std::string("none") : out;
  };
  std::string d = "MiB differing before the migration: " + differing(lastValue(log_a, "MIB0")) +
                  ", after: " + differing(lastValue(log_b, "MIB2"));
  for (const auto& key : {"WRITE-ERR", "READ-ERR"}) {
    for (const auto& log : {log_a, log_b}) {
      if (!lastValue(log, key).empty()) d += std::string(", guest ") + key + " " + lastValue(log, key);
    }
  }
  int kernel_errors = 0;
  for (const auto& log : {log_a, log_b}) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) kernel_errors += line.find("I/O error") != std::string::npos;
  }
  return d + ", " + std::to_string(kernel_errors) + " kernel I/O error lines";
}

// Copies the consoles and both disk back ends' logs out of what the cleanup
// removes; returns where.
std::string keepEvidence(Context& ctx, const std::string& vm, const std::vector<std::string>& consoles,
                         const std::vector<std::string>& nodes) {
  const std::string kept = "/var/tmp/offcore-vm-failure-" + ctx.id;
  if (!makeDirs(kept).ok()) return "(nowhere: " + kept + " could not be made)";
  const std::string run_root = ctx.cli.config.run_root;
  std::vector<std::pair<std::string, std::string>> files;
  for (size_t i = 0; i < consoles.size(); ++i) files.emplace_back(consoles[i], "console-" + std::to_string(i) + ".log");
  for (const auto& n : nodes) {
    files.emplace_back(run_root + "/" + n + "/vm-" + vm + "-blk.log", "blk-" + n + ".log");
    files.emplace_back(run_root + "/" + n + "/agent.log", "agent-" + n + ".log");
  }
  for (const auto& [from, to] : files) (void)runCapture({"cp", from, kept + "/" + to});
  return kept;
}

// kit.sh output + a layer with the guest script: the initrd.
Result<std::string> buildInitrd(Context& ctx, const std::string& dir, std::string* kernel) {
  const std::string kit = "/var/tmp/offcore-guest-kit";
  OC_TRY(run({std::string(OFFCORE_SOURCE_DIR) + "/scripts/guest/kit.sh", kit}));
  *kernel = kit + "/kernel";
  const std::string layer = dir + "/layer";
  OC_TRY(makeDirs(layer));
  OC_TRY(writeFileAtomic(layer + "/test.sh", kGuestScript, 0755));
  const std::string initrd = dir + "/initrd";
  OC_TRY(
      run({"sh", "-c",
           "cd '" + layer + "' && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > ../script.cpio.gz && cat '" +
               kit + "/base.cpio.gz' ../script.cpio.gz > '" + initrd + "'"}));
  return initrd;
}

}  // namespace

Status runVm(Context& ctx) {
  Cleanup undo("vm");
  const std::string dir = ctx.work + "/vm", self = ctx.self, node = ctx.node, id = ctx.id;
  const std::string node2 = node.substr(0, 6) + "-v", host = "dv" + id, vol = "vm" + id, vm = "demo" + id;
  const std::string run_root = ctx.cli.config.run_root;
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });

  auto t = Clock::now();
  std::string kernel;
  OC_ASSIGN_OR_RETURN(std::string initrd, buildInitrd(ctx, dir, &kernel));
  undo.add("node " + node2, [self, node2] { (void)runCapture({self, "dpu", "down", "--name", node2}); });
  OC_TRY(run({self, "dpu", "up", "--name", node2, "--host-netns", "dvh" + id}));
  OC_ASSIGN_OR_RETURN(StorageHost sh, startStorageHost(ctx, undo, host, dir));
  // Both nodes may attach the volume, proving the same DH-HMAC-CHAP secret.
  OC_ASSIGN_OR_RETURN(nvme::auth::DhchapKey key, nvme::auth::generateDhchapKey(0));
  const std::string secret = nvme::auth::formatDhchapKey(key), secret_file = dir + "/vm.secret";
  OC_TRY(writeFileAtomic(secret_file, "dhchap_secret=" + secret + "\n", 0600));
  std::vector<std::string> create{self, "volume", "create", vol, "--size", "256M", "--target", host};
  for (const auto& n : {node, node2}) {
    std::string nqn = "nqn.2026-11.io.offcore:node:" + n;
    create.insert(create.end(), {"--allow-host", nqn, "--host-secret", nqn + "=" + secret});
  }
  OC_TRY(run(create));
  undo.add("volume", [self, vol, host] { (void)runCapture({self, "volume", "delete", vol, "--target", host}); });
  const std::string uri = "nvme-tcp://" + sh.ip + ":4420/nqn.2026-11.io.offcore:" + host + ":" + vol;
  std::printf("guest kit, second node %s, storage host %s with volume %s (256 MiB) for both nodes (%.1f s)\n",
              node2.c_str(), host.c_str(), vol.c_str(), secondsSince(t));

  // Baseline: the same first half with QEMU's own virtio-blk on a local file.
  t = Clock::now();
  const std::string raw = dir + "/local.raw";
  OC_TRY(run({"truncate", "-s", "64M", raw}));
  CpuSample b0 = sampleCpu(ctx);
  OC_TRY(run({"qemu-system-x86_64",
              "-accel",
              "tcg",
              "-m",
              "256M",
              "-smp",
              "1",
              "-nodefaults",
              "-display",
              "none",
              "-no-reboot",
              "-kernel",
              kernel,
              "-initrd",
              initrd,
              "-append",
              "console=ttyS0 panic=-1 quiet oc.quick",
              "-serial",
              "file:" + dir + "/baseline.log",
              "-drive",
              "file=" + raw + ",format=raw,if=virtio,cache=none,aio=threads"},
             inDomain(ctx, Domain::kHost)));
  CpuSample b1 = sampleCpu(ctx);
  if (lastValue(dir + "/baseline.log", "SHA").empty()) {
    return makeError("the baseline guest did not finish; see " + dir + "/baseline.log");
  }
  double base_host = b1.host - b0.host, base_soc = b1.soc - b0.soc;
  std::printf("baseline, QEMU's own virtio-blk: boot + 16 MiB write in %.1f s; host %.2f cpu-s, SoC %.2f cpu-s\n",
              secondsSince(t), base_host, base_soc);

  // Its NIC: a VPC subnet; the VM's tap in the SoC is its representor.
  const std::string vpc = "dvm" + id, subnet = "dvs" + id;
  OC_TRY(writeFileAtomic(dir + "/net.yaml", "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: " + vpc +
                                                "}\n---\napiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: " +
                                                subnet + "}\nspec: {vpc: " + vpc + ", cidr: 10.64.0.0/24}\n"));
  undo.add("VPC and subnet", [self, dir] { (void)runCapture({self, "svc", "delete", "-f", dir + "/net.yaml"}); });
  OC_TRY(run({self, "svc", "apply", "-f", dir + "/net.yaml"}));

  // offcore: the SoC owns the VM; its disk is the volume over vhost-user.
  t = Clock::now();
  undo.add("VM " + vm, [self, vm] { (void)runCapture({self, "vm", "delete", vm, "--force"}); });
  OC_TRY(run({self, "vm", "create", vm, "--node", node, "--disk", uri, "--disk-secret-file", secret_file, "--net",
              vpc + "/" + subnet, "--kernel", kernel, "--initrd", initrd, "--append", "console=ttyS0 panic=-1 quiet"}));
  CpuSample a0 = sampleCpu(ctx);
  OC_TRY(run({self, "vm", "start", vm}));
  const std::string log_a = run_root + "/" + node + "/vms/" + vm + "/console.log";
  const std::string log_b = run_root + "/" + node2 + "/vms/" + vm + "/console.log";
  if (!waitValue(log_a, "SHA", 90000)) {
    OC_TRY(checkInterrupted());
    return makeError("the VM did not write its data; see " + log_a);
  }
  CpuSample a1 = sampleCpu(ctx);
  const std::string sha = lastValue(log_a, "SHA");
  std::printf(
      "offcore: VM %s on node %s, disk = volume over NVMe/TCP, served by vhost-user from the SoC: boot + 16 MiB "
      "write in %.1f s; host %.2f cpu-s (vCPUs only), SoC %.2f cpu-s (virtio-blk + NVMe/TCP initiator, "
      "virtio-net)\n",
      vm.c_str(), node.c_str(), secondsSince(t), a1.host - a0.host, a1.soc - a0.soc);
  std::printf("  sha256 %s\n", sha.c_str());

  // Live migration under O_DIRECT writes.
  if (!waitFor([&] { return std::atoi(lastValue(log_a, "ACK").c_str()) >= 100; }, 60000)) {
    OC_TRY(checkInterrupted());
    return makeError("the guest's writer did not start; see " + log_a);
  }
  auto vmIp = [&]() -> std::string {
    auto out = output({self, "vm", "list", "--json"});
    auto doc = out.ok() ? json::parse(*out, nullptr, false) : json();
    if (!doc.is_array()) return "";
    for (const auto& v : doc) {
      if (v.value("name", "") == vm) return v.value("net_ip", "");
    }
    return "";
  };
  const std::string ip_before = vmIp();
  OC_ASSIGN_OR_RETURN(std::string mig, output({self, "vm", "migrate", vm, "--to", node2, "--json"}));
  auto m = json::parse(mig, nullptr, false);
  if (m.is_discarded()) return makeError("vm migrate printed no figures: " + mig);
  const std::string switched_at = lastValue(log_a, "ACK");
  if (!waitValue(log_b, "VERIFY", 120000)) {
    OC_TRY(checkInterrupted());
    return makeError("the VM did not finish on node " + node2 + "; see " + log_b);
  }
  const std::string sha2 = lastValue(log_b, "SHA2"), verified = lastValue(log_b, "VERIFY");
  if (sha2 != sha) {
    const std::string kept = keepEvidence(ctx, vm, {log_a, log_b}, {node, node2});
    return makeError("the data changed across the migration: sha256 " + sha2 + ", wrote " + sha +
                     " (switch after block " + lastValue(log_a, "ACK") + ", " + verified +
                     " of 3000 sequence blocks read back; " + describeMismatch(log_a, log_b) + "; logs kept in " +
                     kept + ")");
  }
  if (verified != "3000") return makeError("the guest read back " + verified + " of 3000 acknowledged blocks");
  std::printf(
      "migrated to node %s under guest O_DIRECT writes (switch after block %s): downtime %d ms, memory copy %d ms, "
      "total %d ms; after the switch all 3000 acknowledged blocks read back and sha256 matches\n",
      node2.c_str(), switched_at.c_str(), m.value("downtime_ms", -1), m.value("qemu_total_ms", -1),
      m.value("total_ms", -1));
  // The NIC's flow across the switch: ping sequence numbers seen on either
  // side; the ones missing are what the migration cost it.
  std::set<int> seqs;
  for (const auto& log : {log_a, log_b}) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("PONG=", 0) == 0) seqs.insert(std::atoi(line.c_str() + 5));
    }
  }
  if (seqs.size() < 2) return makeError("the VM's NIC answered no pings; see " + log_a + " and " + log_b);
  const std::string ip_after = vmIp();
  if (ip_before.empty() || ip_after != ip_before) {
    return makeError("the VM's address changed across the migration: " + ip_before + " -> " + ip_after);
  }
  const int sent = *seqs.rbegin() - *seqs.begin() + 1;
  std::printf(
      "its NIC (vhost-user-net from the SoC, VPC %s): %zu of %d pings to its gateway answered across the "
      "migration; address %s on node %s as on node %s\n",
      vpc.c_str(), seqs.size(), sent, ip_after.c_str(), node2.c_str(), node.c_str());
  std::printf("(QEMU runs TCG here: the host's cpu-seconds are mostly instruction emulation, the same either way)\n");
  return okStatus();
}

}  // namespace offcore::demo
