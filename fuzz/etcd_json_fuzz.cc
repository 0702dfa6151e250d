// What an etcd member answers, and what another writer left under
// /offcore/v1/, are untrusted: any bytes must parse or give an error, never
// crash, and a parsed watch message's events must carry their keys.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kv/etcd_json.h"
#include "svc/cluster_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore;
  std::string s(reinterpret_cast<const char*>(data), size);
  (void)kv::etcdjson::parseRange(s);
  (void)kv::etcdjson::parseTxn(s);
  (void)kv::etcdjson::parseLeaseGrant(s);
  (void)kv::etcdjson::parseLeaseKeepAlive(s);
  (void)kv::etcdjson::parseHeaderRevision(s);
  if (auto token = kv::etcdjson::parseAuthenticate(s); token.ok()) {  // it becomes a header line
    for (char c : *token) {
      if (c == '\r' || c == '\n' || c == ' ') __builtin_trap();
    }
  }
  auto e = kv::etcdjson::parseError(s);
  if (e.message.find('\n') != std::string::npos) __builtin_trap();
  (void)kv::etcdjson::parseWatchMessage(s);
  // One object of the state, under each section's key.
  for (const char* key :
       {"vpcs/v", "subnets/s", "backends/b", "services/x", "probes/p", "endpoints/n/c/eth0", "nodes/n", "bogus/z"}) {
    svc::ClusterState st = svc::ClusterState::empty();
    (void)svc::readStateObject(st, key, s, "fuzz");
    if (!st.vpcs.count("default")) __builtin_trap();
  }
  return 0;
}
