// The etcd client options offcore's config gives for an etcd:// address:
// the wire, client TLS files, and the etcd user with its password. Shared
// by everything that keeps state in the cluster's etcd (the svc state, the
// mesh config, the image catalog).
#pragma once

#include <string>

#include "base/config.h"
#include "base/result.h"
#include "kv/etcd_client.h"

namespace offcore::kv {

// url is "etcd://host:port[,...]". The password file is refused unless only
// its owner can read it (0600), as ssh does with keys.
Result<EtcdOptions> etcdOptionsFor(const Config& config, const std::string& url);

}  // namespace offcore::kv
