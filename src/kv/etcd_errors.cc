#include "kv/etcd_errors.h"

#include <cerrno>

namespace offcore::kv {

int errnoOfEtcdCode(int grpc_code) {
  switch (grpc_code) {
    case 3: return EINVAL;   // INVALID_ARGUMENT (e.g. too many operations in a txn)
    case 5: return ENOENT;   // NOT_FOUND (a lease)
    case 7: return EACCES;   // PERMISSION_DENIED (etcd auth: the user's roles)
    case 8: return ENOSPC;   // RESOURCE_EXHAUSTED (database space exceeded)
    case 11: return ERANGE;  // OUT_OF_RANGE (revision compacted)
    case 16: return EPERM;   // UNAUTHENTICATED (no token, or it expired)
    default: return EIO;
  }
}

bool etcdMemberUnavailable(int grpc_code) { return grpc_code == 14 || grpc_code == 4; }

bool etcdStaleToken(const Error& e) {
  return e.code == EPERM || (e.code == EINVAL && e.message.find("auth store is old") != std::string::npos);
}

Error etcdDenied(const Error& e, const std::string& user) {
  return makeError(e.message + " (user '" + user + "': its etcd roles do not cover this key; docs/ETCD.md, Security)",
                   EACCES);
}

}  // namespace offcore::kv
