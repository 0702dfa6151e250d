// The storage gateway's management API bodies: every parser takes the same
// bytes; none may crash, and an accepted request must respect the bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include "gateway/requests.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  auto c = offcore::gateway::parseCreateVolume(body);
  if (c.ok() && c->allowed_hosts && c->allowed_hosts->size() > offcore::gateway::kMaxAllowedHosts) __builtin_trap();
  auto h = offcore::gateway::parseHostsRequest(body);
  if (h.ok()) {
    for (const auto& nqn : h->hosts) {
      if (nqn.size() > offcore::gateway::kMaxNqnBytes || nqn.compare(0, 4, "nqn.") != 0) __builtin_trap();
    }
  }
  (void)offcore::gateway::parseDerivedVolume(body);
  (void)offcore::gateway::parseResizeRequest(body);
  return 0;
}
