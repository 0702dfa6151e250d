// A watch over etcd's gRPC Watch service: one thread reading one stream from
// one member, moving to the next member (from the revision after the last
// event it delivered) when the stream breaks. Stopped by destroying it.
#pragma once

#include <memory>
#include <string>

#include "kv/etcd_grpc_members.h"
#include "kv/kv.h"

namespace offcore::kv {

Result<std::unique_ptr<Watch>> startEtcdGrpcWatch(std::shared_ptr<GrpcMembers> members, const std::string& key,
                                                  const std::string& range_end, int64_t start_revision,
                                                  WatchCallback fn);

}  // namespace offcore::kv
