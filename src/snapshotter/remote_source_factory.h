// The one place the snapshotter command gets its RemoteSource. The default
// (no_remote_source.cc) returns nullptr: a plain overlayfs snapshotter. The
// image subsystem replaces that file with one that builds the real source.
#pragma once

#include <memory>
#include <string>

#include "base/config.h"
#include "base/result.h"
#include "snapshotter/remote_source.h"

namespace offcore {

// Everything a remote source may need from the snapshotter's command line.
struct RemoteSourceConfig {
  std::string node;  // the offcore node whose image service serves layers
  RemoteMode mode = RemoteMode::kLayered;
  std::string root;  // the snapshotter's --root, for the source's mounts
  std::string run_root = "/run/offcore";
  std::string catalog_dir;       // where `offcore image convert` recorded images: a directory or etcd://
  Config config;                 // this process's (an etcd catalog's client options)
  std::string backend = "auto";  // layered: auto, registry or gateway
  bool plain_http = false;
  std::string creds_file, ca_file;    // registry credentials and CAs for the image service
  std::string cache_dir, cache_size;  // for an image service the source starts
  int fetch_timeout_s = 10;
  bool prefetch = true;
  int flat_spares = 4;  // flat: images (the latest pulled) that keep a rootfs made ahead; 0: none
  uint64_t fill_below = 8u << 20;
};

// nullptr means "no remote layers".
Result<std::unique_ptr<RemoteSource>> makeRemoteSource(const RemoteSourceConfig& config);

}  // namespace offcore
