// What a peer proxy controls in an HBONE handshake and CONNECT request: the
// SNI (the identity it asks for), the :authority and the forwarded header,
// and the SPIFFE ID in its certificate. Each parser must refuse garbage
// without crashing, and what it accepts must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "mesh/hbone/wire.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/tls_context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  using namespace offcore::mesh;
  auto authority = hbone::parseAuthority(text);
  if (authority.ok()) {
    auto again = hbone::parseAuthority(hbone::formatAuthority(authority->ip, authority->port));
    if (!again.ok() || again->ip != authority->ip || again->port != authority->port) __builtin_trap();
  }
  std::string source = hbone::parseForwardedFor(text);
  if (!source.empty() && hbone::parseForwardedFor(hbone::forwardedFor(source)) != source) __builtin_trap();
  auto id = tls::parseSpiffeId(text);
  if (id.ok()) {
    if (id->str() != text) __builtin_trap();
    auto sni = tls::identityFromSni(tls::sniForIdentity(*id), id->trust_domain);
    if (!sni.ok() || *sni != text) __builtin_trap();
  }
  (void)tls::identityFromSni(text, "cluster.local");
  return 0;
}
