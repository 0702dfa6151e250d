// A nexus journal lives in the cluster directory, which every node may
// write: a damaged or hostile one must be an error, never a crash or an
// allocation beyond its stated volume size. What decodes must encode and
// decode to the same record.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "nexus/nexus_journal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto rec = offcore::nexus::decodeRecord(text);
  if (!rec.ok()) return 0;
  auto again = offcore::nexus::decodeRecord(offcore::nexus::encodeRecord(*rec));
  if (!again.ok() || again->replicas.size() != rec->replicas.size()) std::abort();
  for (size_t i = 0; i < rec->replicas.size(); ++i) {
    if (again->replicas[i].missed != rec->replicas[i].missed || again->replicas[i].state != rec->replicas[i].state) {
      std::abort();
    }
  }
  return 0;
}
