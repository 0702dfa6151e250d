#include "image/image_service.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "api/api_server.h"
#include "base/event_loop.h"
#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "disk/fd_keeper.h"
#include "disk/fuse_disk.h"
#include "image/catalog.h"
#include "image/converter.h"
#include "image/gateway_volumes.h"
#include "image/lazy/chunk_cache.h"
#include "image/lazy/fail_fast_source.h"
#include "image/lazy/lazy_device.h"
#include "image/lazy/sources.h"

namespace offcore {

using nlohmann::json;

std::string imageServiceSocket(const std::string& run_root, const std::string& node) {
  return run_root + "/" + node + "/images.sock";
}
std::string imageServiceDir(const std::string& run_root, const std::string& node) {
  return run_root + "/" + node + "/images";
}

namespace {

struct AttachedLayer {
  std::string id, diff_id, backend, file;
  std::string prefetch_list;  // "profile" (measured), "derived" (from the config at conversion) or "none"
  bool readahead = true;
  std::shared_ptr<LazyDevice> device;
  std::unique_ptr<FuseDisk> disk;
};

class ImageService {
 public:
  explicit ImageService(const ImageServiceOptions& o)
      : o_(o), catalog_(o.catalog), cache_(std::make_shared<ChunkCache>(o.cache_dir, o.cache_limit)), api_(loop_) {}

  Status start(int signal_fd) {
    OC_TRY(cache_->init());
    OC_TRY(makePrivateDir(imageServiceDir(o_.run_root, o_.node)));
    OC_TRY(loop_.init());
    registerRoutes();
    adoptSurvivors();
    OC_TRY(api_.listenUnix(imageServiceSocket(o_.run_root, o_.node)));
    OC_TRY(loop_.watchFd(signal_fd, EPOLLIN, [this](uint32_t) { loop_.stop(); }));
    return {};
  }

  Status run() {
    Status s = loop_.run();
    // A deliberate stop (SIGTERM: `dpu service del`, `dpu down`). Nothing
    // may keep a connection this process no longer answers: the keeper lets
    // go first, then each file is cut off at once (a layer still in use
    // gives its readers I/O errors), well inside the agent's grace before
    // SIGKILL. Stopping the prefetchers comes last and may wait out a fetch
    // in flight; a SIGKILL then costs nothing (the keeper, part_of this
    // service, goes too). Only a crash leaves the connections to the keeper.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, l] : layers_) (void)fdKeeperDel(keeper(), "layer-" + id);
    for (auto& [id, l] : layers_) {
      if (Status u = l.disk->unmount(std::chrono::milliseconds(0)); !u.ok()) {
        spdlog::warn("layer {}: {}", id, u.error().message);
      }
    }
    for (auto& [id, l] : layers_) l.device->stopPrefetch();
    layers_.clear();
    std::remove(statePath().c_str());
    std::remove(imageServiceSocket(o_.run_root, o_.node).c_str());
    return s;
  }

 private:
  Result<std::unique_ptr<ChunkSource>> openSource(const LayerRecord& rec, const std::string& want,
                                                  std::string& backend) {
    bool registry_ok = rec.registry.has_value() && (want == "auto" || want == "registry");
    bool gateway_ok = rec.gateway.has_value() && (want == "auto" || want == "gateway");
    // auto prefers the gateway: on every image of `bench coldstart` its
    // first touch is faster than the registry's (block reads over NVMe/TCP,
    // no HTTP round trip and no decompression per chunk).
    // With auto, a gateway that cannot be reached (or does not admit this
    // node) leaves the layer to the registry when it has a copy there.
    if (gateway_ok) {
      auto gw = openGateway(rec);
      if (gw.ok() || want == "gateway" || !registry_ok) {
        backend = "gateway";
        return gw;
      }
      spdlog::warn("layer {}: gateway: {}; reading it from the registry", shortId(rec.diff_id), gw.error().message);
    }
    if (registry_ok) {
      backend = "registry";
      const auto& r = *rec.registry;
      oci::RegistryOptions ro;
      ro.plain_http = r.plain_http || o_.plain_http;
      ro.creds_file = o_.creds_file;
      ro.ca_file = o_.ca_file;
      ro.range_timeout_ms = static_cast<long>(std::min<int64_t>(o_.fetch_timeout.count(), 10000));
      ro.timeout_ms = static_cast<long>(o_.fetch_timeout.count());  // the index fetch blocks the API loop
      auto client = clientFor(r.registry, ro);
      OC_ASSIGN_OR_RETURN(auto src, RegistryChunkSource::open(client, r.repository, r.chunk_index, o_.fetch_timeout));
      return failFast(std::move(src), "registry " + r.registry);
    }
    return makeError("layer " + rec.diff_id + " has no " + (want == "auto" ? "" : want + " ") +
                     "artifact; convert it with --to " + (want == "gateway" ? "nvme-tcp://ADDR:PORT" : "registry"));
  }

