#include "bench/etcd_transports.h"

#include <chrono>
#include <vector>

#include "base/stats.h"
#include "kv/etcd_client.h"

namespace offcore::bench {

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

}  // namespace

Result<TransportFigures> compareEtcdTransports(const std::string& member, const std::string& prefix,
                                               const std::string& scratch_prefix, int rounds) {
  // offcore's two KvClients, each decoding into the same keys and values.
  kv::EtcdOptions o;
  o.endpoints = {member};
  o.request_timeout_ms = 30000;  // a 24 MiB range on a loaded machine
  o.wire = kv::EtcdOptions::Wire::Gateway;
  auto gateway = kv::makeEtcdClient(o);
  o.wire = kv::EtcdOptions::Wire::Grpc;
  auto grpc = kv::makeEtcdClient(o);

  TransportFigures f;
  std::vector<double> gw_range, grpc_range, gw_put, grpc_put;
  const std::string end = kv::prefixEnd(prefix);
  // Both read the state at one revision, so what they return must be equal
  // whatever the agents write meanwhile.
  OC_ASSIGN_OR_RETURN(kv::RangeResult now, grpc->range(prefix, "", 0));
  for (int r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    OC_ASSIGN_OR_RETURN(kv::RangeResult a, gateway->range(prefix, end, now.revision));
    gw_range.push_back(msSince(t));
    t = Clock::now();
    OC_ASSIGN_OR_RETURN(kv::RangeResult b, grpc->range(prefix, end, now.revision));
    grpc_range.push_back(msSince(t));
    if (a.kvs != b.kvs) return makeError("the two wires decoded one revision of the state differently");
    f.keys = a.kvs.size();
    f.bytes = 0;
    for (const auto& k : a.kvs) f.bytes += k.key.size() + k.value.size();
  }
  const std::string value(200, 'v');  // about one Service object
  for (int i = 0; i < 20 * rounds; ++i) {
    auto t = Clock::now();
    auto put = gateway->txn({}, {kv::Op::put(scratch_prefix + "gw/" + std::to_string(i), value)});
    if (!put.ok()) return put.error();
    gw_put.push_back(msSince(t));
    t = Clock::now();
    put = grpc->txn({}, {kv::Op::put(scratch_prefix + "grpc/" + std::to_string(i), value)});
    if (!put.ok()) return put.error();
    grpc_put.push_back(msSince(t));
  }
  auto cleaned = gateway->txn({}, {kv::Op::del(scratch_prefix, kv::prefixEnd(scratch_prefix))});
  if (!cleaned.ok()) return cleaned.error();
  f.gateway_range_ms = median(gw_range);
  f.grpc_range_ms = median(grpc_range);
  f.gateway_put_ms = median(gw_put);
  f.grpc_put_ms = median(grpc_put);
  return f;
}

}  // namespace offcore::bench
