// ApiServer: libmicrohttpd driven from an EventLoop. MHD runs in external
// epoll mode, so handlers run on the loop thread and may touch loop-owned
// objects directly (docs/CONCURRENCY.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "api/api.h"
#include "base/event_loop.h"
#include "base/result.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace offcore {

class ApiServer {
 public:
  explicit ApiServer(EventLoop& loop);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // path ending in '/' matches that prefix; otherwise an exact match.
  void route(const std::string& method, const std::string& path, ApiHandler handler);

  // Binds a unix socket at socket_path (replacing a stale one), mode 0600.
  Status listenUnix(const std::string& socket_path);
  // Serves on an already bound, listening socket (e.g. TCP), which it owns
  // from now on.
  Status listenFd(int fd);

  // Dispatches without HTTP, for tests of handlers and for the fuzzer.
  ApiResponse dispatch(const ApiRequest& request) const;

 private:
  struct Route {
    std::string method;
    std::string path;
    ApiHandler handler;
  };
  void pump();
  Status startDaemon(const std::string& what);

  EventLoop& loop_;
  std::vector<Route> routes_;
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  EventLoop::TimerId timer_ = 0;
  std::string socket_path_;
  unsigned long socket_ino_ = 0;  // the inode we bound, so we never unlink a successor's
};

}  // namespace offcore
