#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "mesh/net/sock_addr.h"
#include "mesh/net/tcp_transport.h"

namespace offcore::mesh {

TcpConnector::~TcpConnector() {
  *alive_ = false;
  for (auto& [id, p] : pending_) {
    loop_.cancelTimer(p.timer);
    loop_.unwatchFd(p.fd);
    ::close(p.fd);
  }
}

void TcpConnector::connect(const ConnectTarget& target, Millis timeout, Done done) {
  uint64_t id = next_id_++;
  pending_[id].done = std::move(done);
  pending_[id].where = target.ip + ":" + std::to_string(target.port);
  std::weak_ptr<bool> weak = alive_;
  auto fail_later = [this, weak, id](Error e) {
    loop_.post([this, weak, id, e] {
      if (auto a = weak.lock(); a && *a) complete(id, e);
    });
  };
  std::string where = target.ip + ":" + std::to_string(target.port);
  if (!target.node_ip.empty()) {
    fail_later(
        makeError("connect to " + where + " via node " + target.node_ip + " needs the HBONE connector, not plain TCP"));
    return;
  }
  auto dst = parseSockAddr(target.ip, target.port);
  if (!dst.ok()) return fail_later(dst.error().wrap("connect"));
  int fd = ::socket(dst->family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_later(errnoError("socket for " + where));
  pending_[id].fd = fd;
  if (!target.source_ip.empty()) {
    int one = 1;
    int level = dst->family() == AF_INET6 ? SOL_IPV6 : SOL_IP;
    int opt = dst->family() == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT;
    if (::setsockopt(fd, level, opt, &one, sizeof one) != 0)
      return fail_later(errnoError("IP_TRANSPARENT for a connect from " + target.source_ip + " (needs CAP_NET_ADMIN)"));
    auto src = parseSockAddr(target.source_ip, 0);
    if (!src.ok()) return fail_later(src.error().wrap("source address"));
    if (::bind(fd, src->get(), src->len) != 0)
      return fail_later(errnoError("bind to source " + target.source_ip + " for " + where));
  }
  if (::connect(fd, dst->get(), dst->len) != 0 && errno != EINPROGRESS)
    return fail_later(errnoError("connect to " + where));
  auto st = loop_.watchFd(fd, EPOLLOUT, [this, id](uint32_t) { onWritable(id); });
  if (!st.ok()) return fail_later(st.error().wrap("watch connect to " + where));
  pending_[id].timer = loop_.addTimer(timeout, [this, id, where, timeout] {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    it->second.timer = 0;
    complete(id, makeError("connect to " + where + " timed out after " + std::to_string(timeout.count()) + " ms",
                           ETIMEDOUT));
  });
}

void TcpConnector::onWritable(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  int fd = it->second.fd;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    complete(id, errnoError("connect to " + it->second.where, err));
    return;
  }
  loop_.unwatchFd(fd);
  it->second.fd = -1;
  complete(id, std::unique_ptr<Transport>(TcpTransport::adopt(loop_, fd, marks_)));
}

void TcpConnector::complete(uint64_t id, Result<std::unique_ptr<Transport>> result) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  if (p.timer != 0) loop_.cancelTimer(p.timer);
  if (p.fd >= 0) {
    loop_.unwatchFd(p.fd);
    ::close(p.fd);
  }
  p.done(std::move(result));
}

}  // namespace offcore::mesh
