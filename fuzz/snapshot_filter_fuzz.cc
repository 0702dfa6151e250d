// containerd sends List filters (`labels."k"==v,parent==x`); they come
// from another process and must parse or fail cleanly.
#include <cstddef>
#include <cstdint>
#include <string>

#include "snapshotter/filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto f = offcore::SnapshotFilter::parse({text});
  if (f.ok()) {
    offcore::SnapshotInfo info;
    info.name = "default/1/sha256:x";
    info.parent = "p";
    info.labels["containerd.io/snapshot.ref"] = "sha256:x";
    (void)f->matches(info);
  }
  return 0;
}
