#include "mesh/net/tcp_transport.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "../loop_helpers.h"

namespace offcore::mesh {
namespace {

using testing::Recorder;
using testing::runUntil;

ConnectTarget tgt(std::string ip, uint16_t port, std::string node_ip = "", std::string source_ip = "") {
  ConnectTarget t;
  t.ip = std::move(ip);
  t.port = port;
  t.node_ip = std::move(node_ip);
  t.source_ip = std::move(source_ip);
  return t;
}

TcpListenOptions reusePort() {
  TcpListenOptions o;
  o.reuse_port = true;
  return o;
}

class TcpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop.init().ok());
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {},
                                 [this](std::unique_ptr<Transport> t) { accepted.push_back(std::move(t)); });
    ASSERT_TRUE(l.ok()) << l.error().message;
    listener = std::move(*l);
  }

  std::unique_ptr<Transport> dial(ConnectTarget target = {}) {
    if (target.ip.empty()) target.ip = "127.0.0.1";
    if (target.port == 0) target.port = listener->port();
    std::unique_ptr<Transport> out;
    bool done = false;
    connector.connect(target, Millis(2000), [&](Result<std::unique_ptr<Transport>> r) {
      done = true;
      if (r.ok())
        out = std::move(*r);
      else
        last_error = r.error().message;
    });
    runUntil(loop, [&] { return done; });
    return out;
  }

  EventLoop loop;
  TcpConnector connector{loop};
  std::unique_ptr<TcpListener> listener;
  std::vector<std::unique_ptr<Transport>> accepted;
  std::string last_error;
};

TEST_F(TcpTest, EchoAndHalfCloseBothWays) {
  auto client = dial();
  ASSERT_TRUE(client) << last_error;
  ASSERT_TRUE(runUntil(loop, [&] { return accepted.size() == 1; }));
  Recorder c, s;
  client->setCallbacks(&c);
  accepted[0]->setCallbacks(&s);
  EXPECT_EQ(accepted[0]->remoteAddress(), client->localAddress());
  EXPECT_EQ(client->remoteAddress(), "127.0.0.1:" + std::to_string(listener->port()));

  client->write("hello ");
  client->write("server");
  client->endWrite();
  ASSERT_TRUE(runUntil(loop, [&] { return s.ended; }));
  EXPECT_EQ(s.data, "hello server");
  EXPECT_FALSE(s.closed);  // only half closed: the server may still answer
  accepted[0]->write("reply after FIN");
  accepted[0]->endWrite();
  ASSERT_TRUE(runUntil(loop, [&] { return c.closed && s.closed; }));
  EXPECT_EQ(c.data, "reply after FIN");
  EXPECT_TRUE(c.ended);
  EXPECT_TRUE(c.close_ok);
  EXPECT_TRUE(s.close_ok);
}

TEST_F(TcpTest, WatermarksAndDrainedWithPausedReader) {
  auto client = dial();
  ASSERT_TRUE(client);
  ASSERT_TRUE(runUntil(loop, [&] { return accepted.size() == 1; }));
  Recorder c, s;
  client->setCallbacks(&c);
  accepted[0]->setCallbacks(&s);
  accepted[0]->pauseReading(true);
  std::string chunk(256 << 10, 'x');
  for (int i = 0; i < 24; ++i) client->write(chunk);  // 6 MiB, far beyond the socket buffers
  EXPECT_GT(client->pendingWrite(), size_t{1} << 20);
  runUntil(
      loop, [] { return false; }, Millis(100));
  EXPECT_TRUE(s.data.empty());  // paused: nothing delivered
  EXPECT_EQ(c.drained, 0);
  accepted[0]->pauseReading(false);
  ASSERT_TRUE(runUntil(loop, [&] { return s.data.size() == chunk.size() * 24; }));
  EXPECT_EQ(c.drained, 1);
  EXPECT_EQ(client->pendingWrite(), 0u);
}

