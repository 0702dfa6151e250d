#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "hbone_fixture.h"

namespace offcore::mesh::hbone {
namespace {

TEST_F(HboneTest, ManyConcurrentStreamsEchoOverOneConnection) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  constexpr int kStreams = 64;
  std::vector<std::unique_ptr<Transport>> streams(kStreams);
  std::vector<Sink> sinks(kStreams);
  int answered = 0;
  for (int i = 0; i < kStreams; ++i) {
    connector_->connect(target(static_cast<uint16_t>(8000 + i)), 5000ms, [&, i](Result<std::unique_ptr<Transport>> r) {
      ++answered;
      ASSERT_TRUE(r.ok()) << r.error().message;
      streams[i] = std::move(*r);
      streams[i]->setCallbacks(&sinks[i]);
      streams[i]->write("stream " + std::to_string(i) + std::string(1000 + i, 'x'));
      streams[i]->endWrite();
    });
  }
  ASSERT_TRUE(runUntil([&] {
    int done = 0;
    for (auto& s : sinks) done += s.closed;
    return done == kStreams;
  }));
  EXPECT_EQ(answered, kStreams);
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(sinks[i].data, "stream " + std::to_string(i) + std::string(1000 + i, 'x'));
    EXPECT_TRUE(sinks[i].ended);
    EXPECT_TRUE(sinks[i].close_status.ok()) << sinks[i].close_status.error().message;
    EXPECT_EQ(streams[i]->peerIdentity(), kServerId);
  }
  EXPECT_EQ(connector_->connectionCount(), 1u);
  EXPECT_EQ(server_->connectionCount(), 1u);
  ASSERT_EQ(requests_.size(), static_cast<size_t>(kStreams));
  EXPECT_EQ(requests_[0].target_ip, "10.9.0.5");
  EXPECT_EQ(requests_[0].source_ip, "10.9.0.7");
  EXPECT_EQ(requests_[0].peer_identity, kClientId);
  EXPECT_EQ(requests_[0].local_identity, kServerId);
}

// 64 MiB through the tunnel and back. The reader pauses for a while first:
// with flow control working, the writer is held back by the HTTP/2 windows
// (a few MiB in flight), not buffered without bound.
TEST_F(HboneTest, LargeTransferHonoursFlowControl) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto stream = connectNow(*connector_, target());
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  Transport& t = **stream;
  constexpr size_t kTotal = 64u << 20;
  constexpr size_t kChunk = 64u << 10;
  std::string chunk(kChunk, '\0');
  size_t written = 0;
  size_t max_pending = 0;
  auto pump = [&] {
    while (written < kTotal && t.pendingWrite() < (1u << 20)) {
      for (size_t i = 0; i < kChunk; ++i) chunk[i] = static_cast<char>((written + i) % 251);
      t.write(chunk);
      written += kChunk;
      max_pending = std::max(max_pending, t.pendingWrite());
    }
    if (written == kTotal) t.endWrite();
  };
  Sink sink;
  sink.keep = false;
  size_t checked = 0;
  bool corrupt = false;
  sink.check = [&](std::string_view bytes) {
    for (char c : bytes) corrupt |= static_cast<char>(checked++ % 251) != c;
  };
  sink.drained = pump;
  t.setCallbacks(&sink);
  t.pauseReading(true);
  pump();
  // Wait until the writer is stuck (no progress for 300 ms).
  size_t last = 0;
  auto last_change = std::chrono::steady_clock::now();
  runUntil(
      [&] {
        auto now = std::chrono::steady_clock::now();
        if (written != last) {
          last = written;
          last_change = now;
        }
        return now - last_change > 300ms;
      },
      10s);
  size_t written_while_paused = written;
  std::printf("bytes accepted from the writer while the reader paused: %zu\n", written_while_paused);
  EXPECT_EQ(sink.received, 0u);
  EXPECT_LT(written_while_paused, 24u << 20) << "the writer was not held back by the windows";
  t.pauseReading(false);
  ASSERT_TRUE(runUntil([&] { return sink.closed; }, 60s));
  EXPECT_TRUE(sink.close_status.ok()) << sink.close_status.error().message;
  EXPECT_EQ(sink.received, kTotal);
  EXPECT_FALSE(corrupt);
  EXPECT_LE(max_pending, (1u << 20) + kChunk);
}

