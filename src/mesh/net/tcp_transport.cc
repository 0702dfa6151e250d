#include "mesh/net/tcp_transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace offcore::mesh {
namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr int kReadsPerEvent = 4;  // fairness between connections on a loop

}  // namespace

std::string socketAddress(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return {};
}

std::unique_ptr<TcpTransport> TcpTransport::adopt(EventLoop& loop, int fd, TcpWatermarks marks) {
  return std::unique_ptr<TcpTransport>(new TcpTransport(loop, fd, marks));
}

TcpTransport::TcpTransport(EventLoop& loop, int fd, TcpWatermarks marks) : loop_(loop), fd_(fd), marks_(marks) {
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  local_ = socketAddress(fd_, false);
  remote_ = socketAddress(fd_, true);
  interest_ = EPOLLIN | EPOLLRDHUP;
  if (!loop_.watchFd(fd_, interest_, [this](uint32_t ev) { onEvents(ev); }).ok()) {
    // Cannot happen for a fresh socket unless the kernel is out of memory;
    // report it as a close on the next turn.
    interest_ = 0;
    finish(makeError("tcp: cannot watch the socket (epoll_ctl failed)"), true);
  }
}

TcpTransport::~TcpTransport() {
  *alive_ = false;
  if (fd_ >= 0) {
    sendNow();  // written this turn, not yet sent: close() delivers it before the FIN
    loop_.unwatchFd(fd_);
    ::close(fd_);
  }
}

void TcpTransport::setCallbacks(Callbacks* callbacks) { callbacks_ = callbacks; }

// Writes are coalesced per loop turn: a response head and its body, or the
// several frames one read produced, leave in one send (and wake the peer
// once) at the end of the turn instead of one send each.
void TcpTransport::write(std::string_view bytes) {
  if (closed_ || end_requested_ || bytes.empty()) return;
  bool idle = pendingWrite() == 0;
  if (idle) {
    out_.clear();
    out_off_ = 0;
  }
  out_.append(bytes);
  if (pendingWrite() >= marks_.high) above_high_ = true;
  if (!idle || flush_posted_) return;  // a send is already due (EPOLLOUT or this turn's)
  flush_posted_ = true;
  std::weak_ptr<bool> weak = alive_;
  loop_.post([this, weak] {
    auto alive = weak.lock();
    if (!alive || !*alive) return;
    flush_posted_ = false;
    if (!closed_) flush();
  });
}

void TcpTransport::sendNow() {
  if (fd_ < 0 || pendingWrite() == 0) return;
  ssize_t n = ::send(fd_, out_.data() + out_off_, pendingWrite(), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n > 0) out_off_ += static_cast<size_t>(n);
}

void TcpTransport::pauseReading(bool paused) {
  if (closed_ || paused_ == paused) return;
  paused_ = paused;
  updateInterest();
}

void TcpTransport::endWrite() {
  if (closed_ || end_requested_) return;
  end_requested_ = true;
  if (pendingWrite() == 0) {
    ::shutdown(fd_, SHUT_WR);
    write_shut_ = true;
    if (read_eof_) finish(okStatus(), true);
  }
}

void TcpTransport::reset() {
  if (closed_) return;
  sendNow();  // what the owner wrote this turn, as an immediate send would have
  linger lg{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  loop_.unwatchFd(fd_);
  ::close(fd_);
  fd_ = -1;
  interest_ = 0;
  closed_ = true;
}

void TcpTransport::updateInterest() {
  if (closed_) return;
  uint32_t want = 0;
  if (!paused_ && !read_eof_) want |= EPOLLIN | EPOLLRDHUP;
  if (pendingWrite() > 0) want |= EPOLLOUT;
  if (want == interest_) return;
  interest_ = want;
  // An empty mask still reports EPOLLHUP/EPOLLERR, which is what we want.
  (void)loop_.modifyFd(fd_, want);
}

void TcpTransport::onEvents(uint32_t events) {
  if (closed_) return;
  // A callback may destroy us (the owner reacting to onData/onDrained).
  auto alive = alive_;
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    finish(errnoError("tcp connection to " + remote_, err ? err : ECONNRESET), false);
    return;
  }
  if (events & EPOLLOUT) {
    flush();
    if (!*alive || closed_) return;
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && !paused_ && !read_eof_) readSome();
  if (!*alive || closed_) return;
  if ((events & EPOLLHUP) && pendingWrite() > 0) flush();
}

void TcpTransport::readSome() {
  char buf[kReadChunk];
  auto alive = alive_;
  for (int i = 0; i < kReadsPerEvent && !closed_ && !paused_; ++i) {
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      if (callbacks_) callbacks_->onData(std::string_view(buf, static_cast<size_t>(n)));
      if (!*alive) return;
      if (static_cast<size_t>(n) < sizeof buf) return;  // drained for now
      continue;
    }
    if (n == 0) {
      read_eof_ = true;
      updateInterest();
      if (callbacks_) callbacks_->onEnd();
      if (!*alive || closed_) return;
      maybeFinish();
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    finish(errnoError("tcp recv from " + remote_), false);
    return;
  }
}

void TcpTransport::flush() {
  while (pendingWrite() > 0) {
    ssize_t n = ::send(fd_, out_.data() + out_off_, pendingWrite(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      finish(errnoError("tcp send to " + remote_), false);
      return;
    }
    out_off_ += static_cast<size_t>(n);
  }
  if (pendingWrite() == 0) {
    out_.clear();
    out_off_ = 0;
  } else if (out_off_ > (1 << 20) && out_off_ > out_.size() / 2) {
    out_.erase(0, out_off_);
    out_off_ = 0;
  }
  updateInterest();
  if (above_high_ && pendingWrite() <= marks_.low) {
    above_high_ = false;
    auto alive = alive_;
    if (callbacks_) callbacks_->onDrained();
    if (!*alive || closed_) return;
  }
  if (end_requested_ && !write_shut_ && pendingWrite() == 0) {
    ::shutdown(fd_, SHUT_WR);
    write_shut_ = true;
    maybeFinish();
  }
}

void TcpTransport::maybeFinish() {
  if (read_eof_ && write_shut_) finish(okStatus(), false);
}

void TcpTransport::finish(const Status& why, bool deferred) {
  if (closed_) return;
  closed_ = true;
  if (fd_ >= 0) {
    loop_.unwatchFd(fd_);
    ::close(fd_);
    fd_ = -1;
  }
  interest_ = 0;
  if (!deferred) {
    if (callbacks_) callbacks_->onClosed(why);
    return;
  }
  std::weak_ptr<bool> weak = alive_;
  loop_.post([this, weak, why] {
    auto alive = weak.lock();
    if (alive && *alive && callbacks_) callbacks_->onClosed(why);
  });
}

}  // namespace offcore::mesh
