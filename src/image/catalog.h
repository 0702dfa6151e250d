// Catalog: what `offcore image convert` made, so the snapshotter and the
// image service can find a layer by chain ID or diff ID. One JSON document
// (catalog.json) in the catalog directory, read and replaced whole under
// an flock, written atomically (rename), so a crash leaves the old or the
// new version. Small: one entry per layer and image.
//
// Layered artifacts are keyed by diff ID (a layer's content, whatever sits
// under it); flat artifacts by chain ID (the merged rootfs up to a layer).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/chunk_index.h"

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

struct ResolvedChain {
  std::string diff_id;   // the real layer at the top of the chain
  std::string chain_id;  // the real chain ID (flat artifacts are keyed by it)
};

class Catalog {
 public:
  static std::string defaultDir() { return "/var/lib/offcore/images"; }
  explicit Catalog(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }

  Result<std::optional<LayerRecord>> layer(const std::string& diff_id) const;
  Result<std::optional<FlatRecord>> flat(const std::string& chain_id) const;
  // The real layer and chain a chain ID stands for: a converted image's own
  // chain ID, or one of its lazy image's stub chain IDs.
  Result<std::optional<ResolvedChain>> resolveChain(const std::string& chain_id) const;
  Result<std::vector<ImageRecord>> images() const;
  Result<std::vector<LayerRecord>> layers() const;

  Status putLayer(const LayerRecord& layer);
  Status putFlat(const FlatRecord& flat);
  Status putImage(const ImageRecord& image);
  Status setProfile(const std::string& diff_id, const std::vector<uint32_t>& chunks);
  // Adds to a layer's start ranges (those it has stay first; at most 64Ki).
  Status addStartRanges(const std::string& diff_id, const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  // Chunk indexes are kept by digest under indexes/ (0600). putChunkIndex
  // returns the digest to record; chunkIndex reads one back and refuses it
  // unless its bytes hash to that digest and it parses canonically.
  Result<std::string> putChunkIndex(const ChunkIndex& index) const;
  Result<ChunkIndex> chunkIndex(const std::string& digest) const;

 private:
  struct Doc;
  Result<Doc> load() const;
  Status store(const Doc& doc) const;
  template <typename F>
  Status update(F&& mutate) const;

  std::string dir_;
};

}  // namespace offcore
