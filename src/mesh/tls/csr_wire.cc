#include "mesh/tls/csr_wire.h"

#include "base/json.h"

namespace offcore::mesh::tls {

namespace {

using nlohmann::json;

std::string frame(const json& j) {
  std::string payload = dumpJson(j);
  uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(4 + payload.size());
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((n >> shift) & 0xff));
  return out + payload;
}

// The decoded object after the common checks (an object, of our version).
Result<json> parseObject(std::string_view payload) {
  if (payload.size() > kMaxCsrFrame) return makeError("CA channel: frame above 16 KiB");
  json j = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError("CA channel: frame is not a JSON object");
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != kCsrWireVersion) {
    return makeError("CA channel: not version " + std::to_string(kCsrWireVersion) + " of the protocol");
  }
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned()) return makeError("CA channel: no request id");
  return j;
}

Result<std::string> str(const json& j, const char* key, size_t max, bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) return makeError(std::string("CA channel: no field ") + key);
    return std::string();
  }
  if (!it->is_string()) return makeError(std::string("CA channel: field ") + key + " is not a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max) return makeError(std::string("CA channel: field ") + key + " is too long");
  return s;
}

Result<int64_t> integer(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return int64_t{0};
  if (!it->is_number_integer()) return makeError(std::string("CA channel: field ") + key + " is not an integer");
  return it->get<int64_t>();
}

}  // namespace

std::string encodeCsrRequest(const CsrRequest& r) {
  json j{{"v", kCsrWireVersion}, {"id", r.id}, {"op", r.op == CsrRequest::Op::kTrust ? "trust" : "sign"}};
  if (r.op == CsrRequest::Op::kSign) {
    j["spiffeId"] = r.spiffe_id;
    j["csr"] = r.csr_pem;
    j["ttl"] = r.ttl_s;
  }
  return frame(j);
}

std::string encodeCsrResponse(const CsrResponse& r) {
  json j{{"v", kCsrWireVersion}, {"id", r.id}, {"ok", r.ok}};
  if (!r.ok) j["error"] = r.error;
  if (!r.ca_pem.empty()) j["caPem"] = r.ca_pem;
  if (!r.trust_domain.empty()) j["trustDomain"] = r.trust_domain;
  if (!r.cert_pem.empty()) {
    j["certPem"] = r.cert_pem;
    j["issuedAt"] = r.issued_at;
  }
  return frame(j);
}

Result<CsrRequest> decodeCsrRequest(std::string_view payload) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(payload));
  CsrRequest r;
  r.id = j["id"].get<uint64_t>();
  OC_ASSIGN_OR_RETURN(std::string op, str(j, "op", 16));
  if (op == "trust") {
    r.op = CsrRequest::Op::kTrust;
    return r;
  }
  if (op != "sign") return makeError("CA channel: unknown op '" + op + "'");
  OC_ASSIGN_OR_RETURN(r.spiffe_id, str(j, "spiffeId", 512));
  OC_ASSIGN_OR_RETURN(r.csr_pem, str(j, "csr", kMaxCsrFrame));
  OC_ASSIGN_OR_RETURN(r.ttl_s, integer(j, "ttl"));
  return r;
}

Result<CsrResponse> decodeCsrResponse(std::string_view payload) {
  OC_ASSIGN_OR_RETURN(json j, parseObject(payload));
  CsrResponse r;
  r.id = j["id"].get<uint64_t>();
  auto ok = j.find("ok");
  if (ok == j.end() || !ok->is_boolean()) return makeError("CA channel: no ok field");
  r.ok = ok->get<bool>();
  OC_ASSIGN_OR_RETURN(r.error, str(j, "error", 1024, !r.ok));
  OC_ASSIGN_OR_RETURN(r.ca_pem, str(j, "caPem", kMaxCsrFrame, false));
  OC_ASSIGN_OR_RETURN(r.trust_domain, str(j, "trustDomain", 253, false));
  OC_ASSIGN_OR_RETURN(r.cert_pem, str(j, "certPem", kMaxCsrFrame, false));
  OC_ASSIGN_OR_RETURN(r.issued_at, integer(j, "issuedAt"));
  return r;
}

Result<std::optional<std::string>> FrameReader::next() {
  if (buf_.size() < 4) return std::optional<std::string>();
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<uint8_t>(buf_[i]);
  if (n == 0 || n > kMaxCsrFrame) {
    return makeError("CA channel: frame length " + std::to_string(n) + " outside 1-16384");
  }
  if (buf_.size() < 4 + n) return std::optional<std::string>();
  std::string payload = buf_.substr(4, n);
  buf_.erase(0, 4 + n);
  return std::optional<std::string>(std::move(payload));
}

}  // namespace offcore::mesh::tls
