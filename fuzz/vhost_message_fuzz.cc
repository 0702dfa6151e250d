// A vhost-user message from the front end: byte 0 is how many fds came with
// it, the next 12 bytes the header, the rest the payload. Parsing must not
// crash, and an accepted message must respect the bounds the server relies on.
#include <sys/eventfd.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "virt/vhost/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::virt;
  if (size < 1 + kHeaderSize) return 0;
  std::vector<UniqueFd> fds;
  for (size_t i = 0; i < data[0] % (kMaxFds + 2); ++i) fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
  auto h = parseHeader(std::span<const uint8_t>(data + 1, kHeaderSize));
  if (!h.ok()) return 0;
  std::span<const uint8_t> payload(data + 1 + kHeaderSize, size - 1 - kHeaderSize);
  if (h->size > kMaxPayloadSize) __builtin_trap();
  auto m = parseMessage(*h, payload, std::move(fds));
  if (!m.ok()) return 0;
  if (m->request == Request::kSetMemTable) {
    if (m->regions.empty() || m->regions.size() > kMaxMemoryRegions) __builtin_trap();
    if (m->fds.size() != m->regions.size()) __builtin_trap();
    for (size_t i = 0; i < m->regions.size(); ++i) {
      if (m->regions[i].fd != m->fds[i].get()) __builtin_trap();
    }
  }
  if (m->config.data.size() > kMaxConfigSize) __builtin_trap();
  if (m->vringIndex > kVringIndexMask) __builtin_trap();
  return 0;
}
