#include "image/remote_source_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "gateway/client.h"
#include "image/converter.h"
#include "image/gateway_volumes.h"
#include "image/oci.h"
#include "nvme/host/host_identity.h"
#include "snapshotter/remote_source_factory.h"

namespace offcore {

using nlohmann::json;

namespace {

const char* kStubMarker = oci::kStubMarkerFile;

// One statx (the kernel says whether dir is the root of a mount); every
// container create asks, so no `mountpoint` process per layer.
bool isMountPoint(const std::string& dir) {
  struct statx stx {};
  if (::statx(AT_FDCWD, dir.c_str(), AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_BASIC_STATS,
              &stx) != 0) {
    return false;
  }
  if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  auto r = runCapture({"mountpoint", "-q", dir});
  return r.ok() && r->exit_code == 0;
}

// A mount whose FUSE daemon died answers ENOTCONN/EIO: it must be replaced.
bool mountHealthy(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  errno = 0;
  bool ok = ::readdir(d) != nullptr || errno == 0;
  ::closedir(d);
  return ok;
}

Status mountErofs(const std::string& file, const std::string& dir) {
  OC_TRY(makeDirs(dir));
  // File-backed EROFS (Linux 6.12+) needs no loop device.
  if (::mount(file.c_str(), dir.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, nullptr) == 0) return {};
  int err = errno;
  if (err != ENOTBLK && err != EINVAL) return errnoError("mount erofs " + file + " on " + dir, err);
  OC_ASSIGN_OR_RETURN(auto lo, runCapture({"losetup", "--find", "--show", "--read-only", file}));
  if (lo.exit_code != 0) return makeError("losetup " + file + ": " + trim(lo.err));
  std::string dev = trim(lo.out);
  if (::mount(dev.c_str(), dir.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, nullptr) != 0) {
    Error e = errnoError("mount erofs " + dev + " on " + dir);
    (void)runCapture({"losetup", "-d", dev});
    return e;
  }
  (void)runCapture({"losetup", "-d", dev});  // autoclear once unmounted
  return {};
}

Status unmountDir(const std::string& dir) {
  if (!isMountPoint(dir)) return {};
  if (::umount2(dir.c_str(), 0) != 0 && ::umount2(dir.c_str(), MNT_DETACH) != 0) return errnoError("umount " + dir);
  return {};
}

}  // namespace

OffcoreRemoteSource::OffcoreRemoteSource(RemoteSourceOptions o)
    : o_(std::move(o)), catalog_(o_.launch.catalog_dir), images_(o_.run_root, o_.node) {
  if (o_.mode == RemoteMode::kLayered) warm_thread_ = std::thread([this] { warmLoop(); });
}

OffcoreRemoteSource::~OffcoreRemoteSource() {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    warm_stop_ = true;
  }
  warm_cv_.notify_all();
  if (warm_thread_.joinable()) warm_thread_.join();
}

void OffcoreRemoteSource::warmLayer(const RemoteLayerRef& layer) {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    if (warm_stop_ || !warm_thread_.joinable()) return;
    released_.erase(layer.chain_id);  // pulled again
    warm_queue_.push_back(layer);
  }
  warm_cv_.notify_one();
}

void OffcoreRemoteSource::warmLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status s = images_.ensureRunning(o_.launch); !s.ok()) {
      spdlog::info("image service not started ahead of use: {}", s.error().message);
    }
  }
  for (;;) {
    RemoteLayerRef ref;
    {
      std::unique_lock<std::mutex> lock(warm_mu_);
      warm_cv_.wait(lock, [&] { return warm_stop_ || !warm_queue_.empty(); });
      if (warm_stop_) return;
      ref = warm_queue_.front();
      warm_queue_.pop_front();
    }
    // A failure here is only an early try: the container's own mount asks
    // again and reports it.
    if (auto dir = mount(ref, true); !dir.ok()) {
      spdlog::warn("warming layer {}: {}", ref.chain_id, dir.error().message);
    }
  }
}

Result<std::optional<RemoteLayerRef>> OffcoreRemoteSource::lookup(const std::string& target, const SnapshotLabels&) {
  // containerd's metadata store may prefix the target with its own
  // namespace and transaction id; the chain ID is the trailing digest.
  auto at = target.rfind("sha256:");
  if (at == std::string::npos) return std::optional<RemoteLayerRef>();
  OC_ASSIGN_OR_RETURN(auto chain, catalog_.resolveChain(target.substr(at)));
  if (!chain) return std::optional<RemoteLayerRef>();
  return refFor(*chain);
}

