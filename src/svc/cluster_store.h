// The cluster's network state, shared by every agent and the CLI: the rules
// (validation, VNI and ClusterIP assignment, IPAM) over a StateStorage that
// holds it (state_storage.h): a directory on one machine, etcd across many.
// Every change is one StateStorage::modify(), atomic against every writer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "svc/cluster_state.h"
#include "svc/state_storage.h"

namespace offcore::svc {

class ClusterStore {
 public:
  // The directory store (tests, and tools that only ever use one).
  explicit ClusterStore(std::string dir, AddressPlan plan = AddressPlan());
  ClusterStore(std::shared_ptr<StateStorage> storage, AddressPlan plan);
  // The store and address plan the config names (cluster_store or
  // cluster_dir); location overrides the config's (--cluster).
  static Result<ClusterStore> open(const Config& config, const std::string& location = "");

  // An empty store is the empty state (with the default VPC).
  Result<ClusterState> load() const;
  // All-or-nothing: validate every document, then one atomic write.
  Result<ApplyResult> apply(const std::vector<Resource>& docs);
  // kind is canonical ("Service"); refused while something refers to it.
  // A missing resource is an error with code ENOENT.
  Status remove(const std::string& kind, const std::string& name);

  // IPAM: the lowest free host address of the subnet (never the network,
  // broadcast or gateway address, nor a Backend's fixed ip). Idempotent per id.
  Result<Endpoint> addEndpoint(const EndpointRequest& req);
  Status setEndpointDetails(const std::string& id, const std::string& mac, const std::string& representor);
  Status removeEndpoint(const std::string& id);  // ok when absent
  // A migrated VM's NIC: the endpoint id (on another node) becomes the same
  // NIC on node, keeping its address and MAC; the representor is cleared
  // for the new node to fill in. Returns the moved endpoint.
  Result<Endpoint> moveEndpoint(const std::string& id, const std::string& node);
  Status registerNode(const NodeRecord& node);
  // A node leaves (`dpu down`): its record, its endpoints (its pods went
  // with it), its health and heartbeat files. Ok when it was not there.
  Status unregisterNode(const std::string& name);

  // Liveness and probe health: StateStorage's.
  Status heartbeat(const std::string& node, uint64_t now_ms) { return storage_->heartbeat(node, now_ms); }
  std::map<std::string, uint64_t> loadHeartbeats() const { return storage_->loadHeartbeats(); }
  Status writeHealth(const NodeHealth& health) { return storage_->writeHealth(health); }
  Result<std::map<std::string, NodeHealth>> loadHealth() const { return storage_->loadHealth(); }
  Result<std::map<std::string, uint64_t>> loadProgrammed() const { return storage_->loadProgrammed(); }
  Result<std::string> claim(const std::string& key, const std::string& node, bool want) {
    return storage_->claim(key, node, want);
  }
  Result<std::map<std::string, std::string>> claims() const { return storage_->claims(); }
  Result<std::unique_ptr<StoreWatch>> watch(EventLoop& loop, StateStorage::Changed changed) {
    return storage_->watch(loop, std::move(changed));
  }
  Result<bool> refresh(ClusterState& state, const StateDelta& delta) const { return storage_->refresh(state, delta); }

  StateStorage& storage() { return *storage_; }
  std::string describe() const { return storage_->describe(); }

 private:
  std::shared_ptr<StateStorage> storage_;
  AddressPlan plan_;
};

}  // namespace offcore::svc
