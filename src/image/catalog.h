// Catalog: what `offcore image convert` made, so the snapshotter and the
// image service can find a layer by chain ID or diff ID. A handle (cheap to
// copy) on a CatalogStorage (catalog_storage.h): a directory on one
// machine, etcd for a cluster (openCatalog, catalog_open.h). Small: one
// record per layer, flat snapshot and image, and each layer's chunk index.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/catalog_records.h"
#include "image/chunk_index.h"

namespace offcore {

class CatalogStorage;

struct ResolvedChain {
  std::string diff_id;   // the real layer at the top of the chain
  std::string chain_id;  // the real chain ID (flat artifacts are keyed by it)
};

class Catalog {
 public:
  static std::string defaultDir() { return "/var/lib/offcore/images"; }
  // The directory catalog at defaultDir().
  Catalog();
  explicit Catalog(std::shared_ptr<CatalogStorage> storage);
  static Catalog inDir(std::string dir);
  // A directory or "etcd://...", for messages and for a process started on it.
  std::string location() const;

  Result<std::optional<LayerRecord>> layer(const std::string& diff_id) const;
  Result<std::optional<FlatRecord>> flat(const std::string& chain_id) const;
  // The real layer and chain a chain ID stands for: a converted image's own
  // chain ID, or one of its lazy image's stub chain IDs.
  Result<std::optional<ResolvedChain>> resolveChain(const std::string& chain_id) const;
  Result<std::vector<ImageRecord>> images() const;
  Result<std::vector<LayerRecord>> layers() const;

  // Each put merges with what is there (artifacts, profile and start ranges
  // another conversion recorded stay) and never overwrites a record it
  // cannot read.
  Status putLayer(const LayerRecord& layer);
  Status putFlat(const FlatRecord& flat);
  Status putImage(const ImageRecord& image);
  Status setProfile(const std::string& diff_id, const std::vector<uint32_t>& chunks);
  // Adds to a layer's start ranges (those it has stay first; at most 64Ki).
  Status addStartRanges(const std::string& diff_id, const std::vector<std::pair<uint64_t, uint64_t>>& ranges);
  // Chunk indexes are kept by digest. putChunkIndex returns the digest to
  // record; chunkIndex reads one back and refuses it unless its bytes hash
  // to that digest and it parses canonically.
  Result<std::string> putChunkIndex(const ChunkIndex& index) const;
  Result<ChunkIndex> chunkIndex(const std::string& digest) const;

 private:
  std::shared_ptr<CatalogStorage> storage_;
};

}  // namespace offcore
