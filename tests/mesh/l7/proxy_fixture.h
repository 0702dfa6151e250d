// Test fixture for the L7 proxy: small HTTP/1.1 upstream servers and a
// client on one EventLoop over 127.0.0.1, a Connector that maps endpoint
// addresses to those servers, and a proxy listener running HttpSessions.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../loop_helpers.h"
#include "mesh/http/http1_codec.h"
#include "mesh/l7/http_proxy.h"
#include "mesh/net/tcp_transport.h"

namespace offcore::mesh::l7::testing {

using mesh::testing::runUntil;

// Runs a shell command (a real client: nghttp, curl) on a thread while the
// test's loop keeps serving; its stdout and stderr.
inline std::string runWhileServing(EventLoop& loop, const std::string& cmd, Millis timeout = Millis(30000)) {
  std::string out;
  std::atomic<bool> done{false};
  std::thread t([&] {
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (p) ::pclose(p);
    done = true;
  });
  runUntil(
      loop, [&] { return done.load(); }, timeout);
  t.join();
  return out;
}

// FNV-1a over a body, piece by piece (what a server received vs what was sent).
inline uint64_t fnv(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}
inline constexpr uint64_t kFnvSeed = 14695981039346656037ull;

// A request body a server received: its size, hash and trailers.
struct ReceivedBody {
  uint64_t size = 0;
  uint64_t hash = kFnvSeed;
  http::Headers trailers;
};

struct Reply {
  int status = 200;
  std::string body;
  int delay_ms = 0;
  bool drop = false;  // close the connection instead of answering
};

// An upstream: answers each request with handler(head, hit number).
class FakeServer {
 public:
  using Handler = std::function<Reply(const http::MessageHead&, int hit)>;
  FakeServer(EventLoop& loop, std::string name, Handler handler = nullptr)
      : loop_(loop), name_(std::move(name)), handler_(std::move(handler)) {
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
      conns_.push_back(std::make_unique<Conn>(this, std::move(t)));
    });
    EXPECT_TRUE(l.ok());
    listener_ = std::move(*l);
  }
  uint16_t port() const { return listener_->port(); }
  // Response bytes this server could not hand to the kernel yet.
  size_t pendingOut() const {
    size_t n = 0;
    for (const auto& c : conns_)
      if (!c->closed) n += c->t->pendingWrite();
    return n;
  }
  // Connections not closed yet (the proxy drops one it will not reuse).
  size_t openConns() const {
    size_t n = 0;
    for (const auto& c : conns_) n += c->closed ? 0 : 1;
    return n;
  }
  // Stops (or resumes) reading requests on every connection, new ones included.
  void pauseReading(bool paused) {
    read_paused_ = paused;
    for (const auto& c : conns_)
      if (!c->closed) c->t->pauseReading(paused);
  }
  int hits = 0;
  std::vector<std::string> sources;  // remote addresses seen
  std::vector<ReceivedBody> bodies;  // of the complete requests, in order
  uint64_t reset_after = 0;          // > 0: reset the connection once a body reached this size

 private:
  struct Conn : Transport::Callbacks, http::Http1Parser::Callbacks {
    Conn(FakeServer* s, std::unique_ptr<Transport> t) : server(s), t(std::move(t)) {
      this->t->setCallbacks(this);
      server->sources.push_back(this->t->remoteAddress());
      if (server->read_paused_) this->t->pauseReading(true);
    }
    FakeServer* server;
    std::unique_ptr<Transport> t;
    http::Http1Parser parser{http::Http1Parser::Kind::kRequest, this};
    http::MessageHead head;
    ReceivedBody body;
    bool closed = false;
    void onData(std::string_view b) override { parser.feed(b); }
    void onEnd() override { t->endWrite(); }
    void onClosed(const Status&) override { closed = true; }
    void onHead(http::MessageHead&& h) override {
      head = std::move(h);
      body = ReceivedBody{};
    }
    void onBody(std::string_view b) override {
      body.size += b.size();
      body.hash = fnv(body.hash, b);
      if (server->reset_after && body.size >= server->reset_after && !closed) t->reset();
    }
    void onTrailers(http::Headers&& t) override { body.trailers = std::move(t); }
    void onComplete() override {
      server->bodies.push_back(body);
      int hit = ++server->hits;
      Reply r = server->handler_ ? server->handler_(head, hit) : Reply{};
      if (r.drop) {
        t->endWrite();
        return;
      }
      if (r.body.empty()) r.body = server->name_;
      std::string out = http::simpleResponse(r.status, r.body, {{"x-server", server->name_}});
      auto send = [this, out] {
        if (closed) return;
        t->write(out);
        parser.resume();
      };
      if (r.delay_ms)
        server->loop_.addTimer(std::chrono::milliseconds(r.delay_ms), send);
      else
        send();
    }
    void onError(int, const std::string&) override { t->reset(); }
  };
  EventLoop& loop_;
  std::string name_;
  Handler handler_;
  bool read_paused_ = false;
  std::unique_ptr<TcpListener> listener_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

// Maps endpoint "ip:port" to a FakeServer port on 127.0.0.1.
class MappedConnector : public Connector {
 public:
  explicit MappedConnector(EventLoop& loop) : tcp_(loop) {}
  std::map<std::string, uint16_t> map;
  std::vector<ConnectTarget> seen;
  void connect(const ConnectTarget& target, Millis timeout, Done done) override {
    seen.push_back(target);
    ConnectTarget t = target;
    auto it = map.find(target.ip + ":" + std::to_string(target.port));
    if (it != map.end()) {
      t.ip = "127.0.0.1";
      t.port = it->second;
    }
    t.node_ip.clear();
    t.source_ip.clear();
    tcp_.connect(t, timeout, std::move(done));
  }

