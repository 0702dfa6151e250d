#include "image/catalog.h"

#include <set>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "image/digest.h"

namespace offcore {

using nlohmann::json;

struct Catalog::Doc {
  json j = json{{"version", 1}, {"layers", json::object()}, {"flat", json::object()}, {"images", json::object()}};
};

namespace {

json toJson(const GatewayArtifact& g) {
  json j{{"uri", g.uri}, {"target", g.target}, {"volume", g.volume}};
  if (!g.chunk_index.empty()) j["chunk_index"] = g.chunk_index;
  return j;
}
GatewayArtifact gatewayFrom(const json& j) {
  return {j.value("uri", ""), j.value("target", ""), j.value("volume", ""), j.value("chunk_index", "")};
}

// "sha256:<64 hex>" -> the file name under indexes/, or empty when malformed.
std::string indexFileName(const std::string& digest) {
  const std::string prefix = "sha256:";
  if (digest.size() != prefix.size() + 64 || digest.compare(0, prefix.size(), prefix) != 0) return "";
  std::string hex = digest.substr(prefix.size());
  if (hex.find_first_not_of("0123456789abcdef") != std::string::npos) return "";
  return hex + ".idx";
}

json toJson(const LayerRecord& l) {
  json j{{"diff_id", l.diff_id}, {"fs_bytes", l.fs_bytes}, {"tar_bytes", l.tar_bytes}, {"profile", l.profile}};
  if (!l.start_ranges.empty()) j["start_ranges"] = l.start_ranges;
  if (l.gateway) j["gateway"] = toJson(*l.gateway);
  if (l.registry) {
    const auto& r = *l.registry;
    j["registry"] = {{"registry", r.registry},       {"repository", r.repository},
                     {"plain_http", r.plain_http},   {"chunk_data", r.chunk_data},
                     {"chunk_index", r.chunk_index}, {"data_bytes", r.data_bytes},
                     {"chunk_size", r.chunk_size},   {"chunks", r.chunks}};
  }
  return j;
}

LayerRecord layerFrom(const json& j) {
  LayerRecord l;
  l.diff_id = j.value("diff_id", "");
  l.fs_bytes = j.value("fs_bytes", 0ULL);
  l.tar_bytes = j.value("tar_bytes", 0ULL);
  if (j.contains("profile") && j["profile"].is_array()) {
    for (const auto& c : j["profile"]) {
      if (c.is_number_unsigned()) l.profile.push_back(c.get<uint32_t>());
    }
  }
  if (j.contains("start_ranges") && j["start_ranges"].is_array()) {
    for (const auto& r : j["start_ranges"]) {
      if (r.is_array() && r.size() == 2 && r[0].is_number_unsigned() && r[1].is_number_unsigned()) {
        l.start_ranges.emplace_back(r[0].get<uint64_t>(), r[1].get<uint64_t>());
      }
    }
  }
  if (j.contains("gateway") && j["gateway"].is_object()) l.gateway = gatewayFrom(j["gateway"]);
  if (j.contains("registry") && j["registry"].is_object()) {
    const auto& r = j["registry"];
    l.registry = RegistryArtifact{r.value("registry", ""),   r.value("repository", ""),  r.value("plain_http", false),
                                  r.value("chunk_data", ""), r.value("chunk_index", ""), r.value("data_bytes", 0ULL),
                                  r.value("chunk_size", 0U), r.value("chunks", 0U)};
  }
  return l;
}

ImageRecord imageFrom(const json& j) {
  ImageRecord i;
  i.ref = j.value("ref", "");
  i.lazy_ref = j.value("lazy_ref", "");
  i.manifest_digest = j.value("manifest_digest", "");
  i.diff_ids = j.value("diff_ids", std::vector<std::string>{});
  i.chain_ids = j.value("chain_ids", std::vector<std::string>{});
  i.lazy_chain_ids = j.value("lazy_chain_ids", std::vector<std::string>{});
  i.layered = j.value("layered", false);
  i.flat = j.value("flat", false);
  i.start_files = j.value("start_files", std::vector<std::string>{});
  i.start_note = j.value("start_note", "");
  return i;
}

}  // namespace

Result<Catalog::Doc> Catalog::load() const {
  Doc d;
  std::string path = dir_ + "/catalog.json";
  if (!pathExists(path)) return d;
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("layers") || !j["layers"].is_object() ||
      !j.contains("images") || !j["images"].is_object()) {
    return makeError(path + " is corrupt (not a catalog document); move it away and convert again");
  }
  if (!j.contains("flat") || !j["flat"].is_object()) j["flat"] = json::object();
  d.j = std::move(j);
  return d;
}

Status Catalog::store(const Doc& doc) const {
  return writeFileAtomic(dir_ + "/catalog.json", dumpJson(doc.j, 1) + "\n");
}

template <typename F>
Status Catalog::update(F&& mutate) const {
  OC_TRY(makePrivateDir(dir_));
  OC_ASSIGN_OR_RETURN(auto lock, FileLock::acquire(dir_ + "/catalog.lock"));
  OC_ASSIGN_OR_RETURN(Doc doc, load());
  mutate(doc.j);
  return store(doc);
}

