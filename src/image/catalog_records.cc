#include "image/catalog_records.h"

#include <limits>

#include <nlohmann/json.hpp>

#include "base/json.h"

namespace offcore {

namespace {

using nlohmann::json;

// Typed reads of one object's fields: a missing field is its default, a
// field of the wrong type or range is the first error, kept in err.
class Fields {
 public:
  Fields(const json& j, std::string what) : j_(j), what_(std::move(what)) {}

  std::string str(const char* k) {
    const json* v = find(k);
    if (!v) return "";
    if (!v->is_string()) {
      bad(k, "a string");
      return "";
    }
    return v->get<std::string>();
  }
  uint64_t u64(const char* k, uint64_t max = std::numeric_limits<uint64_t>::max()) {
    const json* v = find(k);
    if (!v) return 0;
    if (!v->is_number_unsigned() || v->get<uint64_t>() > max) {
      bad(k, max == std::numeric_limits<uint64_t>::max() ? "a non-negative integer"
                                                         : "an integer from 0 to " + std::to_string(max));
      return 0;
    }
    return v->get<uint64_t>();
  }
  bool boolean(const char* k) {
    const json* v = find(k);
    if (!v) return false;
    if (!v->is_boolean()) {
      bad(k, "true or false");
      return false;
    }
    return v->get<bool>();
  }
  std::vector<std::string> strings(const char* k) {
    std::vector<std::string> out;
    const json* v = find(k);
    if (!v) return out;
    if (!v->is_array()) {
      bad(k, "a list of strings");
      return out;
    }
    for (const auto& e : *v) {
      if (!e.is_string()) {
        bad(k, "a list of strings");
        return std::vector<std::string>{};
      }
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  const json* object(const char* k) {
    const json* v = find(k);
    if (v && !v->is_object()) {
      bad(k, "an object");
      return nullptr;
    }
    return v;
  }
  const json* array(const char* k) {
    const json* v = find(k);
    if (v && !v->is_array()) {
      bad(k, "a list");
      return nullptr;
    }
    return v;
  }
  void bad(const std::string& k, const std::string& want) {
    if (!err_) {
      err_ = makeError(what_ + " in the catalog is malformed (" + k + " is not " + want +
                       "); remove that record and convert the image again");
    }
  }
  const std::optional<Error>& error() const { return err_; }

 private:
  const json* find(const char* k) const {
    auto it = j_.find(k);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& j_;
  std::string what_;
  std::optional<Error> err_;
};

json gatewayJson(const GatewayArtifact& g) {
  json j{{"uri", g.uri}, {"target", g.target}, {"volume", g.volume}};
  if (!g.chunk_index.empty()) j["chunk_index"] = g.chunk_index;
  return j;
}

GatewayArtifact gatewayFrom(const json& j, const std::string& what, std::optional<Error>& err) {
  Fields f(j, what + " gateway");
  GatewayArtifact g{f.str("uri"), f.str("target"), f.str("volume"), f.str("chunk_index")};
  if (f.error() && !err) err = *f.error();
  return g;
}

Result<json> parseObject(std::string_view text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return makeError(
        what + " in the catalog is malformed (not a JSON object); remove that record and convert the image again");
  }
  return j;
}

}  // namespace

std::string layerToJson(const LayerRecord& l) {
  json j{{"diff_id", l.diff_id}, {"fs_bytes", l.fs_bytes}, {"tar_bytes", l.tar_bytes}, {"profile", l.profile}};
  if (!l.start_ranges.empty()) j["start_ranges"] = l.start_ranges;
  if (l.gateway) j["gateway"] = gatewayJson(*l.gateway);
  if (l.registry) {
    const auto& r = *l.registry;
    j["registry"] = {{"registry", r.registry},       {"repository", r.repository},
                     {"plain_http", r.plain_http},   {"chunk_data", r.chunk_data},
                     {"chunk_index", r.chunk_index}, {"data_bytes", r.data_bytes},
                     {"chunk_size", r.chunk_size},   {"chunks", r.chunks}};
  }
  return dumpJson(j);
}

Result<LayerRecord> layerFromJson(std::string_view text, const std::string& what) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, what));
  Fields f(j, what);
  std::optional<Error> err;
  LayerRecord l;
  l.diff_id = f.str("diff_id");
  l.fs_bytes = f.u64("fs_bytes");
  l.tar_bytes = f.u64("tar_bytes");
  if (const json* p = f.array("profile")) {
    for (const auto& c : *p) {
      if (!c.is_number_unsigned() || c.get<uint64_t>() > std::numeric_limits<uint32_t>::max()) {
        f.bad("profile", "a list of chunk numbers");
        break;
      }
      l.profile.push_back(c.get<uint32_t>());
    }
  }
  if (const json* rs = f.array("start_ranges")) {
    for (const auto& r : *rs) {
      if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() || !r[1].is_number_unsigned()) {
        f.bad("start_ranges", "a list of [offset, length]");
        break;
      }
      l.start_ranges.emplace_back(r[0].get<uint64_t>(), r[1].get<uint64_t>());
    }
  }
  if (const json* g = f.object("gateway")) l.gateway = gatewayFrom(*g, what, err);
  if (const json* r = f.object("registry")) {
    Fields rf(*r, what + " registry");
    l.registry = RegistryArtifact{rf.str("registry"),
                                  rf.str("repository"),
                                  rf.boolean("plain_http"),
                                  rf.str("chunk_data"),
                                  rf.str("chunk_index"),
                                  rf.u64("data_bytes"),
                                  static_cast<uint32_t>(rf.u64("chunk_size", std::numeric_limits<uint32_t>::max())),
                                  static_cast<uint32_t>(rf.u64("chunks", std::numeric_limits<uint32_t>::max()))};
    if (rf.error() && !err) err = *rf.error();
  }
  if (f.error()) return *f.error();
  if (err) return *err;
  return l;
}

