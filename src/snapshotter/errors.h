// Error kinds the Snapshots service reports with their own gRPC codes, so
// containerd can map them to errdefs (NotFound, AlreadyExists, ...). They
// live in Error::code as negative numbers, apart from errno values: an
// ENOENT from a syscall is an internal failure, not "snapshot not found".
#pragma once

#include <string>

#include "base/result.h"

namespace offcore::snap {

inline constexpr int kNotFound = -1001;
inline constexpr int kAlreadyExists = -1002;
inline constexpr int kFailedPrecondition = -1003;
inline constexpr int kInvalidArgument = -1004;

inline Error notFound(std::string m) { return makeError(std::move(m), kNotFound); }
inline Error alreadyExists(std::string m) { return makeError(std::move(m), kAlreadyExists); }
inline Error failedPrecondition(std::string m) { return makeError(std::move(m), kFailedPrecondition); }
inline Error invalidArgument(std::string m) { return makeError(std::move(m), kInvalidArgument); }

}  // namespace offcore::snap
