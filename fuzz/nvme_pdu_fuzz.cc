// The NVMe/TCP PDU parser as the target runs it: arbitrary bytes from the
// network, in arbitrary pieces. First byte: digest settings and split size.
#include <cstddef>
#include <cstdint>

#include "nvme/pdu.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  using namespace offcore::nvme;
  PduParser parser(data[0] & 0x80 ? Role::kHost : Role::kTarget);
  ParserLimits limits;
  limits.header_digest = data[0] & 1;
  limits.data_digest = data[0] & 2;
  limits.data_alignment = 4u << ((data[0] >> 2) & 3);
  parser.setLimits(limits);
  size_t piece = (data[1] % 64) + 1;
  for (size_t off = 2; off < size; off += piece) {
    size_t n = std::min(piece, size - off);
    parser.feed(data + off, n);
    for (;;) {
      std::optional<FatalError> error;
      auto pdu = parser.next(error);
      if (error) {
        if (error->header.size() > kTermMaxHeaderCopy) __builtin_trap();
        return 0;
      }
      if (!pdu) break;
      if (pdu->header.size() != pdu->hlen || pdu->data.size() > pdu->plen) __builtin_trap();
    }
  }
  return 0;
}
