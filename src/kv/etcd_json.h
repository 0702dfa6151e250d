// etcd v3's messages in the JSON its gateway speaks (proto3 JSON mapping:
// int64 as strings, bytes as base64, zero values left out). Building requests
// and parsing answers, apart from the transport so the fuzzer reaches every
// parser of a member's bytes (fuzz/etcd_json_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "kv/kv.h"

namespace offcore::kv::etcdjson {

std::string rangeRequest(const std::string& key, const std::string& range_end, int64_t revision);
std::string txnRequest(const std::vector<Compare>& compares, const std::vector<Op>& success,
                       const std::vector<Op>& failure);
std::string watchCreateRequest(const std::string& key, const std::string& range_end, int64_t start_revision);

Result<RangeResult> parseRange(const std::string& body);
Result<TxnResult> parseTxn(const std::string& body);
Result<int64_t> parseLeaseGrant(const std::string& body);  // the lease ID
// The TTL left; a lease the member no longer has is an error with ENOENT.
Result<int64_t> parseLeaseKeepAlive(const std::string& body);
int64_t parseHeaderRevision(const std::string& body);  // 0 when absent
// A JSON string literal of s.
std::string quote(const std::string& s);
// The token of an /v3/auth/authenticate answer.
Result<std::string> parseAuthenticate(const std::string& body);

// One message of a watch stream (one line of the gateway's answer).
struct WatchMessage {
  bool created = false, canceled = false;
  int64_t revision = 0, compact_revision = 0;
  std::vector<WatchEvent> events;
  std::string error;  // the stream's own error message, when it sent one
};
Result<WatchMessage> parseWatchMessage(const std::string& line);

// A non-200 answer: {"error","message","code"} (code is a gRPC status).
struct GatewayError {
  int grpc_code = 2;  // UNKNOWN when the body says nothing usable
  std::string message;
};
GatewayError parseError(const std::string& body);

}  // namespace offcore::kv::etcdjson
