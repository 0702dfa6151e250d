// ImageService (`offcore image serve --node N`): the node's lazy loader. It
// runs as a service of the node's agent, so it lives in the SoC domain (its
// cpuset, cgroup and network namespace) and the host's CPU stays out of
// fetching, decompressing, verifying and caching.
//
// For each attached layer it serves one read-only block file,
// /run/offcore/<node>/images/<id>.img (FUSE over a LazyDevice), that the
// host mounts as EROFS. Control is an HTTP/JSON API on
// /run/offcore/<node>/images.sock (docs/API.md, "Image service").
//
// Threads: the API runs on one EventLoop thread (attach blocks it while it
// fetches an index: a known cost, attaches are rare); each layer has libfuse
// worker threads and one prefetch thread; the registry handle pool and the
// cache are shared and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "image/catalog.h"

namespace offcore {

struct ImageServiceOptions {
  std::string node;
  std::string run_root = "/run/offcore";
  Catalog catalog;
  std::string cache_dir;                           // default /var/cache/offcore/<node>/chunks
  uint64_t cache_limit = 4ull << 30;               // bytes
  std::chrono::milliseconds fetch_timeout{10000};  // uncached reads fail with EIO after this
  bool plain_http = false;
  std::string creds_file;  // registry credentials ("" = Docker's config.json)
  std::string ca_file;     // CAs for HTTPS registries ("" = the system's)
};

std::string imageServiceSocket(const std::string& run_root, const std::string& node);
std::string imageServiceDir(const std::string& run_root, const std::string& node);

// Runs until SIGTERM/SIGINT; returns the exit code.
int runImageService(const ImageServiceOptions& options);

}  // namespace offcore
