// The KvClient of a real etcd v3 cluster over etcd's own gRPC API
// (etcdserverpb.KV, Watch, Lease, Auth; kv/proto/etcd_kv.proto), with
// Debian's libgrpc++. offcore's default wire: it measured faster than the
// HTTP/JSON gateway (docs/ETCD.md, "Gateway or gRPC").
//
// Members: one channel per member, connected on first use. A call goes to
// the member that answered last and moves on when one is down, times out or
// has no leader (etcd says UNAVAILABLE); a connection attempt is bounded by
// connect_timeout_ms and a member that was down is tried again within a
// second of its return. A write that must not apply twice is a transaction
// guarded by compares, so a retried one that had already applied fails its
// compare (a retried lease grant may leave an orphan lease; it expires).
//
// Authentication: the token etcd's Authenticate hands out goes with every
// call as the "token" metadata, and is asked for again when etcd says it
// expired or the auth store moved on. Client TLS: CA, certificate and key
// from the options (files read once, at construction).
//
// Watches ask for a member with a leader ("hasleader"): a member cut off
// from its cluster ends the stream and the watch resumes on another one.
//
// Threads: every method may be called from any thread (gRPC stubs are);
// a watch runs on its own thread.
#pragma once

#include <memory>

#include "kv/etcd_client.h"

namespace offcore::kv {

std::unique_ptr<KvClient> makeEtcdGrpcClient(EtcdOptions options);

}  // namespace offcore::kv
