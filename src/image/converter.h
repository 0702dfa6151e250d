// Image conversion (`offcore image convert`): reads an OCI/Docker image once
// and turns it into block artifacts that nodes load lazily.
//
//  layered: each layer becomes an EROFS image in overlay form, stored as a
//           gateway volume and/or chunked blobs in a registry. Keyed by diff
//           ID, so a layer two images share is stored once.
//  flat:    the merged rootfs becomes ext4 volumes in a gateway, built up
//           the chain: layer 0 on a fresh volume, snapshot; layer n on a
//           clone of the snapshot of n-1, snapshot. Keyed by chain ID, so
//           images with the same base share its snapshots.
//
// Either way the result is recorded in the Catalog, and when a destination
// reference is given a "lazy manifest" is pushed: the original config plus
// one tiny stub layer per real layer, annotated with where the data lives.
// `ctr image pull` of that reference fetches kilobytes; the snapshotter
// serves the layers remotely.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/catalog.h"
#include "image/chunk_index.h"
#include "image/layer_apply.h"
#include "image/layer_bounds.h"
#include "image/registry_client.h"

namespace offcore {

struct ConvertOptions {
  std::string source;        // HOST/REPO:TAG or oci:DIR[:TAG]
  bool layered = true;       // --mode layered (default) or flat
  std::string gateway;       // --to nvme-tcp://ADDR:PORT (empty: none)
  bool to_registry = false;  // --to registry
  std::string dest;          // --dest REF for the lazy manifest and blobs
  oci::RegistryOptions registry;
  uint32_t chunk_size = 256 * 1024;
  ChunkCodec codec = ChunkCodec::kZstd;
  uint64_t flat_size = 8ull << 30;  // virtual size of a flat rootfs volume
  Catalog catalog;                  // where the results are recorded (default: Catalog::defaultDir())
  std::string work_dir = "/var/tmp/offcore-convert";
  std::string run_root = "/run/offcore";
  // How far each layer may expand (--max-layer-bytes, --max-expansion-ratio).
  LayerBounds bounds;
  // SIGTERM/SIGINT remove this run's scratch directory before the process
  // ends (a handler and a watcher thread; off for callers that own signals).
  bool remove_scratch_on_signal = true;
  // The prefetch planner's command (`offcore image plan-prefetch`; see
  // prefetch_runner.h). Empty: no default prefetch list (layered mode).
  std::vector<std::string> planner_argv;
};

struct ConvertedLayer {
  std::string diff_id, chain_id;
  uint64_t compressed_bytes = 0, tar_bytes = 0, fs_bytes = 0, stored_bytes = 0;
  uint32_t chunks = 0;
  bool reused = false;               // already converted by an earlier run
  std::vector<std::string> created;  // volumes and blobs this run made
};

struct ConvertSummary {
  std::string source, manifest_digest, lazy_ref, mode;
  std::vector<ConvertedLayer> layers;
  std::vector<std::string> start_files;  // the default prefetch list (files)
  std::string start_note;                // why it is empty or partial
  double seconds = 0;
  std::string toJson() const;
  std::string toText() const;
};

// step(what, done, total) reports progress for a progress bar.
using ConvertProgress = std::function<void(const std::string& what, int done, int total)>;

Result<ConvertSummary> convertImage(const ConvertOptions& options, const ConvertProgress& progress = {});

// Flat mode's per-layer work (flat_builder.cc).
struct FlatStep {
  std::string chain_id, parent_chain_id;
  std::string blob_path;
  std::string layer;  // the blob's digest, for bound errors
};
Result<ConvertedLayer> buildFlatLayer(const ConvertOptions& options, const FlatStep& step, Catalog& catalog);

// Layered mode's image build (erofs_builder.cc): unpacks blob in overlay
// form into base.tree, held to bounds (layer names it in errors), and packs
// base.erofs with mkfs.erofs. The tree is removed either way. A layer with
// holes (sparse files, or zero blocks the unpack left out) is built with
// chunk-based files, whose all-zero chunks share one block: mkfs.erofs 1.5
// writes every hole out as zeros otherwise.
struct LayerImage {
  std::string path;       // base.erofs
  uint64_t fs_bytes = 0;  // its size
  ApplyStats stats;       // of the unpack
  bool chunked = false;   // built with --chunksize
};
Result<LayerImage> buildLayerImage(const std::string& blob, const std::string& base, const LayerBounds& bounds,
                                   const std::string& layer);

std::string shortId(const std::string& digest);  // 16 hex digits

}  // namespace offcore
