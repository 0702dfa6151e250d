#include "image/oci.h"

#include <nlohmann/json.hpp>

#include "base/json.h"
#include "image/digest.h"

namespace offcore::oci {

using nlohmann::json;

namespace {

bool hasPrefix(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

Result<json> parseObject(const std::string& text, const char* what) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return makeError(std::string(what) + ": not valid JSON");
  if (!j.is_object()) return makeError(std::string(what) + ": not a JSON object");
  return j;
}

Result<std::string> stringField(const json& j, const char* key, const std::string& where, bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return makeError(where + ": missing field \"" + key + "\"");
    return std::string();
  }
  if (!it->is_string()) return makeError(where + ": field \"" + key + "\" must be a string");
  return it->get<std::string>();
}

Result<std::map<std::string, std::string>> annotationsOf(const json& j, const std::string& where) {
  std::map<std::string, std::string> out;
  auto it = j.find("annotations");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object()) return makeError(where + ": \"annotations\" must be an object");
  for (auto a = it->begin(); a != it->end(); ++a) {
    if (!a.value().is_string()) return makeError(where + ": annotation \"" + a.key() + "\" must be a string");
    out[a.key()] = a.value().get<std::string>();
  }
  return out;
}

Result<Descriptor> parseDescriptor(const json& j, const std::string& where) {
  if (!j.is_object()) return makeError(where + ": a descriptor must be an object");
  Descriptor d;
  OC_ASSIGN_OR_RETURN(d.media_type, stringField(j, "mediaType", where));
  OC_ASSIGN_OR_RETURN(d.digest, stringField(j, "digest", where));
  if (!isValidDigest(d.digest))
    return makeError(where + ": unsupported digest \"" + d.digest + "\" (want sha256:<64 hex>)");
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return makeError(where + ": \"size\" must be a non-negative integer");
  }
  d.size = size->get<int64_t>();
  OC_ASSIGN_OR_RETURN(d.annotations, annotationsOf(j, where));
  auto p = j.find("platform");
  if (p != j.end() && p->is_object()) {
    OC_ASSIGN_OR_RETURN(d.platform_os, stringField(*p, "os", where + ".platform", false));
    OC_ASSIGN_OR_RETURN(d.platform_arch, stringField(*p, "architecture", where + ".platform", false));
  }
  return d;
}

Result<std::vector<std::string>> stringArray(const json& j, const char* key, const std::string& where) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return makeError(where + ": \"" + key + "\" must be an array of strings");
  for (const auto& e : *it) {
    if (!e.is_string()) return makeError(where + ": \"" + key + "\" must be an array of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

json descriptorJson(const Descriptor& d) {
  json j{{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

}  // namespace

bool isValidDigest(const std::string& digest) {
  if (digest.size() != 71 || !hasPrefix(digest, "sha256:")) return false;
  for (size_t i = 7; i < digest.size(); ++i) {
    char c = digest[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Compression layerCompression(const std::string& mt) {
  if (mt == kOciLayerTar || mt == "application/vnd.docker.image.rootfs.diff.tar") return Compression::kNone;
  if (mt == kOciLayerGzip || mt == kDockerLayerGzip ||
      mt == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      mt == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip") {
    return Compression::kGzip;
  }
  if (mt == kOciLayerZstd) return Compression::kZstd;
  return Compression::kUnknown;
}

bool isLayerMediaType(const std::string& mt) { return layerCompression(mt) != Compression::kUnknown; }
bool isIndexMediaType(const std::string& mt) { return mt == kOciIndex || mt == kDockerList; }
bool isManifestMediaType(const std::string& mt) { return mt == kOciManifest || mt == kDockerManifest; }

std::string sniffMediaType(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  if (j.contains("mediaType") && j["mediaType"].is_string()) return j["mediaType"].get<std::string>();
  if (j.contains("manifests")) return kOciIndex;
  if (j.contains("layers")) return kOciManifest;
  return "";
}

Result<Manifest> parseManifest(const std::string& text) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, "manifest"));
  auto sv = j.find("schemaVersion");
  if (sv == j.end() || !sv->is_number_integer() || sv->get<int64_t>() != 2) {
    return makeError("manifest: schemaVersion must be 2 (Docker schema 1 is not supported)");
  }
  Manifest m;
  OC_ASSIGN_OR_RETURN(m.media_type, stringField(j, "mediaType", "manifest", false));
  if (m.media_type.empty()) m.media_type = kOciManifest;
  if (!isManifestMediaType(m.media_type)) return makeError("manifest: unexpected mediaType \"" + m.media_type + "\"");
  auto cfg = j.find("config");
  if (cfg == j.end()) return makeError("manifest: missing field \"config\"");
  OC_ASSIGN_OR_RETURN(m.config, parseDescriptor(*cfg, "manifest.config"));
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return makeError("manifest: \"layers\" must be an array");
  for (size_t i = 0; i < layers->size(); ++i) {
    OC_ASSIGN_OR_RETURN(auto d, parseDescriptor((*layers)[i], "manifest.layers[" + std::to_string(i) + "]"));
    m.layers.push_back(std::move(d));
  }
  OC_ASSIGN_OR_RETURN(m.annotations, annotationsOf(j, "manifest"));
  return m;
}

Result<ImageIndex> parseIndex(const std::string& text) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, "image index"));
  ImageIndex idx;
  OC_ASSIGN_OR_RETURN(idx.media_type, stringField(j, "mediaType", "image index", false));
  if (idx.media_type.empty()) idx.media_type = kOciIndex;
  auto ms = j.find("manifests");
  if (ms == j.end() || !ms->is_array()) return makeError("image index: \"manifests\" must be an array");
  for (size_t i = 0; i < ms->size(); ++i) {
    OC_ASSIGN_OR_RETURN(auto d, parseDescriptor((*ms)[i], "image index.manifests[" + std::to_string(i) + "]"));
    idx.manifests.push_back(std::move(d));
  }
  return idx;
}

Result<ImageConfig> parseConfig(const std::string& text) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(text, "image config"));
  ImageConfig c;
  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) return makeError("image config: missing object \"rootfs\"");
  OC_ASSIGN_OR_RETURN(c.diff_ids, stringArray(*rootfs, "diff_ids", "image config.rootfs"));
  for (const auto& d : c.diff_ids) {
    if (!isValidDigest(d)) return makeError("image config.rootfs.diff_ids: bad digest \"" + d + "\"");
  }
  OC_ASSIGN_OR_RETURN(c.os, stringField(j, "os", "image config", false));
  OC_ASSIGN_OR_RETURN(c.architecture, stringField(j, "architecture", "image config", false));
  auto cfg = j.find("config");
  if (cfg != j.end() && cfg->is_object()) {
    OC_ASSIGN_OR_RETURN(c.env, stringArray(*cfg, "Env", "image config.config"));
    OC_ASSIGN_OR_RETURN(c.cmd, stringArray(*cfg, "Cmd", "image config.config"));
    OC_ASSIGN_OR_RETURN(c.entrypoint, stringArray(*cfg, "Entrypoint", "image config.config"));
    OC_ASSIGN_OR_RETURN(c.working_dir, stringField(*cfg, "WorkingDir", "image config.config", false));
  }
  return c;
}

