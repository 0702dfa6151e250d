// Flat mode of OffcoreRemoteSource: one writable rootfs per container, a
// clone of the image's flat volume in the gateway, attached as a node disk
// (served in the SoC) and mounted as ext4 through a loop device.
//
// Spares. Cloning, attaching and mounting take about 0.3 s, all of it on the
// container's create path. So after a pull (warmLayer) the warm-up thread
// makes one rootfs ahead for the image, a spare; a create claims it (one
// rename of its record) and a new spare follows a little later, off the
// next container's start. A spare is keyed by where the image lives (the
// gateway and its volume), checked mounted and answering before it is
// claimed, and removed with the image (releaseLayer) and when the
// snapshotter stops or starts after a crash: nothing holds a clone that no
// container uses for longer than the snapshotter runs.
//
// Records, under <root>/flat/: <snapshot id>.json for a container's rootfs,
// spare-<key>.json for a spare; each names its clone ("volume"), gateway
// ("target"), node disk ("disk", once attached) and mount point ("dir").
// A record is written before the clone is attached, so a crash in between
// leaves something removeFlatRootfs / dropSpares can undo.
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "gateway/client.h"
#include "image/chunk_codec.h"
#include "image/mount_probe.h"
#include "image/remote_source_impl.h"
#include "nvme/host/host_identity.h"

namespace offcore {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kRefillDelay{2000};  // off the claiming container's start

long msSince(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

std::string randomHex8() {
  std::random_device rd;
  char b[9];
  std::snprintf(b, sizeof b, "%08x", rd());
  return b;
}

json readState(const std::string& path) {
  json st = json::parse(readFile(path).valueOr("{}"), nullptr, false);
  return st.is_object() ? st : json::object();
}

std::string whereOf(const json& handle) { return handle.value("target", "") + "/" + handle.value("volume", ""); }

}  // namespace

std::string OffcoreRemoteSource::spareStatePath(const json& handle) const {
  const std::string where = whereOf(handle);
  return o_.root + "/flat/spare-" + sha256Hex(where.data(), where.size()).substr(0, 16) + ".json";
}

Result<json> OffcoreRemoteSource::buildFlat(const json& h, const std::string& clone, const std::string& dir,
                                            const std::string& state_path, bool read_only) {
  const auto t0 = Clock::now();
  OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(o_.run_root, h.value("target", "")));
  OC_ASSIGN_OR_RETURN(auto existing, gw.find(clone));
  GatewayVolume vol;
  if (existing) {
    vol = *existing;
  } else {
    // The node's writable rootfs admits this node's initiator only.
    OC_ASSIGN_OR_RETURN(vol,
                        gw.clone(h.value("volume", ""), clone, std::vector<std::string>{nvme::nodeHostNqn(o_.node)}));
  }
  const long clone_ms = msSince(t0);
  OC_TRY(makeDirs(o_.root + "/flat"));
  json st{{"volume", clone}, {"target", h.value("target", "")}, {"dir", dir}, {"of", whereOf(h)}};
  OC_TRY(writeFileAtomic(state_path, dumpJson(st) + "\n"));
  const auto t1 = Clock::now();
  std::string disk_file = o_.run_root + "/" + o_.node + "/disks/" + clone;
  if (!pathExists(disk_file + ".json")) {
    OC_ASSIGN_OR_RETURN(auto att,
                        runCapture({selfExe(), "disk", "attach", vol.uri, "--node", o_.node, "--name", clone}));
    if (att.exit_code != 0) return makeError("attach the rootfs clone " + clone + ": " + trim(att.err));
  }
  const long attach_ms = msSince(t1);
  const auto t2 = Clock::now();
  OC_TRY(makeDirs(dir));
  // nodev,nosuid: a flat rootfs comes off a gateway volume, so its device
  // nodes and setuid bits are not trusted on the host.
  unsigned long flags = (read_only ? MS_RDONLY : 0) | MS_NODEV | MS_NOSUID;
  OC_TRY(mountThroughLoop(disk_file, dir, "ext4", flags, /*direct_io=*/true));
  st["disk"] = clone;
  OC_TRY(writeFileAtomic(state_path, dumpJson(st) + "\n"));
  spdlog::info("flat rootfs {} ready in {} ms: clone {} ms, attach {} ms, mount {} ms", dir, msSince(t0), clone_ms,
               attach_ms, msSince(t2));
  return st;
}