TEST_F(TcpTest, ResetSendsRst) {
  auto client = dial();
  ASSERT_TRUE(client);
  ASSERT_TRUE(runUntil(loop, [&] { return accepted.size() == 1; }));
  Recorder c, s;
  client->setCallbacks(&c);
  accepted[0]->setCallbacks(&s);
  client->reset();
  ASSERT_TRUE(runUntil(loop, [&] { return s.closed; }));
  EXPECT_FALSE(s.close_ok);  // a RST, not a FIN
  EXPECT_NE(s.close_error.find("reset"), std::string::npos) << s.close_error;
  EXPECT_FALSE(c.closed);  // the owner asked: no callback
}

TEST_F(TcpTest, RefusedAndHboneTargetsFail) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  uint16_t closed_port = ntohs(a.sin_port);
  ::close(fd);  // bound then closed: nothing listens there
  EXPECT_FALSE(dial(tgt("127.0.0.1", closed_port)));
  EXPECT_NE(last_error.find("refused"), std::string::npos) << last_error;

  EXPECT_FALSE(dial(tgt("127.0.0.1", listener->port(), "127.0.0.9")));
  EXPECT_NE(last_error.find("HBONE"), std::string::npos) << last_error;
  EXPECT_FALSE(dial(tgt("not-an-ip", 80)));
}

TEST_F(TcpTest, ConnectTimesOut) {
  // A listener with a full accept queue drops further SYNs: the connect
  // stays in progress until our timer fires.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 0), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    (void)::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);  // in progress: the queue fills
    fillers.push_back(c);
  }
  ::usleep(50000);
  std::string error;
  bool done = false;
  auto start = std::chrono::steady_clock::now();
  connector.connect(tgt("127.0.0.1", ntohs(a.sin_port)), Millis(200), [&](Result<std::unique_ptr<Transport>> r) {
    done = true;
    if (!r.ok()) error = r.error().message;
  });
  ASSERT_TRUE(runUntil(loop, [&] { return done; }));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(error.find("timed out"), std::string::npos) << error;
  EXPECT_GE(took, Millis(190));
  EXPECT_EQ(connector.inFlight(), 0u);
  for (int c : fillers) ::close(c);
  ::close(fd);
}

TEST_F(TcpTest, ReusePortAndAdoptedListenerFd) {
  auto a = TcpListener::listen(loop, "127.0.0.1", 0, reusePort(), [](std::unique_ptr<Transport>) {});
  ASSERT_TRUE(a.ok()) << a.error().message;
  int accepted_b = 0;
  std::vector<std::unique_ptr<Transport>> keep;
  auto b = TcpListener::listen(loop, "127.0.0.1", (*a)->port(), reusePort(), [&](std::unique_ptr<Transport> t) {
    ++accepted_b;
    keep.push_back(std::move(t));
  });
  ASSERT_TRUE(b.ok()) << b.error().message;  // a second proxy binds the same port
  auto plain = TcpListener::listen(loop, "127.0.0.1", (*a)->port(), {}, [](std::unique_ptr<Transport>) {});
  EXPECT_FALSE(plain.ok());  // without SO_REUSEPORT it may not

  // Hot restart: the successor adopts a dup of the listening fd.
  int passed = ::dup(listener->fd());
  int adopted = 0;
  auto c = TcpListener::fromFd(loop, passed, [&](std::unique_ptr<Transport> t) {
    ++adopted;
    keep.push_back(std::move(t));
  });
  ASSERT_TRUE(c.ok()) << c.error().message;
  listener->pause(true);  // the predecessor stops accepting
  auto client = dial();
  ASSERT_TRUE(client);
  ASSERT_TRUE(runUntil(loop, [&] { return adopted == 1; }));
  EXPECT_TRUE(accepted.empty());
  EXPECT_FALSE(TcpListener::fromFd(loop, ::dup(0), [](std::unique_ptr<Transport>) {}).ok());
}

TEST_F(TcpTest, TransparentSourceAddress) {
  if (::geteuid() != 0) GTEST_SKIP() << "IP_TRANSPARENT needs CAP_NET_ADMIN";
  auto client = dial(tgt("", 0, "", "127.0.0.77"));
  ASSERT_TRUE(client) << last_error;
  ASSERT_TRUE(runUntil(loop, [&] { return accepted.size() == 1; }));
  EXPECT_EQ(accepted[0]->remoteAddress().rfind("127.0.0.77:", 0), 0u) << accepted[0]->remoteAddress();
}

}  // namespace
}  // namespace offcore::mesh