std::string serializeManifest(const Manifest& m) {
  json j{{"schemaVersion", 2}, {"mediaType", m.media_type}, {"config", descriptorJson(m.config)}};
  j["layers"] = json::array();
  for (const auto& l : m.layers) j["layers"].push_back(descriptorJson(l));
  if (!m.annotations.empty()) j["annotations"] = m.annotations;
  return dumpJson(j);
}

Result<Descriptor> pickPlatform(const ImageIndex& index, const std::string& arch) {
  if (index.manifests.size() == 1) return index.manifests[0];
  std::string seen;
  for (const auto& d : index.manifests) {
    if (d.platform_os == "linux" && d.platform_arch == arch) return d;
    seen += (seen.empty() ? "" : ", ") + d.platform_os + "/" + d.platform_arch;
  }
  return makeError("the image index has no linux/" + arch + " manifest (it has: " + (seen.empty() ? "none" : seen) +
                   ")");
}

std::vector<std::string> chainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const auto& d : diff_ids) {
    out.push_back(out.empty() ? d : sha256Digest(out.back() + " " + d));
  }
  return out;
}

std::string Reference::str() const {
  if (is_layout) return "oci:" + layout_dir + (tag.empty() ? "" : ":" + tag);
  std::string s = registry + "/" + repository;
  if (!tag.empty() && digest.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Result<Reference> parseReference(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return makeError("bad image reference \"" + text + "\": " + why +
                     " (use HOST[:PORT]/REPO[:TAG][@sha256:...] or oci:DIR[:TAG])");
  };
  Reference r;
  if (hasPrefix(text, "oci:")) {
    r.is_layout = true;
    std::string rest = text.substr(4);
    auto colon = rest.rfind(':');
    auto slash = rest.rfind('/');
    if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
      r.tag = rest.substr(colon + 1);
      rest = rest.substr(0, colon);
    }
    if (rest.empty()) return bad("no directory");
    r.layout_dir = rest;
    return r;
  }
  std::string rest = text;
  auto at = rest.find('@');
  if (at != std::string::npos) {
    r.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!isValidDigest(r.digest)) return bad("the digest must be sha256:<64 hex>");
  }
  auto slash = rest.find('/');
  if (slash == std::string::npos) return bad("no registry host (Docker Hub is not reachable here)");
  r.registry = rest.substr(0, slash);
  rest = rest.substr(slash + 1);
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    r.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  r.repository = rest;
  if (r.registry.empty() || r.repository.empty()) return bad("empty host or repository");
  for (char c : r.repository) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' || c == '.' || c == '_' || c == '-')) {
      return bad("repository names use lowercase letters, digits, '/', '.', '_' and '-'");
    }
  }
  for (char c : r.tag) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return bad("bad tag");
  }
  if (r.tag.size() > 128) return bad("the tag is longer than 128 characters");
  return r;
}

}  // namespace offcore::oci