Result<std::optional<RemoteLayerRef>> OffcoreRemoteSource::refFor(const ResolvedChain& chain) {
  if (o_.mode == RemoteMode::kFlat) {
    OC_ASSIGN_OR_RETURN(auto flat, catalog_.flat(chain.chain_id));
    if (!flat) return std::optional<RemoteLayerRef>();
    json h{{"volume", flat->gateway.volume}, {"target", flat->gateway.target}, {"uri", flat->gateway.uri}};
    return std::optional<RemoteLayerRef>(RemoteLayerRef{chain.chain_id, RemoteMode::kFlat, dumpJson(h)});
  }
  OC_ASSIGN_OR_RETURN(auto rec, catalog_.layer(chain.diff_id));
  if (!rec) return std::optional<RemoteLayerRef>();
  bool usable = (o_.backend != "gateway" && rec->registry) || (o_.backend != "registry" && rec->gateway);
  if (!usable) return std::optional<RemoteLayerRef>();
  return std::optional<RemoteLayerRef>(
      RemoteLayerRef{chain.chain_id, RemoteMode::kLayered, dumpJson(json{{"diff_id", chain.diff_id}})});
}

Result<std::optional<RemoteLayerRef>> OffcoreRemoteSource::adoptStub(const std::string& upper_dir,
                                                                     const std::string& name) {
  // A stub's upper dir holds exactly one regular file: the marker.
  DIR* d = ::opendir(upper_dir.c_str());
  if (!d) return std::optional<RemoteLayerRef>();
  int entries = 0;
  bool marker = false;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    ++entries;
    marker = marker || n == kStubMarker;
  }
  ::closedir(d);
  if (entries != 1 || !marker) return std::optional<RemoteLayerRef>();
  // The layer came from an image: a symlink, a FIFO or a huge file under the
  // marker's name is an ordinary (odd) layer, not a stub.
  int fd = ::open((upper_dir + "/" + kStubMarker).c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::optional<RemoteLayerRef>();
  struct stat st {};
  std::string text(4096, '\0');
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 4096) n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n < 0) return std::optional<RemoteLayerRef>();
  text.resize(static_cast<size_t>(n));
  json info = json::parse(text, nullptr, false);
  auto str = [&](const char* k) {
    return info.is_object() && info.contains(k) && info[k].is_string() ? info[k].get<std::string>() : std::string();
  };
  ResolvedChain chain{str("diff_id"), str("chain_id")};
  if (chain.diff_id.empty() || chain.chain_id.empty()) {
    return makeError("a lazy image stub layer carries a malformed marker; convert the image again");
  }
  // The stub must be the one the catalog's lazy image has at this position:
  // an image cannot borrow another image's layers by writing a marker.
  auto at = name.rfind("sha256:");
  auto expected = at == std::string::npos ? Result<std::optional<ResolvedChain>>(std::optional<ResolvedChain>())
                                          : catalog_.resolveChain(name.substr(at));
  if (!expected.ok()) return expected.error();
  if (!*expected || (*expected)->diff_id != chain.diff_id || (*expected)->chain_id != chain.chain_id) {
    return makeError("lazy image layer " + chain.diff_id + " is not the layer the catalog (" + o_.launch.catalog_dir +
                     ") records for " + name + "; convert the image with `offcore image convert`");
  }
  OC_ASSIGN_OR_RETURN(auto ref, refFor(chain));
  if (!ref) {
    return makeError("lazy image layer " + chain.diff_id + " is not usable here: it was converted for " + str("mode") +
                     " mode, or not to the " + o_.backend + " back end; convert it with `offcore image convert`");
  }
  return ref;
}

Result<std::string> OffcoreRemoteSource::mountLayer(const RemoteLayerRef& layer) { return mount(layer, false); }

Result<std::string> OffcoreRemoteSource::mount(const RemoteLayerRef& layer, bool warming) {
  json h = json::parse(layer.handle, nullptr, false);
  if (h.is_discarded() || !h.contains("diff_id")) return makeError("remote layer " + layer.chain_id + ": bad handle");
  std::string diff = h.value("diff_id", "");
  std::string dir = o_.root + "/layers/" + shortId(diff);
  std::lock_guard<std::mutex> lock(mu_);
  {
    // A warm-up of a layer released since it was queued mounts nothing; a
    // container's mount wants the layer again.
    std::lock_guard<std::mutex> wl(warm_mu_);
    if (warming && released_.count(layer.chain_id)) return std::string();
    released_.erase(layer.chain_id);
  }
  if (isMountPoint(dir)) {
    // The mount is only as good as the FUSE file under it: the image service
    // that serves it now must know the layer. After a restart of the service
    // the old file is dead; containers that hold it keep their references,
    // new ones get a fresh mount. With no service at all (it was stopped,
    // its connections cut) the mount is dead too, and probing it could wait
    // on a connection nobody answers: it is replaced without a look.
    bool stale = !images_.running() || !images_.get("/v1/layers/" + shortId(diff)).ok();
    if (!stale && mountHealthy(dir)) return dir;
    spdlog::warn("layer mount {} is stale (its image service restarted); remounting", dir);
    (void)::umount2(dir.c_str(), MNT_DETACH);
  }
  OC_TRY(images_.ensureRunning(o_.launch));
  OC_ASSIGN_OR_RETURN(auto rec, catalog_.layer(diff));
  bool fill = o_.fill_below > 0 && rec && rec->fs_bytes <= o_.fill_below;
  OC_ASSIGN_OR_RETURN(auto att, images_.attach(diff, o_.backend, o_.prefetch, fill));
  OC_TRY(mountErofs(att.file, dir));
  spdlog::info("layer {} mounted at {} ({} via {})", diff, dir, att.file, att.backend);
  return dir;
}