TEST_F(HboneTest, StreamsBeyondThePeersLimitWaitTheirTurn) {
  makeCerts();
  HboneServer::Options options;
  options.h2.max_concurrent_streams = 4;
  startServer(*server_certs_, options);
  connector_ = makeConnector(*client_certs_);
  constexpr int kStreams = 16;
  std::vector<std::unique_ptr<Transport>> streams(kStreams);
  std::vector<Sink> sinks(kStreams);
  int max_open = 0;
  for (int i = 0; i < kStreams; ++i) {
    connector_->connect(target(), 5000ms, [&, i](Result<std::unique_ptr<Transport>> r) {
      ASSERT_TRUE(r.ok()) << r.error().message;
      streams[i] = std::move(*r);
      streams[i]->setCallbacks(&sinks[i]);
      streams[i]->write("x");
      streams[i]->endWrite();
    });
  }
  ASSERT_TRUE(runUntil([&] {
    int open = 0, done = 0;
    for (auto& e : echoes_) open += !e->closed;
    max_open = std::max(max_open, open);
    for (auto& s : sinks) done += s.closed;
    return done == kStreams;
  }));
  EXPECT_LE(max_open, 4);
  EXPECT_EQ(requests_.size(), static_cast<size_t>(kStreams));
}

TEST_F(HboneTest, ConnectDeniedByTheHandlerIsAnErrorAtTheClient) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto denied = connectNow(*connector_, target(9));
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.error().message.find("403"), std::string::npos) << denied.error().message;
  // The connection stays usable for allowed streams.
  auto ok = connectNow(*connector_, target(80));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(connector_->connectionCount(), 1u);
}

TEST_F(HboneTest, ResetReachesThePeer) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto stream = connectNow(*connector_, target());
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  Sink sink;
  (*stream)->setCallbacks(&sink);
  (*stream)->write("ping");
  ASSERT_TRUE(runUntil([&] { return sink.data == "ping"; }));
  (*stream)->reset();
  ASSERT_TRUE(runUntil([&] { return sink.closed && !echoes_.empty() && echoes_[0]->closed; }));
  EXPECT_FALSE(sink.close_status.ok());
}

TEST_F(HboneTest, PeerGoneClosesOpenStreamsWithAnError) {
  makeCerts();
  startServer(*server_certs_);
  connector_ = makeConnector(*client_certs_);
  auto stream = connectNow(*connector_, target());
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  Sink sink;
  (*stream)->setCallbacks(&sink);
  echoes_.clear();
  server_.reset();
  ASSERT_TRUE(runUntil([&] { return sink.closed; }));
  EXPECT_FALSE(sink.close_status.ok());
  ASSERT_TRUE(runUntil([&] { return connector_->connectionCount() == 0; }));
  // Nobody listens any more: a new connect fails, naming the node.
  auto again = connectNow(*connector_, target());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("127.0.0.1"), std::string::npos) << again.error().message;
}

TEST_F(HboneTest, IdleConnectionsAreClosed) {
  makeCerts();
  HboneServer::Options options;
  options.h2.idle_timeout = 200ms;
  startServer(*server_certs_, options);
  connector_ = makeConnector(*client_certs_);
  auto stream = connectNow(*connector_, target());
  ASSERT_TRUE(stream.ok()) << stream.error().message;
  runUntil([] { return false; }, 400ms);
  EXPECT_EQ(server_->connectionCount(), 1u) << "a connection with an open stream is not idle";
  stream->reset();  // drops the stream (RST_STREAM): the connection has none left
  ASSERT_TRUE(runUntil([&] { return server_->connectionCount() == 0 && connector_->connectionCount() == 0; }, 3s));
}

TEST_F(HboneTest, ConnectToASilentPeerTimesOut) {
  makeCerts();
  // Listens but never speaks TLS.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(lfd, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  HboneConnector connector(loop_, *client_certs_, HboneConnector::Options{ntohs(addr.sin_port), "127.0.0.1", {}});
  std::optional<Result<std::unique_ptr<Transport>>> out;
  auto start = std::chrono::steady_clock::now();
  connector.connect(target(), 300ms, [&](Result<std::unique_ptr<Transport>> r) { out.emplace(std::move(r)); });
  ASSERT_TRUE(runUntil([&] { return out.has_value(); }, 3s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  ASSERT_FALSE(out->ok());
  EXPECT_NE(out->error().message.find("timed out"), std::string::npos) << out->error().message;
  ::close(lfd);
}

TEST_F(HboneTest, UnansweredHandshakeIsClosedAfterTheTimeout) {
  makeCerts();
  HboneServer::Options options;
  options.h2.handshake_timeout = 500ms;
  options.max_connections = 3;
  startServer(*server_certs_, options);
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    fds.push_back(fd);
  }
  size_t most = 0;
  ASSERT_TRUE(runUntil([&] {
    most = std::max(most, server_->connectionCount());
    return server_->refusedConnections() == 2;
  }));
  EXPECT_LE(most, 3u);
  ASSERT_TRUE(runUntil([&] { return server_->connectionCount() == 0; }, 5s));
  for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace offcore::mesh::hbone
