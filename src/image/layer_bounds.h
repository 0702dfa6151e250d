// How far one layer may expand when it is unpacked. A few KiB of tar can
// declare a sparse 1 TiB file, and a few MiB of gzip or zstd can inflate to
// terabytes; both must be refused before they fill the converting machine's
// disk or burn its CPU.
//
// Two totals of a layer are held against one limit: the sizes its regular
// files declare (apparent size: a sparse 1 TiB file counts as 1 TiB) and the
// bytes its decompressor produced (the tar stream). The limit is the smaller
// of an absolute cap and a multiple of the compressed blob size; the multiple
// never goes below a floor, so small layers are never refused by the ratio.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "base/result.h"

namespace offcore {

struct LayerBounds {
  uint64_t max_bytes = 8ull << 30;     // `--max-layer-bytes`; 0 turns the cap off
  uint64_t max_ratio = 100;            // `--max-expansion-ratio`; 0 turns the ratio off
  uint64_t ratio_floor = 64ull << 20;  // the ratio's limit is never below this

  static LayerBounds unlimited() { return LayerBounds{0, 0, 0}; }
};

// The limit of one layer, from its bounds and compressed size.
class ExpansionLimit {
 public:
  ExpansionLimit() = default;  // no limit
  ExpansionLimit(const LayerBounds& bounds, uint64_t compressed_bytes, std::string layer);

  uint64_t bytes() const { return limit_; }  // UINT64_MAX when there is none
  bool exceeded(uint64_t total) const { return total > limit_; }
  // Ok while total <= bytes(). Otherwise one line (EFBIG) naming the layer,
  // what passed the limit, the bound that set it and the option to raise:
  // "layer sha256:.. refused: declared file sizes (up to entry 'big'): 1.0 TiB,
  // more than the 64.0 MiB it may expand to (...); raise --max-expansion-ratio".
  Error error(uint64_t total, const std::string& what) const;
  Status check(uint64_t total, const std::string& what) const {
    if (!exceeded(total)) return okStatus();
    return error(total, what);
  }

 private:
  std::string layer_;
  uint64_t compressed_ = 0;
  uint64_t ratio_ = 0, floor_ = 0;
  uint64_t limit_ = std::numeric_limits<uint64_t>::max();
  bool by_ratio_ = false;  // the ratio (not --max-layer-bytes) set the limit
};

// a + b, saturating at UINT64_MAX.
inline uint64_t addSaturating(uint64_t a, uint64_t b) {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max() : a + b;
}

}  // namespace offcore