Status OffcoreRemoteSource::releaseLayer(const RemoteLayerRef& layer) {
  json h = json::parse(layer.handle, nullptr, false);
  if (h.is_discarded()) return {};
  std::string id = shortId(h.value("diff_id", ""));
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> wl(warm_mu_);
    released_.insert(layer.chain_id);
    std::erase_if(warm_queue_, [&](const RemoteLayerRef& r) { return r.chain_id == layer.chain_id; });
  }
  OC_TRY(unmountDir(o_.root + "/layers/" + id));
  if (images_.running()) (void)images_.detach(id);
  return {};
}

Result<std::string> OffcoreRemoteSource::prepareFlatRootfs(const std::string& snapshot_id, const RemoteLayerRef& top,
                                                           bool read_only) {
  json h = json::parse(top.handle, nullptr, false);
  if (h.is_discarded() || !h.contains("volume")) return makeError("flat image " + top.chain_id + ": bad handle");
  std::string dir = o_.root + "/flat/" + snapshot_id;
  std::string state_path = o_.root + "/flat/" + snapshot_id + ".json";
  std::lock_guard<std::mutex> lock(mu_);
  if (isMountPoint(dir) && mountHealthy(dir)) return dir;
  OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(o_.run_root, h.value("target", "")));
  std::string clone = "c-" + o_.node + "-" + snapshot_id;
  OC_ASSIGN_OR_RETURN(auto existing, gw.find(clone));
  GatewayVolume vol;
  if (existing) {
    vol = *existing;
  } else {
    // The node's writable rootfs admits this node's initiator only.
    OC_ASSIGN_OR_RETURN(vol,
                        gw.clone(h.value("volume", ""), clone, std::vector<std::string>{nvme::nodeHostNqn(o_.node)}));
  }
  OC_TRY(makeDirs(o_.root + "/flat"));
  OC_TRY(writeFileAtomic(state_path, dumpJson(json{{"volume", clone}, {"target", h.value("target", "")}}) + "\n"));
  std::string disk_file = o_.run_root + "/" + o_.node + "/disks/" + clone;
  if (!pathExists(disk_file + ".json")) {
    OC_ASSIGN_OR_RETURN(auto att,
                        runCapture({selfExe(), "disk", "attach", vol.uri, "--node", o_.node, "--name", clone}));
    if (att.exit_code != 0) return makeError("attach the rootfs clone " + clone + ": " + trim(att.err));
  }
  std::vector<std::string> lo_args{"losetup", "--find", "--show", "--direct-io=on"};
  if (read_only) lo_args.push_back("--read-only");
  lo_args.push_back(disk_file);
  OC_ASSIGN_OR_RETURN(auto lo, runCapture(lo_args));
  if (lo.exit_code != 0) return makeError("losetup " + disk_file + ": " + trim(lo.err));
  std::string loop = trim(lo.out);
  OC_TRY(makeDirs(dir));
  // nodev,nosuid: a flat rootfs comes off a gateway volume, so its device
  // nodes and setuid bits are not trusted on the host.
  unsigned long flags = (read_only ? MS_RDONLY : 0) | MS_NODEV | MS_NOSUID;
  if (::mount(loop.c_str(), dir.c_str(), "ext4", flags, nullptr) != 0) {
    Error e = errnoError("mount " + loop + " on " + dir);
    (void)runCapture({"losetup", "-d", loop});
    return e;
  }
  // Autoclear: the loop device goes away with the last unmount, so a
  // snapshotter that dies before Remove cannot leak it.
  (void)runCapture({"losetup", "-d", loop});
  json state{{"volume", clone}, {"target", h.value("target", "")}, {"disk", clone}};
  OC_TRY(writeFileAtomic(state_path, dumpJson(state) + "\n"));
  return dir;
}

Status OffcoreRemoteSource::removeFlatRootfs(const std::string& snapshot_id) {
  std::string dir = o_.root + "/flat/" + snapshot_id;
  std::string state_path = dir + ".json";
  std::lock_guard<std::mutex> lock(mu_);
  json st = json::parse(readFile(state_path).valueOr("{}"), nullptr, false);
  if (st.is_discarded()) st = json::object();
  OC_TRY(unmountDir(dir));
  ::rmdir(dir.c_str());
  std::string clone = st.value("volume", "c-" + o_.node + "-" + snapshot_id);
  (void)runCapture({selfExe(), "disk", "detach", clone, "--node", o_.node});
  if (st.contains("target")) {
    auto gw = GatewayClient::open(o_.run_root, st.value("target", ""));
    if (gw.ok()) OC_TRY(gw->remove(clone, true));
  }
  std::remove(state_path.c_str());
  return {};
}

}  // namespace offcore
