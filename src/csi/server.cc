#include "csi/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "base/files.h"
#include "base/log.h"

namespace offcore::csi {

Result<std::string> socketPathOf(const std::string& endpoint) {
  std::string path = endpoint;
  if (path.rfind("unix://", 0) == 0) path = path.substr(7);
  if (path.empty() || path[0] != '/') {
    return makeError("endpoint '" + endpoint + "' is not a unix socket (unix:///path or /path)");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return makeError("socket path " + path + " is too long for a unix socket; pick a shorter one");
  }
  return path;
}

Result<std::unique_ptr<CsiServer>> CsiServer::start(const std::string& endpoint,
                                                    std::vector<std::unique_ptr<grpc::Service>> services) {
  OC_ASSIGN_OR_RETURN(std::string path, socketPathOf(endpoint));
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return makeError(path + " exists and is not a socket; remove it or pick another path");
    if (unixSocketAnswers(path)) return makeError("another process serves " + path + "; stop it first");
    if (::unlink(path.c_str()) != 0) return errnoError("remove stale socket " + path);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) OC_TRY(makeDirs(dir, 0755));
  std::unique_ptr<CsiServer> s(new CsiServer());
  s->services_ = std::move(services);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + path, grpc::InsecureServerCredentials());
  builder.SetMaxReceiveMessageSize(1 << 20);
  grpc::ResourceQuota quota("offcore-csi");
  quota.SetMaxThreads(kMaxThreads);
  builder.SetResourceQuota(quota);
  for (auto& svc : s->services_) builder.RegisterService(svc.get());
  s->server_ = builder.BuildAndStart();
  if (!s->server_) return makeError("cannot listen on unix://" + path + " (see the gRPC message above)");
  s->path_ = path;
  if (::chmod(path.c_str(), 0660) != 0) {
    auto e = errnoError("chmod " + path);
    s->shutdown();
    return e;
  }
  return s;
}

CsiServer::~CsiServer() { shutdown(); }

void CsiServer::shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
  server_.reset();
  ::unlink(path_.c_str());
}

void CsiServer::wait() {
  if (server_) server_->Wait();
}

}  // namespace offcore::csi
