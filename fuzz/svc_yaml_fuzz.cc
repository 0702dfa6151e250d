// `offcore svc apply -f` reads YAML written by users and tools; a bad file
// must be an error naming file:line, never a crash (yaml-cpp throws, and its
// exceptions must stay inside parseResources). Valid documents also go
// through the cross-resource checks against an empty state.
#include <cstddef>
#include <cstdint>
#include <string>

#include "svc/cluster_store.h"
#include "svc/resources.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto docs = offcore::svc::parseResources(text, "fuzz.yaml");
  if (!docs.ok()) return 0;
  auto state = offcore::svc::ClusterState::empty();
  auto applied = offcore::svc::applyToState(state, *docs, "10.96.0.0/28");
  if (applied.ok()) {
    auto back = offcore::svc::ClusterState::fromJson(state.toJson(), "fuzz.json");
    if (!back.ok() || !(*back == state)) __builtin_trap();  // state.json must round-trip
  }
  return 0;
}