 private:
  TcpConnector tcp_;
};

struct Response {
  int status = 0;
  http::Headers headers;
  std::string body;
};

// A keep-alive client connection to the proxy.
class Client : public Transport::Callbacks, public http::Http1Parser::Callbacks {
 public:
  Client(EventLoop& loop, uint16_t port) : loop_(loop), connector_(loop) {
    ConnectTarget t;
    t.ip = "127.0.0.1";
    t.port = port;
    bool done = false;
    connector_.connect(t, Millis(2000), [&](Result<std::unique_ptr<Transport>> r) {
      done = true;
      if (r.ok()) t_ = std::move(*r);
    });
    runUntil(loop, [&] { return done; });
    if (t_) t_->setCallbacks(this);
  }
  bool connected() const { return t_ != nullptr; }
  void pause(bool paused) { t_->pauseReading(paused); }
  // Request bytes not yet taken by the kernel (the proxy stopped reading).
  size_t pendingOut() const { return t_ ? t_->pendingWrite() : 0; }
  void send(const std::string& raw) { t_->write(raw); }
  void get(const std::string& path, const std::string& host = "web", const std::string& extra = "") {
    send("GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n");
  }
  // Waits for n responses in total.
  bool waitFor(size_t n, Millis limit = Millis(5000)) {
    return runUntil(
               loop_, [&] { return responses.size() >= n || closed; }, limit) &&
           responses.size() >= n;
  }
  Response request(const std::string& path, const std::string& host = "web", const std::string& extra = "") {
    size_t n = responses.size();
    get(path, host, extra);
    if (!waitFor(n + 1)) return Response{};
    return responses[n];
  }
  std::vector<Response> responses;
  bool closed = false;

  void onData(std::string_view b) override { parser_.feed(b); }
  void onEnd() override { closed = true; }
  void onClosed(const Status&) override { closed = true; }
  void onHead(http::MessageHead&& h) override {
    cur_ = Response{};
    cur_.status = h.status;
    cur_.headers = std::move(h.headers);
  }
  void onBody(std::string_view b) override { cur_.body.append(b); }
  void onComplete() override {
    responses.push_back(cur_);
    parser_.resume();
  }
  void onError(int, const std::string&) override { closed = true; }

 private:
  EventLoop& loop_;
  TcpConnector connector_;
  std::unique_ptr<Transport> t_;
  http::Http1Parser parser_{http::Http1Parser::Kind::kResponse, this};
  Response cur_;
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop.init().ok());
    ctx = std::make_unique<HttpProxyContext>(loop, connector, metrics, random);
    ctx->setAccessLog([this](const RequestRecord& r) { log.push_back(r); });
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this](std::unique_ptr<Transport> t) {
      auto s = std::make_unique<HttpSession>(
          *ctx, std::move(t), info, [this](HttpSession* done) { loop.post([this, done] { sessions.erase(done); }); });
      HttpSession* raw = s.get();
      sessions[raw] = std::move(s);
    });
    ASSERT_TRUE(l.ok());
    listener = std::move(*l);
  }
  void TearDown() override {
    sessions.clear();
    runUntil(
        loop, [] { return false; }, Millis(5));  // what the sessions posted
    ctx.reset();
    runUntil(
        loop, [] { return false; }, Millis(5));
  }
  // A server for endpoint ip:port of the snapshot.
  FakeServer& server(const std::string& ip, uint16_t port, std::string name, FakeServer::Handler h = nullptr) {
    servers.push_back(std::make_unique<FakeServer>(loop, std::move(name), std::move(h)));
    connector.map[ip + ":" + std::to_string(port)] = servers.back()->port();
    return *servers.back();
  }
  void apply(const Snapshot& s) { ctx->setRoutes(route::RouteTable::build(std::make_shared<Snapshot>(s))); }
  std::unique_ptr<Client> client() { return std::make_unique<Client>(loop, listener->port()); }

  EventLoop loop;
  MappedConnector connector{loop};
  MetricsRegistry metrics;
  route::SplitMixRandom random{12345};
  std::unique_ptr<HttpProxyContext> ctx;
  SessionInfo info;
  std::unique_ptr<TcpListener> listener;
  std::map<HttpSession*, std::unique_ptr<HttpSession>> sessions;
  std::vector<std::unique_ptr<FakeServer>> servers;
  std::vector<RequestRecord> log;
};

inline MeshEndpoint endpoint(std::string ip, uint16_t port, Labels labels = {}, std::string identity = "") {
  MeshEndpoint e;
  e.ip = std::move(ip);
  e.port = port;
  e.labels = std::move(labels);
  e.identity = std::move(identity);
  return e;
}

inline MeshService service(std::string name, std::string vip, std::vector<MeshEndpoint> eps) {
  MeshService s;
  s.name = std::move(name);
  s.vip = std::move(vip);
  s.ports = {{"http", 80, 8080, "http"}};
  s.endpoints = std::move(eps);
  return s;
}

inline HttpRoute routeTo(std::vector<RouteDestination> dests) {
  HttpRoute r;
  r.route = std::move(dests);
  return r;
}

inline RouteDestination dest(std::string host, std::string subset = "", uint32_t weight = 0) {
  RouteDestination d;
  d.destination.host = std::move(host);
  d.destination.subset = std::move(subset);
  d.weight = weight;
  return d;
}

}  // namespace offcore::mesh::l7::testing
