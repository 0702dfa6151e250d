#include <cerrno>

#include "csi.grpc.pb.h"
#include "csi/service.h"
#include "csi/service_common.h"

namespace offcore::csi {

namespace {

using grpc::ServerContext;
using grpc::Status;

// A malformed capability is INVALID_ARGUMENT; one the node cannot serve
// "exceeds capabilities": FAILED_PRECONDITION (the spec's node tables).
Result<Capability> checkedCap(const v1::VolumeCapability& c, NodeOps& ops) {
  OC_ASSIGN_OR_RETURN(Capability cap, fromProto(c));
  if (auto s = ops.checkCapability(cap); !s.ok()) return Error{EBUSY, s.error().message};
  return cap;
}

class NodeService final : public v1::Node::Service {
 public:
  explicit NodeService(NodeOps& ops) : ops_(ops) {}

  Status NodeStageVolume(ServerContext*, const v1::NodeStageVolumeRequest* req, v1::NodeStageVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->staging_target_path().empty()) return invalid("staging_target_path missing");
    if (!req->has_volume_capability()) return invalid("volume_capability missing");
    auto cap = checkedCap(req->volume_capability(), ops_);
    if (!cap.ok()) return toGrpc(cap.error());
    StageRequest r{req->volume_id(), req->staging_target_path(), *cap,
                   StringMap(req->publish_context().begin(), req->publish_context().end()),
                   StringMap(req->volume_context().begin(), req->volume_context().end())};
    auto g = inflight_.tryTake(req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.stage(r); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status NodeUnstageVolume(ServerContext*, const v1::NodeUnstageVolumeRequest* req,
                           v1::NodeUnstageVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->staging_target_path().empty()) return invalid("staging_target_path missing");
    auto g = inflight_.tryTake(req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.unstage(req->volume_id(), req->staging_target_path()); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status NodePublishVolume(ServerContext*, const v1::NodePublishVolumeRequest* req,
                           v1::NodePublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->target_path().empty()) return invalid("target_path missing");
    if (!req->has_volume_capability()) return invalid("volume_capability missing");
    auto cap = checkedCap(req->volume_capability(), ops_);
    if (!cap.ok()) return toGrpc(cap.error());
    // STAGE_UNSTAGE_VOLUME is advertised: publishing needs the stage.
    if (req->staging_target_path().empty()) {
      return {grpc::StatusCode::FAILED_PRECONDITION, "staging_target_path missing: NodeStageVolume first"};
    }
    PublishRequest r{req->volume_id(),
                     req->staging_target_path(),
                     req->target_path(),
                     *cap,
                     req->readonly(),
                     StringMap(req->publish_context().begin(), req->publish_context().end()),
                     StringMap(req->volume_context().begin(), req->volume_context().end())};
    auto g = inflight_.tryTake(req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.publish(r); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status NodeUnpublishVolume(ServerContext*, const v1::NodeUnpublishVolumeRequest* req,
                             v1::NodeUnpublishVolumeResponse*) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->target_path().empty()) return invalid("target_path missing");
    auto g = inflight_.tryTake(req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    if (auto s = ops_.unpublish(req->volume_id(), req->target_path()); !s.ok()) return toGrpc(s.error());
    return Status::OK;
  }

  Status NodeGetVolumeStats(ServerContext*, const v1::NodeGetVolumeStatsRequest* req,
                            v1::NodeGetVolumeStatsResponse* out) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->volume_path().empty()) return invalid("volume_path missing");
    // Read-only and quick: no in-flight key, so stats never ABORT a publish.
    auto st = ops_.stats(req->volume_id(), req->volume_path());
    if (!st.ok()) return toGrpc(st.error());
    auto* b = out->add_usage();
    b->set_unit(v1::VolumeUsage::BYTES);
    b->set_total(static_cast<int64_t>(st->total_bytes));
    if (!st->block) {
      b->set_used(static_cast<int64_t>(st->used_bytes));
      b->set_available(static_cast<int64_t>(st->available_bytes));
      auto* i = out->add_usage();
      i->set_unit(v1::VolumeUsage::INODES);
      i->set_total(static_cast<int64_t>(st->total_inodes));
      i->set_used(static_cast<int64_t>(st->used_inodes));
      i->set_available(static_cast<int64_t>(st->available_inodes));
    }
    out->mutable_volume_condition()->set_abnormal(st->abnormal);
    out->mutable_volume_condition()->set_message(st->condition);
    return Status::OK;
  }

  Status NodeExpandVolume(ServerContext*, const v1::NodeExpandVolumeRequest* req,
                          v1::NodeExpandVolumeResponse* out) override {
    if (req->volume_id().empty()) return invalid("volume_id missing");
    if (req->volume_path().empty()) return invalid("volume_path missing");
    int64_t want = req->has_capacity_range() ? req->capacity_range().required_bytes() : 0;
    if (want < 0) return invalid("capacity_range has a negative size");
    if (req->has_volume_capability()) {
      auto cap = checkedCap(req->volume_capability(), ops_);
      if (!cap.ok()) return toGrpc(cap.error());
    }
    auto g = inflight_.tryTake(req->volume_id());
    if (!g) return InFlight::busy("volume " + req->volume_id());
    auto grown = ops_.expand(req->volume_id(), req->volume_path(), static_cast<uint64_t>(want));
    if (!grown.ok()) return toGrpc(grown.error());
    out->set_capacity_bytes(static_cast<int64_t>(*grown));
    return Status::OK;
  }

  Status NodeGetCapabilities(ServerContext*, const v1::NodeGetCapabilitiesRequest*,
                             v1::NodeGetCapabilitiesResponse* out) override {
    using T = v1::NodeServiceCapability::RPC;
    for (auto t : {T::STAGE_UNSTAGE_VOLUME, T::GET_VOLUME_STATS, T::EXPAND_VOLUME, T::VOLUME_CONDITION,
                   T::SINGLE_NODE_MULTI_WRITER}) {
      out->add_capabilities()->mutable_rpc()->set_type(t);
    }
    return Status::OK;
  }

  Status NodeGetInfo(ServerContext*, const v1::NodeGetInfoRequest*, v1::NodeGetInfoResponse* out) override {
    NodeInfo info = ops_.info();
    out->set_node_id(info.node_id);
    out->set_max_volumes_per_node(info.max_volumes);
    if (!info.topology.empty()) {
      out->mutable_accessible_topology()->mutable_segments()->insert(info.topology.begin(), info.topology.end());
    }
    return Status::OK;
  }

 private:
  NodeOps& ops_;
  InFlight inflight_;
};

}  // namespace

std::unique_ptr<grpc::Service> makeNodeService(NodeOps& ops) { return std::make_unique<NodeService>(ops); }

}  // namespace offcore::csi
