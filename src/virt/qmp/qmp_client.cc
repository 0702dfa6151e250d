#include "virt/qmp/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace offcore::virt {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

Result<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& socket_path,
                                                      std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof(addr.sun_path)) return makeError("QMP socket path too long: " + socket_path);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  auto deadline = Clock::now() + timeout;
  int fd = -1;
  // QEMU creates the socket shortly after it starts: retry until the deadline.
  while (true) {
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoError("socket");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
    int err = errno;
    ::close(fd);
    if ((err != ENOENT && err != ECONNREFUSED) || Clock::now() >= deadline) {
      return errnoError("connect to QMP socket " + socket_path + " (is the VM running?)", err);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::unique_ptr<QmpClient> client(new QmpClient(fd));
  OC_ASSIGN_OR_RETURN(json greeting, client->readMessage(deadline));
  if (!greeting.contains("QMP")) return makeError("QMP socket " + socket_path + " did not greet with QMP");
  auto caps = client->execute("qmp_capabilities", nullptr, std::chrono::milliseconds(msLeft(deadline) + 1));
  if (!caps.ok()) return caps.error().wrap("QMP negotiation");
  return client;
}

void QmpClient::keepEvent(json event) {
  if (events_.size() >= 256) events_.pop_front();  // bounded: nobody waits for old ones
  events_.push_back(std::move(event));
}

QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

Status QmpClient::sendLine(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("QMP send");
    off += static_cast<size_t>(n);
  }
  return okStatus();
}

Result<json> QmpClient::readMessage(Clock::time_point deadline) {
  while (true) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      auto doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (doc.is_discarded() || !doc.is_object()) return makeError("QMP: a reply that is not a JSON object");
      return doc;
    }
    if (buffer_.size() > kMaxLineBytes) return makeError("QMP: a line over 1 MiB; closing the session");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, msLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errnoError("QMP poll");
    if (r == 0) return makeError("QMP: no answer in time (is QEMU hung?)", ETIMEDOUT);
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("QMP recv");
    if (n == 0) return makeError("QMP: QEMU closed the socket", ECONNRESET);
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<json> QmpClient::execute(const std::string& command, const json& arguments, std::chrono::milliseconds timeout) {
  uint64_t id = next_id_++;
  json req{{"execute", command}, {"id", id}};
  if (!arguments.is_null()) req["arguments"] = arguments;
  OC_TRY(sendLine(req.dump() + "\n"));
  auto deadline = Clock::now() + timeout;
  while (true) {
    OC_ASSIGN_OR_RETURN(json msg, readMessage(deadline));
    if (msg.contains("event")) {
      keepEvent(std::move(msg));
      continue;
    }
    auto rid = msg.find("id");
    if (rid == msg.end() || *rid != id) continue;  // a late reply to a timed-out command
    if (auto err = msg.find("error"); err != msg.end() && err->is_object()) {
      return makeError("QMP " + command + ": " + err->value("class", std::string("Error")) + ": " +
                       err->value("desc", std::string("(no description)")));
    }
    auto ret = msg.find("return");
    if (ret == msg.end()) return makeError("QMP " + command + ": reply without \"return\"");
    return *ret;
  }
}

Result<json> QmpClient::waitEvent(const std::string& name, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if ((*it).value("event", std::string()) == name) {
        json data = it->value("data", json::object());
        events_.erase(it);
        return data;
      }
    }
    auto msg = readMessage(deadline);
    if (!msg.ok()) return msg.error().wrap("waiting for QMP event " + name);
    if (msg->contains("event")) keepEvent(std::move(*msg));
  }
}

}  // namespace offcore::virt
