// The agent's API: request paths are routed, bodies parsed into specs; the
// same bytes also go through the services record parser (the agent reads
// that file back at start-up).
// Input layout: first byte picks the method, then "path\nbody".
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/requests.h"
#include "agent/services_record.h"
#include "api/api_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static offcore::EventLoop loop;
  static offcore::ApiServer* server = [] {
    auto* s = new offcore::ApiServer(loop);
    s->route("GET", "/v1/status", [](const offcore::ApiRequest&) { return offcore::ApiResponse::json(200, "{}"); });
    s->route("POST", "/v1/services", [](const offcore::ApiRequest& r) {
      auto spec = offcore::parseServiceRequest(r.body);
      return spec.ok() ? offcore::ApiResponse::json(201, "{}") : offcore::ApiResponse::error(400, spec.error().message);
    });
    s->route("POST", "/v1/vfs", [](const offcore::ApiRequest& r) {
      auto spec = offcore::parseVfRequest(r.body);
      return spec.ok() ? offcore::ApiResponse::json(201, "{}") : offcore::ApiResponse::error(400, spec.error().message);
    });
    s->route("DELETE", "/v1/vfs/",
             [](const offcore::ApiRequest& r) { return offcore::ApiResponse::json(200, r.tail); });
    return s;
  }();
  static const char* methods[] = {"GET", "POST", "DELETE", "PUT"};
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  offcore::ApiRequest req;
  req.method = methods[data[0] % 4];
  auto nl = rest.find('\n');
  req.path = rest.substr(0, nl);
  req.body = nl == std::string::npos ? "" : rest.substr(nl + 1);
  auto resp = server->dispatch(req);
  if (resp.status < 200 || resp.status > 599) __builtin_trap();
  (void)offcore::parseServiceRequest(req.body);
  (void)offcore::parseVfRequest(req.body);
  (void)offcore::parseShutdownRequest(req.body);
  std::vector<std::string> skipped;
  auto record = offcore::parseServicesRecord(req.body, &skipped);
  // What parses must render and parse back to the same entries.
  if (record.ok()) {
    auto again = offcore::parseServicesRecord(offcore::renderServicesRecord(*record), nullptr);
    if (!again.ok() || again->size() != record->size()) __builtin_trap();
  }
  return 0;
}
