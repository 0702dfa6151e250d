#include <algorithm>
#include <cerrno>

#include "csi.grpc.pb.h"
#include "csi/service.h"
#include "csi/service_common.h"

namespace offcore::csi {

namespace {

using grpc::ServerContext;
using grpc::Status;

Result<std::vector<Capability>> capsOf(const google::protobuf::RepeatedPtrField<v1::VolumeCapability>& caps,
                                       ControllerOps& ops) {
  if (caps.empty()) return makeError("volume_capabilities missing", EINVAL);
  std::vector<Capability> out;
  for (const auto& c : caps) {
    OC_ASSIGN_OR_RETURN(Capability cap, fromProto(c));
    if (auto s = ops.checkCapability(cap); !s.ok()) return s.error();
    out.push_back(std::move(cap));
  }
  return out;
}

// The size to make from a capacity range (the spec: required is the floor,
// limit the ceiling, either may be 0 = unset): required rounded up to
// whole MiB, or with only a limit, the default rounded down under it.
Result<uint64_t> sizeOf(const v1::CapacityRange* range) {
  int64_t req = range ? range->required_bytes() : 0;
  int64_t lim = range ? range->limit_bytes() : 0;
  if (req < 0 || lim < 0) return makeError("capacity_range has a negative size", EINVAL);
  if (lim > 0 && req > lim) {
    return makeError("capacity_range: required_bytes " + std::to_string(req) + " > limit_bytes " + std::to_string(lim),
                     EINVAL);
  }
  uint64_t size = 0;
  if (req > 0) {
    size = (static_cast<uint64_t>(req) + kSizeAlignment - 1) / kSizeAlignment * kSizeAlignment;
  } else {
    size = lim > 0 ? std::min<uint64_t>(kDefaultSize, static_cast<uint64_t>(lim)) : kDefaultSize;
    size = size / kSizeAlignment * kSizeAlignment;
  }
  if (size == 0 || (lim > 0 && size > static_cast<uint64_t>(lim))) {
    return makeError("capacity_range: volumes come in whole MiB; none fits between " + std::to_string(req) + " and " +
                         std::to_string(lim) + " bytes",
                     ERANGE);
  }
  if (size > kMaxSize) return makeError("capacity_range: at most " + std::to_string(kMaxSize) + " bytes", ERANGE);
  return size;
}

void fillVolume(const VolumeInfo& v, v1::Volume* out) {
  out->set_volume_id(v.id);
  out->set_capacity_bytes(static_cast<int64_t>(v.capacity_bytes));
  out->mutable_volume_context()->insert(v.context.begin(), v.context.end());
  if (!v.source_snapshot.empty()) {
    out->mutable_content_source()->mutable_snapshot()->set_snapshot_id(v.source_snapshot);
  } else if (!v.source_volume.empty()) {
    out->mutable_content_source()->mutable_volume()->set_volume_id(v.source_volume);
  }
}

void fillSnapshot(const SnapshotInfo& s, v1::Snapshot* out) {
  out->set_snapshot_id(s.id);
  out->set_source_volume_id(s.source_volume_id);
  out->set_size_bytes(static_cast<int64_t>(s.size_bytes));
  out->set_ready_to_use(s.ready);
  out->mutable_creation_time()->set_seconds(s.created_unix_ns / 1000000000);
  out->mutable_creation_time()->set_nanos(static_cast<int32_t>(s.created_unix_ns % 1000000000));
}

class ControllerService final : public v1::Controller::Service {
 public:
  explicit ControllerService(ControllerOps& ops) : ops_(ops) {}

  Status CreateVolume(ServerContext*, const v1::CreateVolumeRequest* req, v1::CreateVolumeResponse* out) override {
    if (req->name().empty()) return invalid("name missing");
    VolumeSpec spec;
    spec.name = req->name();
    auto caps = capsOf(req->volume_capabilities(), ops_);
    if (!caps.ok()) return toGrpc(caps.error());
    spec.capabilities = *caps;
    auto size = sizeOf(req->has_capacity_range() ? &req->capacity_range() : nullptr);
    if (!size.ok()) return toGrpc(size.error());
    spec.size_bytes = *size;
    spec.required_bytes = req->has_capacity_range() ? static_cast<uint64_t>(req->capacity_range().required_bytes()) : 0;
    spec.limit_bytes = req->has_capacity_range() ? static_cast<uint64_t>(req->capacity_range().limit_bytes()) : 0;
    spec.parameters.insert(req->parameters().begin(), req->parameters().end());
    if (auto s = ops_.checkParameters(spec.parameters); !s.ok()) return toGrpc(s.error());
    if (req->has_volume_content_source()) {
      const auto& src = req->volume_content_source();
      if (src.has_snapshot()) {
        if (src.snapshot().snapshot_id().empty()) return invalid("volume_content_source.snapshot.snapshot_id missing");
        spec.source_snapshot = src.snapshot().snapshot_id();
      } else if (src.has_volume()) {
        if (src.volume().volume_id().empty()) return invalid("volume_content_source.volume.volume_id missing");
        spec.source_volume = src.volume().volume_id();
      } else {
        return invalid("volume_content_source names neither a snapshot nor a volume");
      }
    }
    auto g = inflight_.tryTake("name/" + spec.name);
    if (!g) return InFlight::busy("volume name " + spec.name);
    auto v = ops_.createVolume(spec);
    if (!v.ok()) return toGrpc(v.error());
    fillVolume(*v, out->mutable_volume());
    return Status::OK;
  }

