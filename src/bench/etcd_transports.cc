#include "bench/etcd_transports.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <vector>

#include "base/stats.h"
#include "etcd_kv.grpc.pb.h"
#include "kv/etcd_client.h"

namespace offcore::bench {

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// The gRPC side, decoded into the same values the gateway's client returns.
Result<kv::RangeResult> grpcRange(etcdserverpb::KV::Stub& stub, const std::string& key, const std::string& end) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_range_end(end);
  etcdserverpb::RangeResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status st = stub.Range(&ctx, req, &resp);
  if (!st.ok()) return makeError("etcd gRPC Range: " + st.error_message());
  kv::RangeResult out;
  out.revision = resp.header().revision();
  out.kvs.reserve(static_cast<size_t>(resp.kvs_size()));
  for (const auto& k : resp.kvs())
    out.kvs.push_back({k.key(), k.value(), k.create_revision(), k.mod_revision(), k.version(), k.lease()});
  return out;
}

Status grpcPut(etcdserverpb::KV::Stub& stub, const std::string& key, const std::string& value) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  etcdserverpb::PutResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status st = stub.Put(&ctx, req, &resp);
  if (!st.ok()) return makeError("etcd gRPC Put: " + st.error_message());
  return okStatus();
}

}  // namespace

Result<TransportFigures> compareEtcdTransports(const std::string& member, const std::string& prefix,
                                               const std::string& scratch_prefix, int rounds) {
  kv::EtcdOptions o;
  o.endpoints = {member};
  auto gateway = kv::makeEtcdClient(o);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);  // as the gateway client's bound
  auto channel =
      grpc::CreateCustomChannel(member.substr(member.find("://") + 3), grpc::InsecureChannelCredentials(), args);
  auto stub = etcdserverpb::KV::NewStub(channel);

  TransportFigures f;
  std::vector<double> gw_range, grpc_range, gw_put, grpc_put;
  const std::string end = kv::prefixEnd(prefix);
  for (int r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    OC_ASSIGN_OR_RETURN(kv::RangeResult a, gateway->range(prefix, end));
    gw_range.push_back(msSince(t));
    t = Clock::now();
    OC_ASSIGN_OR_RETURN(kv::RangeResult b, grpcRange(*stub, prefix, end));
    grpc_range.push_back(msSince(t));
    if (a.kvs.size() != b.kvs.size()) return makeError("the two transports read different ranges (a write meanwhile?)");
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
    OC_TRY(grpcPut(*stub, scratch_prefix + "grpc/" + std::to_string(i), value));
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
