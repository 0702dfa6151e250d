// `offcore snapshotter`: the containerd proxy snapshotter daemon. containerd
// reaches it through `[proxy_plugins.NAME] type = "snapshot" address = SOCK`.
#include <signal.h>

#include "base/byte_size.h"
#include "base/log.h"
#include "cli/common.h"
#include "image/catalog_open.h"
#include "snapshotter/remote_source_factory.h"
#include "snapshotter/server.h"

namespace offcore {

namespace {

struct SnapshotterOpts {
  std::string node, socket, root = "/var/lib/offcore/snapshotter", mode = "layered", log_level;
  std::string catalog, backend = "auto", cache_dir, cache_size;
  int fetch_timeout = 10;
  bool plain_http = false;
  std::string creds, ca_file, fill_below = "8M";
  bool no_prefetch = false;
  int flat_spares = 4;
};

int runSnapshotter(const SnapshotterOpts& o, const Config& config) {
  if (!o.log_level.empty()) spdlog::set_level(spdlog::level::from_str(o.log_level));
  // Stop signals are taken by sigwait only: block them before gRPC starts threads.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  RemoteMode mode = o.mode == "flat" ? RemoteMode::kFlat : RemoteMode::kLayered;
  RemoteSourceConfig rc;
  rc.node = o.node;
  rc.mode = mode;
  rc.root = o.root;
  rc.run_root = config.run_root;
  rc.catalog_dir = catalogLocation(config, o.catalog);
  rc.config = config;
  rc.backend = o.backend;
  rc.plain_http = o.plain_http;
  rc.creds_file = o.creds;
  rc.prefetch = !o.no_prefetch;
  rc.flat_spares = o.flat_spares;
  auto fill = parseByteSize(o.fill_below);
  if (!fill.ok()) return fail("snapshotter", fill.error());
  rc.fill_below = *fill;
  rc.ca_file = o.ca_file;
  rc.cache_dir = o.cache_dir;
  rc.cache_size = o.cache_size;
  rc.fetch_timeout_s = o.fetch_timeout;
  auto source = makeRemoteSource(rc);
  if (!source.ok()) return fail("snapshotter: remote source", source.error());
  bool remote = *source != nullptr;
  auto sn = Snapshotter::open(o.root, std::move(*source));
  if (!sn.ok()) return fail("snapshotter", sn.error());
  auto server = makeSnapshotterServer(std::move(*sn));
  auto st = server->start(o.socket);
  if (!st.ok()) return fail("snapshotter", st.error());
  std::printf("snapshotter for node %s on %s (root %s, %s)\n", o.node.c_str(), o.socket.c_str(), o.root.c_str(),
              remote ? ("remote layers, " + o.mode + " mode").c_str() : "overlayfs only");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&mask, &sig);
  spdlog::info("signal {}: stopping", sig);
  server->shutdown();
  return 0;
}

}  // namespace

void registerSnapshotterCommand(CLI::App& app, CliContext& ctx) {
  auto o = std::make_shared<SnapshotterOpts>();
  auto* cmd = app.add_subcommand("snapshotter", "serve a containerd proxy snapshotter on a unix socket");
  cmd->add_option("--node", o->node, "the node whose image service provides remote layers")->required();
  cmd->add_option("--socket", o->socket, "unix socket containerd's proxy_plugins address points at")->required();
  cmd->add_option("--root", o->root, "snapshot directories and metadata")->capture_default_str();
  cmd->add_option("--mode", o->mode, "remote images as overlay layers or as one flat rootfs")
      ->check(CLI::IsMember({"layered", "flat"}))
      ->capture_default_str();
  cmd->add_option("--log-level", o->log_level, "trace|debug|info|warn|error (default: the config's)");
  cmd->add_option("--catalog", o->catalog, kCatalogLocationHelp);
  cmd->add_option("--backend", o->backend, "layered mode: where layers are read from (auto, registry, gateway)")
      ->check(CLI::IsMember({"auto", "registry", "gateway"}))
      ->capture_default_str();
  cmd->add_flag("--plain-http", o->plain_http, "plain HTTP to non-loopback registries");
  cmd->add_option("--creds", o->creds, "registry credentials file (default ~/.docker/config.json)");
  cmd->add_option("--ca-file", o->ca_file, "PEM CAs for HTTPS registries");
  cmd->add_flag("--no-prefetch", o->no_prefetch,
                "do not prefetch layers (neither a measured profile nor the list derived at conversion)");
  cmd->add_option("--flat-spares", o->flat_spares,
                  "flat mode: how many images (the latest pulled or used) keep a rootfs made ahead of their next "
                  "container create; each holds a gateway clone and a disk in the SoC until the image goes or the "
                  "snapshotter stops (0: none)")
      ->check(CLI::Range(0, 64))
      ->capture_default_str();
  cmd->add_option("--fill-below", o->fill_below,
                  "fetch layers whose image is at most this big whole, in the background (0: never)")
      ->capture_default_str();
  cmd->add_option("--cache-dir", o->cache_dir, "chunk cache of an image service this snapshotter starts");
  cmd->add_option("--cache-size", o->cache_size, "its size limit (e.g. 4G)");
  cmd->add_option("--fetch-timeout", o->fetch_timeout, "seconds an uncached read waits for a lost back end before EIO")
      ->capture_default_str();
  cmd->callback([&ctx, o] { ctx.action = [&ctx, o] { return runSnapshotter(*o, ctx.config); }; });
}

}  // namespace offcore
