#include "image/image_source.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "image/digest.h"

namespace offcore::oci {

namespace {

// Checks that a manifest's pieces add up: the config and layer count
// match the diff IDs, and every layer has a type we can unpack.
Status validateImage(const Manifest& m, const ImageConfig& c) {
  if (m.layers.size() != c.diff_ids.size()) {
    return makeError("the manifest has " + std::to_string(m.layers.size()) + " layers but the config lists " +
                     std::to_string(c.diff_ids.size()) + " diff_ids");
  }
  for (size_t i = 0; i < m.layers.size(); ++i) {
    if (!isLayerMediaType(m.layers[i].media_type)) {
      return makeError("layer " + std::to_string(i) + " has media type \"" + m.layers[i].media_type +
                       "\", which is not a tar, tar+gzip or tar+zstd layer");
    }
  }
  return {};
}

class RegistrySource final : public ImageSource {
 public:
  RegistrySource(Reference ref, const RegistryOptions& o) : ref_(std::move(ref)), client_(ref_.registry, o) {}

  Result<ResolvedImage> resolve() override {
    ResolvedImage img;
    img.ref = ref_;
    OC_ASSIGN_OR_RETURN(auto doc, client_.getManifest(ref_.repository, ref_.manifestRef()));
    if (isIndexMediaType(doc.media_type)) {
      OC_ASSIGN_OR_RETURN(auto idx, parseIndex(doc.body));
      OC_ASSIGN_OR_RETURN(auto pick, pickPlatform(idx));
      OC_ASSIGN_OR_RETURN(doc, client_.getManifest(ref_.repository, pick.digest));
    }
    img.manifest_digest = doc.digest;
    OC_ASSIGN_OR_RETURN(img.manifest, parseManifest(doc.body));
    OC_ASSIGN_OR_RETURN(img.config_json, client_.getBlob(ref_.repository, img.manifest.config.digest));
    OC_ASSIGN_OR_RETURN(img.config, parseConfig(img.config_json));
    OC_TRY(validateImage(img.manifest, img.config));
    return img;
  }

  Status fetchBlob(const Descriptor& blob, const std::string& path, const ByteProgress& progress) override {
    return client_.getBlobToFile(ref_.repository, blob.digest, path, progress);
  }

 private:
  Reference ref_;
  RegistryClient client_;
};

class LayoutSource final : public ImageSource {
 public:
  explicit LayoutSource(Reference ref) : ref_(std::move(ref)) {}

  Result<ResolvedImage> resolve() override {
    ResolvedImage img;
    img.ref = ref_;
    OC_ASSIGN_OR_RETURN(std::string index_text, readFile(ref_.layout_dir + "/index.json"));
    OC_ASSIGN_OR_RETURN(auto idx, parseIndex(index_text));
    const Descriptor* found = nullptr;
    std::string tags;
    for (const auto& d : idx.manifests) {
      auto it = d.annotations.find("org.opencontainers.image.ref.name");
      std::string name = it == d.annotations.end() ? "" : it->second;
      tags += (tags.empty() ? "" : ", ") + (name.empty() ? d.digest : name);
      if ((ref_.tag.empty() && idx.manifests.size() == 1) || name == ref_.tag) found = &d;
    }
    if (!found)
      return makeError("OCI layout " + ref_.layout_dir + " has no tag \"" + ref_.tag + "\" (it has: " + tags + ")");
    Descriptor md = *found;
    OC_ASSIGN_OR_RETURN(std::string body, readBlob(md.digest));
    if (isIndexMediaType(md.media_type)) {
      OC_ASSIGN_OR_RETURN(auto inner, parseIndex(body));
      OC_ASSIGN_OR_RETURN(md, pickPlatform(inner));
      OC_ASSIGN_OR_RETURN(body, readBlob(md.digest));
    }
    img.manifest_digest = md.digest;
    OC_ASSIGN_OR_RETURN(img.manifest, parseManifest(body));
    OC_ASSIGN_OR_RETURN(img.config_json, readBlob(img.manifest.config.digest));
    OC_ASSIGN_OR_RETURN(img.config, parseConfig(img.config_json));
    OC_TRY(validateImage(img.manifest, img.config));
    return img;
  }

  Status fetchBlob(const Descriptor& blob, const std::string& path, const ByteProgress& progress) override {
    std::string src = blobPath(blob.digest);
    OC_ASSIGN_OR_RETURN(std::string got, sha256DigestOfFile(src));
    if (got != blob.digest) return makeError("blob " + src + " does not match its digest", 5);
    if (::link(src.c_str(), path.c_str()) == 0) return {};
    OC_ASSIGN_OR_RETURN(std::string data, readFile(src));
    if (progress) progress(data.size(), data.size());
    return writeFileAtomic(path, data);
  }

 private:
  std::string blobPath(const std::string& digest) const {
    return ref_.layout_dir + "/blobs/sha256/" + digest.substr(7);
  }
  Result<std::string> readBlob(const std::string& digest) {
    OC_ASSIGN_OR_RETURN(std::string body, readFile(blobPath(digest)));
    if (sha256Digest(body) != digest) return makeError("blob " + digest + " in " + ref_.layout_dir + " is corrupt", 5);
    return body;
  }

  Reference ref_;
};

}  // namespace

Result<std::unique_ptr<ImageSource>> openImageSource(const Reference& ref, const RegistryOptions& options) {
  if (ref.is_layout) {
    if (!pathExists(ref.layout_dir + "/index.json")) {
      return makeError(ref.layout_dir + " is not an OCI layout (no index.json)");
    }
    return std::unique_ptr<ImageSource>(new LayoutSource(ref));
  }
  return std::unique_ptr<ImageSource>(new RegistrySource(ref, options));
}

}  // namespace offcore::oci
