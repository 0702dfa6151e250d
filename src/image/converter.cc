#include "image/converter.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "gateway/client.h"
#include "image/chunk_codec.h"
#include "image/digest.h"
#include "image/gateway_volumes.h"
#include "image/image_source.h"
#include "image/layer_apply.h"
#include "image/layer_digest.h"
#include "image/lazy/sources.h"
#include "image/prefetch_runner.h"
#include "image/scratch_dir.h"

namespace offcore {

using nlohmann::json;

std::string shortId(const std::string& digest) {
  auto colon = digest.find(':');
  return digest.substr(colon == std::string::npos ? 0 : colon + 1, 16);
}

namespace {

// A stub layer: a valid uncompressed tar holding one small JSON file that
// says where the real layer lives. If a snapshotter without offcore ever
// unpacks it, containerd rejects it (its digest is not the config's diff
// ID), so a stub can never become a wrong rootfs.
Result<std::string> stubLayerTar(const json& info) {
  std::string body = dumpJson(info, 2) + "\n";
  std::unique_ptr<archive, int (*)(archive*)> a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_add_filter_none(a.get());
  std::string out(64 * 1024, '\0');
  size_t used = 0;
  if (archive_write_open_memory(a.get(), out.data(), out.size(), &used) != ARCHIVE_OK) {
    return makeError(std::string("stub layer: ") + archive_error_string(a.get()));
  }
  std::unique_ptr<archive_entry, void (*)(archive_entry*)> e(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(e.get(), oci::kStubMarkerFile);
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_perm(e.get(), 0444);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(body.size()));
  archive_entry_set_mtime(e.get(), 0, 0);
  if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK ||
      archive_write_data(a.get(), body.data(), body.size()) != static_cast<la_ssize_t>(body.size()) ||
      archive_write_close(a.get()) != ARCHIVE_OK) {
    return makeError(std::string("stub layer: ") + archive_error_string(a.get()));
  }
  out.resize(used);
  return out;
}

// The layer volume's chunk size: what VolumeChunkSource reads and the
// index's digests cover.
constexpr uint32_t kGatewayChunkSize = 256 * 1024;

// Streams the image to the volume (as the converter, the only host the work
// volume admits) and returns the per-chunk digests of what was written.
Result<ChunkIndex> writeImageToVolume(const std::string& image_path, const GatewayVolume& vol) {
  const std::string& uri = vol.uri;
  std::string secret;
  if (auto it = vol.new_secrets.find(kConverterHostNqn); it != vol.new_secrets.end()) secret = it->second;
  OC_ASSIGN_OR_RETURN(auto host, connectVolumeAsConverter(uri, std::chrono::seconds(30), secret));
  std::string padded;
  auto index = indexRawImage(image_path, kGatewayChunkSize, [&](uint64_t off, const char* data, size_t n) -> Status {
    if (n % 4096 == 0) return host->write(off, data, n);
    padded.assign(data, n);
    padded.resize((n + 4095) / 4096 * 4096, '\0');  // the image's tail; the volume reads zeroes past it
    return host->write(off, padded.data(), padded.size());
  });
  if (!index.ok()) return index.error().wrap("write " + image_path + " to " + uri);
  OC_TRY(host->flush());
  host->close();
  return index;
}

struct LayerPlan {
  bool need_gateway = false, need_registry = false;
  // Another repository of the destination registry holds the layer's
  // chunks: they are mounted from it (no bytes pushed) before any upload.
  std::string mount_from;
};

class Converter {
 public:
  Converter(const ConvertOptions& o, const ConvertProgress& p) : o_(o), progress_(p), catalog_(o.catalog) {}

