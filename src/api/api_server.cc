#include "api/api_server.h"

#include <microhttpd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace offcore {
namespace {

// Per-connection upload state: MHD hands the body over in pieces.
struct Upload {
  std::string body;
  bool too_large = false;
};

constexpr size_t kMaxBody = 1 << 20;

MHD_Result collectQuery(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto* q = static_cast<std::map<std::string, std::string>*>(cls);
  (*q)[key] = value ? value : "";
  return MHD_YES;
}

MHD_Result handleRequest(void* cls, MHD_Connection* conn, const char* url, const char* method, const char*,
                         const char* upload_data, size_t* upload_size, void** con_cls) {
  auto* self = static_cast<ApiServer*>(cls);
  if (*con_cls == nullptr) {
    *con_cls = new Upload();
    return MHD_YES;
  }
  auto* upload = static_cast<Upload*>(*con_cls);
  if (*upload_size != 0) {
    if (upload->body.size() + *upload_size > kMaxBody)
      upload->too_large = true;
    else
      upload->body.append(upload_data, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }

  ApiResponse response;
  if (upload->too_large) {
    response = ApiResponse::error(413, "request body over 1 MiB");
  } else {
    ApiRequest request;
    request.method = method;
    request.path = url;
    request.body = std::move(upload->body);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, &collectQuery, &request.query);
    response = self->dispatch(request);
  }
  delete upload;
  *con_cls = nullptr;

  MHD_Response* r = MHD_create_response_from_buffer(response.body.size(), const_cast<char*>(response.body.data()),
                                                    MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", response.content_type.c_str());
  MHD_Result rc = MHD_queue_response(conn, static_cast<unsigned>(response.status), r);
  MHD_destroy_response(r);
  return rc;
}

}  // namespace

ApiServer::ApiServer(EventLoop& loop) : loop_(loop) {}

ApiServer::~ApiServer() {
  if (timer_) loop_.cancelTimer(timer_);
  if (epoll_fd_ >= 0) loop_.unwatchFd(epoll_fd_);
  if (daemon_) {
    // libmicrohttpd closes the listen socket it was given: closing it again
    // here could close an fd another thread has just been handed.
    MHD_stop_daemon(daemon_);
    listen_fd_ = -1;
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  // A successor (an agent or proxy restarted in place) may have bound the
  // same path since: remove only the socket that is still ours.
  struct stat st {};
  if (!socket_path_.empty() && ::stat(socket_path_.c_str(), &st) == 0 && st.st_ino == socket_ino_) {
    ::unlink(socket_path_.c_str());
  }
}

void ApiServer::route(const std::string& method, const std::string& path, ApiHandler handler) {
  routes_.push_back(Route{method, path, std::move(handler)});
}

Status ApiServer::listenFd(int fd) {
  listen_fd_ = fd;
  return startDaemon("fd " + std::to_string(fd));
}

Status ApiServer::startDaemon(const std::string& what) {
  // Requests run one at a time on the loop; a queued one (a burst of CNI
  // ADDs, ~0.2 s each) may wait a minute without being idle on our side:
  // the idle bound matches the CNI plugin's deadline (src/cni/main.cc).
  daemon_ = MHD_start_daemon(MHD_USE_EPOLL, 0, nullptr, nullptr, &handleRequest, this, MHD_OPTION_LISTEN_SOCKET,
                             listen_fd_, MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(120), MHD_OPTION_END);
  if (!daemon_) return makeError("libmicrohttpd refused to start on " + what);
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info) return makeError("libmicrohttpd has no epoll fd");
  epoll_fd_ = info->epoll_fd;
  OC_TRY(loop_.watchFd(epoll_fd_, EPOLLIN, [this](uint32_t) { pump(); }));
  pump();
  return okStatus();
}

ApiResponse ApiServer::dispatch(const ApiRequest& request) const {
  bool path_known = false;
  for (const auto& r : routes_) {
    bool prefix = !r.path.empty() && r.path.back() == '/';
    bool match =
        prefix ? request.path.rfind(r.path, 0) == 0 && request.path.size() > r.path.size() : request.path == r.path;
    if (!match) continue;
    path_known = true;
    if (r.method != request.method) continue;
    ApiRequest req = request;
    if (prefix) req.tail = request.path.substr(r.path.size());
    return r.handler(req);
  }
  if (path_known) return ApiResponse::error(405, request.method + " is not allowed on " + request.path);
  return ApiResponse::error(404, "no endpoint " + request.path + " (GET /v1 lists them)");
}

Status ApiServer::listenUnix(const std::string& socket_path) {
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof(addr.sun_path)) return makeError("socket path too long: " + socket_path);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return errnoError("socket");
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  ::unlink(socket_path.c_str());
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return errnoError("bind " + socket_path);
  }
  ::chmod(socket_path.c_str(), 0600);  // the API channel is root's only
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) == 0) socket_ino_ = st.st_ino;
  // A burst of local clients (kubelet starting a hundred pods: one CNI
  // plugin process each) must queue, not be refused: a full backlog makes
  // a unix-socket connect fail at once.
  if (::listen(listen_fd_, 1024) != 0) return errnoError("listen " + socket_path);
  socket_path_ = socket_path;

  return startDaemon(socket_path);
}

// Runs MHD's work and re-arms its timeout (connection timeouts, keep-alive).
void ApiServer::pump() {
  MHD_run(daemon_);
  if (timer_) {
    loop_.cancelTimer(timer_);
    timer_ = 0;
  }
  MHD_UNSIGNED_LONG_LONG timeout = 0;
  if (MHD_get_timeout(daemon_, &timeout) == MHD_YES) {
    timer_ = loop_.addTimer(std::chrono::milliseconds(timeout), [this] {
      timer_ = 0;
      pump();
    });
  }
}

}  // namespace offcore
