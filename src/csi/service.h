// The CSI gRPC services (csi/README.md): Identity, Controller and Node, each
// checking a request against the spec (required fields, capacity ranges,
// access modes, paging tokens) before calling its ops, refusing a second
// call for a volume already being worked on with ABORTED, and mapping the
// ops' errors to the spec's codes (csi/ops.h).
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <functional>
#include <memory>
#include <string>

#include "csi/ops.h"

namespace offcore::csi {

inline constexpr const char* kDriverName = "csi.offcore.io";

struct IdentityInfo {
  std::string name = kDriverName;
  std::string version;
  bool controller = false;        // advertise CONTROLLER_SERVICE
  std::function<Status()> probe;  // ready when it returns OK; unset: always ready
};

std::unique_ptr<grpc::Service> makeIdentityService(IdentityInfo info);
std::unique_ptr<grpc::Service> makeControllerService(ControllerOps& ops);
std::unique_ptr<grpc::Service> makeNodeService(NodeOps& ops);

// Volume sizes the controller hands out: a request is rounded up to
// kSizeAlignment; no request means kDefaultSize (within the limit).
inline constexpr uint64_t kSizeAlignment = 1ULL << 20;
inline constexpr uint64_t kDefaultSize = 1ULL << 30;
inline constexpr uint64_t kMaxSize = 64ULL << 40;

}  // namespace offcore::csi
