// The records of the CSI catalog and of VMs for a CLI context: in the
// cluster store (etcd) when the config names one, else in the cluster
// directory (volumes/record_store.h). One store per kind per process: the
// CSI controller calls from its gRPC threads.
#pragma once

#include <memory>

#include "base/result.h"
#include "cli/common.h"
#include "volumes/record_store.h"

namespace offcore {

Result<std::shared_ptr<volumes::RecordStore>> clusterRecords(const CliContext& ctx, const volumes::RecordKind& kind);

}  // namespace offcore
