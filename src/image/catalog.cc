#include "image/catalog.h"

#include <set>

#include "image/catalog_storage.h"
#include "image/digest.h"
#include "image/oci.h"

namespace offcore {

namespace {

// A layer record's read-modify-write: f changes the record (found) or
// says there is none.
template <typename F>
Status updateLayer(CatalogStorage& s, const std::string& diff_id, F&& f) {
  bool found = false;
  OC_TRY(s.update("layers", diff_id, [&](const std::optional<std::string>& cur) -> Result<std::optional<std::string>> {
    found = cur.has_value();
    if (!cur) return std::optional<std::string>();
    OC_ASSIGN_OR_RETURN(LayerRecord l, layerFromJson(*cur, "layer " + diff_id));
    f(l);
    return std::optional<std::string>(layerToJson(l));
  }));
  if (!found) return makeError("layer " + diff_id + " is not in the catalog (" + s.location() + ")");
  return {};
}

}  // namespace

Catalog::Catalog() : storage_(makeDirCatalogStorage(defaultDir())) {}
Catalog::Catalog(std::shared_ptr<CatalogStorage> storage) : storage_(std::move(storage)) {}
Catalog Catalog::inDir(std::string dir) { return Catalog(makeDirCatalogStorage(std::move(dir))); }
std::string Catalog::location() const { return storage_->location(); }

Result<std::optional<LayerRecord>> Catalog::layer(const std::string& diff_id) const {
  OC_ASSIGN_OR_RETURN(auto text, storage_->get("layers", diff_id));
  if (!text) return std::optional<LayerRecord>();
  OC_ASSIGN_OR_RETURN(LayerRecord l, layerFromJson(*text, "layer " + diff_id));
  return std::optional<LayerRecord>(std::move(l));
}

Result<std::optional<FlatRecord>> Catalog::flat(const std::string& chain_id) const {
  OC_ASSIGN_OR_RETURN(auto text, storage_->get("flat", chain_id));
  if (!text) return std::optional<FlatRecord>();
  OC_ASSIGN_OR_RETURN(FlatRecord f, flatFromJson(*text, chain_id));
  return std::optional<FlatRecord>(std::move(f));
}

Result<std::optional<ResolvedChain>> Catalog::resolveChain(const std::string& chain_id) const {
  OC_ASSIGN_OR_RETURN(auto imgs, images());
  for (const auto& i : imgs) {
    for (size_t k = 0; k < i.chain_ids.size() && k < i.diff_ids.size(); ++k) {
      bool lazy = k < i.lazy_chain_ids.size() && i.lazy_chain_ids[k] == chain_id;
      if (i.chain_ids[k] == chain_id || lazy) {
        return std::optional<ResolvedChain>(ResolvedChain{i.diff_ids[k], i.chain_ids[k]});
      }
    }
  }
  return std::optional<ResolvedChain>();
}

Result<std::vector<ImageRecord>> Catalog::images() const {
  OC_ASSIGN_OR_RETURN(auto all, storage_->list("images"));
  std::vector<ImageRecord> out;
  for (const auto& [k, v] : all) {
    OC_ASSIGN_OR_RETURN(ImageRecord i, imageFromJson(v, "image " + k));
    out.push_back(std::move(i));
  }
  return out;
}

Result<std::vector<LayerRecord>> Catalog::layers() const {
  OC_ASSIGN_OR_RETURN(auto all, storage_->list("layers"));
  std::vector<LayerRecord> out;
  for (const auto& [k, v] : all) {
    OC_ASSIGN_OR_RETURN(LayerRecord l, layerFromJson(v, "layer " + k));
    out.push_back(std::move(l));
  }
  return out;
}

Status Catalog::putLayer(const LayerRecord& layer) {
  return storage_->update("layers", layer.diff_id,
                          [&](const std::optional<std::string>& cur) -> Result<std::optional<std::string>> {
                            LayerRecord merged = layer;
                            if (cur) {
                              // Keep what another conversion recorded (the same layer
                              // pushed to a registry and to a gateway by two runs).
                              OC_ASSIGN_OR_RETURN(LayerRecord prev, layerFromJson(*cur, "layer " + layer.diff_id));
                              if (!merged.gateway) merged.gateway = prev.gateway;
                              if (!merged.registry) merged.registry = prev.registry;
                              if (merged.profile.empty()) merged.profile = prev.profile;
                              if (merged.start_ranges.empty()) merged.start_ranges = prev.start_ranges;
                            }
                            return std::optional<std::string>(layerToJson(merged));
                          });
}

Status Catalog::putFlat(const FlatRecord& f) {
  return storage_->update("flat", f.chain_id,
                          [&](const std::optional<std::string>&) -> Result<std::optional<std::string>> {
                            return std::optional<std::string>(flatToJson(f));
                          });
}

Status Catalog::putImage(const ImageRecord& i) {
  return storage_->update("images", i.ref,
                          [&](const std::optional<std::string>& cur) -> Result<std::optional<std::string>> {
                            ImageRecord merged = i;
                            if (cur) {
                              OC_ASSIGN_OR_RETURN(ImageRecord prev, imageFromJson(*cur, "image " + i.ref));
                              if (merged.lazy_ref.empty()) merged.lazy_ref = prev.lazy_ref;
                              if (merged.lazy_chain_ids.empty()) merged.lazy_chain_ids = prev.lazy_chain_ids;
                              merged.layered = merged.layered || prev.layered;
                              merged.flat = merged.flat || prev.flat;
                            }
                            return std::optional<std::string>(imageToJson(merged));
                          });
}

Status Catalog::addStartRanges(const std::string& diff_id, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  constexpr size_t kMaxRanges = 65536;
  return updateLayer(*storage_, diff_id, [&](LayerRecord& l) {
    std::set<std::pair<uint64_t, uint64_t>> have(l.start_ranges.begin(), l.start_ranges.end());
    for (const auto& r : ranges) {
      if (l.start_ranges.size() >= kMaxRanges) break;
      if (have.insert(r).second) l.start_ranges.push_back(r);
    }
  });
}

Status Catalog::setProfile(const std::string& diff_id, const std::vector<uint32_t>& chunks) {
  return updateLayer(*storage_, diff_id, [&](LayerRecord& l) { l.profile = chunks; });
}

Result<std::string> Catalog::putChunkIndex(const ChunkIndex& index) const {
  std::string bytes = serializeChunkIndex(index);
  std::string digest = oci::sha256Digest(bytes);
  OC_TRY(storage_->putBlob(digest, bytes));
  return digest;
}

Result<ChunkIndex> Catalog::chunkIndex(const std::string& digest) const {
  if (!oci::isValidDigest(digest))
    return makeError("chunk index digest '" + digest + "' is malformed; convert the image again", EIO);
  auto bytes = storage_->blob(digest);
  if (!bytes.ok()) return bytes.error().wrap("chunk index " + digest + " (convert the image again)");
  if (oci::sha256Digest(*bytes) != digest) {
    return makeError("chunk index " + digest + " in " + storage_->location() + " does not match its digest", EIO);
  }
  return parseChunkIndex(bytes->data(), bytes->size());
}

}  // namespace offcore
