// `offcore disk serve`: the SoC side of a disk, run as a supervised service
// of the node's agent: the NVMe/TCP initiator and the FUSE block file, whose
// connection is parked in the node's fd keeper so a restart is a pause.
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "cli/disk_common.h"
#include "disk/fuse_disk.h"
#include "disk/kept_disk.h"
#include "nexus/claim.h"
#include "nexus/late_replica.h"
#include "nexus/nexus.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/host/host.h"
#include "nvme/host/host_identity.h"
#include "volumes/open.h"

namespace offcore {

using nlohmann::json;

namespace {

std::chrono::milliseconds secondsOrOff(int s) { return std::chrono::milliseconds(s < 0 ? -1 : s * 1000LL); }

}  // namespace

namespace {

json nexusJson(const nexus::NexusStatus& st, const std::vector<std::string>& uris) {
  json reps = json::array();
  for (size_t i = 0; i < st.replicas.size(); ++i) {
    const auto& r = st.replicas[i];
    json j{{"uri", i < uris.size() ? uris[i] : ""},
           {"state", nexus::replicaStateName(r.state)},
           {"missed_bytes", r.missed_bytes},
           {"errors", r.errors},
           {"reads", r.reads},
           {"writes", r.writes}};
    if (r.rebuild_total_bytes) {
      j["rebuild"] = {{"done_bytes", r.rebuild_done_bytes}, {"total_bytes", r.rebuild_total_bytes}};
    }
    if (!r.last_error.empty()) j["last_error"] = r.last_error;
    reps.push_back(std::move(j));
  }
  return {{"state", st.state}, {"generation", st.generation}, {"replicas", std::move(reps)}};
}

// Another nexus may claim the replicas soon (etcd: our lease may run out):
// stop now, as a handover does: nothing waiting is lost (the next process
// gets it resent), nothing more leaves. The agent restarts us; that start
// claims again, or fails until it can.
[[noreturn]] void exitClaimLost(const std::string& file, const std::string& why) {
  spdlog::error("disk {}: the replicas' claim may be lost ({}): stopping; the restart claims again", file, why);
  std::fflush(nullptr);
  std::_Exit(75);
}

}  // namespace

int serveDisk(const CliContext& ctx, const DiskServeSpec& spec) {
  std::vector<std::string> uris{spec.uri};
  uris.insert(uris.end(), spec.replicas.begin(), spec.replicas.end());
  std::vector<nvme::NvmeUri> targets;
  for (const auto& u : uris) {
    auto d = parseDiskUri(u);
    if (!d.ok()) return fail("disk serve", d.error());
    targets.push_back(*d);
  }
  if (uris.size() > 1 && spec.journal.empty()) {
    return fail("disk serve", makeError("a disk with replicas needs --journal"));
  }
  nvme::HostOptions o;
  if (!spec.secret_file.empty()) {
    if (auto s = loadHostSecrets(spec.secret_file, o); !s.ok()) return fail("disk serve", s.error());
  }
  // Stop signals go to the signalfd only: block them before threads start.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);  // hand over to the next process (new argv: `volume replica add/remove`)
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  o.host_nqn = nvme::nodeHostNqn(spec.node);
  o.host_id = nvme::nodeHostId(spec.node);
  // One queue per cpu the service may run on (the SoC's cpuset), like
  // Linux's one nvme-tcp queue per cpu: more queues than cpus only add
  // reader threads that take turns on the same cpu.
  int queues = spec.queues;
  if (queues <= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    queues = ::sched_getaffinity(0, sizeof set, &set) == 0 ? std::max(1, CPU_COUNT(&set)) : 1;
  }
  o.io_queues = queues;
  // One loop thread reads /dev/fuse and the queues' sockets (FuseDisk's polled
  // loop): no hand-off between a FUSE worker and a queue's reader per I/O.
  o.polled = true;
  o.queue_depth = static_cast<uint32_t>(spec.depth);
  o.io_timeout = std::chrono::seconds(spec.timeouts.io);
  o.fast_io_fail = secondsOrOff(spec.timeouts.fast_io_fail);
  o.ctrl_loss_timeout = secondsOrOff(spec.timeouts.ctrl_loss);
  // Fencing: a mirrored disk claims each of its replicas for as long as it
  // runs, so no other nexus (another node, or this one under another name)
  // can write them too. Claims live beside the journals (src/volumes).
  std::unique_ptr<volumes::NexusState> state;
  std::string journal_id;
  std::unique_ptr<nexus::ReplicaClaim> claim;
  if (uris.size() > 1) {
    auto ref = volumes::parseJournalRef(spec.journal);
    if (!ref.ok()) return fail("disk serve", ref.error());
    auto st = volumes::openNexusStateFor(ctx.config, *ref, spec.claim_ttl_s);
    if (!st.ok()) return fail("disk serve", st.error());
    state = std::move(*st);
    journal_id = ref->id;
    std::vector<std::string> names;
    for (const auto& d : targets) names.push_back(replicaName(d));
    // The owner is the same across this disk service's restarts: a
    // restart takes over its predecessor's claims.
    auto c = state->claim(names, {"node " + spec.node + " (disk " + spec.file.substr(spec.file.rfind('/') + 1) + ")",
                                  static_cast<int>(::getpid())});
    if (!c.ok()) return fail("disk serve", c.error());
    claim = std::move(*c);
  }
  // Every initiator made, for closing at the end (a late replica's too).
  auto hosts_mu = std::make_shared<std::mutex>();
  auto hosts = std::make_shared<std::vector<std::shared_ptr<nvme::NvmeTcpHost>>>();
  auto closeHosts = [hosts, hosts_mu] {
    std::lock_guard<std::mutex> l(*hosts_mu);
    for (auto& h : *hosts) h->close();
  };
  std::vector<std::shared_ptr<nvme::NvmeTcpHost>> connected(targets.size());
  Error last_error;
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto& d = targets[i];
    auto host = nvme::NvmeTcpHost::connect(d.address, d.port, d.nqn, o);
    if (!host.ok()) {
      // A mirrored disk starts without a replica whose storage host is
      // down (degraded); a plain disk cannot.
      if (targets.size() == 1) return fail("disk serve", host.error());
      spdlog::warn("disk serve: replica {} unreachable, starting without it: {}", replicaName(d), host.error().message);
      last_error = host.error();
      continue;
    }
    connected[i] = *host;
    std::lock_guard<std::mutex> l(*hosts_mu);
    hosts->push_back(*host);
  }
  std::shared_ptr<nvme::NvmeTcpHost> first;
  for (auto& h : connected) {
    if (h && !first) first = h;
  }
  if (!first) return fail("disk serve", last_error.wrap("no replica reachable"));
  // Replicas: the nexus mirrors them and is the disk's device; its state
  // (which replica is behind, by which regions) is in the journal.
  std::shared_ptr<BlockDevice> device = first;
  nexus::Nexus* nx = nullptr;
  if (targets.size() > 1) {
    std::vector<nexus::ReplicaDevice> reps;
    for (size_t i = 0; i < targets.size(); ++i) {
      if (connected[i]) {
        reps.push_back({replicaName(targets[i]), connected[i]});
        continue;
      }
      const nvme::NvmeUri d = targets[i];
      auto late = nexus::LateReplica::make(
          [d, o, hosts, hosts_mu]() -> Result<std::shared_ptr<BlockDevice>> {
            OC_ASSIGN_OR_RETURN(auto h, nvme::NvmeTcpHost::connect(d.address, d.port, d.nqn, o));
            std::lock_guard<std::mutex> l(*hosts_mu);
            hosts->push_back(h);
            return std::shared_ptr<BlockDevice>(h);
          },
          first->sizeBytes(), first->blockSize(), first->completionFd() >= 0);
      if (!late.ok()) {
        closeHosts();
        return fail("disk serve", late.error());
      }
      reps.push_back({replicaName(targets[i]), *late});
    }
    auto journal = state->journal(journal_id, claim.get());
    if (!journal.ok()) {
      closeHosts();
      return fail("disk serve", journal.error());
    }
    nexus::NexusOptions nexus_options;
    // No I/O leaves once the claim may be lost: end as a handover does
    // (the next process gets what we read and did not answer resent).
    nexus_options.gate = [c = claim.get(), file = spec.file] {
      if (std::string why = c->lostReason(); !why.empty()) exitClaimLost(file, why);
    };
    auto opened = nexus::openNexus(std::move(reps), std::move(*journal), nexus_options);
    if (!opened.ok()) {
      closeHosts();
      return fail("disk serve", opened.error());
    }
    nx = opened->get();
    device = std::shared_ptr<BlockDevice>(std::move(*opened));
  }
  // One FUSE worker per command the queues can carry, so a deep fio or a
  // loop device with --direct-io=on keeps every queue slot busy.
  FuseDiskOptions fo;
  fo.max_threads = static_cast<unsigned>(std::clamp(queues * spec.depth, 4, 64));
  // The connection is parked in the node's fd keeper: after a crash of this
  // process, the agent's restart adopts it and the host sees a pause.
  const std::string keeper = diskKeeper(ctx, spec.node);
  const std::string& file = spec.file;
  auto kept = mountKept(keeper, keptName(file), file, device, fo);
  if (!kept.ok()) {
    device.reset();
    closeHosts();
    return fail("disk serve", kept.error());
  }
  auto* disk = &kept->disk;
  auto& host = first;
  json info{
      {"uri", spec.uri},
      {"nqn", targets[0].nqn},
      {"file", file},
      {"size_bytes", device->sizeBytes()},
      {"block_size", device->blockSize()},
      {"host_nqn", o.host_nqn},
      {"pid", ::getpid()},
      {"adopted", kept->adopted},
      {"io_timeout_s", spec.timeouts.io},
      {"fast_io_fail_s", spec.timeouts.fast_io_fail},
      {"ctrl_loss_timeout_s", spec.timeouts.ctrl_loss},
      {"state", nvme::hostStateName(host->state())},
      {"auth", o.dhchap_secret ? (o.dhchap_ctrl_secret ? "DH-HMAC-CHAP (bidirectional)" : "DH-HMAC-CHAP") : "none"}};
  if (nx) {
    info["nexus"] = nexusJson(nx->status(), uris);
    info["journal"] = spec.journal;
  }
  // The record is how `disk list`, `disk detach` and the attaching CLI find
  // this disk: a disk without one would be served but unmanageable.
  if (auto rec = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !rec.ok()) {
    releaseKept(keeper, keptName(file));
    disk->reset();
    device.reset();
    closeHosts();
    return fail("disk serve", rec.error().wrap("record the disk"));
  }
  std::printf("disk %s: %s (%llu bytes) via %s:%u%s%s\n", file.c_str(), targets[0].nqn.c_str(),
              static_cast<unsigned long long>(device->sizeBytes()), targets[0].address.c_str(), targets[0].port,
              nx ? (" and " + std::to_string(targets.size() - 1) + " more replica(s)").c_str() : "",
              kept->adopted ? ", took over the connection of the previous process" : "");
  std::fflush(stdout);
  // Until stopped, the record follows the initiator's state (live,
  // reconnecting, failed) or the nexus's, so `disk list` shows a lost path.
  const timespec tick{0, 250 * 1000 * 1000};
  std::string last = dumpJson(info);
  int sig = -1;
  while ((sig = ::sigtimedwait(&mask, nullptr, &tick)) < 0) {
    if (claim) {
      if (std::string why = claim->lostReason(); !why.empty()) exitClaimLost(file, why);
    }
    info["state"] = nvme::hostStateName(host->state());
    if (nx) info["nexus"] = nexusJson(nx->status(), uris);
    std::string now = dumpJson(info);
    if (now == last) continue;
    last = now;
    if (auto w = writeFileAtomic(file + ".json", dumpJson(info, 2) + "\n"); !w.ok()) {
      spdlog::warn("disk {}: {}", file, w.error().message);
    }
  }
  if (sig == SIGHUP) {
    // A handover: the agent restarts us with a new argv at once. Exit as a
    // crash would (docs/STORAGE.md, "a crash is a pause"): the FUSE
    // connection stays in the keeper for the next process, which asks the
    // kernel to resend what we read and did not answer; our replicas'
    // claims go with our file descriptors; the journal is durable already.
    // Nothing is unmounted and no destructor runs.
    spdlog::info("disk {}: handing over to the next process", file);
    std::fflush(nullptr);
    std::_Exit(0);
  }
  releaseKept(keeper, keptName(file));  // stopped on purpose: the connection ends with us
  disk->reset();                        // unmount first, then the nexus, then the associations
  device.reset();
  closeHosts();
  std::remove((file + ".json").c_str());
  return 0;
}

}  // namespace offcore