  Result<std::unique_ptr<ChunkSource>> openGateway(const LayerRecord& rec) {
    // The volume is not trusted: every chunk read from it is checked
    // against the digests conversion recorded in the catalog.
    if (rec.gateway->chunk_index.empty()) {
      return makeError("layer " + rec.diff_id +
                       "'s gateway volume has no chunk digests (converted by an older "
                       "offcore); convert the image again");
    }
    OC_ASSIGN_OR_RETURN(auto index, catalog_.chunkIndex(rec.gateway->chunk_index));
    if (index.raw_size != rec.fs_bytes) {
      return makeError("layer " + rec.diff_id + ": its chunk index covers " + std::to_string(index.raw_size) +
                       " bytes, the catalog says " + std::to_string(rec.fs_bytes) + "; convert the image again");
    }
    OC_ASSIGN_OR_RETURN(auto host, connectVolume(rec.gateway->uri, o_.node, o_.fetch_timeout));
    OC_ASSIGN_OR_RETURN(auto src, VolumeChunkSource::open(host, std::move(index), rec.gateway->uri));
    return failFast(std::move(src), "gateway " + gatewayOf(rec.gateway->uri));
  }

  // Every layer of one back end shares its health: once a read found it down,
  // reads of every layer from it fail at once until a probe gets through.
  std::unique_ptr<ChunkSource> failFast(std::unique_ptr<ChunkSource> src, const std::string& backend) {
    auto& h = health_[backend];
    if (!h) h = std::make_shared<BackendHealth>(backend);
    return std::make_unique<FailFastSource>(std::move(src), h);
  }
  // nvme-tcp://ADDR:PORT/NQN -> ADDR:PORT
  static std::string gatewayOf(const std::string& uri) {
    const std::string scheme = "nvme-tcp://";
    std::string rest = uri.rfind(scheme, 0) == 0 ? uri.substr(scheme.size()) : uri;
    return rest.substr(0, rest.find('/'));
  }

  std::shared_ptr<oci::RegistryClient> clientFor(const std::string& registry, const oci::RegistryOptions& ro) {
    auto& c = clients_[registry];
    if (!c) c = std::make_shared<oci::RegistryClient>(registry, ro);
    return c;
  }

  // Chunks of one layer from two back ends (or two chunk sizes) are
  // different byte ranges: the cache key names the artifact, not the layer.
  static std::string cacheKey(const std::string& id, const LayerRecord& rec, const std::string& backend) {
    if (backend == "registry" && rec.registry) return id + "-r" + shortId(rec.registry->chunk_index);
    return id + "-g" + std::to_string(256 * 1024);
  }

