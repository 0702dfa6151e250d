// The xDS client: one ADS (v3, state of the world) gRPC stream to a control
// plane, on its own thread (docs/CONCURRENCY.md). It subscribes LDS and CDS
// (wildcard) then RDS / EDS for what they name, ACKs and NACKs as
// ads_state.h describes, reconnects with backoff when the stream ends, and
// hands every complete, consistent update to `on_update` — on the xDS
// thread, so the proxy posts it to its own loop:
//
//   XdsClient xds(opts, [&loop, &proxy](XdsUpdate u) {
//     loop.post([&proxy, u = std::move(u)]() mutable { proxy.apply(std::move(u.snapshot)); });
//   });
//   OC_TRY(xds.start());
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "mesh/xds/ads_state.h"

namespace grpc {
class ClientContext;
}

namespace offcore::mesh::xds {

struct XdsClientOptions {
  std::string server;  // host:port, plaintext gRPC
  std::string node_id;
  std::string node_cluster;  // Node.cluster
  std::string trust_domain = "cluster.local";
  Millis backoff_initial{200};
  Millis backoff_max{5000};
};

// What happened on the stream, for status output and logs.
struct XdsEvent {
  enum class Kind { kConnected, kDisconnected, kAck, kNack };
  Kind kind;
  std::string detail;  // type and version for ACK/NACK, the error for NACK / disconnect
};

struct XdsStats {
  bool connected = false;
  uint64_t connects = 0, acks = 0, nacks = 0, updates = 0;
  std::string last_nack, last_error;
};

class XdsClient {
 public:
  using UpdateCallback = std::function<void(XdsUpdate)>;
  using EventCallback = std::function<void(const XdsEvent&)>;

  // Both callbacks run on the xDS thread; on_event may be empty.
  XdsClient(XdsClientOptions options, UpdateCallback on_update, EventCallback on_event = {});
  ~XdsClient();  // stop()
  XdsClient(const XdsClient&) = delete;
  XdsClient& operator=(const XdsClient&) = delete;

  Status start();
  // Cancels the stream and joins the thread; no callback runs after it returns.
  void stop();
  XdsStats stats() const;

 private:
  void run();
  // One stream, until it ends; returns why.
  std::string runStream(AdsState& state);
  void event(XdsEvent::Kind kind, std::string detail);

  XdsClientOptions options_;
  UpdateCallback on_update_;
  EventCallback on_event_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;  // guards context_, stats_, and the backoff wait
  std::condition_variable cv_;
  grpc::ClientContext* context_ = nullptr;
  XdsStats stats_;
};

}  // namespace offcore::mesh::xds
