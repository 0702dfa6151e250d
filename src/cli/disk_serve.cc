// `offcore disk serve`: the SoC side of a disk, run as a supervised service
// of the node's agent: the NVMe/TCP initiator and the FUSE block file, whose
// connection is parked in the node's fd keeper so a restart is a pause.
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/disk_common.h"
#include "disk/fuse_disk.h"
#include "disk/kept_disk.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host.h"
#include "nvme/host/host_identity.h"

namespace offcore {

using nlohmann::json;

namespace {

std::chrono::milliseconds secondsOrOff(int s) { return std::chrono::milliseconds(s < 0 ? -1 : s * 1000LL); }

}  // namespace

int serveDisk(const CliContext& ctx, const std::string& uri, const std::string& file, const std::string& node,
              int queues, int depth, const DiskTimeouts& timeouts, const std::string& secret_file) {
  auto d = parseDiskUri(uri);
  if (!d.ok()) return fail("disk serve", d.error());
  nvme::HostOptions o;
  if (!secret_file.empty()) {
    if (auto s = loadHostSecrets(secret_file, o); !s.ok()) return fail("disk serve", s.error());
  }
  // Stop signals go to the signalfd only: block them before threads start.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  o.host_nqn = nvme::nodeHostNqn(node);
  o.host_id = nvme::nodeHostId(node);
  // One queue per cpu the service may run on (the SoC's cpuset), like
  // Linux's one nvme-tcp queue per cpu: more queues than cpus only add
  // reader threads that take turns on the same cpu.
  if (queues <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    queues = ::sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set)) : 1;
  }
  o.io_queues = queues;
  // One loop thread reads /dev/fuse and the queues' sockets (FuseDisk's polled
  // loop): no hand-off between a FUSE worker and a queue's reader per I/O.
  o.polled = true;
  o.queue_depth = static_cast<uint32_t>(depth);
  o.io_timeout = std::chrono::seconds(timeouts.io);
  o.fast_io_fail = secondsOrOff(timeouts.fast_io_fail);
  o.ctrl_loss_timeout = secondsOrOff(timeouts.ctrl_loss);
  auto host = nvme::NvmeTcpHost::connect(d->address, d->port, d->nqn, o);
  if (!host.ok()) return fail("disk serve", host.error());
  // One FUSE worker per command the queues can carry, so a deep fio or a
  // loop device with --direct-io=on keeps every queue slot busy.
  FuseDiskOptions fo;
  fo.max_threads = static_cast<unsigned>(std::clamp(queues * depth, 4, 64));
  // The connection is parked in the node's fd keeper: after a crash of this
  // process, the agent's restart adopts it and the host sees a pause.
  const std::string keeper = diskKeeper(ctx, node);
  auto kept = mountKept(keeper, keptName(file), file, *host, fo);
  if (!kept.ok()) return fail("disk serve", kept.error());
  auto* disk = &kept->disk;
  json info{
      {"uri", uri},
      {"nqn", d->nqn},
      {"file", file},
      {"size_bytes", (*host)->sizeBytes()},
      {"block_size", (*host)->blockSize()},
      {"host_nqn", o.host_nqn},
      {"pid", ::getpid()},
      {"adopted", kept->adopted},
      {"io_timeout_s", timeouts.io},
      {"fast_io_fail_s", timeouts.fast_io_fail},
      {"ctrl_loss_timeout_s", timeouts.ctrl_loss},
      {"state", nvme::hostStateName((*host)->state())},
      {"auth", o.dhchap_secret ? (o.dhchap_ctrl_secret ? "DH-HMAC-CHAP (bidirectional)" : "DH-HMAC-CHAP") : "none"}};
  // The record is how `disk list`, `disk detach` and the attaching CLI find
  // this disk: a disk without one would be served but unmanageable.
  if (auto rec = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !rec.ok()) {
    releaseKept(keeper, keptName(file));
    disk->reset();
    (*host)->close();
    return fail("disk serve", rec.error().wrap("record the disk"));
  }
  std::printf("disk %s: %s (%llu bytes) via %s:%u%s\n", file.c_str(), d->nqn.c_str(),
              static_cast<unsigned long long>((*host)->sizeBytes()), d->address.c_str(), d->port,
              kept->adopted ? ", took over the connection of the previous process" : "");
  std::fflush(stdout);
  // Until stopped, the record follows the initiator's state (live,
  // reconnecting, failed), so `disk list` shows a lost path.
  auto state = (*host)->state();
  const timespec tick{0, 250 * 1000 * 1000};
  while (::sigtimedwait(&mask, nullptr, &tick) < 0) {
    if ((*host)->state() == state) continue;
    state = (*host)->state();
    info["state"] = nvme::hostStateName(state);
    if (auto w = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !w.ok()) {
      spdlog::warn("disk {}: {}", file, w.error().message);
    }
  }
  releaseKept(keeper, keptName(file));  // stopped on purpose: the connection ends with us
  disk->reset();                        // unmount first, then drop the association
  (*host)->close();
  std::remove((file + ".json").c_str());
  return 0;
}

}  // namespace offcore
