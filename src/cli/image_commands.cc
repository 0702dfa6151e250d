// `offcore image ...`: convert images into lazily loaded block artifacts,
// run a node's image service, attach layers, list what was converted, and
// record prefetch profiles.
#include <nlohmann/json.hpp>

#include "base/byte_size.h"
#include "base/files.h"
#include "base/json.h"
#include "base/progress.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "disk/fd_keeper.h"
#include "image/catalog_open.h"
#include "image/converter.h"
#include "image/image_service.h"
#include "image/image_service_client.h"
#include "image/oci.h"
#include "image/prefetch_runner.h"

#include <iostream>
#include <iterator>

namespace offcore {

using nlohmann::json;

namespace {

void registerConvert(CLI::App* image, CliContext& ctx) {
  struct Opts {
    std::string source, mode = "layered", dest, catalog, compression = "zstd";
    std::string chunk = "256K", flat_size = "8G", work = "/var/tmp/offcore-convert", max_layer = "8G";
    std::string creds, ca_file;
    uint64_t max_ratio = LayerBounds{}.max_ratio;
    std::vector<std::string> to;
    bool plain_http = false, json = false, no_prefetch_list = false;
  };
  auto o = std::make_shared<Opts>();
  auto* c = image->add_subcommand("convert", "convert an image into lazily loaded layer volumes and/or chunked blobs");
  c->add_option("source", o->source, "HOST[:PORT]/REPO[:TAG] or oci:DIR[:TAG]")->required();
  c->add_option("--mode", o->mode, "layered (one EROFS per layer) or flat (one ext4 rootfs volume chain)")
      ->check(CLI::IsMember({"layered", "flat"}))
      ->capture_default_str();
  c->add_option("--to", o->to, "nvme-tcp://ADDR:PORT (a storage gateway) and/or registry (repeatable)")->required();
  c->add_option("--dest", o->dest, "registry reference for the lazy image (default SRC:TAG-offcore)");
  c->add_option("--catalog", o->catalog, kCatalogLocationHelp);
  c->add_option("--chunk-size", o->chunk, "registry chunk size")->capture_default_str();
  c->add_option("--compression", o->compression, "chunk compression: zstd, lz4 or none")
      ->check(CLI::IsMember({"zstd", "lz4", "none"}))
      ->capture_default_str();
  c->add_option("--flat-size", o->flat_size, "virtual size of flat rootfs volumes")->capture_default_str();
  c->add_option("--work-dir", o->work, "scratch space for blobs and images")->capture_default_str();
  c->add_option("--max-layer-bytes", o->max_layer, "refuse a layer whose files or tar stream pass this (0: no cap)")
      ->capture_default_str();
  c->add_option("--max-expansion-ratio", o->max_ratio,
                "refuse a layer expanding past this many times its compressed size (never below 64M; 0: off)")
      ->capture_default_str();
  c->add_flag("--plain-http", o->plain_http, "talk plain HTTP to non-loopback registries");
  c->add_option("--creds", o->creds,
                "registry credentials: {\"username\",\"password\"} or a Docker config (default ~/.docker/config.json)");
  c->add_option("--ca-file", o->ca_file, "PEM CAs for HTTPS registries (default: the system's)");
  c->add_flag("--json", o->json, "print the summary as JSON");
  c->add_flag("--no-prefetch-list", o->no_prefetch_list,
              "do not derive the default prefetch list (entrypoint, its loader and libraries) from the config");
  c->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      ConvertOptions co;
      co.source = o->source;
      co.layered = o->mode == "layered";
      for (const auto& t : o->to) {
        if (t == "registry")
          co.to_registry = true;
        else if (t.rfind("nvme-tcp://", 0) == 0)
          co.gateway = t;
        else
          return fail("image convert", makeError("bad --to '" + t + "' (use nvme-tcp://ADDR:PORT or registry)"));
      }
      co.dest = o->dest;
      co.registry.plain_http = o->plain_http;
      co.registry.creds_file = o->creds;
      co.registry.ca_file = o->ca_file;
      auto cat = openCatalog(ctx.config, catalogLocation(ctx.config, o->catalog));
      if (!cat.ok()) return fail("image convert", cat.error());
      co.catalog = *cat;
      co.work_dir = o->work;
      co.run_root = ctx.config.run_root;
      if (!o->no_prefetch_list) co.planner_argv = {selfExe(), "image", "plan-prefetch"};
      co.codec = o->compression == "lz4"    ? ChunkCodec::kLz4
                 : o->compression == "none" ? ChunkCodec::kRaw
                                            : ChunkCodec::kZstd;
      auto chunk = parseByteSize(o->chunk);
      if (!chunk.ok()) return fail("image convert", chunk.error());
      co.chunk_size = static_cast<uint32_t>(*chunk);
      auto flat = parseByteSize(o->flat_size);
      if (!flat.ok()) return fail("image convert", flat.error());
      co.flat_size = *flat;
      auto max_layer = parseByteSize(o->max_layer);
      if (!max_layer.ok()) return fail("image convert", max_layer.error());
      co.bounds.max_bytes = *max_layer;
      co.bounds.max_ratio = o->max_ratio;
      std::unique_ptr<ProgressBar> bar;
      auto progress = [&](const std::string& what, int done, int total) {
        if (!bar) bar = std::make_unique<ProgressBar>("convert", total);
        if (done < total)
          bar->step(what);
        else
          bar->finish();
      };
      auto r = convertImage(co, progress);
      bar.reset();
      if (!r.ok()) return fail("image convert", r.error());
      std::printf("%s", o->json ? (r->toJson() + "\n").c_str() : r->toText().c_str());
      return 0;
    };
  });
}

