// `offcore vm blk-serve`: a vhost-user-blk back end in the SoC. QEMU on the
// host keeps the vCPUs and connects its vhost-user-blk-pci device to the
// socket; the virtqueues are served here, from a file or an NVMe/TCP
// namespace. `vm start` runs it as an agent service (blkServeArgv).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "base/log.h"
#include "block/block_device.h"
#include "cli/common.h"
#include "cli/disk_common.h"
#include "cli/vm_common.h"
#include "disk/file_block_device.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host.h"
#include "nvme/host/host_identity.h"
#include "virt/blk/virtio_blk.h"
#include "virt/vhost/server.h"

namespace offcore {
namespace {

struct BlkServeOpts {
  std::string socket, file, volume, serial = "offcore", node, secretFile;
  int queues = 1;
  bool readOnly = false;
  uint32_t coalesceUs = 0, coalesceIops = 0, pollUs = 0;
};

// The block device behind the disk, and what closes it.
struct Backing {
  std::shared_ptr<BlockDevice> dev;
  std::shared_ptr<nvme::NvmeTcpHost> host;  // set for --volume
  std::string describe;
};

Result<Backing> openBacking(const BlkServeOpts& o) {
  Backing b;
  if (!o.file.empty()) {
    OC_ASSIGN_OR_RETURN(auto f, FileBlockDevice::open(o.file, 512));
    if (f->readOnly() && !o.readOnly) {
      return makeError(o.file + " is not writable; fix its permissions or pass --read-only");
    }
    b.dev = f;
    b.describe = o.file;
    return b;
  }
  OC_ASSIGN_OR_RETURN(auto uri, parseDiskUri(o.volume));
  nvme::HostOptions ho;
  // The node's host NQN and ID, as `disk serve` uses: a volume's allow list
  // names nodes.
  if (!o.node.empty()) {
    ho.host_nqn = nvme::nodeHostNqn(o.node);
    ho.host_id = nvme::nodeHostId(o.node);
  }
  ho.io_queues = o.queues;
  if (!o.secretFile.empty()) OC_TRY(loadHostSecrets(o.secretFile, ho));
  OC_ASSIGN_OR_RETURN(auto host, nvme::NvmeTcpHost::connect(uri.address, uri.port, uri.nqn, ho));
  b.dev = host;
  b.host = host;
  b.describe = o.volume;
  return b;
}

int blkServe(const BlkServeOpts& o) {
  const char* what = "vm blk-serve";
  if (o.file.empty() == o.volume.empty()) return fail(what, makeError("give exactly one of --file and --volume"));
  if (o.queues < 1 || o.queues > 64) return fail(what, makeError("--queues must be 1..64"));
  if (o.serial.size() > 20) return fail(what, makeError("--serial is at most 20 bytes (virtio-blk GET_ID)"));
  // Stop signals go to sigtimedwait only: block them before threads start.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  auto backing = openBacking(o);
  if (!backing.ok()) return fail(what, backing.error());
  virt::VirtioBlkOptions bo;
  bo.serial = o.serial;
  bo.numQueues = static_cast<uint16_t>(o.queues);
  bo.readOnly = o.readOnly;
  bo.coalescing = {o.coalesceUs, o.coalesceIops};
  bo.pollUs = o.pollUs;
  auto device = virt::makeVirtioBlk(*backing->dev, bo);
  auto server = virt::VhostUserServer::listen(o.socket, *device);
  if (!server.ok()) {
    if (backing->host) backing->host->close();
    return fail(what, server.error());
  }
  std::printf("vhost-user-blk on %s: %s (%llu bytes, %d queue%s%s)\n", o.socket.c_str(), backing->describe.c_str(),
              static_cast<unsigned long long>(backing->dev->sizeBytes()), o.queues, o.queues == 1 ? "" : "s",
              o.readOnly ? ", read-only" : "");
  std::fflush(stdout);

  Status ran = serveUntilSignal(**server, mask, "vm blk-serve");
  server->reset();  // removes the socket file
  if (backing->host) backing->host->close();
  if (!ran.ok()) return fail(what, ran.error());
  return 0;
}

}  // namespace

void registerVmBlkServe(CLI::App& vm, CliContext& ctx) {
  auto o = std::make_shared<BlkServeOpts>();
  auto* blk = vm.add_subcommand("blk-serve", "serve a virtio-blk disk to QEMU over a vhost-user socket");
  blk->add_option("--socket", o->socket, "unix socket QEMU connects to (-chardev socket,path=...)")->required();
  blk->add_option("--file", o->file, "a file or block device to serve");
  blk->add_option("--volume", o->volume, "an NVMe/TCP namespace to serve: nvme-tcp://ADDR[:PORT]/NQN");
  blk->add_option("--secret-file", o->secretFile,
                  "DH-HMAC-CHAP secrets for --volume (0600; as `disk serve` reads them)");
  blk->add_option("--node", o->node, "the node whose host NQN --volume connects with (the volume's allow list)");
  blk->add_option("--queues", o->queues, "virtqueues offered (QEMU's num-queues may be lower)");
  blk->add_flag("--read-only", o->readOnly, "offer a read-only disk (VIRTIO_BLK_F_RO)");
  blk->add_option("--serial", o->serial, "the disk's serial (GET_ID, at most 20 bytes)");
  blk->add_option("--coalesce-us", o->coalesceUs,
                  "interrupt coalescing: hold a queue's interrupt up to this many microseconds after its ring ran "
                  "empty, so one interrupt covers the requests the guest posts meanwhile (0: off)")
      ->check(CLI::Range(0, 1000));
  blk->add_option("--poll-us", o->pollUs,
                  "adaptive polling: after a queue's ring runs empty, keep looking at it this many microseconds "
                  "(guest kicks stay off, so a guest posting within the window pays no VM exit) before sleeping; "
                  "the window's CPU is the SoC's (0: sleep at once)")
      ->check(CLI::Range(0, 1000));
  blk->add_option("--coalesce-iops", o->coalesceIops,
                  "coalesce only while a queue completes at least this many requests per second (measured over "
                  "10 ms), so a guest waiting on each request is never delayed");
  blk->callback([&ctx, o] { ctx.action = [o] { return blkServe(*o); }; });
}

}  // namespace offcore