  Result<ConvertSummary> run() {
    auto start = std::chrono::steady_clock::now();
    OC_ASSIGN_OR_RETURN(auto ref, oci::parseReference(o_.source));
    OC_ASSIGN_OR_RETURN(auto source, oci::openImageSource(ref, o_.registry));
    OC_ASSIGN_OR_RETURN(image_, source->resolve());
    OC_TRY(prepareDestination(ref));
    if (!o_.gateway.empty()) {
      std::string target = o_.gateway.substr(std::string("nvme-tcp://").size());
      while (!target.empty() && target.back() == '/') target.pop_back();
      OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(o_.run_root, target));
      gateway_ = std::make_unique<GatewayClient>(std::move(gw));
    }
    OC_TRY(makeDirs(o_.work_dir));
    // Scratch space of this run only: concurrent conversions share work_dir.
    // What killed converters left behind goes first.
    auto swept = sweepStaleScratch(o_.work_dir);
    if (!swept.ok()) spdlog::warn("image convert: sweeping old scratch: {}", swept.error().message);
    for (const auto& p : swept.valueOr({})) spdlog::info("image convert: removed {} (its converter is gone)", p);
    OC_ASSIGN_OR_RETURN(scratch_dir_, ScratchDir::create(o_.work_dir, o_.remove_scratch_on_signal));
    scratch_ = scratch_dir_->path();
    summary_.source = ref.str();
    summary_.manifest_digest = image_.manifest_digest;
    summary_.mode = o_.layered ? "layered" : "flat";
    auto chains = oci::chainIds(image_.config.diff_ids);
    const int total = static_cast<int>(chains.size());
    for (size_t i = 0; i < chains.size(); ++i) {
      if (progress_)
        progress_("layer " + std::to_string(i + 1) + "/" + std::to_string(total), static_cast<int>(i), total);
      OC_ASSIGN_OR_RETURN(auto layer, convertLayer(*source, i, chains));
      summary_.layers.push_back(std::move(layer));
    }
    if (o_.layered && !o_.planner_argv.empty()) planStart();
    if (!dest_.repository.empty()) OC_TRY(pushLazyManifest(chains));
    ImageRecord rec;
    rec.ref = ref.str();
    rec.lazy_ref = summary_.lazy_ref;
    rec.manifest_digest = image_.manifest_digest;
    rec.diff_ids = image_.config.diff_ids;
    rec.chain_ids = chains;
    rec.lazy_chain_ids = lazy_chain_ids_;
    rec.layered = o_.layered;
    rec.flat = !o_.layered;
    rec.start_files = summary_.start_files;
    rec.start_note = summary_.start_note;
    OC_TRY(catalog_.putImage(rec));
    if (!summary_.lazy_ref.empty()) {
      rec.ref = summary_.lazy_ref;
      OC_TRY(catalog_.putImage(rec));
    }
    if (progress_) progress_("done", total, total);
    summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return summary_;
  }

 private:
  Status prepareDestination(const oci::Reference& src) {
    if (!o_.layered && o_.gateway.empty()) {
      return makeError("flat mode builds ext4 volumes in a storage gateway: pass --to nvme-tcp://ADDR:PORT");
    }
    if (!o_.layered && o_.to_registry) {
      return makeError("flat mode stores volumes in a gateway only; use --mode layered for --to registry");
    }
    if (o_.gateway.empty() && !o_.to_registry) {
      return makeError("nowhere to put the result: pass --to nvme-tcp://ADDR:PORT and/or --to registry");
    }
    std::string dest = o_.dest;
    if (dest.empty() && o_.to_registry) {
      if (src.is_layout) return makeError("--to registry from an OCI layout needs --dest HOST/REPO:TAG");
      dest = src.registry + "/" + src.repository + ":" + (src.tag.empty() ? "latest" : src.tag) + "-offcore";
    }
    if (dest.empty()) return {};
    OC_ASSIGN_OR_RETURN(dest_, oci::parseReference(dest));
    if (dest_.is_layout) return makeError("--dest must be a registry reference (HOST/REPO:TAG)");
    if (!dest_.digest.empty()) return makeError("--dest must name a tag, not a digest");
    dest_client_ = std::make_unique<oci::RegistryClient>(dest_.registry, o_.registry);
    return {};
  }

