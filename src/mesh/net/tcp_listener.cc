#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "mesh/net/sock_addr.h"
#include "mesh/net/tcp_transport.h"

namespace offcore::mesh {

Result<std::unique_ptr<TcpListener>> TcpListener::listen(EventLoop& loop, const std::string& ip, uint16_t port,
                                                         TcpListenOptions options, OnAccept on_accept,
                                                         TcpWatermarks marks) {
  std::string where = ip + ":" + std::to_string(port);
  OC_ASSIGN_OR_RETURN(SockAddr addr, parseSockAddr(ip, port));
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket for listener " + where);
  std::unique_ptr<TcpListener> l(new TcpListener(loop, fd, std::move(on_accept), marks));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    return errnoError("SO_REUSEPORT on listener " + where);
  if (options.transparent) {
    int level = addr.family() == AF_INET6 ? SOL_IPV6 : SOL_IP;
    int opt = addr.family() == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
    if (::setsockopt(fd, level, opt, &one, sizeof one) != 0)
      return errnoError("IP_TRANSPARENT on listener " + where + " (needs CAP_NET_ADMIN)");
  }
  if (::bind(fd, addr.get(), addr.len) != 0)
    return errnoError("bind listener " + where + " (in use? another proxy without SO_REUSEPORT?)");
  if (::listen(fd, options.backlog) != 0) return errnoError("listen on " + where);
  OC_TRY(l->start());
  return l;
}

Result<std::unique_ptr<TcpListener>> TcpListener::fromFd(EventLoop& loop, int fd, OnAccept on_accept,
                                                         TcpWatermarks marks) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting)
    return makeError("fd " + std::to_string(fd) + " is not a listening socket; pass the listener fd itself", EINVAL);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  std::unique_ptr<TcpListener> l(new TcpListener(loop, fd, std::move(on_accept), marks));
  OC_TRY(l->start());
  return l;
}

TcpListener::TcpListener(EventLoop& loop, int fd, OnAccept on_accept, TcpWatermarks marks)
    : loop_(loop), fd_(fd), on_accept_(std::move(on_accept)), marks_(marks) {}

TcpListener::~TcpListener() {
  if (retry_timer_ != 0) loop_.cancelTimer(retry_timer_);
  if (fd_ < 0) return;
  loop_.unwatchFd(fd_);
  ::close(fd_);
}

Status TcpListener::start() {
  std::string local = socketAddress(fd_, false);
  auto colon = local.rfind(':');
  if (colon != std::string::npos) port_ = static_cast<uint16_t>(std::stoi(local.substr(colon + 1)));
  return loop_.watchFd(fd_, EPOLLIN, [this](uint32_t) { acceptSome(); });
}

void TcpListener::pause(bool paused) {
  if (paused == paused_) return;
  paused_ = paused;
  (void)loop_.modifyFd(fd_, paused ? 0u : static_cast<uint32_t>(EPOLLIN));
}

void TcpListener::acceptSome() {
  // Bounded per wake-up so one listener cannot starve the loop's connections.
  for (int i = 0; i < 64 && !paused_; ++i) {
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: leave the queue alone for a moment rather
        // than spinning on a level-triggered wake-up.
        pause(true);
        retry_timer_ = loop_.addTimer(std::chrono::milliseconds(100), [this] {
          retry_timer_ = 0;
          pause(false);
        });
      }
      return;
    }
    on_accept_(TcpTransport::adopt(loop_, c, marks_));
  }
}

}  // namespace offcore::mesh
