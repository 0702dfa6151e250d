// The ADS (state of the world) bookkeeping, apart from the stream so it can
// be unit-tested: which names each type is subscribed to, what version and
// nonce to ACK, when to NACK, and when the resources form a complete,
// consistent Snapshot. One AdsState lives on the xDS client's thread.
//
// Protocol, as offcore speaks it:
//  - on (re)connect: LDS and CDS wildcard (no names), then RDS / EDS for the
//    names the listeners / clusters refer to, each with the last accepted
//    version so the server can skip unchanged state;
//  - a response is decoded and translated as a whole; any failure NACKs it
//    (the previous version_info, this nonce, error_detail) and keeps the
//    previous resources of that type; otherwise it is ACKed (its
//    version_info and nonce) and replaces that type's resources;
//  - when the RDS / EDS names change, a new request for that type goes out
//    (last accepted version, last nonce, the new names);
//  - a Snapshot is produced when every referenced resource is present and
//    the whole translates, and only when it differs from the last one.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "envoy/service/discovery/v3/discovery.pb.h"
#include "mesh/xds/translate.h"

namespace offcore::mesh::xds {

using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// What the client hands the proxy.
struct XdsUpdate {
  Snapshot snapshot;                            // snapshot.version counts updates: 1, 2, ...
  std::map<std::string, std::string> versions;  // "lds", "rds", "cds", "eds" -> accepted version_info
};

struct AdsOutcome {
  std::vector<DiscoveryRequest> requests;  // to send, in order (ACK/NACK first)
  std::optional<XdsUpdate> update;         // a new complete snapshot
  std::string nack;                        // the error_detail sent, when NACKed
};

class AdsState {
 public:
  explicit AdsState(envoy::config::core::v3::Node node) : node_(std::move(node)) {}

  // The requests that open a stream (first one carries the node).
  std::vector<DiscoveryRequest> onConnect();
  AdsOutcome onResponse(const DiscoveryResponse& response);

  const Resources& resources() const { return resources_; }
  std::string acceptedVersion(const std::string& type_url) const;
  std::string incompleteReason() const { return incomplete_; }
  uint64_t acks() const { return acks_; }
  uint64_t nacks() const { return nacks_; }

 private:
  struct TypeState {
    std::string version;             // last accepted
    std::string nonce;               // last received
    std::vector<std::string> names;  // empty = wildcard (LDS, CDS)
    bool received = false;
  };
  DiscoveryRequest request(const std::string& type_url, bool with_node);
  Status apply(const DiscoveryResponse& response, Resources& next);
  void resubscribe(const std::string& type_url, const std::vector<std::string>& names, AdsOutcome& out);

  envoy::config::core::v3::Node node_;
  std::map<std::string, TypeState> types_;
  Resources resources_;
  std::optional<Snapshot> last_;
  uint64_t version_ = 0;
  uint64_t acks_ = 0, nacks_ = 0;
  std::string incomplete_ = "no response yet";
  bool node_sent_ = false;
};

// "lds" for the listener type URL, etc.; "" for an unknown type.
std::string shortType(const std::string& type_url);

}  // namespace offcore::mesh::xds
