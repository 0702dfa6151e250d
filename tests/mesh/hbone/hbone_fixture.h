// A loopback HBONE setup for tests: one CA, a server node and a client
// node with their own CertManagers, an echo handler, and helpers that run
// the loop until something happened.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/files.h"
#include "mesh/hbone/connector.h"
#include "mesh/hbone/server.h"
#include "mesh/hbone/stream.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/cert_manager.h"

namespace offcore::mesh::hbone {

using namespace std::chrono_literals;

inline const std::string kServerId = "spiffe://cluster.local/ns/shop/sa/server";
inline const std::string kClientId = "spiffe://cluster.local/ns/shop/sa/client";

// Echoes every byte back, with backpressure; ends when the peer ends.
class Echo : public Transport::Callbacks {
 public:
  explicit Echo(std::unique_ptr<Transport> t) : t_(std::move(t)) { t_->setCallbacks(this); }
  void onData(std::string_view bytes) override {
    t_->write(bytes);
    if (t_->pendingWrite() > (4u << 20)) t_->pauseReading(true);
  }
  void onEnd() override { t_->endWrite(); }
  void onClosed(const Status&) override { closed = true; }
  void onDrained() override { t_->pauseReading(false); }
  std::unique_ptr<Transport> t_;
  bool closed = false;
};

// Collects what a client stream receives.
class Sink : public Transport::Callbacks {
 public:
  void onData(std::string_view bytes) override {
    if (keep) data.append(bytes);
    if (check) check(bytes);
    received += bytes.size();
  }
  void onEnd() override { ended = true; }
  void onClosed(const Status& why) override {
    closed = true;
    close_status = why;
  }
  void onDrained() override {
    if (drained) drained();
  }
  bool keep = true;
  std::string data;
  size_t received = 0;
  bool ended = false, closed = false;
  Status close_status;
  std::function<void(std::string_view)> check;
  std::function<void()> drained;
};

// Always hands out one fixed certificate (tests of foreign/expired certs).
class FixedSource : public tls::TlsContextSource {
 public:
  Status init(const std::string& ca_pem, const tls::IssuedCert& cert) {
    OC_ASSIGN_OR_RETURN(ctx_, tls::TlsContext::create(ca_pem, "cluster.local", cert));
    OC_ASSIGN_OR_RETURN(acceptor_, tls::TlsContext::createAcceptor(ca_pem, "cluster.local", this));
    return okStatus();
  }
  Result<std::shared_ptr<tls::TlsContext>> contextFor(const std::string&) override { return ctx_; }
  std::shared_ptr<tls::TlsContext> acceptContext() override { return acceptor_; }

 private:
  std::shared_ptr<tls::TlsContext> ctx_, acceptor_;
};

class HboneTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/offcore-hbone-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(loop_.init().ok());
    auto ca = tls::Ca::loadOrCreate(dir_ + "/ca", "cluster.local");
    ASSERT_TRUE(ca.ok()) << ca.error().message;
    ca_ = std::move(*ca);
  }
  void TearDown() override {
    connector_.reset();
    server_.reset();
    echoes_.clear();
    (void)removeTree(dir_);
  }

  // Server and client certificate managers (ttl configurable for rotation).
  void makeCerts(tls::Seconds ttl = tls::Ca::kDefaultTtl) {
    server_certs_ = std::make_unique<tls::CertManager>(loop_, *ca_, tls::CertManager::Options{ttl});
    client_certs_ = std::make_unique<tls::CertManager>(loop_, *ca_, tls::CertManager::Options{ttl});
    ASSERT_TRUE(server_certs_->init().ok());
    ASSERT_TRUE(client_certs_->init().ok());
    ASSERT_TRUE(server_certs_->add(kServerId).ok());
    ASSERT_TRUE(client_certs_->add(kClientId).ok());
  }

  void startServer(tls::TlsContextSource& source, HboneServer::Options options = {}) {
    options.ip = "127.0.0.1";
    options.port = 0;
    server_ = std::make_unique<HboneServer>(loop_, source, options, [this](TunnelRequest req, auto stream) {
      requests_.push_back(req);
      if (req.target_port == 9) return Status(makeError("denied by policy", EACCES));
      echoes_.push_back(std::make_unique<Echo>(std::move(stream)));
      return okStatus();
    });
    ASSERT_TRUE(server_->start().ok());
  }

  std::unique_ptr<HboneConnector> makeConnector(tls::TlsContextSource& source) {
    return std::make_unique<HboneConnector>(loop_, source, HboneConnector::Options{server_->port(), "127.0.0.1", {}});
  }

  ConnectTarget target(uint16_t port = 8080, const std::string& peer = kServerId) {
    ConnectTarget t;
    t.ip = "10.9.0.5";
    t.port = port;
    t.source_ip = "10.9.0.7";
    t.node_ip = "127.0.0.1";
    t.peer_identity = peer;
    t.source_identity = kClientId;
    return t;
  }

  // Runs the loop until pred() or the deadline; returns pred().
  bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::function<void()> tick = [&] {
      if (pred() || std::chrono::steady_clock::now() > deadline) {
        loop_.stop();
        return;
      }
      loop_.addTimer(2ms, tick);
    };
    loop_.addTimer(0ms, tick);
    EXPECT_TRUE(loop_.run().ok());
    return pred();
  }

  // One connect, run to its answer.
  Result<std::unique_ptr<Transport>> connectNow(Connector& c, const ConnectTarget& t) {
    std::optional<Result<std::unique_ptr<Transport>>> out;
    c.connect(t, 5000ms, [&](Result<std::unique_ptr<Transport>> r) { out.emplace(std::move(r)); });
    runUntil([&] { return out.has_value(); });
    if (!out) return makeError("no answer");
    return std::move(*out);
  }

  std::string dir_;
  EventLoop loop_;
  std::unique_ptr<tls::Ca> ca_;
  std::unique_ptr<tls::CertManager> server_certs_, client_certs_;
  std::unique_ptr<HboneServer> server_;
  std::unique_ptr<HboneConnector> connector_;
  std::vector<TunnelRequest> requests_;
  std::vector<std::unique_ptr<Echo>> echoes_;
};

}  // namespace offcore::mesh::hbone
