// What the three CSI services share: the error mapping, capability
// translation and the per-volume in-flight set. Private to csi/.
#pragma once

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "csi.pb.h"
#include "csi/ops.h"

namespace offcore::csi {

namespace v1 = ::csi::v1;  // the generated messages

// The gRPC status for an ops error (the table in ops.h).
grpc::Status toGrpc(const Error& e);
grpc::Status invalid(const std::string& why);

// INVALID_ARGUMENT (EINVAL) when the capability has no access type or mode.
Result<Capability> fromProto(const v1::VolumeCapability& cap);
void toProto(const Capability& cap, v1::VolumeCapability* out);

// Keys ("volume/ID", "name/NAME", ...) with a call in progress: a second
// call on the same key is refused with ABORTED (the spec's "operation
// pending"), so an ops implementation never sees two at once.
class InFlight {
 public:
  class Guard {
   public:
    Guard(InFlight* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    Guard(Guard&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (owner_) owner_->release(key_);
    }

   private:
    InFlight* owner_;
    std::string key_;
  };
  // nullopt: the key is busy.
  std::optional<Guard> tryTake(const std::string& key);
  static grpc::Status busy(const std::string& what);

 private:
  void release(const std::string& key);
  std::mutex mu_;
  std::set<std::string> keys_;
};

// Paging over a stable list: the token is the index of the next entry.
// ABORTED for a token that is not one we handed out (not a number, past the end).
struct Page {
  size_t begin = 0, end = 0;
  std::string next_token;
};
Result<Page> pageOf(size_t total, int32_t max_entries, const std::string& token);

}  // namespace offcore::csi
