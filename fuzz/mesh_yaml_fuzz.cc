// `offcore mesh apply -f` reads Istio-shaped YAML written by users and
// tools; a bad file must be an error naming file:line, never a crash
// (yaml-cpp and std::regex throw; their exceptions must stay inside the
// parser). Valid configs must round-trip through the store's JSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "mesh/config/istio_yaml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = offcore::mesh::parseMeshYaml(text, "fuzz.yaml");
  if (!parsed.ok()) {
    if (parsed.error().message.rfind("fuzz.yaml:", 0) != 0) __builtin_trap();  // every error names the file
    return 0;
  }
  auto back = offcore::mesh::meshConfigFromJson(offcore::mesh::toJson(*parsed), "fuzz.json");
  if (!back.ok() || !(*back == *parsed)) __builtin_trap();  // config.json must round-trip
  return 0;
}
