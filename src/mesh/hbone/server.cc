#include "mesh/hbone/server.h"

#include <fcntl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mesh/hbone/wire.h"

namespace offcore::mesh::hbone {

HboneServer::HboneServer(EventLoop& loop, tls::TlsContextSource& contexts, Options options, Handler handler)
    : loop_(loop), contexts_(contexts), options_(std::move(options)), handler_(std::move(handler)) {}

HboneServer::~HboneServer() {
  alive_.reset();
  if (listen_fd_ >= 0) {
    loop_.unwatchFd(listen_fd_);
    ::close(listen_fd_);
  }
  auto conns = std::move(conns_);
  for (auto& [raw, conn] : conns) conn->close(okStatus());
}

Status HboneServer::start() {
  if (options_.listen_fd >= 0) {
    listen_fd_ = options_.listen_fd;
    int flags = ::fcntl(listen_fd_, F_GETFL);
    if (flags >= 0) ::fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK);
    sockaddr_in bound{};
    socklen_t blen = sizeof bound;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
    port_ = ntohs(bound.sin_port);
    return loop_.watchFd(listen_fd_, EPOLLIN, [this](uint32_t) { onAccept(); });
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  if (::inet_pton(AF_INET, options_.ip.c_str(), &addr.sin_addr) != 1) {
    return makeError("hbone server: listen address '" + options_.ip + "' is not IPv4");
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return errnoError("hbone server: socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return errnoError("hbone server: bind " + formatAuthority(options_.ip, options_.port) +
                      " (is another proxy listening there?)");
  }
  if (::listen(listen_fd_, 1024) != 0) return errnoError("hbone server: listen");
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  return loop_.watchFd(listen_fd_, EPOLLIN, [this](uint32_t) { onAccept(); });
}

void HboneServer::stopAccepting() {
  if (listen_fd_ < 0) return;
  loop_.unwatchFd(listen_fd_);
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void HboneServer::onAccept() {
  for (int i = 0; i < 64; ++i) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        spdlog::warn("hbone server: accept: {}", std::strerror(errno));
      }
      return;
    }
    std::string peer = socketAddress(fd, true);
    if (conns_.size() >= options_.max_connections) {
      if (refused_++ % 1000 == 0) {
        spdlog::warn("hbone server: {} connections open (max_connections), refusing {}", conns_.size(), peer);
      }
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto tls = tls::TlsSession::server(contexts_, fd);
    if (!tls.ok()) {
      spdlog::warn("hbone server: {}: {}", peer, tls.error().message);
      ::close(fd);
      continue;
    }
    auto conn = std::make_shared<H2Conn>(loop_, fd, std::move(*tls), H2Conn::Role::kServer, options_.h2, peer);
    conn->setRequestHandler(handler_);
    std::weak_ptr<int> alive = alive_;
    H2Conn* raw = conn.get();
    conn->setOnClosed([this, alive, raw](const Status&) {
      if (alive.lock()) conns_.erase(raw);
    });
    conns_[raw] = conn;
    Status st = conn->start(/*connecting=*/false);
    if (!st.ok()) {
      spdlog::warn("hbone server: {}: {}", peer, st.error().message);
      conn->close(st);
    }
  }
}

}  // namespace offcore::mesh::hbone
