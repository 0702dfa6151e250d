#include "disk/fd_keeper.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "base/log.h"

namespace offcore {

namespace {

constexpr size_t kMaxMessage = 512;

Status sendMsg(int sock, const std::string& text, int fd) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) return errnoError("fd keeper: send");
  return {};
}

// Receives one packet; *fd is the passed fd or -1. Returns false at EOF.
Result<bool> recvMsg(int sock, std::string& text, int* fd) {
  char buf[kMaxMessage];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) return errnoError("fd keeper: receive");
  *fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) std::memcpy(fd, CMSG_DATA(c), sizeof(int));
  }
  if (n == 0 && *fd < 0) return false;
  text.assign(buf, static_cast<size_t>(n));
  return true;
}

Result<int> connectTo(const std::string& path) {
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (s < 0) return errnoError("fd keeper: socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    ::close(s);
    return makeError("fd keeper: socket path too long: " + path);
  }
  std::strcpy(addr.sun_path, path.c_str());
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    Error e = errnoError("fd keeper: connect " + path);
    ::close(s);
    return e;
  }
  return s;
}

Result<std::string> request(const std::string& path, const std::string& text, int send_fd, int* got_fd) {
  OC_ASSIGN_OR_RETURN(int s, connectTo(path));
  Status sent = sendMsg(s, text, send_fd);
  if (!sent.ok()) {
    ::close(s);
    return sent.error();
  }
  std::string reply;
  int fd = -1;
  auto r = recvMsg(s, reply, &fd);
  ::close(s);
  if (!r.ok()) return r.error();
  if (got_fd)
    *got_fd = fd;
  else if (fd >= 0)
    ::close(fd);
  return reply;
}

}  // namespace

std::string fdKeeperSocket(const std::string& run_root, const std::string& node, const std::string& owner) {
  return run_root + "/" + node + "/" + owner + "-fds.sock";
}

int runFdKeeper(const std::string& path) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC);
  int ls = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (ls < 0 || path.size() >= sizeof addr.sun_path) {
    std::fprintf(stderr, "offcore: fd keeper: cannot create %s\n", path.c_str());
    return 1;
  }
  std::strcpy(addr.sun_path, path.c_str());
  ::unlink(path.c_str());
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::chmod(path.c_str(), 0600) != 0 ||
      ::listen(ls, 16) != 0) {
    std::fprintf(stderr, "offcore: fd keeper: listen on %s: %s\n", path.c_str(), std::strerror(errno));
    return 1;
  }
  std::printf("fd keeper on %s\n", path.c_str());
  std::fflush(stdout);
  std::map<std::string, int> fds;
  while (true) {
    pollfd p[2] = {{ls, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents) break;
    int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string text;
    int fd = -1;
    // One short request per connection; a client that stalls must not
    // hold the keeper, so wait for it briefly only.
    pollfd cp{c, POLLIN, 0};
    auto got = ::poll(&cp, 1, 2000) == 1 ? recvMsg(c, text, &fd) : Result<bool>(false);
    if (got.ok() && *got) {
      std::string verb = text.substr(0, text.find(' '));
      std::string name = text.find(' ') == std::string::npos ? "" : text.substr(text.find(' ') + 1);
      if (verb == "PUT" && fd >= 0 && !name.empty()) {
        if (auto it = fds.find(name); it != fds.end()) ::close(it->second);
        fds[name] = fd;
        fd = -1;
        (void)sendMsg(c, "OK", -1);
      } else if (verb == "GET") {
        auto it = fds.find(name);
        if (it == fds.end()) {
          (void)sendMsg(c, "NONE", -1);
        } else {
          (void)sendMsg(c, "OK", it->second);
        }
      } else if (verb == "DEL") {
        if (auto it = fds.find(name); it != fds.end()) {
          ::close(it->second);
          fds.erase(it);
        }
        (void)sendMsg(c, "OK", -1);
      } else {
        (void)sendMsg(c, "ERR unknown request", -1);
      }
    }
    if (fd >= 0) ::close(fd);
    ::close(c);
  }
  for (auto& [n, f] : fds) ::close(f);
  ::unlink(path.c_str());
  return 0;
}

Status fdKeeperPut(const std::string& path, const std::string& name, int fd) {
  OC_ASSIGN_OR_RETURN(std::string reply, request(path, "PUT " + name, fd, nullptr));
  if (reply != "OK") return makeError("fd keeper: PUT " + name + ": " + reply);
  return {};
}

Result<int> fdKeeperGet(const std::string& path, const std::string& name) {
  int fd = -1;
  OC_ASSIGN_OR_RETURN(std::string reply, request(path, "GET " + name, -1, &fd));
  if (reply == "NONE") return -1;
  if (reply != "OK" || fd < 0) return makeError("fd keeper: GET " + name + ": " + reply);
  return fd;
}

bool fdKeeperAnswers(const std::string& path) { return request(path, "GET ", -1, nullptr).ok(); }

Status fdKeeperDel(const std::string& path, const std::string& name) {
  OC_ASSIGN_OR_RETURN(std::string reply, request(path, "DEL " + name, -1, nullptr));
  if (reply != "OK") return makeError("fd keeper: DEL " + name + ": " + reply);
  return {};
}

}  // namespace offcore