  Status DeleteVolume(ServerContext*, const v1::DeleteVolumeRequest* req, v1::DeleteVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    auto g = inflight_.tryTake("volume/" + req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.deleteVolume(req->volume_id()); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status ControllerPublishVolume(ServerContext*, const v1::ControllerPublishVolumeRequest* req,
                                 v1::ControllerPublishVolumeResponse* out) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->node_id().empty()) return invalid("node_id missing");
    if (!req->has_volume_capability()) return invalid("volume_capability missing");
    auto cap = fromProto(req->volume_capability());
    if (!cap.ok()) return toGrpc(cap.error());
    if (auto s = ops_.checkCapability(*cap); !s.ok()) return toGrpc(s.error());
    auto g = inflight_.tryTake("volume/" + req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    auto ctx = ops_.publish(req->volume_id(), req->node_id(), req->readonly(), *cap);
    if (!ctx.ok()) return toGrpc(ctx.error());
    out->mutable_publish_context()->insert(ctx->begin(), ctx->end());
    return Status::OK;
  }

  Status ControllerUnpublishVolume(ServerContext*, const v1::ControllerUnpublishVolumeRequest* req,
                                   v1::ControllerUnpublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    auto g = inflight_.tryTake("volume/" + req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.unpublish(req->volume_id(), req->node_id()); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status ValidateVolumeCapabilities(ServerContext*, const v1::ValidateVolumeCapabilitiesRequest* req,
                                    v1::ValidateVolumeCapabilitiesResponse* out) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->volume_capabilities().empty()) return invalid("volume_capabilities missing");
    std::vector<Capability> caps;
    for (const auto& c : req->volume_capabilities()) {
      auto cap = fromProto(c);
      if (!cap.ok()) return toGrpc(cap.error());
      caps.push_back(*cap);
    }
    auto v = ops_.getVolume(req->volume_id());
    if (!v.ok()) return toGrpc(v.error());
    StringMap params(req->parameters().begin(), req->parameters().end());
    if (auto s = ops_.checkParameters(params); !s.ok()) {
      out->set_message(s.error().message);
      return Status::OK;
    }
    for (const auto& c : caps) {
      if (auto s = ops_.checkCapability(c); !s.ok()) {
        out->set_message(s.error().message);  // no `confirmed`: not supported
        return Status::OK;
      }
    }
    auto* conf = out->mutable_confirmed();
    conf->mutable_volume_context()->insert(req->volume_context().begin(), req->volume_context().end());
    conf->mutable_parameters()->insert(req->parameters().begin(), req->parameters().end());
    for (const auto& c : req->volume_capabilities()) *conf->add_volume_capabilities() = c;
    return Status::OK;
  }

  Status ListVolumes(ServerContext*, const v1::ListVolumesRequest* req, v1::ListVolumesResponse* out) override {
    auto vols = ops_.listVolumes();
    if (!vols.ok()) return toGrpc(vols.error());
    auto page = pageOf(vols->size(), req->max_entries(), req->starting_token());
    if (!page.ok()) return toGrpc(page.error());
    for (size_t i = page->begin; i < page->end; ++i) {
      const auto& v = (*vols)[i];
      auto* e = out->add_entries();
      fillVolume(v, e->mutable_volume());
      for (const auto& n : v.published_nodes) e->mutable_status()->add_published_node_ids(n);
      e->mutable_status()->mutable_volume_condition()->set_abnormal(v.abnormal);
      e->mutable_status()->mutable_volume_condition()->set_message(v.condition);
    }
    out->set_next_token(page->next_token);
    return Status::OK;
  }

  Status GetCapacity(ServerContext*, const v1::GetCapacityRequest* req, v1::GetCapacityResponse* out) override {
    StringMap params(req->parameters().begin(), req->parameters().end());
    if (auto s = ops_.checkParameters(params); !s.ok()) return toGrpc(s.error());
    for (const auto& c : req->volume_capabilities()) {
      auto cap = fromProto(c);
      if (!cap.ok()) return toGrpc(cap.error());
      // Capabilities we cannot serve have no capacity at all.
      if (!ops_.checkCapability(*cap).ok()) {
        out->set_available_capacity(0);
        return Status::OK;
      }
    }
    auto cap = ops_.capacity(params);
    if (!cap.ok()) return toGrpc(cap.error());
    out->set_available_capacity(static_cast<int64_t>(cap->available));
    out->mutable_maximum_volume_size()->set_value(static_cast<int64_t>(std::min(cap->maximum_volume, kMaxSize)));
    out->mutable_minimum_volume_size()->set_value(static_cast<int64_t>(kSizeAlignment));
    return Status::OK;
  }

  Status ControllerGetCapabilities(ServerContext*, const v1::ControllerGetCapabilitiesRequest*,
                                   v1::ControllerGetCapabilitiesResponse* out) override {
    using T = v1::ControllerServiceCapability::RPC;
    for (auto t : {T::CREATE_DELETE_VOLUME, T::PUBLISH_UNPUBLISH_VOLUME, T::LIST_VOLUMES, T::GET_CAPACITY,
                   T::CREATE_DELETE_SNAPSHOT, T::LIST_SNAPSHOTS, T::CLONE_VOLUME, T::PUBLISH_READONLY, T::EXPAND_VOLUME,
                   T::LIST_VOLUMES_PUBLISHED_NODES, T::VOLUME_CONDITION, T::SINGLE_NODE_MULTI_WRITER}) {
      out->add_capabilities()->mutable_rpc()->set_type(t);
    }
    return Status::OK;
  }

  Status CreateSnapshot(ServerContext*, const v1::CreateSnapshotRequest* req,
                        v1::CreateSnapshotResponse* out) override {
    if (req->source_volume_id().empty()) return invalid("source_volume_id missing");
    if (req->name().empty()) return invalid("name missing");
    auto g = inflight_.tryTake("snapshot-name/" + req->name());
    if (!g) return InFlight::busy("snapshot name " + req->name());
    auto gv = inflight_.tryTake("volume/" + req->source_volume_id());
    if (!gv) return InFlight::busy("volume " + req->source_volume_id());
    auto s = ops_.createSnapshot(req->source_volume_id(), req->name());
    if (!s.ok()) return toGrpc(s.error());
    fillSnapshot(*s, out->mutable_snapshot());
    return Status::OK;
  }

  Status DeleteSnapshot(ServerContext*, const v1::DeleteSnapshotRequest* req, v1::DeleteSnapshotResponse*) override {
    if (req->snapshot_id().empty()) return invalid("snapshot_id missing");
    auto g = inflight_.tryTake("snapshot/" + req->snapshot_id());
    if (!g) return InFlight::busy("snapshot " + req->snapshot_id());
    if (auto s = ops_.deleteSnapshot(req->snapshot_id()); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status ListSnapshots(ServerContext*, const v1::ListSnapshotsRequest* req, v1::ListSnapshotsResponse* out) override {
    auto all = ops_.listSnapshots();
    if (!all.ok()) return toGrpc(all.error());
    std::vector<SnapshotInfo> snaps;
    for (auto& s : *all) {
      if (!req->snapshot_id().empty() && s.id != req->snapshot_id()) continue;
      if (!req->source_volume_id().empty() && s.source_volume_id != req->source_volume_id()) continue;
      snaps.push_back(std::move(s));
    }
    auto page = pageOf(snaps.size(), req->max_entries(), req->starting_token());
    if (!page.ok()) return toGrpc(page.error());
    for (size_t i = page->begin; i < page->end; ++i) fillSnapshot(snaps[i], out->add_entries()->mutable_snapshot());
    out->set_next_token(page->next_token);
    return Status::OK;
  }

  Status ControllerExpandVolume(ServerContext*, const v1::ControllerExpandVolumeRequest* req,
                                v1::ControllerExpandVolumeResponse* out) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (!req->has_capacity_range()) return invalid("capacity_range missing");
    auto size = sizeOf(&req->capacity_range());
    if (!size.ok()) return toGrpc(size.error());
    bool block = false;
    if (req->has_volume_capability()) {
      auto cap = fromProto(req->volume_capability());
      if (!cap.ok()) return toGrpc(cap.error());
      block = cap->type == AccessType::kBlock;
    }
    auto g = inflight_.tryTake("volume/" + req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    auto grown = ops_.expandVolume(req->volume_id(), *size, static_cast<uint64_t>(req->capacity_range().limit_bytes()));
    if (!grown.ok()) return toGrpc(grown.error());
    out->set_capacity_bytes(static_cast<int64_t>(*grown));
    out->set_node_expansion_required(!block);  // a file system grows on the node
    return Status::OK;
  }

 private:
  ControllerOps& ops_;
  InFlight inflight_;
};

}  // namespace

std::unique_ptr<grpc::Service> makeControllerService(ControllerOps& ops) {
  return std::make_unique<ControllerService>(ops);
}

}  // namespace offcore::csi
