// Registry and layout documents are untrusted: manifests, indexes, configs
// and references must parse or fail cleanly, and what parses must survive
// a round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/oci.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  using namespace offcore::oci;
  if (auto m = parseManifest(text); m.ok()) {
    auto again = parseManifest(serializeManifest(*m));
    if (!again.ok() || again->layers.size() != m->layers.size()) __builtin_trap();
  }
  if (auto idx = parseIndex(text); idx.ok()) (void)pickPlatform(*idx);
  (void)parseConfig(text);
  (void)sniffMediaType(text);
  if (size < 512) (void)parseReference(text);
  return 0;
}
