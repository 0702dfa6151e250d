// The client against a fake ADS server (C++ gRPC on 127.0.0.1): the first
// update arrives, every response is ACKed with its nonce, a bad one NACKed,
// and a restarted server is reconnected to.
#include "mesh/xds/xds_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "xds_test_util.h"

namespace offcore::mesh::xds {
namespace {

using namespace testing;
using envoy::service::discovery::v3::AggregatedDiscoveryService;
const std::string kV1 = "outbound|80|v1|web.default.svc.cluster.local";
const std::string kV2 = "outbound|80|v2|web.default.svc.cluster.local";

// Answers each type once per stream (the first request for it), with
// `version`; records every request.
class FakeAds final : public AggregatedDiscoveryService::Service {
 public:
  std::string version = "1";
  bool bad_clusters = false;

  grpc::Status StreamAggregatedResources(
      grpc::ServerContext* ctx, grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>* stream) override {
    std::set<std::string> answered;
    DiscoveryRequest req;
    int nonce = 0;
    while (stream->Read(&req)) {
      {
        std::lock_guard lock(mu);
        requests.push_back(req);
        cv.notify_all();
      }
      if (answered.count(req.type_url())) continue;
      answered.insert(req.type_url());
      std::string n = version + "-" + std::to_string(++nonce);
      DiscoveryResponse resp;
      if (req.type_url() == kListenerType)
        resp = response(kListenerType, version, n, httpListener("10.96.0.10", 80, "web:80"));
      if (req.type_url() == kRouteType) resp = response(kRouteType, version, n, webRoutes(90));
      if (req.type_url() == kClusterType) {
        auto c2 = edsCluster(kV2);
        if (bad_clusters) c2.set_type(envoy::config::cluster::v3::Cluster::STATIC);
        resp = response(kClusterType, version, n, edsCluster(kV1), c2);
      }
      if (req.type_url() == kEndpointType)
        resp = response(kEndpointType, version, n, assignment(kV1, {{"10.1.0.2", 8080}}),
                        assignment(kV2, {{"10.1.0.3", 8080}}));
      stream->Write(resp);
    }
    return grpc::Status::OK;
  }

  // Waits for a request matching `pred`.
  template <typename Pred>
  bool waitFor(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] {
      for (const auto& r : requests)
        if (pred(r)) return true;
      return false;
    });
  }

  std::mutex mu;
  std::condition_variable cv;
  std::vector<DiscoveryRequest> requests;
};

struct Running {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

Running serve(FakeAds& svc, int port = 0) {
  grpc::ServerBuilder b;
  Running r;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &r.port);
  b.RegisterService(&svc);
  r.server = b.BuildAndStart();
  return r;
}

struct Updates {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<XdsUpdate> got;
  bool waitCount(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; });
  }
};

TEST(XdsClient, UpdatesAcksAndReconnects) {
  FakeAds ads;
  auto srv = serve(ads);
  ASSERT_TRUE(srv.server);
  Updates updates;
  XdsClientOptions opts{"127.0.0.1:" + std::to_string(srv.port), "node-t", "", "td.example", Millis(50), Millis(200)};
  XdsClient client(opts, [&](XdsUpdate u) {
    std::lock_guard lock(updates.mu);
    updates.got.push_back(std::move(u));
    updates.cv.notify_all();
  });
  ASSERT_TRUE(client.start().ok());
  ASSERT_TRUE(updates.waitCount(1));
  {
    std::lock_guard lock(updates.mu);
    EXPECT_EQ(updates.got[0].snapshot.services.size(), 1u);
    EXPECT_EQ(updates.got[0].snapshot.trust_domain, "td.example");
    EXPECT_EQ(updates.got[0].snapshot.services[0].endpoints.size(), 2u);
  }
  // Every response was ACKed: version 1 with the nonce it came with.
  for (const char* t : {kListenerType, kRouteType, kClusterType, kEndpointType})
    EXPECT_TRUE(ads.waitFor([&](const DiscoveryRequest& r) {
      return r.type_url() == t && r.version_info() == "1" && r.response_nonce().rfind("1-", 0) == 0 &&
             !r.has_error_detail();
    })) << t;

  // The server goes away and comes back on the same port with a bad CDS.
  srv.server->Shutdown(std::chrono::system_clock::now());
  srv.server->Wait();
  FakeAds ads2;
  ads2.version = "2";
  ads2.bad_clusters = true;
  auto srv2 = serve(ads2, srv.port);
  ASSERT_TRUE(srv2.server);
  // It reconnects presenting the node and the versions it holds...
  EXPECT_TRUE(ads2.waitFor([](const DiscoveryRequest& r) {
    return r.type_url() == kListenerType && r.node().id() == "node-t" && r.version_info() == "1";
  }));
  // ...and NACKs the bad clusters, keeping version 1.
  EXPECT_TRUE(ads2.waitFor([](const DiscoveryRequest& r) {
    return r.type_url() == kClusterType && r.response_nonce().rfind("2-", 0) == 0 && r.version_info() == "1" &&
           r.error_detail().message().find("STATIC is not supported") != std::string::npos;
  }));
  // The NACK event follows the write the server saw.
  auto stats = client.stats();
  for (int i = 0; i < 500 && stats.nacks == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stats = client.stats();
  }
  EXPECT_GE(stats.connects, 2u);
  EXPECT_EQ(stats.nacks, 1u);
  EXPECT_NE(stats.last_nack.find("cds version 2"), std::string::npos) << stats.last_nack;
  client.stop();
  srv2.server->Shutdown(std::chrono::system_clock::now());
  std::lock_guard lock(updates.mu);
  EXPECT_EQ(updates.got.size(), 1u);  // nothing new: LDS/RDS/EDS 2 are the same, CDS 2 was refused
}

TEST(XdsClient, RefusesMissingOptions) {
  XdsClient client(XdsClientOptions{}, [](XdsUpdate) {});
  EXPECT_FALSE(client.start().ok());
}

}  // namespace
}  // namespace offcore::mesh::xds
