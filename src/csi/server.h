// CsiServer: the CSI services on a unix socket (the endpoint kubelet and
// the sidecars dial). One server per `offcore csi` process.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::csi {

// "unix:///path" or "/path" -> "/path"; anything else is an error.
Result<std::string> socketPathOf(const std::string& endpoint);

class CsiServer {
 public:
  // Listens on the socket (0660; a stale socket left by a killed plugin is
  // replaced, a live one is an error) with bounded requests (1 MiB) and
  // threads (kMaxThreads): a CSI peer gets no more.
  static Result<std::unique_ptr<CsiServer>> start(const std::string& endpoint,
                                                  std::vector<std::unique_ptr<grpc::Service>> services);
  ~CsiServer();
  CsiServer(const CsiServer&) = delete;
  CsiServer& operator=(const CsiServer&) = delete;
  // Stops accepting, lets calls in progress finish (5 s at most), removes the socket.
  void shutdown();
  void wait();
  const std::string& path() const { return path_; }

  static constexpr int kMaxThreads = 16;

 private:
  CsiServer() = default;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::string path_;
};

}  // namespace offcore::csi
