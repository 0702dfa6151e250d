// ImageServiceClient: how the snapshotter and the CLI (host side) talk to a
// node's image service (SoC side) over its unix socket, starting it as a
// service of the node's agent when it is not running yet.
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

struct AttachedLayerInfo {
  std::string id, file, backend;
  uint64_t size_bytes = 0;
};

struct ImageServiceLaunch {
  std::string catalog_dir;  // a directory or etcd://... (the service opens it with its own config)
  std::string cache_dir;    // empty: the service's default
  std::string cache_size;   // e.g. "4G"; empty: default
  int fetch_timeout_s = 10;
  bool plain_http = false;
  std::string creds_file;  // registry credentials for the service ("" = Docker's config.json)
  std::string ca_file;
};

class ImageServiceClient {
 public:
  ImageServiceClient(std::string run_root, std::string node) : run_root_(std::move(run_root)), node_(std::move(node)) {}

  bool running() const;
  // Asks the node's agent to run `offcore image serve` and waits for its socket.
  Status ensureRunning(const ImageServiceLaunch& launch) const;
  // fill_rate: the fill's bound in bytes/s (0: the service's default).
  Result<AttachedLayerInfo> attach(const std::string& diff_id, const std::string& backend, bool prefetch, bool fill,
                                   bool readahead = true, uint64_t fill_rate = 0) const;
  Status detach(const std::string& id) const;
  // OK when the service is not running or serves no layer; otherwise an
  // error naming the layers in use and what to do (a stop would cut them off).
  Status idle() const;
  Result<std::string> get(const std::string& path) const;  // raw JSON
  Result<std::string> post(const std::string& path, const std::string& body) const;

 private:
  std::string run_root_, node_;
};

}  // namespace offcore
