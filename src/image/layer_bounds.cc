#include "image/layer_bounds.h"

#include <cerrno>
#include <cstdio>
#include <utility>

namespace offcore {
namespace {

// "1.5 GiB", for messages.
std::string formatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < sizeof kUnits / sizeof kUnits[0]) v /= 1024, unit++;
  char buf[32];
  if (unit == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace

ExpansionLimit::ExpansionLimit(const LayerBounds& bounds, uint64_t compressed_bytes, std::string layer)
    : layer_(std::move(layer)), compressed_(compressed_bytes), ratio_(bounds.max_ratio), floor_(bounds.ratio_floor) {
  const uint64_t none = std::numeric_limits<uint64_t>::max();
  uint64_t absolute = bounds.max_bytes != 0 ? bounds.max_bytes : none;
  uint64_t by_ratio = none;
  if (ratio_ != 0) {
    by_ratio = compressed_ > none / ratio_ ? none : compressed_ * ratio_;
    if (by_ratio < floor_) by_ratio = floor_;
  }
  by_ratio_ = by_ratio < absolute;
  limit_ = by_ratio_ ? by_ratio : absolute;
}

Error ExpansionLimit::error(uint64_t total, const std::string& what) const {
  std::string msg = "layer " + (layer_.empty() ? std::string("<unnamed>") : layer_) + " refused: " + what + ": " +
                    formatBytes(total) + ", more than the " + formatBytes(limit_) + " it may expand to";
  if (by_ratio_) {
    msg += " (" + std::to_string(ratio_) + "x its " + formatBytes(compressed_) + " compressed";
    if (floor_ > 0) msg += ", at least " + formatBytes(floor_);
    msg += "); raise --max-expansion-ratio (0 turns it off) if the image is trusted";
  } else {
    msg += " (the --max-layer-bytes cap); raise it if the image is trusted";
  }
  return makeError(std::move(msg), EFBIG);
}

}  // namespace offcore