  Result<json> attach(const json& req) {
    auto field = [&](const char* k, const char* dflt) {
      return req.contains(k) && req[k].is_string() ? req[k].get<std::string>() : std::string(dflt);
    };
    auto flag = [&](const char* k, bool dflt) {
      return req.contains(k) && req[k].is_boolean() ? req[k].get<bool>() : dflt;
    };
    std::string diff_id = field("diff_id", "");
    std::string want = field("backend", "auto");
    if (want != "auto" && want != "registry" && want != "gateway") {
      return makeError("backend must be auto, registry or gateway");
    }
    OC_ASSIGN_OR_RETURN(auto rec, catalog_.layer(diff_id));
    if (!rec) return makeError("layer " + diff_id + " was never converted (run `offcore image convert`)", 2);
    std::string id = shortId(diff_id);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = layers_.find(id); it != layers_.end() && it->second.disk->mounted()) return describe(it->second);
    }
    AttachedLayer l;
    l.id = id;
    l.diff_id = diff_id;
    l.file = imageServiceDir(o_.run_root, o_.node) + "/" + id + ".img";
    OC_ASSIGN_OR_RETURN(auto source, openSource(*rec, want, l.backend));
    LazyDeviceOptions lo;
    l.readahead = flag("readahead", true);
    if (!l.readahead) lo.readahead_max_bytes = 0;
    if (req.contains("fill_rate")) {
      if (!req["fill_rate"].is_number_unsigned() || req["fill_rate"].get<uint64_t>() == 0) {
        return makeError("fill_rate must be a positive number of bytes per second");
      }
      lo.fill_bytes_per_sec = req["fill_rate"].get<uint64_t>();
    }
    const uint32_t chunk_size = source->chunkSize();
    l.device = std::make_shared<LazyDevice>(std::move(source), cache_, cacheKey(id, *rec, l.backend), lo);
    FuseDiskOptions fo;
    fo.read_only = true;
    fo.mode = 0444;
    fo.max_threads = 16;
    fo.fsname = "offcore-layer";
    fo.clone_fd = false;  // one fd per connection: the keeper's dup then keeps requests in flight
    OC_ASSIGN_OR_RETURN(l.disk, FuseDisk::mount(l.file, l.device, fo));
    keep(l);
    // A measured profile (`image profile`) first; else the list conversion
    // derived from the config, as chunks of this back end's size, in order.
    std::vector<uint32_t> first = rec->profile;
    l.prefetch_list = first.empty() ? "none" : "profile";
    if (first.empty() && !rec->start_ranges.empty()) {
      first = chunksOf(rec->start_ranges, chunk_size, l.device->source().chunkCount());
      l.prefetch_list = "derived";
    }
    bool prefetch = flag("prefetch", true);
    if (!prefetch) l.prefetch_list = "none";
    if (prefetch || flag("fill", false))
      l.device->startPrefetch(prefetch ? first : std::vector<uint32_t>{}, flag("fill", false));
    spdlog::info("attached layer {} from {} ({}) at {}", diff_id, l.backend, l.device->source().describe(), l.file);
    std::lock_guard<std::mutex> lock(mu_);
    json out = describe(l);
    layers_[id] = std::move(l);
    saveState();
    return out;
  }

  static std::vector<uint32_t> chunksOf(const std::vector<std::pair<uint64_t, uint64_t>>& ranges, uint32_t chunk_size,
                                        uint64_t chunks) {
    std::set<uint32_t> set;
    for (const auto& [off, len] : ranges) {
      if (len == 0) continue;
      for (uint64_t c = off / chunk_size; c <= (off + len - 1) / chunk_size && c < chunks; ++c) {
        set.insert(static_cast<uint32_t>(c));
      }
    }
    return {set.begin(), set.end()};  // ascending: adjacent chunks go as one request
  }

  // Survival across restarts: the keeper holds each connection's fd, and
  // state.json says which layer each file serves.
  std::string statePath() const { return imageServiceDir(o_.run_root, o_.node) + "/state.json"; }
  std::string keeper() const { return fdKeeperSocket(o_.run_root, o_.node, "images"); }

  void keep(const AttachedLayer& l) {
    int fd = ::dup(l.disk->connectionFd());
    Status s = fd < 0 ? Status(errnoError("dup")) : fdKeeperPut(keeper(), "layer-" + l.id, fd);
    if (fd >= 0) ::close(fd);
    if (!s.ok())
      spdlog::warn("layer {}: {}; it will not survive a restart of the image service", l.id, s.error().message);
  }

  void saveState() {  // with mu_ held
    json st = json::object();
    for (const auto& [id, l] : layers_) st[id] = {{"diff_id", l.diff_id}, {"backend", l.backend}, {"file", l.file}};
    // Best effort by design: the state only lets a restarted service adopt
    // the layers still mounted; losing it costs a re-attach, not data.
    if (auto w = writeFileAtomic(statePath(), dumpJson(st) + "\n"); !w.ok()) {
      spdlog::warn("image service: {}; attached layers will not be adopted after a restart", w.error().message);
    }
  }