// The converter's prefetch planner (prefetch_runner.h): run by `image
// convert` in a private mount namespace; the start spec comes on stdin.
void registerPlanPrefetch(CLI::App* image, CliContext& ctx) {
  struct Opts {
    std::string work;
    std::vector<std::string> layers;
  };
  auto o = std::make_shared<Opts>();
  auto* p = image->add_subcommand("plan-prefetch", "(internal) plan an image's default prefetch list");
  p->group("");  // not listed: `image convert` runs it
  p->add_option("--work", o->work, "scratch directory for the mounts")->required();
  p->add_option("--layer", o->layers, "a layer's EROFS image, bottom first (repeatable)")->required();
  p->callback([&ctx, o] {
    ctx.action = [o] {
      std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
      auto spec = startSpecFromJson(in);
      if (!spec.ok()) return fail("image plan-prefetch", spec.error());
      auto plan = planFromLayerImages(o->layers, *spec, o->work);
      if (!plan.ok()) return fail("image plan-prefetch", plan.error());
      std::printf("%s\n", prefetchPlanToJson(*plan).c_str());
      return 0;
    };
  });
}

void registerServe(CLI::App* image, CliContext& ctx) {
  struct Opts {
    std::string node, catalog, cache_dir, cache_size = "4G", creds, ca_file;
    int fetch_timeout = 10;
    bool plain_http = false;
  };
  auto o = std::make_shared<Opts>();
  auto* s = image->add_subcommand("serve", "run a node's image service (the agent starts it; see `image attach`)");
  s->add_option("--node", o->node, "node")->required();
  s->add_option("--catalog", o->catalog, kCatalogLocationHelp);
  s->add_option("--cache-dir", o->cache_dir, "chunk cache (default /var/cache/offcore/NODE/chunks)");
  s->add_option("--cache-size", o->cache_size, "chunk cache limit")->capture_default_str();
  s->add_option("--fetch-timeout", o->fetch_timeout, "seconds an uncached read retries a lost back end before EIO")
      ->capture_default_str();
  s->add_flag("--plain-http", o->plain_http, "plain HTTP to non-loopback registries");
  s->add_option("--creds", o->creds, "registry credentials file (default ~/.docker/config.json)");
  s->add_option("--ca-file", o->ca_file, "PEM CAs for HTTPS registries");
  s->callback([&ctx, o] {
    ctx.action = [&ctx, o] {
      ImageServiceOptions so;
      so.node = o->node;
      so.run_root = ctx.config.run_root;
      auto cat = openCatalog(ctx.config, catalogLocation(ctx.config, o->catalog));
      if (!cat.ok()) return fail("image serve", cat.error());
      so.catalog = *cat;
      so.cache_dir = o->cache_dir.empty() ? "/var/cache/offcore/" + o->node + "/chunks" : o->cache_dir;
      auto size = parseByteSize(o->cache_size);
      if (!size.ok()) return fail("image serve", size.error());
      so.cache_limit = *size;
      so.fetch_timeout = std::chrono::seconds(o->fetch_timeout);
      so.plain_http = o->plain_http;
      so.creds_file = o->creds;
      so.ca_file = o->ca_file;
      return runImageService(so);
    };
  });
}

