// The socket side of the vhost-user server: listen, accept one front end at
// a time, read messages with their fds, write replies (see server.h).
#include "virt/vhost/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/files.h"
#include "base/log.h"
#include "virt/vhost/protocol.h"
#include "virt/vhost/session.h"
#include "virt/vhost/unique_fd.h"

namespace offcore::virt {
namespace {

// How long a reply may wait for the front end to make room in the socket.
constexpr int kReplyTimeoutMs = 5000;

// What reading one message found: a message, a clean end, or stop().
enum class ReadEnd { kMessage, kClosed, kStopped };

class Server final : public VhostUserServer {
 public:
  Server(std::string path, UniqueFd listenFd, UniqueFd stopFd, VhostDevice& device)
      : path_(std::move(path)), listen_(std::move(listenFd)), stop_(std::move(stopFd)), device_(device) {}
  ~Server() override { ::unlink(path_.c_str()); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status run() override;
  void stop() override {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_.get(), &one, sizeof(one));
  }

 private:
  // Serves one connection to its end; an error is the front end's fault.
  Result<ReadEnd> serve(int conn);
  // Waits until fd is readable or stop() was called.
  Result<bool> waitReadable(int fd);
  // Reads exactly len bytes, collecting SCM_RIGHTS fds. kClosed on EOF
  // before the first byte when eofOk.
  Result<ReadEnd> readFull(int conn, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds, bool eofOk);
  Status writeFull(int conn, const std::vector<uint8_t>& bytes, int fd = -1);
  Status waitWritable(int conn);

  const std::string path_;
  UniqueFd listen_;
  UniqueFd stop_;
  VhostDevice& device_;
};

Result<bool> Server::waitReadable(int fd) {
  for (;;) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {fd, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("poll");
    if (fds[0].revents) return false;
    if (fds[1].revents) return true;
  }
}

Result<ReadEnd> Server::readFull(int conn, uint8_t* buf, size_t len, std::vector<UniqueFd>& fds, bool eofOk) {
  size_t got = 0;
  while (got < len) {
    OC_ASSIGN_OR_RETURN(bool readable, waitReadable(conn));
    if (!readable) return ReadEnd::kStopped;
    iovec iov{buf + got, len - got};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return errnoError("read from the front end");
    // Own every fd that arrived before judging the message, so none leaks.
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.emplace_back(fd);
      }
    }
    if ((mh.msg_flags & MSG_CTRUNC) || fds.size() > kMaxFds) {
      return makeError("the front end sent more than " + std::to_string(kMaxFds) + " fds with one message");
    }
    if (n == 0) {
      if (got == 0 && eofOk) return ReadEnd::kClosed;
      return makeError("the front end closed the connection in the middle of a message");
    }
    got += static_cast<size_t>(n);
  }
  return ReadEnd::kMessage;
}

Status Server::writeFull(int conn, const std::vector<uint8_t>& bytes, int fd) {
  size_t sent = 0;
  if (fd >= 0) {
    // The fd rides on the first bytes of the reply (SCM_RIGHTS).
    iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    ssize_t n;
    for (;;) {
      n = ::sendmsg(conn, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) break;
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return errnoError("reply to the front end (with an fd)");
      OC_TRY(waitWritable(conn));
    }
    sent = static_cast<size_t>(n);
  }
  while (sent < bytes.size()) {
    ssize_t n = ::send(conn, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      OC_TRY(waitWritable(conn));
      continue;
    }
    if (n < 0) return errnoError("reply to the front end");
    sent += static_cast<size_t>(n);
  }
  return okStatus();
}

// A front end that stops reading its replies (its socket buffer full) must
// not park the control thread: stop() and the next front end wait on it.
Status Server::waitWritable(int conn) {
  for (;;) {
    pollfd fds[2] = {{stop_.get(), POLLIN, 0}, {conn, POLLOUT, 0}};
    int n = ::poll(fds, 2, kReplyTimeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("poll");
    if (n == 0) {
      return makeError("the front end has not read its replies for " + std::to_string(kReplyTimeoutMs / 1000) + " s");
    }
    if (fds[0].revents) return makeError("stopped while replying to the front end");
    if (fds[1].revents & (POLLERR | POLLHUP)) return makeError("the front end closed the connection");
    return okStatus();
  }
}

Result<ReadEnd> Server::serve(int conn) {
  Session session(device_);
  for (;;) {
    std::vector<UniqueFd> fds;
    uint8_t hdr[kHeaderSize];
    OC_ASSIGN_OR_RETURN(ReadEnd end, readFull(conn, hdr, sizeof(hdr), fds, true));
    if (end != ReadEnd::kMessage) return end;
    OC_ASSIGN_OR_RETURN(Header h, parseHeader(hdr));
    uint8_t payload[kMaxPayloadSize];
    OC_ASSIGN_OR_RETURN(end, readFull(conn, payload, h.size, fds, false));
    if (end != ReadEnd::kMessage) return end;
    OC_ASSIGN_OR_RETURN(Message msg, parseMessage(h, std::span<const uint8_t>(payload, h.size), std::move(fds)));
    spdlog::debug("vhost-user: {}", requestName(h.request));
    OC_ASSIGN_OR_RETURN(std::vector<uint8_t> reply, session.handle(std::move(msg)));
    UniqueFd replyFd = session.takeReplyFd();
    if (!reply.empty()) OC_TRY(writeFull(conn, reply, replyFd.get()));
  }
}

Status Server::run() {
  for (;;) {
    OC_ASSIGN_OR_RETURN(bool readable, waitReadable(listen_.get()));
    if (!readable) return okStatus();
    UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) {
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      return errnoError("accept on " + path_);
    }
    spdlog::info("vhost-user: front end connected on {}", path_);
    auto end = serve(conn.get());  // the session (and its queues) ends here
    if (!end.ok()) {
      spdlog::error("vhost-user: dropping the front end: {}", end.error().message);
    } else if (*end == ReadEnd::kStopped) {
      spdlog::info("vhost-user: stopped; front end disconnected");
      return okStatus();
    } else {
      spdlog::info("vhost-user: front end disconnected; waiting for the next one");
    }
  }
}

}  // namespace

Result<std::unique_ptr<VhostUserServer>> VhostUserServer::listen(const std::string& path, VhostDevice& device) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return makeError("socket path '" + path + "' is empty or longer than " + std::to_string(sizeof(addr.sun_path) - 1) +
                     " bytes; pick a shorter one");
  }
  if (unixSocketAnswers(path)) {
    return makeError("another back end serves " + path + "; stop it or pick another --socket");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return makeError(path + " exists and is not a socket; pick another --socket");
    ::unlink(path.c_str());  // stale: its server is gone
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errnoError("socket");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) return errnoError("bind " + path);
  // Only the owner may connect: a front end maps its RAM into this process.
  // chmod before listen(), so nobody connects through looser permissions.
  if (::chmod(path.c_str(), 0600) < 0 || ::listen(fd.get(), 4) < 0) {
    Error e = errnoError("listen on " + path);
    ::unlink(path.c_str());
    return e;
  }
  UniqueFd stopFd(::eventfd(0, EFD_CLOEXEC));
  if (!stopFd.valid()) {
    ::unlink(path.c_str());
    return errnoError("eventfd");
  }
  spdlog::info("vhost-user: listening on {}", path);
  return std::unique_ptr<VhostUserServer>(new Server(path, std::move(fd), std::move(stopFd), device));
}

}  // namespace offcore::virt
