#include "image/image_service_client.h"

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "disk/fd_keeper.h"
#include "image/image_service.h"

namespace offcore {

using nlohmann::json;

bool ImageServiceClient::running() const {
  std::string sock = imageServiceSocket(run_root_, node_);
  return pathExists(sock) && ApiClient(sock, 1000).get("/v1/cache").ok();
}

Status ImageServiceClient::ensureRunning(const ImageServiceLaunch& l) const {
  if (running()) return {};
  std::string agent_sock = run_root_ + "/" + node_ + "/api.sock";
  if (!pathExists(agent_sock)) {
    return makeError("node " + node_ + " is not up (no agent at " + agent_sock + "); run `offcore dpu up --name " +
                     node_ + "`");
  }
  std::vector<std::string> argv{selfExe(),
                                "image",
                                "serve",
                                "--node",
                                node_,
                                "--catalog",
                                l.catalog_dir,
                                "--fetch-timeout",
                                std::to_string(l.fetch_timeout_s)};
  if (!l.cache_dir.empty()) argv.insert(argv.end(), {"--cache-dir", l.cache_dir});
  if (!l.cache_size.empty()) argv.insert(argv.end(), {"--cache-size", l.cache_size});
  if (l.plain_http) argv.push_back("--plain-http");
  ApiClient agent(agent_sock, 10000);
  // The fd keeper first: it must outlive every restart of the service.
  std::string keeper = fdKeeperSocket(run_root_, node_, "images");
  if (!pathExists(keeper)) {
    auto k = agent.post(
        "/v1/services",
        dumpJson(json{{"name", "images-fds"}, {"argv", {selfExe(), "image", "fd-keeper", "--socket", keeper}}}));
    if (!k.ok()) return k.error();
    for (int i = 0; i < 100 && !pathExists(keeper); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto added = agent.post("/v1/services", dumpJson(json{{"name", "images"}, {"argv", argv}}));
  if (!added.ok()) return added.error();
  if (added->status != 201 && added->status != 409) {
    return makeError("the agent of node " + node_ + " refused to start the image service: " + added->body);
  }
  for (int i = 0; i < 200; ++i) {
    if (running()) return {};
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto lines = splitLines(readFile(run_root_ + "/" + node_ + "/images.log").valueOr(""));
  return makeError("the image service of node " + node_ + " did not come up" +
                   (lines.empty() ? std::string() : ": " + lines.back()));
}

Result<AttachedLayerInfo> ImageServiceClient::attach(const std::string& diff_id, const std::string& backend,
                                                     bool prefetch, bool fill) const {
  OC_ASSIGN_OR_RETURN(
      std::string body,
      post("/v1/layers",
           dumpJson(json{{"diff_id", diff_id}, {"backend", backend}, {"prefetch", prefetch}, {"fill", fill}})));
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return makeError("the image service sent malformed JSON");
  return AttachedLayerInfo{j.value("id", ""), j.value("file", ""), j.value("backend", ""), j.value("size_bytes", 0ULL)};
}

Status ImageServiceClient::detach(const std::string& id) const {
  ApiClient c(imageServiceSocket(run_root_, node_), 15000);
  OC_TRY(c.call("DELETE", "/v1/layers/" + id));
  return {};
}

Result<std::string> ImageServiceClient::get(const std::string& path) const {
  return ApiClient(imageServiceSocket(run_root_, node_), 15000).call("GET", path);
}

Result<std::string> ImageServiceClient::post(const std::string& path, const std::string& body) const {
  return ApiClient(imageServiceSocket(run_root_, node_), 120000).call("POST", path, body);
}

}  // namespace offcore