  // What this layer still needs. The catalog says where an artifact was
  // made; it is reused only if it is still there: a registry emptied or
  // replaced since (its blobs gone), or a gateway volume deleted, gets the
  // layer again instead of a lazy image that fails at its first read.
  Result<LayerPlan> plan(const std::optional<LayerRecord>& rec) const {
    LayerPlan p;
    // A record without chunk digests predates verification: rebuild it.
    p.need_gateway = gateway_ && !(rec && rec->gateway && rec->gateway->target == gateway_->name() &&
                                   !rec->gateway->chunk_index.empty());
    if (gateway_ && !p.need_gateway) {
      OC_ASSIGN_OR_RETURN(bool present, gatewayHas(rec->gateway->volume));
      p.need_gateway = !present;
    }
    p.need_registry = o_.to_registry && !(rec && rec->registry && rec->registry->registry == dest_.registry &&
                                          rec->registry->repository == dest_.repository);
    if (p.need_registry && rec && rec->registry && rec->registry->registry == dest_.registry) {
      p.mount_from = rec->registry->repository;
    }
    if (o_.to_registry && !p.need_registry) {
      for (const std::string* blob : {&rec->registry->chunk_data, &rec->registry->chunk_index}) {
        OC_ASSIGN_OR_RETURN(bool present, dest_client_->hasBlob(dest_.repository, *blob));
        if (present) continue;
        spdlog::warn("image convert: {} is no longer in {}/{}; pushing the layer {} again", *blob, dest_.registry,
                     dest_.repository, shortId(rec->diff_id));
        p.need_registry = true;
        break;
      }
    }
    return p;
  }

  // Links the layer's two chunk blobs into the destination repository from
  // the one the catalog names (same registry). false: not mounted (the
  // source lost them, or the registry would not); the caller pushes.
  Result<bool> mountChunks(LayerRecord& rec, ConvertedLayer& out) {
    const RegistryArtifact& from = *rec.registry;
    for (const std::string* blob : {&from.chunk_data, &from.chunk_index}) {
      auto mounted = dest_client_->mountBlob(dest_.repository, *blob, from.repository);
      if (!mounted.ok() || !*mounted) {
        spdlog::warn("image convert: could not mount {} from {}/{}{}; pushing the layer {}", *blob, dest_.registry,
                     from.repository, mounted.ok() ? "" : ": " + mounted.error().message, shortId(rec.diff_id));
        return false;
      }
    }
    for (const std::string* blob : {&from.chunk_data, &from.chunk_index}) {
      out.created.push_back("blob " + *blob + " (mounted from " + from.repository + ")");
    }
    rec.registry->repository = dest_.repository;
    OC_TRY(catalog_.putLayer(rec));
    return true;
  }

  Result<bool> gatewayHas(const std::string& volume) const {
    OC_ASSIGN_OR_RETURN(auto found, gateway_->find(volume));
    if (!found)
      spdlog::warn("image convert: volume {} is no longer in gateway {}; writing it again", volume, gateway_->name());
    return found.has_value();
  }

  // The default prefetch list: planned on every layer's image (this run's,
  // or a reused layer's fetched back from its registry artifact). Never
  // fails the conversion: without a plan the image only starts colder.
  void planStart() {
    std::vector<std::string> images;
    for (size_t i = 0; i < image_.config.diff_ids.size(); ++i) {
      auto path = layerImageFor(i);
      if (!path.ok()) {
        summary_.start_note = "no default prefetch list: " + path.error().message;
        return;
      }
      images.push_back(*path);
    }
    StartSpec spec{image_.config.entrypoint, image_.config.cmd, image_.config.env, image_.config.working_dir};
    auto plan = runPrefetchPlanner(o_.planner_argv, images, spec, scratch_ + "/plan");
    for (const auto& i : images) ::unlink(i.c_str());
    if (!plan.ok()) {
      summary_.start_note = "no default prefetch list: " + plan.error().message;
      spdlog::warn("image convert: {}", summary_.start_note);
      return;
    }
    summary_.start_files = plan->start.files;
    summary_.start_note = plan->start.note;
    for (size_t i = 0; i < plan->layer_ranges.size(); ++i) {
      if (auto s = catalog_.addStartRanges(image_.config.diff_ids[i], plan->layer_ranges[i]); !s.ok()) {
        summary_.start_note = s.error().message;
      }
    }
  }

