// What a (compromised) mesh worker controls on its CA channel: the byte
// stream the keeper reads (frames, their JSON, the CSR inside). The keeper's
// decoder must refuse garbage without crashing, never hold more than one
// maximal frame, and what it accepts must survive a round trip. A CSR that
// decodes goes through Ca::sign's parser and checks too (with a CA made
// once in a scratch directory), never through to a signature for a foreign
// identity.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "base/files.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/ca_service.h"
#include "mesh/tls/csr_wire.h"

namespace {

offcore::mesh::tls::CaService* service() {
  using namespace offcore::mesh::tls;
  static std::unique_ptr<Ca> ca;
  static std::unique_ptr<CaService> svc;
  if (!svc) {
    static std::string dir;
    char tmpl[] = "/tmp/offcore-ca-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl)) __builtin_trap();
    dir = tmpl;
    std::atexit([] { (void)offcore::removeTree(dir); });
    auto made = Ca::loadOrCreate(dir + "/ca", "cluster.local");
    if (!made.ok()) __builtin_trap();
    ca = std::move(*made);
    // The node runs one mesh pod; nothing else may be signed.
    svc = std::make_unique<CaService>(*ca, "a", Seconds(600), []() -> offcore::Result<std::set<std::string>> {
      return std::set<std::string>{"spiffe://cluster.local/ns/shop/sa/cart"};
    });
  }
  return svc.get();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::mesh::tls;
  if (size > 3 * (kMaxCsrFrame + 4)) return 0;
  FrameReader reader;
  size_t at = 0;
  while (true) {
    size_t n = std::min(reader.room(), size - at);
    reader.append(reinterpret_cast<const char*>(data) + at, n);
    at += n;
    if (reader.room() > kMaxCsrFrame + 4) __builtin_trap();
    auto frame = reader.next();
    if (!frame.ok() || !*frame) break;
    auto request = decodeCsrRequest(**frame);
    if (!request.ok()) break;
    auto again = decodeCsrRequest(encodeCsrRequest(*request).substr(4));
    if (!again.ok() || again->id != request->id || again->op != request->op || again->spiffe_id != request->spiffe_id ||
        again->csr_pem != request->csr_pem) {
      __builtin_trap();
    }
    CsrResponse answer = service()->handle(*request);
    if (answer.ok && request->op == CsrRequest::Op::kSign &&
        request->spiffe_id != "spiffe://cluster.local/ns/shop/sa/cart") {
      __builtin_trap();
    }
    if (!decodeCsrResponse(encodeCsrResponse(answer).substr(4)).ok()) __builtin_trap();
  }
  (void)decodeCsrResponse(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