void registerFdKeeper(CLI::App* image, CliContext& ctx) {
  auto path = std::make_shared<std::string>();
  auto* k = image->add_subcommand("fd-keeper", "hold the image service's FUSE connections across its restarts");
  k->add_option("--socket", *path, "unix socket to serve")->required();
  k->callback([&ctx, path] { ctx.action = [path] { return runFdKeeper(*path); }; });
}

void registerAttachAndList(CLI::App* image, CliContext& ctx) {
  struct Opts {
    std::string ref, node, backend = "auto", catalog, cache_dir, cache_size, creds, ca_file, fill_rate = "64M";
    bool json = false, fill = false, plain_http = false, no_prefetch = false, no_readahead = false;
    int fetch_timeout = 10;
  };
  auto a = std::make_shared<Opts>();
  auto* attach = image->add_subcommand("attach", "attach every layer of a converted image to a node (layered mode)");
  attach->add_option("ref", a->ref, "the image reference as converted")->required();
  attach->add_option("--node", a->node, "node")->required();
  attach->add_option("--backend", a->backend, "auto, registry or gateway")
      ->check(CLI::IsMember({"auto", "registry", "gateway"}))
      ->capture_default_str();
  attach->add_option("--catalog", a->catalog, kCatalogLocationHelp);
  attach->add_option("--cache-dir", a->cache_dir, "chunk cache dir for a newly started service");
  attach->add_flag("--fill", a->fill, "after the profile, fetch every other chunk in the background");
  attach->add_option("--fill-rate", a->fill_rate, "the fill's bandwidth bound, bytes per second")
      ->capture_default_str();
  attach->add_flag("--no-prefetch", a->no_prefetch,
                   "do not prefetch the stored profile (or the list derived from the config at conversion)");
  attach->add_flag("--no-readahead", a->no_readahead, "fetch one chunk per miss, even for sequential readers");
  attach
      ->add_option("--fetch-timeout", a->fetch_timeout,
                   "seconds an uncached read waits for a lost back end before EIO (for a newly started service)")
      ->capture_default_str();
  attach->add_flag("--plain-http", a->plain_http, "plain HTTP to non-loopback registries");
  attach->add_option("--creds", a->creds, "registry credentials file for a newly started service");
  attach->add_option("--ca-file", a->ca_file, "PEM CAs for HTTPS registries (for a newly started service)");
  attach->add_flag("--json", a->json, "JSON output");
  attach->callback([&ctx, a] {
    ctx.action = [&ctx, a] {
      std::string where = catalogLocation(ctx.config, a->catalog);
      auto cat = openCatalog(ctx.config, where);
      if (!cat.ok()) return fail("image attach", cat.error());
      auto imgs = cat->images();
      if (!imgs.ok()) return fail("image attach", imgs.error());
      const ImageRecord* rec = nullptr;
      for (const auto& i : *imgs) {
        if (i.ref == a->ref) rec = &i;
      }
      if (!rec)
        return fail("image attach", makeError(a->ref + " is not in the catalog; run `offcore image convert` first"));
      auto fill_rate = parseByteSize(a->fill_rate);
      if (!fill_rate.ok() || *fill_rate == 0)
        return fail("image attach", makeError("--fill-rate takes a positive size per second, like 64M"));
      ImageServiceClient svc(ctx.config.run_root, a->node);
      ImageServiceLaunch launch{where, a->cache_dir, "", a->fetch_timeout, a->plain_http, a->creds, a->ca_file};
      if (auto s = svc.ensureRunning(launch); !s.ok()) return fail("image attach", s.error());
      json out = json::array();
      for (const auto& d : rec->diff_ids) {
        auto att = svc.attach(d, a->backend, !a->no_prefetch, a->fill, !a->no_readahead, *fill_rate);
        if (!att.ok()) return fail("image attach", att.error());
        out.push_back({{"diff_id", d},
                       {"id", att->id},
                       {"file", att->file},
                       {"backend", att->backend},
                       {"size_bytes", att->size_bytes}});
        if (!a->json) std::printf("%s  %s  (%s)\n", att->id.c_str(), att->file.c_str(), att->backend.c_str());
      }
      if (a->json) std::printf("%s\n", dumpJson(out, 2).c_str());
      return 0;
    };
  });

  auto l = std::make_shared<Opts>();
  auto* list = image->add_subcommand("list", "converted images (from the catalog)");
  list->add_option("--catalog", l->catalog, kCatalogLocationHelp);
  list->add_flag("--json", l->json, "JSON output");
  list->callback([&ctx, l] {
    ctx.action = [&ctx, l] {
      auto cat = openCatalog(ctx.config, catalogLocation(ctx.config, l->catalog));
      if (!cat.ok()) return fail("image list", cat.error());
      auto imgs = cat->images();
      if (!imgs.ok()) return fail("image list", imgs.error());
      json arr = json::array();
      std::vector<std::vector<std::string>> rows{{"IMAGE", "MODES", "LAYERS", "LAZY REF"}};
      for (const auto& i : *imgs) {
        std::string modes =
            std::string(i.layered ? "layered" : "") + (i.layered && i.flat ? "," : "") + (i.flat ? "flat" : "");
        arr.push_back({{"ref", i.ref},
                       {"lazy_ref", i.lazy_ref},
                       {"manifest_digest", i.manifest_digest},
                       {"diff_ids", i.diff_ids},
                       {"chain_ids", i.chain_ids},
                       {"layered", i.layered},
                       {"flat", i.flat},
                       {"start_files", i.start_files},
                       {"start_note", i.start_note}});
        rows.push_back({i.ref, modes, std::to_string(i.diff_ids.size()), i.lazy_ref});
      }
      std::printf("%s", l->json ? (dumpJson(arr, 2) + "\n").c_str() : renderTable(rows).c_str());
      return 0;
    };
  });

  auto ly = std::make_shared<Opts>();
  auto* layers = image->add_subcommand("layers", "layers attached to a node, with fetch and cache statistics");
  layers->add_option("--node", ly->node, "node")->required();
  layers->add_flag("--json", ly->json, "JSON output");
  layers->callback([&ctx, ly] {
    ctx.action = [&ctx, ly] {
      ImageServiceClient svc(ctx.config.run_root, ly->node);
      if (!svc.running()) return fail("image layers", makeError("node " + ly->node + " has no image service running"));
      auto body = svc.get("/v1/layers");
      auto cache = svc.get("/v1/cache");
      if (!body.ok()) return fail("image layers", body.error());
      json arr = json::parse(*body, nullptr, false);
      if (ly->json) {
        json c = json::parse(cache.valueOr("{}"), nullptr, false);
        std::printf("%s\n", dumpJson(json{{"layers", arr}, {"cache", c}}, 2).c_str());
        return 0;
      }
      std::vector<std::vector<std::string>> rows{
          {"LAYER", "BACKEND", "SIZE", "FETCHED", "FETCHES", "REQUESTS", "HITS", "PREFETCH", "FILE"}};
      for (const auto& x : arr) {
        const auto& s = x["stats"];
        rows.push_back({x.value("id", ""), x.value("backend", ""), humanBytes(x.value("size_bytes", 0ULL)),
                        humanBytes(s.value("bytes_fetched", 0ULL)), std::to_string(s.value("chunk_fetches", 0ULL)),
                        std::to_string(s.value("range_requests", 0ULL)), std::to_string(s.value("chunk_hits", 0ULL)),
                        x.value("prefetch_list", ""), x.value("file", "")});
      }
      std::printf("%s", renderTable(rows).c_str());
      return 0;
    };
  });
}

}  // namespace

void registerImageProfileCommand(CLI::App* image, CliContext& ctx);

void registerImageCommands(CLI::App& app, CliContext& ctx) {
  auto* image = app.add_subcommand("image", "container images as lazily loaded block volumes");
  image->require_subcommand(1);
  registerConvert(image, ctx);
  registerServe(image, ctx);
  registerFdKeeper(image, ctx);
  registerPlanPrefetch(image, ctx);
  registerAttachAndList(image, ctx);
  registerImageProfileCommand(image, ctx);
}

}  // namespace offcore
