// Where the cluster's network state lives: the part of ClusterStore that
// differs between one machine and many. Two Impls:
//
//  - a directory (file_state_storage.cc, the embedded default): state.json
//    under a flock, health/<node>.json, heartbeat/<node>, inotify;
//  - etcd v3 (etcd_state_storage.cc): one key per object under /offcore/v1/,
//    every change a transaction guarded by the generation key's revision,
//    node liveness by leases, watches from a revision.
//
// ClusterStore (cluster_store.h) holds the rules (validation, IPAM) and
// expresses every change as modify(); a StateStorage only makes modify()
// atomic against every other writer and stores what it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/config.h"
#include "base/event_loop.h"
#include "base/result.h"
#include "kv/etcd_client.h"
#include "svc/cluster_state.h"

namespace offcore::svc {

// Stops the notifications when destroyed (on the loop's thread).
class StoreWatch {
 public:
  virtual ~StoreWatch() = default;
};

// A StoreWatch that is another handle kept alive (a DirWatch, a kv::Watch).
template <typename T>
class HeldWatch final : public StoreWatch {
 public:
  explicit HeldWatch(std::unique_ptr<T> held) : held_(std::move(held)) {}

 private:
  std::unique_ptr<T> held_;
};

// What one watch notification covers. full: anything may have changed
// (the first notification, a re-list after a compaction, the directory
// store, which cannot tell): load() again. Otherwise exactly these objects
// of the state changed ("<section>/<name>", put or deleted), plus the
// records the flags name.
struct StateDelta {
  bool full = true;
  std::set<std::string> objects;
  bool health = false;      // some node's probe results
  bool live = false;        // the set of live nodes (a lease granted or gone)
  bool owners = false;      // an EIP claim
  uint64_t generation = 0;  // the state's generation after these changes (0: unknown)

  static StateDelta none() {
    StateDelta d;
    d.full = false;
    return d;
  }
  static StateDelta of(std::string object) {
    StateDelta d = none();
    d.objects.insert(std::move(object));
    return d;
  }
  // Everything in o as well (o after this).
  void merge(const StateDelta& o);
  bool empty() const { return !full && objects.empty() && !health && !live && !owners; }
};

class StateStorage {
 public:
  virtual ~StateStorage() = default;

  // A store with nothing in it is the empty state (the default VPC).
  virtual Result<ClusterState> load() const = 0;
  // Runs fn on the current state and writes the result (generation + 1)
  // only when fn changed it, atomically: a write that raced another is
  // retried on the new state, so no update is lost. *generation: the
  // state's after the call. fn may run more than once.
  using Change = std::function<Status(ClusterState&)>;
  Status modify(const Change& fn, uint64_t* generation) { return modify(fn, generation, kAllSections); }
  // The same, for a change that reads and writes only these sections (a
  // mask of StateSection): the others are empty in the state fn sees and
  // stay as they are; a store may read only these (etcd does).
  virtual Status modify(const Change& fn, uint64_t* generation, unsigned sections) = 0;

  // Node liveness: an agent beats every heartbeat_interval_ms; a node is
  // live while its last beat is younger than node_expiry_ms (liveness.h).
  // loadHeartbeats: by node, the wall-clock ms of the last beat known.
  virtual Status heartbeat(const std::string& node, uint64_t now_ms) = 0;
  virtual std::map<std::string, uint64_t> loadHeartbeats() const = 0;
  // Probe results and the generation its dataplane runs, one record per
  // node, written only by that node's agent (after every programmed
  // change). loadHealth: what agents program from, the probe results (its
  // programmed_generation and updated_ms may be older than the node's last
  // write); loadProgrammed: by node, the generation each last reported.
  virtual Status writeHealth(const NodeHealth& health) = 0;
  virtual Result<std::map<std::string, NodeHealth>> loadHealth() const = 0;
  virtual Result<std::map<std::string, uint64_t>> loadProgrammed() const;
  // A node left: its health and liveness records go.
  virtual Status forgetNode(const std::string& node) = 0;

  // Exclusive ownership of `key` (an EIP), decided by the store: with want,
  // node takes it unless another holds it; without, node lets go of it if it
  // holds it. Returns the holder afterwards ("" = nobody). On etcd the claim
  // lives as long as node's lease (heartbeat() first): a node that dies
  // loses it within the lease TTL and the next claimant gets it. The
  // directory store has no election and answers node when want, else "";
  // rendezvous over the live nodes (liveness.h) is all it has.
  virtual Result<std::string> claim(const std::string& key, const std::string& node, bool want) = 0;
  // Holders of every claim, by key.
  virtual Result<std::map<std::string, std::string>> claims() const = 0;

  // Calls changed(delta) on loop's thread after the state, a node's health
  // or liveness changed (several changes may come as one call, their deltas
  // merged). The first call may come before any change, with full set.
  using Changed = std::function<void(const StateDelta&)>;
  virtual Result<std::unique_ptr<StoreWatch>> watch(EventLoop& loop, Changed changed) = 0;
  // Brings state (an earlier load()) up to date with delta, at the cost of
  // the objects it names: the store's watch keeps them (etcd's cache). When
  // it cannot (delta.full, no watch, its cache invalid), loads everything
  // and answers true: then anything in state may differ.
  virtual Result<bool> refresh(ClusterState& state, const StateDelta& delta) const;

  // For messages: the directory or etcd://members.
  virtual std::string describe() const = 0;
};

std::shared_ptr<StateStorage> makeDirStorage(std::string dir);
// Node leases last lease_ttl_s (a node whose agent stops beating is gone
// from the live set within it). The client may be shared with other users
// of the same etcd (the mesh config).
std::shared_ptr<StateStorage> makeEtcdStorage(std::shared_ptr<kv::KvClient> kv, int64_t lease_ttl_s);
// The node lease's TTL the config asks for: node_expiry_ms in whole
// seconds, at least 2 (a lease outlives a few missed beats, as a heartbeat
// file does).
int64_t leaseTtlSeconds(const Config& config);

// What the config names: cluster_store (etcd://..., with the etcd_* TLS
// files) or else cluster_dir. `location` overrides both when not empty (a
// directory or an etcd:// address, as --cluster takes it).
Result<std::shared_ptr<StateStorage>> openStateStorage(const Config& config, const std::string& location = "");
// For a long-lived owner that reports errors per call (the agent): a store
// that cannot be opened answers every call with the reason.
std::shared_ptr<StateStorage> openStateStorageOrUnusable(const Config& config);

}  // namespace offcore::svc
