// The members of an etcd cluster as gRPC channels, for the gRPC KvClient and
// its watches: a unary call with fail-over between members, the auth token.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "etcd_kv.grpc.pb.h"
#include "kv/etcd_client.h"

namespace offcore::kv {

struct GrpcMember {
  std::string host;  // "host:port", for messages
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

// A key-value from a member's answer (range or watch event), moved out of it.
KeyValue keyValueFromPb(etcdserverpb::KeyValue& k);

class GrpcMembers {
 public:
  explicit GrpcMembers(EtcdOptions o);
  GrpcMembers(const GrpcMembers&) = delete;
  GrpcMembers& operator=(const GrpcMembers&) = delete;

  // One call: `rpc` runs against a member with a fresh context (deadline,
  // token) until one answers; then as EtcdTransport::call says: a definite
  // error with its errno, or one line naming each member's failure
  // (EHOSTUNREACH). A refused token is renewed and the call made once more.
  using Rpc = std::function<grpc::Status(GrpcMember&, grpc::ClientContext&)>;
  Status call(const Rpc& rpc);

  // The token for this client's user ("" without one); fresh: a new one.
  Result<std::string> token(bool fresh);

  // Waits up to connect_timeout_ms for member i's channel to be connected
  // when it is not. Also what drives a connection attempt forward: with the
  // synchronous API a channel's connect progresses only while a thread
  // waits on it (or on gRPC's backup poller, every 5 s).
  void awaitConnected(size_t i);

  // A member's failure as an offcore error; where = "host:port".
  static Error toError(const grpc::Status& st, const std::string& where, size_t max_bytes);

  size_t size() const { return members_.size(); }
  GrpcMember& member(size_t i) { return *members_[i]; }
  size_t preferred() const { return preferred_.load(); }
  const EtcdOptions& options() const { return o_; }
  std::string describe() const;
  // Set when the TLS files could not be read: every call fails with it.
  const std::optional<Error>& unusable() const { return unusable_; }

 private:
  Status attempt(const Rpc& rpc, const std::string& token);

  EtcdOptions o_;
  std::vector<std::unique_ptr<GrpcMember>> members_;
  std::optional<Error> unusable_;
  std::atomic<size_t> preferred_{0};
  std::mutex auth_mu_;
  std::string token_;  // guarded by auth_mu_
};

}  // namespace offcore::kv
