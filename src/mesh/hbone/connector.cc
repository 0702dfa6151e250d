#include "mesh/hbone/connector.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "mesh/hbone/wire.h"

namespace offcore::mesh::hbone {
namespace {

Result<int> dialSocket(const std::string& ip, uint16_t port, const std::string& local_ip) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1)
    return makeError("hbone: node ip '" + ip + "' is not IPv4");
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("hbone: socket");
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!local_ip.empty()) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (::inet_pton(AF_INET, local_ip.c_str(), &local.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
      Error e = errnoError("hbone: bind to " + local_ip);
      ::close(fd);
      return e;
    }
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    Error e = errnoError("hbone: connect to " + formatAuthority(ip, port));
    ::close(fd);
    return e;
  }
  return fd;
}

}  // namespace

HboneConnector::HboneConnector(EventLoop& loop, tls::TlsContextSource& contexts, Options options)
    : loop_(loop), contexts_(contexts), options_(std::move(options)) {}

HboneConnector::~HboneConnector() {
  alive_.reset();
  auto pool = std::move(pool_);
  for (auto& [key, conn] : pool) conn->close(okStatus());
}

Result<std::shared_ptr<H2Conn>> HboneConnector::dial(const ConnectTarget& target, const std::string& key) {
  OC_ASSIGN_OR_RETURN(auto ctx, contexts_.contextFor(target.source_identity));
  OC_ASSIGN_OR_RETURN(int fd, dialSocket(target.node_ip, options_.port, options_.local_ip));
  auto tls = tls::TlsSession::client(ctx, fd, target.peer_identity);
  if (!tls.ok()) {
    ::close(fd);
    return tls.error();
  }
  auto conn = std::make_shared<H2Conn>(loop_, fd, std::move(*tls), H2Conn::Role::kClient, options_.h2,
                                       formatAuthority(target.node_ip, options_.port));
  OC_TRY(conn->start(/*connecting=*/true));
  std::weak_ptr<int> alive = alive_;
  std::weak_ptr<H2Conn> weak = conn;
  conn->setOnClosed([this, alive, weak, key](const Status&) {
    if (!alive.lock()) return;
    auto it = pool_.find(key);
    if (it != pool_.end() && it->second == weak.lock()) pool_.erase(it);
  });
  return conn;
}

void HboneConnector::connect(const ConnectTarget& target, Millis timeout, Done done) {
  auto fail = [this, &done](Error e) { loop_.post([done = std::move(done), e = std::move(e)] { done(e); }); };
  if (target.node_ip.empty() || target.peer_identity.empty() || target.source_identity.empty()) {
    fail(makeError("hbone: a tunnelled connect needs node_ip, peer_identity and source_identity"));
    return;
  }
  std::string key =
      formatAuthority(target.node_ip, options_.port) + "|" + target.source_identity + "|" + target.peer_identity;
  std::shared_ptr<H2Conn> conn;
  auto it = pool_.find(key);
  if (it != pool_.end() && it->second->usable()) {
    conn = it->second;
  } else {
    auto dialed = dial(target, key);
    if (!dialed.ok()) {
      fail(dialed.error());
      return;
    }
    conn = *dialed;
    pool_[key] = conn;  // replaces one that stopped taking streams; its streams keep it alive
  }
  struct Once {
    Done done;
    EventLoop::TimerId timer = 0;
    bool fired = false;
  };
  auto once = std::make_shared<Once>();
  once->done = std::move(done);
  std::string authority = formatAuthority(target.ip, target.port);
  uint64_t handle =
      conn->open(authority, target.source_ip, [loop = &loop_, once](Result<std::unique_ptr<Transport>> r) {
        if (once->fired) return;  // timed out already: r's stream is reset as it goes
        once->fired = true;
        if (once->timer) loop->cancelTimer(once->timer);
        once->done(std::move(r));
      });
  std::weak_ptr<H2Conn> weak = conn;
  std::string via = conn->peerAddr();
  once->timer = loop_.addTimer(timeout, [once, weak, handle, authority, via, timeout] {
    once->timer = 0;
    if (once->fired) return;
    once->fired = true;
    if (auto c = weak.lock()) c->cancelOpen(handle);
    once->done(makeError(
        "hbone: CONNECT " + authority + " via " + via + " timed out after " + std::to_string(timeout.count()) + " ms",
        ETIMEDOUT));
  });
}

}  // namespace offcore::mesh::hbone
