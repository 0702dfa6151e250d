// How etcd's answers become offcore errors, the same for both wires (the
// gateway carries etcd's gRPC status code in its JSON body; gRPC in the
// status): which codes mean "try another member", which mean "ask for a new
// token", and the errno each definite error carries.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore::kv {

// errno for a definite error from a member, by its gRPC status code:
// INVALID_ARGUMENT EINVAL, NOT_FOUND ENOENT (a lease), PERMISSION_DENIED
// EACCES, RESOURCE_EXHAUSTED ENOSPC (database space), OUT_OF_RANGE ERANGE
// (revision compacted), UNAUTHENTICATED EPERM; anything else EIO.
int errnoOfEtcdCode(int grpc_code);

// The member cannot serve now (down, no leader, timed out): try another.
bool etcdMemberUnavailable(int grpc_code);

// The token was refused: it expired, the member restarted, or the roles
// changed since it was issued ("auth store is old"). Ask for a new one.
bool etcdStaleToken(const Error& e);

// A PERMISSION_DENIED, made to say whose roles refused it and where to look.
Error etcdDenied(const Error& e, const std::string& user);

}  // namespace offcore::kv
