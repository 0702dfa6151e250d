// The diff ID of a layer blob: the sha256 of its uncompressed tar stream.
// Conversion checks it against the image config before trusting a layer.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "image/layer_bounds.h"

namespace offcore::oci {

struct TarDigest {
  std::string digest;  // sha256:...
  uint64_t bytes = 0;  // uncompressed size
};

// Decompresses (gzip, zstd or none, detected from the bytes) and hashes.
// Stops with the bound's error (EFBIG) as soon as the decompressed bytes pass
// the layer's limit (bounds against the blob's size; layer names it).
Result<TarDigest> uncompressedDigest(const std::string& blob_path, const LayerBounds& bounds = {},
                                     const std::string& layer = "");

}  // namespace offcore::oci