  void adoptSurvivors() {
    json st = json::parse(readFile(statePath()).valueOr("{}"), nullptr, false);
    if (st.is_discarded() || !st.is_object()) return;
    for (auto it = st.begin(); it != st.end(); ++it) {
      const std::string& id = it.key();
      const json& e = it.value();
      if (!e.is_object()) continue;
      std::string file = e.value("file", ""), diff = e.value("diff_id", ""), backend = e.value("backend", "auto");
      auto fd = fdKeeperGet(keeper(), "layer-" + id);
      Status s = !fd.ok()  ? Status(fd.error())
                 : *fd < 0 ? Status(makeError("the keeper has no connection"))
                           : adoptOne(id, diff, backend, file, *fd);
      if (!s.ok()) {
        spdlog::warn("layer {}: cannot take over {} ({}); new attaches mount it afresh", id, file, s.error().message);
        (void)::umount2(file.c_str(), MNT_DETACH);
        (void)fdKeeperDel(keeper(), "layer-" + id);
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    saveState();
  }

  Status adoptOne(const std::string& id, const std::string& diff, const std::string& backend, const std::string& file,
                  int fd) {
    auto rec = catalog_.layer(diff);
    if (!rec.ok() || !*rec) {
      ::close(fd);
      return makeError("layer " + diff + " is no longer in the catalog");
    }
    AttachedLayer l;
    l.id = id;
    l.diff_id = diff;
    l.file = file;
    auto source = openSource(**rec, backend, l.backend);
    if (!source.ok()) {
      ::close(fd);
      return source.error();
    }
    l.device = std::make_shared<LazyDevice>(std::move(*source), cache_, cacheKey(id, **rec, l.backend));
    FuseDiskOptions fo;
    fo.read_only = true;
    fo.mode = 0444;
    fo.max_threads = 16;
    fo.clone_fd = false;
    OC_ASSIGN_OR_RETURN(l.disk, FuseDisk::adopt(file, fd, l.device, fo));
    spdlog::info("took over layer {} at {} after a restart", diff, file);
    std::lock_guard<std::mutex> lock(mu_);
    layers_[id] = std::move(l);
    return {};
  }

  json describe(const AttachedLayer& l) const {
    auto s = l.device->stats();
    const auto* ff = dynamic_cast<const FailFastSource*>(&l.device->source());
    return json{{"id", l.id},
                {"diff_id", l.diff_id},
                {"backend", l.backend},
                {"backend_state", ff && ff->health().down() ? "down" : "up"},
                {"file", l.file},
                {"source", l.device->source().describe()},
                {"size_bytes", l.device->sizeBytes()},
                {"chunk_size", l.device->source().chunkSize()},
                {"chunks", l.device->source().chunkCount()},
                {"mounted", l.disk->mounted()},
                {"in_use", l.disk->inUse()},
                {"readahead", l.readahead},
                {"prefetch_list", l.prefetch_list},
                {"stats",
                 {{"reads", s.reads},
                  {"read_bytes", s.read_bytes},
                  {"chunk_hits", s.chunk_hits},
                  {"chunk_fetches", s.chunk_fetches},
                  {"fetch_errors", s.fetch_errors},
                  {"coalesced", s.coalesced},
                  {"prefetched", s.prefetched},
                  {"range_requests", s.range_requests},
                  {"readahead_chunks", s.readahead_chunks},
                  {"filled", s.filled},
                  {"prefetch_yields", s.prefetch_yields},
                  {"bytes_fetched", s.bytes_fetched}}}};
  }

  void registerRoutes() {
    api_.route("POST", "/v1/layers", [this](const ApiRequest& req) {
      json body = json::parse(req.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) return ApiResponse::error(400, "the body must be a JSON object");
      auto r = attach(body);
      if (!r.ok()) return ApiResponse::error(r.error().code == 2 ? 404 : 502, r.error().message);
      return ApiResponse::json(200, dumpJson(*r) + "\n");
    });
    api_.route("GET", "/v1/layers", [this](const ApiRequest&) {
      std::lock_guard<std::mutex> lock(mu_);
      json arr = json::array();
      for (const auto& [id, l] : layers_) arr.push_back(describe(l));
      return ApiResponse::json(200, dumpJson(arr) + "\n");
    });
    api_.route("GET", "/v1/layers/", [this](const ApiRequest& req) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = layers_.find(req.tail);
      if (it == layers_.end()) return ApiResponse::error(404, "no attached layer " + req.tail);
      json j = describe(it->second);
      j["trace"] = it->second.device->trace();
      return ApiResponse::json(200, dumpJson(j) + "\n");
    });
    api_.route("POST", "/v1/layers/", [this](const ApiRequest& req) {
      // /v1/layers/ID/trace-reset
      std::string id = req.tail.substr(0, req.tail.find('/'));
      std::lock_guard<std::mutex> lock(mu_);
      auto it = layers_.find(id);
      if (it == layers_.end()) return ApiResponse::error(404, "no attached layer " + id);
      if (req.tail != id + "/trace-reset") return ApiResponse::error(404, "unknown action (trace-reset)");
      it->second.device->resetTrace();
      return ApiResponse::json(200, "{\"ok\":true}\n");
    });
    api_.route("DELETE", "/v1/layers/", [this](const ApiRequest& req) {
      std::unique_lock<std::mutex> lock(mu_);
      auto it = layers_.find(req.tail);
      if (it == layers_.end()) return ApiResponse::error(404, "no attached layer " + req.tail);
      AttachedLayer l = std::move(it->second);
      layers_.erase(it);
      saveState();
      lock.unlock();
      (void)fdKeeperDel(keeper(), "layer-" + l.id);
      l.device->stopPrefetch();
      Status s = l.disk->unmount();
      std::remove(l.file.c_str());
      if (!s.ok()) return ApiResponse::error(409, s.error().message + " (unmount the EROFS on it first)");
      return ApiResponse::json(200, "{\"ok\":true}\n");
    });
    api_.route("GET", "/v1/cache", [this](const ApiRequest&) {
      auto s = cache_->stats();
      return ApiResponse::json(200, dumpJson(json{{"dir", o_.cache_dir},
                                                  {"bytes", s.bytes},
                                                  {"limit_bytes", s.limit_bytes},
                                                  {"entries", s.entries},
                                                  {"hits", s.hits},
                                                  {"misses", s.misses},
                                                  {"insertions", s.insertions},
                                                  {"evictions", s.evictions}}) +
                                        "\n");
    });
    api_.route("DELETE", "/v1/cache", [this](const ApiRequest&) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& l : catalog_.layers().valueOr({})) {
        if (layers_.count(shortId(l.diff_id))) continue;
        cache_->dropLayer(cacheKey(shortId(l.diff_id), l, "registry"));
        cache_->dropLayer(cacheKey(shortId(l.diff_id), l, "gateway"));
      }
      return ApiResponse::json(200, "{\"ok\":true}\n");
    });
  }

  ImageServiceOptions o_;
  Catalog catalog_;
  std::shared_ptr<ChunkCache> cache_;
  EventLoop loop_;
  ApiServer api_;
  std::mutex mu_;
  std::map<std::string, AttachedLayer> layers_;
  std::map<std::string, std::shared_ptr<oci::RegistryClient>> clients_;
  std::map<std::string, std::shared_ptr<BackendHealth>> health_;  // by back end
};

}  // namespace

int runImageService(const ImageServiceOptions& options) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  ImageService svc(options);
  Status s = svc.start(sfd);
  if (s.ok()) {
    std::printf("image service for node %s on %s (cache %s)\n", options.node.c_str(),
                imageServiceSocket(options.run_root, options.node).c_str(), options.cache_dir.c_str());
    std::fflush(stdout);
    s = svc.run();
  }
  ::close(sfd);
  if (!s.ok()) {
    std::fprintf(stderr, "offcore: image serve: %s\n", s.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace offcore
