#include "snapshotter/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "base/files.h"
#include "base/log.h"
#include "snapshotter/service.h"

namespace offcore {

namespace {

class GrpcSnapshotterServer final : public SnapshotterServer {
 public:
  explicit GrpcSnapshotterServer(std::unique_ptr<Snapshotter> sn)
      : sn_(std::move(sn)), service_(makeSnapshotsService(*sn_)) {}
  ~GrpcSnapshotterServer() override { shutdown(); }

  Status start(const std::string& socket_path) override {
    if (server_) return makeError("snapshotter server already started on " + path_);
    if (socket_path.size() >= sizeof(sockaddr_un{}.sun_path))
      return makeError("socket path " + socket_path + " is too long for a unix socket; pick a shorter one");
    struct stat st;
    if (::lstat(socket_path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return makeError(socket_path + " exists and is not a socket; remove it or pick another path");
      if (unixSocketAnswers(socket_path)) return makeError("another process serves " + socket_path + "; stop it first");
      if (::unlink(socket_path.c_str()) != 0) return errnoError("remove stale socket " + socket_path);
    }
    std::string dir = std::filesystem::path(socket_path).parent_path().string();
    if (!dir.empty()) OC_TRY(makeDirs(dir, 0755));
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix://" + socket_path, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (!server_) return makeError("cannot listen on unix://" + socket_path + " (see the gRPC message above)");
    path_ = socket_path;
    if (::chmod(socket_path.c_str(), 0660) != 0) {
      auto e = errnoError("chmod " + socket_path);
      shutdown();
      return e;
    }
    spdlog::info("snapshotter serving unix://{} (root {})", socket_path, sn_->root());
    return okStatus();
  }

  void shutdown() override {
    if (!server_) return;
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
    server_.reset();
    ::unlink(path_.c_str());
    spdlog::info("snapshotter stopped");
  }

 private:
  std::unique_ptr<Snapshotter> sn_;
  std::unique_ptr<grpc::Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string path_;
};

}  // namespace

std::unique_ptr<SnapshotterServer> makeSnapshotterServer(std::unique_ptr<Snapshotter> snapshotter) {
  return std::make_unique<GrpcSnapshotterServer>(std::move(snapshotter));
}

}  // namespace offcore
