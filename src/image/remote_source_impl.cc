#include "image/remote_source_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "gateway/client.h"
#include "image/converter.h"
#include "image/gateway_volumes.h"
#include "image/mount_probe.h"
#include "image/oci.h"
#include "nvme/host/host_identity.h"
#include "snapshotter/remote_source_factory.h"

namespace offcore {

using nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kFlatSpareDelay{100};
const char* kStubMarker = oci::kStubMarkerFile;

Status mountErofs(const std::string& file, const std::string& dir) {
  OC_TRY(makeDirs(dir));
  // File-backed EROFS (Linux 6.12+) needs no loop device.
  if (::mount(file.c_str(), dir.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, nullptr) == 0) return {};
  int err = errno;
  if (err != ENOTBLK && err != EINVAL) return errnoError("mount erofs " + file + " on " + dir, err);
  return mountThroughLoop(file, dir, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, /*direct_io=*/false);
}

}  // namespace

OffcoreRemoteSource::OffcoreRemoteSource(RemoteSourceOptions o)
    : o_(std::move(o)), catalog_(o_.catalog), images_(o_.run_root, o_.node) {
  if (o_.mode == RemoteMode::kFlat) dropSpares("left by an earlier snapshotter");
  warm_thread_ = std::thread([this] { warmLoop(); });
}

OffcoreRemoteSource::~OffcoreRemoteSource() {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    warm_stop_ = true;
  }
  warm_cv_.notify_all();
  if (warm_thread_.joinable()) warm_thread_.join();
  // A deliberate stop leaves no clone nobody uses.
  if (o_.mode == RemoteMode::kFlat) dropSpares("the snapshotter stops");
}

void OffcoreRemoteSource::warmLayer(const RemoteLayerRef& layer, const std::optional<RemoteLayerRef>& parent) {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    if (warm_stop_ || !warm_thread_.joinable()) return;
    released_.erase(layer.chain_id);  // pulled again
    auto due = std::chrono::steady_clock::now();
    if (layer.mode == RemoteMode::kFlat) {
      // A pull commits a flat image's chains bottom up, a few ms apart, and
      // only the top is where containers start: each supersedes its parent,
      // and a spare waits a moment so the lower ones are never made.
      due += kFlatSpareDelay;
      if (parent && parent->mode == RemoteMode::kFlat) {
        std::erase_if(warm_queue_, [&](const WarmEntry& e) { return e.ref.chain_id == parent->chain_id; });
        superseded_.push_back(*parent);
      }
    }
    warm_queue_.push_back({layer, due});
  }
  warm_cv_.notify_one();
}

void OffcoreRemoteSource::warmLater(const RemoteLayerRef& layer, std::chrono::milliseconds delay) {
  {
    std::lock_guard<std::mutex> lock(warm_mu_);
    if (warm_stop_ || !warm_thread_.joinable()) return;
    warm_queue_.push_back({layer, std::chrono::steady_clock::now() + delay});
  }
  warm_cv_.notify_one();
}

void OffcoreRemoteSource::warmLoop() {
  if (o_.mode == RemoteMode::kLayered) {
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
      // Oldest due entry first; wait for the earliest when none is due.
      auto due = std::min_element(warm_queue_.begin(), warm_queue_.end(),
                                  [](const WarmEntry& a, const WarmEntry& b) { return a.not_before < b.not_before; });
      if (due->not_before > std::chrono::steady_clock::now()) {
        warm_cv_.wait_until(lock, due->not_before);
        continue;
      }
      ref = due->ref;
      warm_queue_.erase(due);
    }
    // A failure here is only an early try: the container's own mount asks
    // again and reports it.
    if (ref.mode == RemoteMode::kFlat) {
      std::vector<RemoteLayerRef> superseded;
      {
        std::lock_guard<std::mutex> lock(warm_mu_);
        superseded.swap(superseded_);
      }
      for (const auto& old : superseded) {
        std::lock_guard<std::mutex> lock(mu_);
        if (Status s = dropSpareOf(old); !s.ok()) spdlog::warn("spare of {}: {}", old.chain_id, s.error().message);
      }
      prepareSpare(ref);
    } else if (auto dir = mount(ref, true); !dir.ok()) {
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
  if (layer.mode == RemoteMode::kFlat) return releaseFlat(layer);
  json h = json::parse(layer.handle, nullptr, false);
  if (h.is_discarded()) return {};
  std::string id = shortId(h.value("diff_id", ""));
  std::lock_guard<std::mutex> lock(mu_);
  {
    std::lock_guard<std::mutex> wl(warm_mu_);
    released_.insert(layer.chain_id);
    std::erase_if(warm_queue_, [&](const WarmEntry& e) { return e.ref.chain_id == layer.chain_id; });
  }
  OC_TRY(unmountDir(o_.root + "/layers/" + id));
  if (images_.running()) (void)images_.detach(id);
  return {};
}

}  // namespace offcore
