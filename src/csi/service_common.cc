#include "csi/service_common.h"

#include <cerrno>
#include <charconv>

namespace offcore::csi {

grpc::Status toGrpc(const Error& e) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (e.code) {
    case ENOENT: code = grpc::StatusCode::NOT_FOUND; break;
    case EEXIST: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case EINVAL: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case ERANGE: code = grpc::StatusCode::OUT_OF_RANGE; break;
    case EBUSY: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case ENOSPC: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case EAGAIN: code = grpc::StatusCode::ABORTED; break;
    default: break;
  }
  return {code, e.message};
}

grpc::Status invalid(const std::string& why) { return {grpc::StatusCode::INVALID_ARGUMENT, why}; }

Result<Capability> fromProto(const v1::VolumeCapability& cap) {
  Capability c;
  switch (cap.access_type_case()) {
    case v1::VolumeCapability::kBlock: c.type = AccessType::kBlock; break;
    case v1::VolumeCapability::kMount:
      c.type = AccessType::kMount;
      c.fs_type = cap.mount().fs_type();
      c.mount_flags.assign(cap.mount().mount_flags().begin(), cap.mount().mount_flags().end());
      break;
    default: return makeError("volume capability without an access type (block or mount)", EINVAL);
  }
  if (!cap.has_access_mode() || cap.access_mode().mode() == v1::VolumeCapability::AccessMode::UNKNOWN) {
    return makeError("volume capability without an access mode", EINVAL);
  }
  int mode = cap.access_mode().mode();
  if (mode < 1 || mode > 7) return makeError("unknown access mode " + std::to_string(mode), EINVAL);
  c.mode = static_cast<AccessMode>(mode);
  return c;
}

void toProto(const Capability& cap, v1::VolumeCapability* out) {
  if (cap.type == AccessType::kBlock) {
    out->mutable_block();
  } else {
    auto* m = out->mutable_mount();
    m->set_fs_type(cap.fs_type);
    for (const auto& f : cap.mount_flags) m->add_mount_flags(f);
  }
  out->mutable_access_mode()->set_mode(static_cast<v1::VolumeCapability::AccessMode::Mode>(cap.mode));
}

std::optional<InFlight::Guard> InFlight::tryTake(const std::string& key) {
  std::lock_guard lock(mu_);
  if (!keys_.insert(key).second) return std::nullopt;
  return Guard(this, key);
}

void InFlight::release(const std::string& key) {
  std::lock_guard lock(mu_);
  keys_.erase(key);
}

grpc::Status InFlight::busy(const std::string& what) {
  return {grpc::StatusCode::ABORTED, "an operation on " + what + " is in progress; retry when it is done"};
}

Result<Page> pageOf(size_t total, int32_t max_entries, const std::string& token) {
  if (max_entries < 0) return makeError("max_entries is negative", EINVAL);
  Page p;
  if (!token.empty()) {
    size_t at = 0;
    auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), at);
    if (ec != std::errc() || ptr != token.data() + token.size() || at > total) {
      return makeError("starting_token '" + token + "' was not handed out by this plugin; list again from the start",
                       EAGAIN);
    }
    p.begin = at;
  }
  p.end = total;
  if (max_entries > 0 && total - p.begin > static_cast<size_t>(max_entries)) {
    p.end = p.begin + static_cast<size_t>(max_entries);
    p.next_token = std::to_string(p.end);
  }
  return p;
}

}  // namespace offcore::csi
