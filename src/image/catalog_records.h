// The Catalog's records and their JSON, as both storages keep them
// (catalog_storage.h). A record read back may have been written by another
// machine (the etcd catalog): reading checks every field's type and range,
// never throws, and is fuzzed (fuzz/catalog_record_fuzz.cc); a record it
// cannot read is an error naming it, never an empty record.
//
// Layered artifacts are keyed by diff ID (a layer's content, whatever sits
// under it); flat artifacts by chain ID (the merged rootfs up to a layer).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace offcore {

// A layer's EROFS image in the storage gateway (one read-only volume per
// layer), or a flat rootfs snapshot. chunk_index names the per-chunk sha256
// index a node checks every block it reads from the volume against (layers
// only; the index itself lives in the catalog, never on the gateway).
struct GatewayArtifact {
  std::string uri;     // nvme-tcp://ADDR:PORT/NQN
  std::string target;  // gateway name
  std::string volume;
  std::string chunk_index;  // "sha256:<hex>" of the serialized index; empty for flat snapshots
};

// A layer's EROFS image as chunked blobs in a registry.
struct RegistryArtifact {
  std::string registry, repository;
  bool plain_http = false;
  std::string chunk_data;   // digest of the data blob
  std::string chunk_index;  // digest of the index blob
  uint64_t data_bytes = 0;
  uint32_t chunk_size = 0;
  uint32_t chunks = 0;
};

struct LayerRecord {
  std::string diff_id;
  uint64_t fs_bytes = 0;   // size of the layer's filesystem image
  uint64_t tar_bytes = 0;  // uncompressed tar size
  std::optional<GatewayArtifact> gateway;
  std::optional<RegistryArtifact> registry;
  std::vector<uint32_t> profile;  // chunk numbers to prefetch, first-touch order
  // Byte ranges of the layer image that the images on it read first when
  // they start (the default prefetch list derived at conversion, the union
  // over images); used when there is no measured profile.
  std::vector<std::pair<uint64_t, uint64_t>> start_ranges;
};

struct FlatRecord {
  std::string chain_id;
  GatewayArtifact gateway;  // a read-only snapshot volume: the merged rootfs
  uint64_t size_bytes = 0;
};

struct ImageRecord {
  std::string ref;       // as converted (the source)
  std::string lazy_ref;  // the pushed lazy manifest, if any
  std::string manifest_digest;
  std::vector<std::string> diff_ids, chain_ids;
  // The chain IDs containerd computes for the lazy image, whose config lists
  // the stub layers' digests; lazy_chain_ids[k] stands for chain_ids[k].
  std::vector<std::string> lazy_chain_ids;
  bool layered = false, flat = false;
  // What the image's entrypoint loads first (prefetch_plan.h), and why that
  // list is empty or partial.
  std::vector<std::string> start_files;
  std::string start_note;
};

std::string layerToJson(const LayerRecord& layer);
std::string flatToJson(const FlatRecord& flat);
std::string imageToJson(const ImageRecord& image);
// what names the record in errors ("layer sha256:...").
Result<LayerRecord> layerFromJson(std::string_view text, const std::string& what);
Result<FlatRecord> flatFromJson(std::string_view text, const std::string& chain_id);
Result<ImageRecord> imageFromJson(std::string_view text, const std::string& what);

// The head of a blob the etcd catalog keeps in parts (catalog_kv_storage.cc):
// its size and how many parts of part_bytes hold it. Reading refuses a size
// above max_bytes or a part count that does not fit the size.
struct BlobHead {
  uint64_t bytes = 0, parts = 0;
};
std::string blobHeadToJson(const BlobHead& head);
Result<BlobHead> blobHeadFromJson(std::string_view text, uint64_t part_bytes, uint64_t max_bytes);

}  // namespace offcore
