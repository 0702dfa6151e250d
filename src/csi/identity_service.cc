#include "csi.grpc.pb.h"
#include "csi/service.h"
#include "csi/service_common.h"

namespace offcore::csi {

namespace {

class IdentityService final : public v1::Identity::Service {
 public:
  explicit IdentityService(IdentityInfo info) : info_(std::move(info)) {}

  grpc::Status GetPluginInfo(grpc::ServerContext*, const v1::GetPluginInfoRequest*,
                             v1::GetPluginInfoResponse* out) override {
    out->set_name(info_.name);
    out->set_vendor_version(info_.version);
    return grpc::Status::OK;
  }

  grpc::Status GetPluginCapabilities(grpc::ServerContext*, const v1::GetPluginCapabilitiesRequest*,
                                     v1::GetPluginCapabilitiesResponse* out) override {
    if (info_.controller) {
      out->add_capabilities()->mutable_service()->set_type(v1::PluginCapability::Service::CONTROLLER_SERVICE);
    }
    // A volume grows only while no node uses it (volume/README.md: resize
    // of a replicated volume wants every replica detached).
    out->add_capabilities()->mutable_volume_expansion()->set_type(v1::PluginCapability::VolumeExpansion::OFFLINE);
    return grpc::Status::OK;
  }

  grpc::Status Probe(grpc::ServerContext*, const v1::ProbeRequest*, v1::ProbeResponse* out) override {
    // Not ready is an answer, not an error (the CO keeps probing).
    out->mutable_ready()->set_value(!info_.probe || info_.probe().ok());
    return grpc::Status::OK;
  }

 private:
  IdentityInfo info_;
};

}  // namespace

std::unique_ptr<grpc::Service> makeIdentityService(IdentityInfo info) {
  return std::make_unique<IdentityService>(std::move(info));
}

}  // namespace offcore::csi
