// node.json, cpu lists and sizes come from disk and the command line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/byte_size.h"
#include "base/cpu_list.h"
#include "dpu/node_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto st = offcore::NodeState::fromJson(text, "fuzz");
  if (st.ok()) {
    // Whatever parsed must serialise and parse back to the same cpus.
    auto again = offcore::NodeState::fromJson(st->toJson(), "again");
    if (!again.ok() || again->soc_cpus != st->soc_cpus) __builtin_trap();
  }
  auto cpus = offcore::parseCpuList(text);
  if (cpus.ok() && !cpus->empty()) {
    auto back = offcore::parseCpuList(offcore::formatCpuList(*cpus));
    if (!back.ok() || *back != *cpus) __builtin_trap();
  }
  (void)offcore::parseByteSize(text);
  return 0;
}
