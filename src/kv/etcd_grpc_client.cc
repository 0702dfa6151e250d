#include "kv/etcd_grpc_client.h"

#include <cerrno>

#include "kv/etcd_grpc_members.h"
#include "kv/etcd_grpc_watch.h"

namespace offcore::kv {

namespace {

namespace pb = etcdserverpb;

void toPb(const Compare& c, pb::Compare* out) {
  out->set_key(c.key);
  switch (c.result) {
    case Compare::Result::Equal: out->set_result(pb::Compare::EQUAL); break;
    case Compare::Result::NotEqual: out->set_result(pb::Compare::NOT_EQUAL); break;
    case Compare::Result::Greater: out->set_result(pb::Compare::GREATER); break;
    case Compare::Result::Less: out->set_result(pb::Compare::LESS); break;
  }
  switch (c.target) {
    case Compare::Target::Version:
      out->set_target(pb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::Create:
      out->set_target(pb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::Mod:
      out->set_target(pb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::Value:
      out->set_target(pb::Compare::VALUE);
      out->set_value(c.value);
      break;
  }
}

void toPb(const Op& op, pb::RequestOp* out) {
  if (op.kind == Op::Kind::Put) {
    pb::PutRequest* put = out->mutable_request_put();
    put->set_key(op.key);
    put->set_value(op.value);
    put->set_lease(op.lease);
    return;
  }
  pb::DeleteRangeRequest* del = out->mutable_request_delete_range();
  del->set_key(op.key);
  del->set_range_end(op.range_end);
}

class EtcdGrpcClient final : public KvClient {
 public:
  explicit EtcdGrpcClient(EtcdOptions o) : members_(std::make_shared<GrpcMembers>(std::move(o))) {}

  Result<RangeResult> range(const std::string& key, const std::string& range_end, int64_t revision) override {
    pb::RangeRequest req;
    req.set_key(key);
    req.set_range_end(range_end);
    req.set_revision(revision);
    pb::RangeResponse resp;
    OC_TRY(members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) {
      resp.Clear();
      return m.kv->Range(&ctx, req, &resp);
    }));
    RangeResult out;
    out.revision = resp.header().revision();
    out.kvs.reserve(static_cast<size_t>(resp.kvs_size()));
    for (pb::KeyValue& k : *resp.mutable_kvs()) out.kvs.push_back(keyValueFromPb(k));
    return out;
  }

  Result<TxnResult> txn(const std::vector<Compare>& compares, const std::vector<Op>& success,
                        const std::vector<Op>& failure) override {
    pb::TxnRequest req;
    for (const Compare& c : compares) toPb(c, req.add_compare());
    for (const Op& op : success) toPb(op, req.add_success());
    for (const Op& op : failure) toPb(op, req.add_failure());
    pb::TxnResponse resp;
    OC_TRY(members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) {
      resp.Clear();
      return m.kv->Txn(&ctx, req, &resp);
    }));
    return TxnResult{resp.succeeded(), resp.header().revision()};
  }

  Result<int64_t> leaseGrant(int64_t ttl_s) override {
    pb::LeaseGrantRequest req;
    req.set_ttl(ttl_s);
    pb::LeaseGrantResponse resp;
    OC_TRY(members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) {
      resp.Clear();
      return m.lease->LeaseGrant(&ctx, req, &resp);
    }));
    if (!resp.error().empty()) return makeError("etcd: lease grant: " + resp.error());
    if (resp.id() == 0) return makeError("etcd: lease grant: the member named no lease");
    return resp.id();
  }

  // One request on a keep-alive stream of its own: the agent renews every
  // few seconds, so a stream held open would save little.
  Result<int64_t> leaseKeepAlive(int64_t id) override {
    pb::LeaseKeepAliveRequest req;
    req.set_id(id);
    pb::LeaseKeepAliveResponse resp;
    bool answered = false;
    OC_TRY(members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) {
      resp.Clear();
      auto stream = m.lease->LeaseKeepAlive(&ctx);
      answered = stream->Write(req) && stream->Read(&resp);
      stream->WritesDone();
      if (answered) ctx.TryCancel();  // the answer is in; the stream's end does not matter
      grpc::Status st = stream->Finish();
      if (answered) return grpc::Status::OK;
      // Ended without an answer and without an error: not "expired" (that
      // would make the caller take a new lease): try the next member.
      return st.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "the keep-alive stream ended without an answer")
                     : st;
    }));
    if (resp.ttl() <= 0) return makeError("etcd: the lease expired", ENOENT);
    return resp.ttl();
  }

  Status leaseRevoke(int64_t id) override {
    pb::LeaseRevokeRequest req;
    req.set_id(id);
    pb::LeaseRevokeResponse resp;
    Status s =
        members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) { return m.lease->LeaseRevoke(&ctx, req, &resp); });
    if (!s.ok() && s.error().code != ENOENT) return s;
    return okStatus();
  }

  Result<std::unique_ptr<Watch>> watch(const std::string& key, const std::string& range_end, int64_t start_revision,
                                       WatchCallback fn) override {
    if (members_->unusable()) return *members_->unusable();
    return startEtcdGrpcWatch(members_, key, range_end, start_revision, std::move(fn));
  }

  Status compact(int64_t revision) override {
    pb::CompactionRequest req;
    req.set_revision(revision);
    pb::CompactionResponse resp;
    return members_->call([&](GrpcMember& m, grpc::ClientContext& ctx) { return m.kv->Compact(&ctx, req, &resp); });
  }

  std::string describe() const override { return members_->describe(); }

 private:
  std::shared_ptr<GrpcMembers> members_;
};

}  // namespace

std::unique_ptr<KvClient> makeEtcdGrpcClient(EtcdOptions options) {
  return std::make_unique<EtcdGrpcClient>(std::move(options));
}

}  // namespace offcore::kv
