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
  if (!l.creds_file.empty()) argv.insert(argv.end(), {"--creds", l.creds_file});
  if (!l.ca_file.empty()) argv.insert(argv.end(), {"--ca-file", l.ca_file});
  ApiClient agent(agent_sock, 10000);
  // The fd keeper first: it must outlive every restart of the service, and
  // goes with it when the service is removed (part_of): a keeper left
  // holding connections no service answers would hang their readers.
  std::string keeper = fdKeeperSocket(run_root_, node_, "images");
  if (!fdKeeperAnswers(keeper)) {
    auto k = agent.post("/v1/services", dumpJson(json{{"name", "images-fds"},
                                                      {"argv", {selfExe(), "image", "fd-keeper", "--socket", keeper}},
                                                      {"part_of", "images"}}));
    if (!k.ok()) return k.error();
    if (k->status != 201 && k->status != 409) {
      return makeError("the agent of node " + node_ + " refused to start the image fd keeper: " + k->body);
    }
    for (int i = 0; i < 100 && !fdKeeperAnswers(keeper); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
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
                                                     bool prefetch, bool fill, bool readahead,
                                                     uint64_t fill_rate) const {
  json req{
      {"diff_id", diff_id}, {"backend", backend}, {"prefetch", prefetch}, {"fill", fill}, {"readahead", readahead}};
  if (fill_rate > 0) req["fill_rate"] = fill_rate;
  OC_ASSIGN_OR_RETURN(std::string body, post("/v1/layers", dumpJson(req)));
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return makeError("the image service sent malformed JSON");
  return AttachedLayerInfo{j.value("id", ""), j.value("file", ""), j.value("backend", ""), j.value("size_bytes", 0ULL)};
}

Status ImageServiceClient::detach(const std::string& id) const {
  ApiClient c(imageServiceSocket(run_root_, node_), 15000);
  OC_TRY(c.call("DELETE", "/v1/layers/" + id));
  return {};
}

Status ImageServiceClient::idle() const {
  if (!running()) return {};
  // The kernel sends RELEASE after the unmount returns: give a layer that
  // was just unmounted a moment to show it.
  json busy = json::array();
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    OC_ASSIGN_OR_RETURN(std::string body, get("/v1/layers"));
    json arr = json::parse(body, nullptr, false);
    if (!arr.is_array()) return makeError("the image service of node " + node_ + " sent malformed JSON");
    busy = json::array();
    for (const auto& l : arr) {
      if (l.is_object() && l.value("in_use", true)) busy.push_back(l);
    }
    if (busy.empty()) return {};
  }
  std::string names;
  for (size_t i = 0; i < busy.size() && i < 3; ++i) names += (i ? ", " : "") + busy[i].value("diff_id", "?");
  if (busy.size() > 3) names += ", ...";
  return makeError("the image service of node " + node_ + " serves " + std::to_string(busy.size()) +
                   " lazy layer(s) in use by mounts (" + names +
                   "); remove the containers and images that use them (containerd's garbage collection then "
                   "releases the layers), or pass --force to cut them off: their readers get I/O errors and "
                   "the snapshotter starts a new image service for the next container");
}

Result<std::string> ImageServiceClient::get(const std::string& path) const {
  return ApiClient(imageServiceSocket(run_root_, node_), 15000).call("GET", path);
}

Result<std::string> ImageServiceClient::post(const std::string& path, const std::string& body) const {
  return ApiClient(imageServiceSocket(run_root_, node_), 120000).call("POST", path, body);
}

}  // namespace offcore