  // Layer i's EROFS image as a local file: kept from this run, or rebuilt
  // byte for byte from the layer's registry chunks (every chunk verified).
  Result<std::string> layerImageFor(size_t i) {
    if (i < layer_images_.size() && !layer_images_[i].empty()) return layer_images_[i];
    const std::string& diff = image_.config.diff_ids[i];
    OC_ASSIGN_OR_RETURN(auto rec, catalog_.layer(diff));
    if (!rec || !rec->registry) {
      return makeError("layer " + shortId(diff) +
                       " was converted earlier to a gateway only (convert it --to registry "
                       "too, or record a profile with `offcore image profile`)");
    }
    oci::RegistryOptions ro = o_.registry;
    ro.plain_http = ro.plain_http || rec->registry->plain_http;
    auto client = std::make_shared<oci::RegistryClient>(rec->registry->registry, ro);
    OC_ASSIGN_OR_RETURN(auto src, RegistryChunkSource::open(client, rec->registry->repository,
                                                            rec->registry->chunk_index, std::chrono::seconds(30)));
    std::string path = scratch_ + "/" + shortId(diff) + ".reused.erofs";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return errnoError("create " + path);
    std::string chunk;
    Status st;
    for (uint64_t c = 0; c < src->chunkCount() && st.ok(); ++c) {
      st = src->fetch(c, chunk);
      if (st.ok() && ::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(c * src->chunkSize())) !=
                         static_cast<ssize_t>(chunk.size())) {
        st = errnoError("write " + path);
      }
    }
    ::close(fd);
    if (!st.ok()) {
      ::unlink(path.c_str());
      return st.error();
    }
    layer_images_.resize(image_.config.diff_ids.size());
    layer_images_[i] = path;
    return path;
  }

  Result<ConvertedLayer> convertLayer(oci::ImageSource& source, size_t i, const std::vector<std::string>& chains) {
    const auto& desc = image_.manifest.layers[i];
    ConvertedLayer out;
    out.diff_id = image_.config.diff_ids[i];
    out.chain_id = chains[i];
    out.compressed_bytes = static_cast<uint64_t>(desc.size);
    std::optional<LayerRecord> rec;
    LayerPlan p;
    if (o_.layered) {
      OC_ASSIGN_OR_RETURN(rec, catalog_.layer(out.diff_id));
      OC_ASSIGN_OR_RETURN(p, plan(rec));
      if (!p.mount_from.empty()) {
        OC_ASSIGN_OR_RETURN(bool mounted, mountChunks(*rec, out));
        p.need_registry = !mounted;
      }
      if (!p.need_gateway && !p.need_registry) {
        out.reused = out.created.empty();
        fillFrom(*rec, out);
        return out;
      }
    } else {
      OC_ASSIGN_OR_RETURN(auto flat, catalog_.flat(out.chain_id));
      bool present = false;
      if (flat && gateway_ && flat->gateway.target == gateway_->name()) {
        OC_ASSIGN_OR_RETURN(present, gatewayHas(flat->gateway.volume));
      }
      if (present) {
        out.reused = true;
        out.fs_bytes = flat->size_bytes;
        return out;
      }
    }
    std::string base = scratch_ + "/" + shortId(out.diff_id);
    std::string blob = base + ".blob";
    OC_TRY(source.fetchBlob(desc, blob, {}));
    auto cleanup_blob = [&] { ::unlink(blob.c_str()); };
    // Bounded: a bomb is cut off here, before anything is unpacked.
    auto tar = oci::uncompressedDigest(blob, o_.bounds, desc.digest);
    if (!tar.ok() || tar->digest != out.diff_id) {
      cleanup_blob();
      if (!tar.ok()) return tar.error();
      return makeError("layer " + std::to_string(i) + " (" + desc.digest + ") unpacks to " + tar->digest +
                       " but the config says " + out.diff_id + "; the image is corrupt");
    }
    out.tar_bytes = tar->bytes;
    Result<ConvertedLayer> r =
        o_.layered ? convertLayered(blob, base, desc.digest, out, rec, p)
                   : buildFlatLayer(o_, FlatStep{out.chain_id, i ? chains[i - 1] : "", blob, desc.digest}, catalog_);
    cleanup_blob();
    if (r.ok() && !o_.layered) {
      r->diff_id = out.diff_id;
      r->compressed_bytes = out.compressed_bytes;
      r->tar_bytes = out.tar_bytes;
    }
    return r;
  }

  void fillFrom(const LayerRecord& rec, ConvertedLayer& out) const {
    out.fs_bytes = rec.fs_bytes;
    out.tar_bytes = rec.tar_bytes;
    if (rec.registry) {
      out.stored_bytes = rec.registry->data_bytes;
      out.chunks = rec.registry->chunks;
    }
  }

  Result<ConvertedLayer> convertLayered(const std::string& blob, const std::string& base, const std::string& digest,
                                        ConvertedLayer out, std::optional<LayerRecord> rec, LayerPlan p) {
    OC_ASSIGN_OR_RETURN(LayerImage image, buildLayerImage(blob, base, o_.bounds, digest));
    const std::string& fs = image.path;
    LayerRecord layer = rec.value_or(LayerRecord{});
    layer.start_ranges.clear();  // of the image built before; this run plans its own
    layer.diff_id = out.diff_id;
    layer.fs_bytes = image.fs_bytes;
    layer.tar_bytes = out.tar_bytes;
    out.fs_bytes = layer.fs_bytes;
    Status s = {};
    if (p.need_gateway) s = storeInGateway(fs, layer, out);
    if (s.ok() && p.need_registry) s = storeInRegistry(fs, base, layer, out);
    if (s.ok() && !o_.planner_argv.empty()) {
      keepLayerImage(out.diff_id, fs);  // for the prefetch planner
    } else {
      ::unlink(fs.c_str());
    }
    OC_TRY(s);
    OC_TRY(catalog_.putLayer(layer));
    return out;
  }

  // A layer volume is written under a work name that admits only the
  // converter, then frozen as a read-only snapshot that admits only nodes;
  // the work volume goes. Nodes check every chunk against the index, which
  // stays in the catalog.
  void keepLayerImage(const std::string& diff_id, const std::string& fs) {
    const auto& ids = image_.config.diff_ids;
    layer_images_.resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == diff_id) layer_images_[i] = fs;
    }
  }

  Status storeInGateway(const std::string& fs, LayerRecord& layer, ConvertedLayer& out) {
    std::string name = "l-" + shortId(layer.diff_id), work = "lw-" + shortId(layer.diff_id);
    // Left by an interrupted run. Never forced: a node may have it attached.
    OC_TRY(gateway_->remove(work, false));
    OC_TRY(gateway_->remove(name, false));
    uint64_t size = (layer.fs_bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20);
    OC_ASSIGN_OR_RETURN(auto vol, gateway_->create(work, size, std::vector<std::string>{kConverterHostNqn}));
    auto index = writeImageToVolume(fs, vol);
    if (!index.ok()) {
      (void)gateway_->remove(work, true);  // best effort; the next run removes it too
      return index.error();
    }
    OC_ASSIGN_OR_RETURN(auto frozen, gateway_->snapshot(work, name, std::vector<std::string>{nodeHostsPattern()}));
    OC_TRY(gateway_->remove(work, true));
    OC_ASSIGN_OR_RETURN(std::string index_digest, catalog_.putChunkIndex(*index));
    layer.gateway = GatewayArtifact{frozen.uri, gateway_->name(), name, index_digest};
    out.created.push_back("volume " + name);
    return {};
  }

  Status storeInRegistry(const std::string& fs, const std::string& base, LayerRecord& layer, ConvertedLayer& out) {
    std::string data = base + ".chunks";
    ChunkWriterOptions wo;
    wo.chunk_size = o_.chunk_size;
    wo.codec = o_.codec;
    auto index = writeChunkedBlob(fs, data, wo);
    if (!index.ok()) return index.error();
    std::string index_bytes = serializeChunkIndex(*index);
    std::string index_digest = oci::sha256Digest(index_bytes);
    struct stat st {};
    ::stat(data.c_str(), &st);
    Status s = dest_client_->pushBlobFile(dest_.repository, index->blob_digest, data);
    ::unlink(data.c_str());
    OC_TRY(s);
    OC_TRY(dest_client_->pushBlob(dest_.repository, index_digest, index_bytes));
    layer.registry = RegistryArtifact{dest_.registry,         dest_.repository,
                                      o_.registry.plain_http, index->blob_digest,
                                      index_digest,           static_cast<uint64_t>(st.st_size),
                                      index->chunk_size,      static_cast<uint32_t>(index->chunks.size())};
    out.stored_bytes = layer.registry->data_bytes;
    out.chunks = layer.registry->chunks;
    out.created.push_back("blob " + index->blob_digest + " (" + std::to_string(out.chunks) + " chunks)");
    out.created.push_back("blob " + index_digest + " (index)");
    return {};
  }

  // The lazy image: the original config with rootfs.diff_ids rewritten to
  // the stub layers' digests (so any containerd client can unpack it), one
  // stub per layer, each annotated with the real layer it stands for.
  Status pushLazyManifest(const std::vector<std::string>& chains) {
    auto& c = *dest_client_;
    oci::Manifest m;
    m.media_type = oci::kOciManifest;
    m.annotations["io.offcore.source"] = summary_.source;
    m.annotations["io.offcore.mode"] = summary_.mode;
    std::vector<std::string> stub_ids;
    for (size_t i = 0; i < chains.size(); ++i) {
      json info{{"chain_id", chains[i]},
                {"diff_id", image_.config.diff_ids[i]},
                {"mode", summary_.mode},
                {"source", summary_.source}};
      oci::Descriptor d;
      d.media_type = oci::kOciLayerTar;
      d.annotations[oci::kAnnotChainId] = chains[i];
      d.annotations[oci::kAnnotDiffId] = image_.config.diff_ids[i];
      if (o_.layered) {
        OC_ASSIGN_OR_RETURN(auto rec, catalog_.layer(image_.config.diff_ids[i]));
        if (rec && rec->registry) {
          d.annotations[oci::kAnnotChunkData] = rec->registry->chunk_data;
          d.annotations[oci::kAnnotChunkIndex] = rec->registry->chunk_index;
        }
      }
      OC_ASSIGN_OR_RETURN(std::string stub, stubLayerTar(info));
      d.digest = oci::sha256Digest(stub);
      d.size = static_cast<int64_t>(stub.size());
      OC_TRY(c.pushBlob(dest_.repository, d.digest, stub));
      m.layers.push_back(d);
      stub_ids.push_back(d.digest);  // uncompressed: the diff ID is the blob digest
    }
    json cfg = json::parse(image_.config_json, nullptr, false);
    if (cfg.is_discarded() || !cfg.contains("rootfs")) return makeError("the image config cannot be rewritten");
    cfg["rootfs"]["diff_ids"] = stub_ids;
    std::string cfg_text = dumpJson(cfg);
    m.config = image_.manifest.config;
    m.config.digest = oci::sha256Digest(cfg_text);
    m.config.size = static_cast<int64_t>(cfg_text.size());
    OC_TRY(c.pushBlob(dest_.repository, m.config.digest, cfg_text));
    OC_TRY(c.putManifest(dest_.repository, dest_.tag, oci::kOciManifest, oci::serializeManifest(m)));
    summary_.lazy_ref = dest_.str();
    lazy_chain_ids_ = oci::chainIds(stub_ids);
    return {};
  }

  const ConvertOptions& o_;
  const ConvertProgress& progress_;
  Catalog catalog_;
  oci::ResolvedImage image_;
  oci::Reference dest_;
  std::unique_ptr<oci::RegistryClient> dest_client_;
  std::unique_ptr<GatewayClient> gateway_;
  ConvertSummary summary_;
  std::vector<std::string> lazy_chain_ids_;
  std::unique_ptr<ScratchDir> scratch_dir_;  // removed with the converter, or on SIGTERM/SIGINT
  std::string scratch_;
  std::vector<std::string> layer_images_;  // per layer: its EROFS image kept for the planner
};

}  // namespace

Result<ConvertSummary> convertImage(const ConvertOptions& options, const ConvertProgress& progress) {
  return Converter(options, progress).run();
}

}  // namespace offcore
