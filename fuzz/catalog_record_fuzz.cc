// Image catalog records (image/catalog_records.h) are read back from the
// catalog directory or from the cluster's etcd, where another machine may
// have written them: whatever parses must round-trip, and nothing throws.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/catalog_records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto l = offcore::layerFromJson(text, "layer x"); l.ok()) {
    std::string once = offcore::layerToJson(*l);
    auto again = offcore::layerFromJson(once, "layer x");
    if (!again.ok() || offcore::layerToJson(*again) != once) __builtin_trap();
  }
  if (auto f = offcore::flatFromJson(text, "sha256:c"); f.ok()) {
    std::string once = offcore::flatToJson(*f);
    auto again = offcore::flatFromJson(once, "sha256:c");
    if (!again.ok() || offcore::flatToJson(*again) != once) __builtin_trap();
  }
  if (auto i = offcore::imageFromJson(text, "image x"); i.ok()) {
    std::string once = offcore::imageToJson(*i);
    auto again = offcore::imageFromJson(once, "image x");
    if (!again.ok() || offcore::imageToJson(*again) != once) __builtin_trap();
  }
  constexpr uint64_t kPart = 512u << 10, kMax = 128ull << 20;
  if (auto h = offcore::blobHeadFromJson(text, kPart, kMax); h.ok()) {
    if (h->bytes > kMax || h->parts != (h->bytes + kPart - 1) / kPart) __builtin_trap();
  }
  return 0;
}
