// The ADS stream and its thread (see xds_client.h).
#include "mesh/xds/xds_client.h"

#include <grpcpp/grpcpp.h>

#include "envoy/service/discovery/v3/ads.grpc.pb.h"

namespace offcore::mesh::xds {

using envoy::service::discovery::v3::AggregatedDiscoveryService;

XdsClient::XdsClient(XdsClientOptions options, UpdateCallback on_update, EventCallback on_event)
    : options_(std::move(options)), on_update_(std::move(on_update)), on_event_(std::move(on_event)) {}

XdsClient::~XdsClient() { stop(); }

Status XdsClient::start() {
  if (options_.server.empty()) return makeError("xds: no server address; pass HOST:PORT");
  if (options_.node_id.empty()) return makeError("xds: no node id; pass the node id the control plane knows");
  if (thread_.joinable()) return makeError("xds: client already started");
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
  return okStatus();
}

void XdsClient::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (context_) context_->TryCancel();
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

XdsStats XdsClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void XdsClient::event(XdsEvent::Kind kind, std::string detail) {
  {
    std::lock_guard lock(mu_);
    switch (kind) {
      case XdsEvent::Kind::kConnected:
        stats_.connected = true;
        stats_.connects++;
        break;
      case XdsEvent::Kind::kDisconnected:
        stats_.connected = false;
        stats_.last_error = detail;
        break;
      case XdsEvent::Kind::kAck: stats_.acks++; break;
      case XdsEvent::Kind::kNack:
        stats_.nacks++;
        stats_.last_nack = detail;
        break;
    }
  }
  if (on_event_) on_event_(XdsEvent{kind, std::move(detail)});
}

void XdsClient::run() {
  envoy::config::core::v3::Node node;
  node.set_id(options_.node_id);
  node.set_cluster(options_.node_cluster);
  node.set_user_agent_name("offcore");
  node.set_user_agent_version("0.1.0");
  // The bookkeeping outlives streams: versions and names carry over a
  // reconnect, and the last good snapshot stays with the proxy meanwhile.
  AdsState state(node);
  Millis backoff = options_.backoff_initial;
  while (!stopping_) {
    auto t0 = std::chrono::steady_clock::now();
    std::string why = runStream(state);
    if (stopping_) break;
    event(XdsEvent::Kind::kDisconnected, why);
    // A stream that lived a while was healthy: start the backoff over.
    if (std::chrono::steady_clock::now() - t0 > options_.backoff_max) backoff = options_.backoff_initial;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, options_.backoff_max);
  }
}

std::string XdsClient::runStream(AdsState& state) {
  auto channel = grpc::CreateChannel(options_.server, grpc::InsecureChannelCredentials());
  auto stub = AggregatedDiscoveryService::NewStub(channel);
  grpc::ClientContext ctx;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return "stopping";
    context_ = &ctx;
  }
  struct Clear {
    XdsClient* c;
    ~Clear() {
      std::lock_guard lock(c->mu_);
      c->context_ = nullptr;
    }
  } clear{this};
  auto stream = stub->StreamAggregatedResources(&ctx);
  for (auto& req : state.onConnect())
    if (!stream->Write(req)) break;
  bool announced = false;
  DiscoveryResponse resp;
  while (stream->Read(&resp)) {
    if (!announced) {
      announced = true;
      event(XdsEvent::Kind::kConnected, options_.server);
    }
    auto out = state.onResponse(resp);
    std::string what = (shortType(resp.type_url()).empty() ? resp.type_url() : shortType(resp.type_url())) +
                       " version " + resp.version_info();
    // The update, then the ACK / NACK on the wire, then its event: whoever
    // waits for a version sees the snapshot it produced first.
    if (out.update) {
      {
        std::lock_guard lock(mu_);
        stats_.updates++;
      }
      out.update->snapshot.trust_domain = options_.trust_domain;
      on_update_(std::move(*out.update));
    }
    bool written = true;
    for (auto& req : out.requests)
      if (!(written = stream->Write(req))) break;
    if (out.nack.empty())
      event(XdsEvent::Kind::kAck, what);
    else
      event(XdsEvent::Kind::kNack, what + ": " + out.nack);
    if (!written) break;
  }
  stream->WritesDone();
  auto status = stream->Finish();
  return "xds stream to " + options_.server +
         " ended: " + (status.ok() ? std::string("server closed it") : status.error_message()) + "; reconnecting";
}

}  // namespace offcore::mesh::xds