Status OffcoreRemoteSource::tearDownFlat(const json& st) {
  const std::string dir = st.value("dir", "");
  if (!dir.empty()) {
    OC_TRY(unmountDir(dir));
    ::rmdir(dir.c_str());
  }
  const std::string clone = st.value("volume", "");
  if (clone.empty()) return {};
  (void)runCapture({selfExe(), "disk", "detach", clone, "--node", o_.node});
  if (st.contains("target")) {
    auto gw = GatewayClient::open(o_.run_root, st.value("target", ""));
    if (gw.ok()) OC_TRY(gw->remove(clone, true));
  }
  return {};
}

std::optional<std::string> OffcoreRemoteSource::claimSpare(const json& h, const std::string& state_path) {
  const std::string sp = spareStatePath(h);
  if (!pathExists(sp)) return std::nullopt;
  json st = readState(sp);
  const std::string dir = st.value("dir", "");
  if (st.value("of", "") != whereOf(h) || st.value("disk", "").empty() || dir.empty() || !isMountPoint(dir) ||
      !mountHealthy(dir)) {
    spdlog::warn("spare rootfs {} is not usable (half made, or its disk is gone); removing it", sp);
    if (Status s = tearDownFlat(st); !s.ok()) spdlog::warn("removing spare {}: {}", sp, s.error().message);
    std::remove(sp.c_str());
    return std::nullopt;
  }
  if (::rename(sp.c_str(), state_path.c_str()) != 0) return std::nullopt;
  return dir;
}

Result<std::string> OffcoreRemoteSource::prepareFlatRootfs(const std::string& snapshot_id, const RemoteLayerRef& top,
                                                           bool read_only) {
  json h = json::parse(top.handle, nullptr, false);
  if (h.is_discarded() || !h.contains("volume")) return makeError("flat image " + top.chain_id + ": bad handle");
  const std::string state_path = o_.root + "/flat/" + snapshot_id + ".json";
  std::lock_guard<std::mutex> lock(mu_);
  json st = readState(state_path);
  // Records from before spares name no dir: the snapshot's own.
  const std::string dir = st.value("dir", o_.root + "/flat/" + snapshot_id);
  if (isMountPoint(dir) && mountHealthy(dir)) return dir;
  if (!read_only && st.empty() && o_.flat_spares > 0) {
    const auto t0 = Clock::now();
    {
      // A spare not started yet would only start after this create: the
      // create makes its own instead (one being made holds mu_, so this
      // create waited for it and claims it below).
      std::lock_guard<std::mutex> wl(warm_mu_);
      std::erase_if(warm_queue_, [&](const WarmEntry& e) { return e.ref.chain_id == top.chain_id; });
    }
    if (auto claimed = claimSpare(h, state_path)) {
      spdlog::info("flat rootfs for snapshot {}: the spare at {} ({} ms)", snapshot_id, *claimed, msSince(t0));
      warmLater(top, kRefillDelay);
      return *claimed;
    }
  }
  // A record whose mount is gone (a restart) is made again on its clone.
  // Without a record, a new clone under a name nobody used: one named after
  // the snapshot id could be a clone another snapshotter root (or this one,
  // emptied) left in the gateway, with another container's writes in it.
  const std::string clone = st.value("volume", "c-" + o_.node + "-r" + randomHex8());
  OC_TRY(buildFlat(h, clone, dir, state_path, read_only));
  if (!read_only && o_.flat_spares > 0) warmLater(top, kRefillDelay);  // for the next create
  return dir;
}