Result<std::optional<LayerRecord>> Catalog::layer(const std::string& diff_id) const {
  OC_ASSIGN_OR_RETURN(Doc doc, load());
  auto it = doc.j["layers"].find(diff_id);
  if (it == doc.j["layers"].end()) return std::optional<LayerRecord>();
  return std::optional<LayerRecord>(layerFrom(*it));
}

Result<std::optional<FlatRecord>> Catalog::flat(const std::string& chain_id) const {
  OC_ASSIGN_OR_RETURN(Doc doc, load());
  auto it = doc.j["flat"].find(chain_id);
  if (it == doc.j["flat"].end()) return std::optional<FlatRecord>();
  FlatRecord f{chain_id, gatewayFrom(it->value("gateway", json::object())), it->value("size_bytes", 0ULL)};
  return std::optional<FlatRecord>(f);
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
  OC_ASSIGN_OR_RETURN(Doc doc, load());
  std::vector<ImageRecord> out;
  for (const auto& [k, v] : doc.j["images"].items()) out.push_back(imageFrom(v));
  return out;
}

Result<std::vector<LayerRecord>> Catalog::layers() const {
  OC_ASSIGN_OR_RETURN(Doc doc, load());
  std::vector<LayerRecord> out;
  for (const auto& [k, v] : doc.j["layers"].items()) out.push_back(layerFrom(v));
  return out;
}

Status Catalog::putLayer(const LayerRecord& layer) {
  return update([&](json& j) {
    json merged = toJson(layer);
    // Keep artifacts another conversion made (the same layer pushed to a
    // registry and to a gateway by two runs).
    if (auto it = j["layers"].find(layer.diff_id); it != j["layers"].end()) {
      for (const char* k : {"gateway", "registry"}) {
        if (!merged.contains(k) && it->contains(k)) merged[k] = (*it)[k];
      }
      if (layer.profile.empty() && it->contains("profile")) merged["profile"] = (*it)["profile"];
    }
    j["layers"][layer.diff_id] = merged;
  });
}

Status Catalog::putFlat(const FlatRecord& f) {
  return update([&](json& j) {
    j["flat"][f.chain_id] = {{"gateway", toJson(f.gateway)}, {"size_bytes", f.size_bytes}};
  });
}

Status Catalog::putImage(const ImageRecord& i) {
  return update([&](json& j) {
    json prev = j["images"].value(i.ref, json::object());
    j["images"][i.ref] = {{"ref", i.ref},
                          {"lazy_ref", i.lazy_ref.empty() ? prev.value("lazy_ref", "") : i.lazy_ref},
                          {"manifest_digest", i.manifest_digest},
                          {"diff_ids", i.diff_ids},
                          {"chain_ids", i.chain_ids},
                          {"lazy_chain_ids", i.lazy_chain_ids.empty() ? prev.value("lazy_chain_ids", json::array())
                                                                      : json(i.lazy_chain_ids)},
                          {"layered", i.layered || prev.value("layered", false)},
                          {"flat", i.flat || prev.value("flat", false)},
                          {"start_files", i.start_files},
                          {"start_note", i.start_note}};
  });
}

Status Catalog::addStartRanges(const std::string& diff_id, const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  constexpr size_t kMaxRanges = 65536;
  bool found = false;
  OC_TRY(update([&](json& j) {
    auto it = j["layers"].find(diff_id);
    if (it == j["layers"].end()) return;
    found = true;
    LayerRecord l = layerFrom(*it);
    std::set<std::pair<uint64_t, uint64_t>> have(l.start_ranges.begin(), l.start_ranges.end());
    for (const auto& r : ranges) {
      if (l.start_ranges.size() >= kMaxRanges) break;
      if (have.insert(r).second) l.start_ranges.push_back(r);
    }
    (*it)["start_ranges"] = l.start_ranges;
  }));
  if (!found) return makeError("layer " + diff_id + " is not in the catalog");
  return {};
}

Status Catalog::setProfile(const std::string& diff_id, const std::vector<uint32_t>& chunks) {
  bool found = false;
  OC_TRY(update([&](json& j) {
    auto it = j["layers"].find(diff_id);
    if (it == j["layers"].end()) return;
    (*it)["profile"] = chunks;
    found = true;
  }));
  if (!found) return makeError("layer " + diff_id + " is not in the catalog");
  return {};
}

}  // namespace offcore

namespace offcore {

Result<std::string> Catalog::putChunkIndex(const ChunkIndex& index) const {
  std::string bytes = serializeChunkIndex(index);
  std::string digest = oci::sha256Digest(bytes);
  OC_TRY(makePrivateDir(dir_ + "/indexes"));
  OC_TRY(writeFileAtomic(dir_ + "/indexes/" + indexFileName(digest), bytes));
  return digest;
}

Result<ChunkIndex> Catalog::chunkIndex(const std::string& digest) const {
  std::string name = indexFileName(digest);
  if (name.empty()) return makeError("chunk index digest '" + digest + "' is malformed; convert the image again", EIO);
  auto bytes = readFile(dir_ + "/indexes/" + name);
  if (!bytes.ok()) return bytes.error().wrap("chunk index " + digest + " (convert the image again)");
  if (oci::sha256Digest(*bytes) != digest) {
    return makeError("chunk index " + digest + " in " + dir_ + "/indexes does not match its digest", EIO);
  }
  return parseChunkIndex(bytes->data(), bytes->size());
}

}  // namespace offcore
