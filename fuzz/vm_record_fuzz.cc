// VM records (<cluster_dir>/vms/NAME.json) are read back from disk by every
// `offcore vm` command; whatever parses must validate and round-trip, and
// the QEMU command line built from it must keep every path inside one option.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "virt/vm/vm_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto spec = offcore::virt::vmSpecFromJson(doc);
  if (!spec.ok()) return 0;
  if (!offcore::virt::validateVmSpec(*spec).ok()) __builtin_trap();
  auto again = offcore::virt::vmSpecFromJson(offcore::virt::vmSpecToJson(*spec));
  if (!again.ok() || again->disk != spec->disk || again->mem_bytes != spec->mem_bytes) __builtin_trap();
  auto argv = offcore::virt::qemuArgv(*spec, offcore::virt::vmPaths("/run/offcore", spec->node, spec->name), {});
  for (const auto& a : argv) {
    // A comma in a path would let it add QEMU options of its own.
    if (a.rfind("socket,id=blk0,path=", 0) == 0 && a.find(',', 20) != a.find(",reconnect=1")) __builtin_trap();
  }
  return 0;
}
