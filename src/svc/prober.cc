#include "svc/prober.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace offcore::svc {

namespace {

using Clock = std::chrono::steady_clock;

int remainingMs(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms < 0 ? 0 : static_cast<int>(ms);
}

std::string connectWithin(int fd, const sockaddr_in& addr, Clock::time_point deadline) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return "";
  if (errno != EINPROGRESS) return std::string("connect: ") + std::strerror(errno);
  pollfd p{fd, POLLOUT, 0};
  int n = ::poll(&p, 1, remainingMs(deadline));
  if (n == 0) return "connect: timed out";
  if (n < 0) return std::string("poll: ") + std::strerror(errno);
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == 0 ? "" : std::string("connect: ") + std::strerror(err);
}

std::string httpGet(int fd, const ProbeTask& task, Clock::time_point deadline) {
  std::string req = "GET " + (task.probe.path.empty() ? std::string("/") : task.probe.path) +
                    " HTTP/1.1\r\nHost: " + task.address + "\r\nUser-Agent: offcore-probe\r\nConnection: close\r\n\r\n";
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    return std::string("send: ") + std::strerror(errno);
  }
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, remainingMs(deadline));
    if (n == 0) return "http: no status line before the timeout";
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return "http: connection closed before a status line";
    head.append(buf, static_cast<size_t>(r));
  }
  // "HTTP/1.1 200 OK": 2xx and 3xx pass, as kubelet's httpGet does.
  auto sp = head.find(' ');
  int code = sp == std::string::npos ? 0 : std::atoi(head.c_str() + sp + 1);
  if (code >= 200 && code < 400) return "";
  return "http: status " + std::to_string(code);
}

}  // namespace

std::string probeOnce(const ProbeTask& task) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(task.probe.port);
  if (::inet_pton(AF_INET, task.address.c_str(), &addr.sin_addr) != 1) return "bad address " + task.address;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  auto deadline = Clock::now() + std::chrono::milliseconds(task.probe.timeout_ms);
  std::string err;
  if (!task.device.empty() && ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, task.device.c_str(),
                                           static_cast<socklen_t>(task.device.size())) != 0) {
    err = "bind to " + task.device + ": " + std::strerror(errno);
  }
  if (err.empty()) err = connectWithin(fd, addr, deadline);
  if (err.empty() && task.probe.type == "http") err = httpGet(fd, task, deadline);
  ::close(fd);
  return err;
}

Prober::~Prober() {
  for (auto& [name, r] : runners_) stopRunner(r);
}

void Prober::stopRunner(Runner& r) {
  r.stop->store(true);
  if (r.thread.joinable()) r.thread.join();
}

void Prober::set(const std::map<std::string, ProbeTask>& tasks, const std::map<std::string, bool>& last_known) {
  for (auto it = runners_.begin(); it != runners_.end();) {
    auto want = tasks.find(it->first);
    if (want != tasks.end() && want->second == it->second.task) {
      ++it;
      continue;
    }
    stopRunner(it->second);
    it = runners_.erase(it);
  }
  for (const auto& [backend, task] : tasks) {
    if (runners_.count(backend)) continue;
    Runner& r = runners_[backend];
    r.task = task;
    r.stop = std::make_shared<std::atomic<bool>>(false);
    auto known = last_known.find(backend);
    bool start_healthy = known == last_known.end() || known->second;
    r.thread = std::thread([task = task, backend = backend, stop = r.stop, report = report_, start_healthy] {
      // Kubernetes semantics: `failureThreshold` consecutive failures make a
      // healthy backend unhealthy, `successThreshold` successes bring it back.
      // It is reported once at the first verdict.
      bool healthy = start_healthy, reported = false;
      uint32_t fails = 0, oks = 0;
      while (!stop->load()) {
        auto started = Clock::now();
        std::string err = probeOnce(task);
        if (err.empty()) {
          ++oks;
          fails = 0;
        } else {
          ++fails;
          oks = 0;
        }
        bool next = healthy;
        if (healthy && fails >= task.probe.failure_threshold) next = false;
        if (!healthy && oks >= task.probe.success_threshold) next = true;
        if (next != healthy || (!reported && (oks > 0 || !next))) {
          healthy = next;
          reported = true;
          report({backend, task.probe.name, healthy, err});
        }
        auto wake = started + std::chrono::milliseconds(task.probe.interval_ms);
        while (!stop->load() && Clock::now() < wake) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
}

}  // namespace offcore::svc
