// /etc/offcore/config.json is written by admins and tools; a bad one must be
// an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = offcore::parseConfig(text, "fuzz.json");
  if (cfg.ok() && cfg->run_root.empty() && cfg->cgroup_root.empty()) return 0;
  return 0;
}
