#include "snapshotter/service.h"

#include <github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h>

#include "base/log.h"
#include "snapshotter/errors.h"
#include "snapshotter/snapshotter.h"

namespace offcore {

namespace pb = containerd::services::snapshots::v1;

namespace {

std::string describe(const SnapshotLabels& labels) {
  std::string s = "{";
  for (const auto& [k, v] : labels) s += (s.size() > 1 ? ", " : "") + k + "=" + v;
  return s + "}";
}

template <typename Map>
SnapshotLabels toLabels(const Map& m) {
  return SnapshotLabels(m.begin(), m.end());
}

void toProto(const SnapshotInfo& in, pb::Info* out) {
  out->set_name(in.name);
  out->set_parent(in.parent);
  out->set_kind(static_cast<pb::Kind>(in.kind));
  out->mutable_created_at()->set_seconds(in.created_ns / 1000000000);
  out->mutable_created_at()->set_nanos(static_cast<int32_t>(in.created_ns % 1000000000));
  out->mutable_updated_at()->set_seconds(in.updated_ns / 1000000000);
  out->mutable_updated_at()->set_nanos(static_cast<int32_t>(in.updated_ns % 1000000000));
  for (const auto& [k, v] : in.labels) (*out->mutable_labels())[k] = v;
}

template <typename Repeated>
void toProto(const std::vector<SnapshotMount>& in, Repeated* out) {
  for (const auto& m : in) {
    auto* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

std::string describe(const std::vector<SnapshotMount>& mounts) {
  std::string s;
  for (const auto& m : mounts) {
    s += m.type + " " + m.source;
    for (const auto& o : m.options) s += " " + o;
  }
  return s;
}

class SnapshotsService final : public pb::Snapshots::Service {
 public:
  explicit SnapshotsService(Snapshotter& sn) : sn_(sn) {}

  grpc::Status Prepare(grpc::ServerContext*, const pb::PrepareSnapshotRequest* req,
                       pb::PrepareSnapshotResponse* resp) override {
    auto labels = toLabels(req->labels());
    spdlog::info("Prepare key={} parent={} labels={}", req->key(), req->parent(), describe(labels));
    auto m = sn_.prepare(req->key(), req->parent(), labels);
    if (!m.ok()) return fail("Prepare", req->key(), m.error());
    spdlog::debug("Prepare {} -> {}", req->key(), describe(*m));
    toProto(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  }

  grpc::Status View(grpc::ServerContext*, const pb::ViewSnapshotRequest* req, pb::ViewSnapshotResponse* resp) override {
    auto labels = toLabels(req->labels());
    spdlog::info("View key={} parent={} labels={}", req->key(), req->parent(), describe(labels));
    auto m = sn_.view(req->key(), req->parent(), labels);
    if (!m.ok()) return fail("View", req->key(), m.error());
    toProto(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  }

  grpc::Status Mounts(grpc::ServerContext*, const pb::MountsRequest* req, pb::MountsResponse* resp) override {
    auto m = sn_.mounts(req->key());
    if (!m.ok()) return fail("Mounts", req->key(), m.error());
    spdlog::info("Mounts key={} -> {}", req->key(), describe(*m));
    toProto(*m, resp->mutable_mounts());
    return grpc::Status::OK;
  }

  grpc::Status Commit(grpc::ServerContext*, const pb::CommitSnapshotRequest* req, google::protobuf::Empty*) override {
    auto labels = toLabels(req->labels());
    spdlog::info("Commit name={} key={} labels={}", req->name(), req->key(), describe(labels));
    auto st = sn_.commit(req->name(), req->key(), labels);
    if (!st.ok()) return fail("Commit", req->key(), st.error());
    return grpc::Status::OK;
  }

  grpc::Status Remove(grpc::ServerContext*, const pb::RemoveSnapshotRequest* req, google::protobuf::Empty*) override {
    spdlog::info("Remove key={}", req->key());
    auto st = sn_.remove(req->key());
    if (!st.ok()) return fail("Remove", req->key(), st.error());
    return grpc::Status::OK;
  }

  grpc::Status Stat(grpc::ServerContext*, const pb::StatSnapshotRequest* req, pb::StatSnapshotResponse* resp) override {
    auto info = sn_.stat(req->key());
    if (!info.ok()) return fail("Stat", req->key(), info.error());
    spdlog::debug("Stat key={} -> {} parent={}", req->key(), kindName(info->kind), info->parent);
    toProto(*info, resp->mutable_info());
    return grpc::Status::OK;
  }

  grpc::Status Update(grpc::ServerContext*, const pb::UpdateSnapshotRequest* req,
                      pb::UpdateSnapshotResponse* resp) override {
    SnapshotInfo in;
    in.name = req->info().name();
    in.labels = toLabels(req->info().labels());
    std::vector<std::string> paths(req->update_mask().paths().begin(), req->update_mask().paths().end());
    std::string joined;
    for (const auto& p : paths) joined += (joined.empty() ? "" : ",") + p;
    spdlog::info("Update name={} labels={} paths=[{}]", in.name, describe(in.labels), joined);
    auto info = sn_.update(in, paths);
    if (!info.ok()) return fail("Update", in.name, info.error());
    toProto(*info, resp->mutable_info());
    return grpc::Status::OK;
  }

  grpc::Status List(grpc::ServerContext*, const pb::ListSnapshotsRequest* req,
                    grpc::ServerWriter<pb::ListSnapshotsResponse>* writer) override {
    std::vector<std::string> filters(req->filters().begin(), req->filters().end());
    std::string joined;
    for (const auto& f : filters) joined += (joined.empty() ? "" : " OR ") + f;
    auto infos = sn_.list(filters);
    if (!infos.ok()) return fail("List", joined, infos.error());
    spdlog::debug("List filters=[{}] -> {} snapshots", joined, infos->size());
    // Batches, as containerd's own server sends them: one message per 100.
    pb::ListSnapshotsResponse batch;
    for (const auto& i : *infos) {
      toProto(i, batch.add_info());
      if (batch.info_size() == 100) {
        if (!writer->Write(batch)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
        batch.clear_info();
      }
    }
    if (batch.info_size() > 0 && !writer->Write(batch))
      return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
    return grpc::Status::OK;
  }

  grpc::Status Usage(grpc::ServerContext*, const pb::UsageRequest* req, pb::UsageResponse* resp) override {
    auto u = sn_.usage(req->key());
    if (!u.ok()) return fail("Usage", req->key(), u.error());
    spdlog::debug("Usage key={} -> {} bytes, {} inodes", req->key(), u->size, u->inodes);
    resp->set_size(u->size);
    resp->set_inodes(u->inodes);
    return grpc::Status::OK;
  }

  grpc::Status Cleanup(grpc::ServerContext*, const pb::CleanupRequest*, google::protobuf::Empty*) override {
    spdlog::info("Cleanup");
    auto st = sn_.cleanup();
    if (!st.ok()) return fail("Cleanup", "", st.error());
    return grpc::Status::OK;
  }

 private:
  // Expected outcomes (a missing key, the remote protocol's AlreadyExists)
  // are routine for containerd; only internal failures are warnings.
  static grpc::Status fail(const char* call, const std::string& key, const Error& e) {
    if (e.code < 0)
      spdlog::info("{} {}: {}", call, key, e.message);
    else
      spdlog::warn("{} {} failed: {}", call, key, e.message);
    return toGrpcStatus(e);
  }

  Snapshotter& sn_;
};

}  // namespace

grpc::Status toGrpcStatus(const Error& error) {
  switch (error.code) {
    case snap::kNotFound: return grpc::Status(grpc::StatusCode::NOT_FOUND, error.message);
    case snap::kAlreadyExists: return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, error.message);
    case snap::kFailedPrecondition: return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, error.message);
    case snap::kInvalidArgument: return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error.message);
    default: return grpc::Status(grpc::StatusCode::INTERNAL, error.message);
  }
}

std::unique_ptr<grpc::Service> makeSnapshotsService(Snapshotter& snapshotter) {
  return std::make_unique<SnapshotsService>(snapshotter);
}

}  // namespace offcore
