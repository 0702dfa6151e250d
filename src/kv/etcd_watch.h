// A watch on a real etcd: one thread streaming /v3/watch from one member,
// moving to the next member (from the revision after the last event it
// delivered) when the stream breaks. Stopped by destroying the handle.
#pragma once

#include <memory>
#include <string>

#include "kv/etcd_transport.h"
#include "kv/kv.h"

namespace offcore::kv {

Result<std::unique_ptr<Watch>> startEtcdWatch(std::shared_ptr<EtcdTransport> transport, const std::string& key,
                                              const std::string& range_end, int64_t start_revision, WatchCallback fn);

}  // namespace offcore::kv