std::string flatToJson(const FlatRecord& f) {
  return dumpJson(json{{"gateway", gatewayJson(f.gateway)}, {"size_bytes", f.size_bytes}});
}

Result<FlatRecord> flatFromJson(std::string_view text, const std::string& chain_id) {
  std::string what = "flat snapshot " + chain_id;
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, what));
  Fields f(j, what);
  std::optional<Error> err;
  FlatRecord out;
  out.chain_id = chain_id;
  if (const json* g = f.object("gateway")) out.gateway = gatewayFrom(*g, what, err);
  out.size_bytes = f.u64("size_bytes");
  if (f.error()) return *f.error();
  if (err) return *err;
  return out;
}

std::string imageToJson(const ImageRecord& i) {
  return dumpJson(json{{"ref", i.ref},
                       {"lazy_ref", i.lazy_ref},
                       {"manifest_digest", i.manifest_digest},
                       {"diff_ids", i.diff_ids},
                       {"chain_ids", i.chain_ids},
                       {"lazy_chain_ids", i.lazy_chain_ids},
                       {"layered", i.layered},
                       {"flat", i.flat},
                       {"start_files", i.start_files},
                       {"start_note", i.start_note}});
}

Result<ImageRecord> imageFromJson(std::string_view text, const std::string& what) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, what));
  Fields f(j, what);
  ImageRecord i;
  i.ref = f.str("ref");
  i.lazy_ref = f.str("lazy_ref");
  i.manifest_digest = f.str("manifest_digest");
  i.diff_ids = f.strings("diff_ids");
  i.chain_ids = f.strings("chain_ids");
  i.lazy_chain_ids = f.strings("lazy_chain_ids");
  i.layered = f.boolean("layered");
  i.flat = f.boolean("flat");
  i.start_files = f.strings("start_files");
  i.start_note = f.str("start_note");
  if (f.error()) return *f.error();
  return i;
}

std::string blobHeadToJson(const BlobHead& h) { return dumpJson(json{{"bytes", h.bytes}, {"parts", h.parts}}); }

Result<BlobHead> blobHeadFromJson(std::string_view text, uint64_t part_bytes, uint64_t max_bytes) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, "blob head"));
  Fields f(j, "blob head");
  BlobHead h{f.u64("bytes", max_bytes), f.u64("parts")};
  if (f.error()) return *f.error();
  if (part_bytes == 0 || h.parts != (h.bytes + part_bytes - 1) / part_bytes) {
    return makeError("blob head in the catalog says " + std::to_string(h.parts) + " parts for " +
                     std::to_string(h.bytes) + " bytes; convert the image again");
  }
  return h;
}

}  // namespace offcore
