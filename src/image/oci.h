// OCI / Docker image documents: references, descriptors, manifests, image
// indexes and configs, parsed from untrusted JSON (registries, layout dirs).
// Parsers never throw; a malformed document is an Error that names the
// field. Both the OCI and the Docker schema-2 media types are accepted.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::oci {

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
// Our artifacts in a registry: a converted layer's chunked data and index.
inline constexpr const char* kOffcoreChunkData = "application/vnd.offcore.layer.chunked.v1";
inline constexpr const char* kOffcoreChunkIndex = "application/vnd.offcore.layer.chunk-index.v1";

// Annotations a lazy (converted) manifest carries on each stub layer.
inline constexpr const char* kAnnotChainId = "io.offcore.layer.chain-id";
inline constexpr const char* kAnnotDiffId = "io.offcore.layer.diff-id";
inline constexpr const char* kAnnotChunkData = "io.offcore.layer.chunk-data";
inline constexpr const char* kAnnotChunkIndex = "io.offcore.layer.chunk-index";
// The one file a lazy image's stub layer holds (JSON: chain_id, diff_id, mode).
inline constexpr const char* kStubMarkerFile = ".offcore-lazy-layer.json";

// "sha256:" + 64 lowercase hex digits; the only algorithm we accept.
bool isValidDigest(const std::string& digest);

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::string platform_os, platform_arch;  // index entries only
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
  std::map<std::string, std::string> annotations;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct ImageConfig {
  std::vector<std::string> diff_ids;
  std::vector<std::string> env;
  std::vector<std::string> cmd, entrypoint;
  std::string working_dir;
  std::string os, architecture;
};

enum class Compression { kNone, kGzip, kZstd, kUnknown };
Compression layerCompression(const std::string& media_type);
bool isLayerMediaType(const std::string& media_type);
bool isIndexMediaType(const std::string& media_type);
bool isManifestMediaType(const std::string& media_type);

// The media type of a document whose Content-Type is missing or generic:
// the "mediaType" field, else guessed from the shape.
std::string sniffMediaType(const std::string& json_text);

Result<Manifest> parseManifest(const std::string& json_text);
Result<ImageIndex> parseIndex(const std::string& json_text);
Result<ImageConfig> parseConfig(const std::string& json_text);
std::string serializeManifest(const Manifest& manifest);

// The manifest of an index that matches linux/<arch> (amd64 here), or the
// only entry. An error lists the platforms present.
Result<Descriptor> pickPlatform(const ImageIndex& index, const std::string& arch = "amd64");

// chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)),
// as in the OCI image spec; these are containerd's snapshot names.
std::vector<std::string> chainIds(const std::vector<std::string>& diff_ids);

// A reference: "HOST[:PORT]/REPO[:TAG][@DIGEST]" in a registry, or
// "oci:DIR[:TAG]" for an OCI layout directory.
struct Reference {
  bool is_layout = false;
  std::string layout_dir;  // layout only
  std::string registry;    // "127.0.0.1:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" when neither tag nor digest is given
  std::string digest;
  std::string str() const;
  std::string manifestRef() const { return digest.empty() ? tag : digest; }
};
Result<Reference> parseReference(const std::string& text);

}  // namespace offcore::oci