Status OffcoreRemoteSource::removeFlatRootfs(const std::string& snapshot_id) {
  const std::string state_path = o_.root + "/flat/" + snapshot_id + ".json";
  std::lock_guard<std::mutex> lock(mu_);
  json st = readState(state_path);
  // Without a record this snapshot made no clone: only a mount may be left.
  // (A clone named after the snapshot id could be another root's.)
  if (!st.contains("dir")) st["dir"] = o_.root + "/flat/" + snapshot_id;
  OC_TRY(tearDownFlat(st));
  std::remove(state_path.c_str());
  return {};
}

void OffcoreRemoteSource::prepareSpare(const RemoteLayerRef& ref) {
  if (o_.flat_spares <= 0) return;
  json h = json::parse(ref.handle, nullptr, false);
  if (h.is_discarded() || !h.contains("volume")) return;
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> wl(warm_mu_);
    if (released_.count(ref.chain_id) || warm_stop_) return;
  }
  const std::string sp = spareStatePath(h);
  if (pathExists(sp)) {
    json st = readState(sp);
    const std::string dir = st.value("dir", "");
    if (!st.value("disk", "").empty() && !dir.empty() && isMountPoint(dir) && mountHealthy(dir)) return;
    (void)tearDownFlat(st);
    std::remove(sp.c_str());
  }
  // Bounded: the spares of the images used longest ago make room.
  auto records = spareRecords();
  for (size_t i = 0; i + static_cast<size_t>(o_.flat_spares) <= records.size(); ++i) {
    if (Status s = tearDownFlat(readState(records[i])); !s.ok()) {
      spdlog::warn("spare rootfs {}: {}", records[i], s.error().message);
      continue;
    }
    std::remove(records[i].c_str());
    spdlog::info("spare rootfs {} removed (at most {} images keep one)", records[i], o_.flat_spares);
  }
  const std::string id = randomHex8();
  auto st = buildFlat(h, "c-" + o_.node + "-s" + id, o_.root + "/flat/s" + id, sp, false);
  if (!st.ok()) {
    spdlog::warn("spare rootfs for {}: {} (the next create makes its own)", ref.chain_id, st.error().message);
    (void)tearDownFlat(readState(sp));
    std::remove(sp.c_str());
  }
}

Status OffcoreRemoteSource::releaseFlat(const RemoteLayerRef& layer) {
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> wl(warm_mu_);
    released_.insert(layer.chain_id);
    std::erase_if(warm_queue_, [&](const WarmEntry& e) { return e.ref.chain_id == layer.chain_id; });
  }
  return dropSpareOf(layer);
}

Status OffcoreRemoteSource::dropSpareOf(const RemoteLayerRef& layer) {
  json h = json::parse(layer.handle, nullptr, false);
  if (h.is_discarded()) return {};
  const std::string sp = spareStatePath(h);
  if (!pathExists(sp)) return {};
  OC_TRY(tearDownFlat(readState(sp)));
  std::remove(sp.c_str());
  return {};
}

std::vector<std::string> OffcoreRemoteSource::spareRecords() const {
  const std::string dir = o_.root + "/flat";
  std::vector<std::pair<int64_t, std::string>> found;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return {};
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind("spare-", 0) != 0 || n.size() <= 11 || n.substr(n.size() - 5) != ".json") continue;
    struct stat st {};
    std::string path = dir + "/" + n;
    if (::stat(path.c_str(), &st) == 0)
      found.emplace_back(int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec, path);
  }
  ::closedir(d);
  std::sort(found.begin(), found.end());  // oldest first
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

void OffcoreRemoteSource::dropSpares(const char* why) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& sp : spareRecords()) {
    if (Status s = tearDownFlat(readState(sp)); !s.ok()) {
      spdlog::warn("spare rootfs {}: {}", sp, s.error().message);
      continue;
    }
    std::remove(sp.c_str());
    spdlog::info("spare rootfs {} removed ({})", sp, why);
  }
}

}  // namespace offcore
