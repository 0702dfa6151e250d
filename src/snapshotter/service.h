// The containerd.services.snapshots.v1.Snapshots gRPC service over a
// Snapshotter. Every request is logged (mutations at info, reads at debug)
// so the calls containerd makes can be read back from the log.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>

#include "base/result.h"

namespace offcore {

class Snapshotter;

std::unique_ptr<grpc::Service> makeSnapshotsService(Snapshotter& snapshotter);

// NotFound, AlreadyExists, FailedPrecondition, InvalidArgument from
// snapshotter/errors.h keep their codes; anything else is INTERNAL.
grpc::Status toGrpcStatus(const Error& error);

}  // namespace offcore
