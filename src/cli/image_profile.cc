// `offcore image profile REF --node N -- CMD...`: runs CMD once inside the
// image's rootfs (assembled from the node's lazily attached layers) and
// stores, per layer, the chunks it touched in first-touch order. Later
// attaches prefetch those chunks first.
//
// The rootfs is an overlay of the layers' EROFS mounts with a scratch upper,
// and CMD runs chrooted in fresh mount and PID namespaces. Page caches are
// dropped first so that every read reaches the image service and is seen.
#include <sys/mount.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "image/catalog_open.h"
#include "image/converter.h"
#include "image/image_service_client.h"

namespace offcore {

using nlohmann::json;

namespace {

struct ProfileMounts {
  std::vector<std::string> dirs;  // unmounted in reverse order
  std::string scratch;
  ~ProfileMounts() {
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
    if (!scratch.empty()) (void)removeTree(scratch);
  }
};

int profileImage(const CliContext& ctx, const std::string& ref, const std::string& node,
                 const std::string& catalog_flag, const std::string& backend, const std::vector<std::string>& cmd) {
  std::string where = catalogLocation(ctx.config, catalog_flag);
  auto opened = openCatalog(ctx.config, where);
  if (!opened.ok()) return fail("image profile", opened.error());
  Catalog& cat = *opened;
  auto imgs = cat.images();
  if (!imgs.ok()) return fail("image profile", imgs.error());
  const ImageRecord* rec = nullptr;
  for (const auto& i : *imgs) {
    if (i.ref == ref) rec = &i;
  }
  if (!rec || !rec->layered) {
    return fail("image profile", makeError(ref + " has no layered conversion in the catalog; convert it first"));
  }
  ImageServiceClient svc(ctx.config.run_root, node);
  if (auto s = svc.ensureRunning(ImageServiceLaunch{where, "", "", 10, false, "", ""}); !s.ok()) {
    return fail("image profile", s.error());
  }
  ProfileMounts m;
  char tmpl[] = "/var/tmp/offcore-profile-XXXXXX";
  if (!::mkdtemp(tmpl)) return fail("image profile", errnoError("mkdtemp"));
  m.scratch = tmpl;
  std::vector<std::string> ids;
  std::string lower;
  for (size_t i = 0; i < rec->diff_ids.size(); ++i) {
    auto att = svc.attach(rec->diff_ids[i], backend, false, false);
    if (!att.ok()) return fail("image profile", att.error());
    ids.push_back(att->id);
    std::string dir = m.scratch + "/l" + std::to_string(i);
    (void)makeDirs(dir);
    if (::mount(att->file.c_str(), dir.c_str(), "erofs", MS_RDONLY, nullptr) != 0) {
      return fail("image profile", errnoError("mount erofs " + att->file));
    }
    m.dirs.push_back(dir);
    lower = dir + (lower.empty() ? "" : ":" + lower);
  }
  std::string root = m.scratch + "/root", upper = m.scratch + "/upper", work = m.scratch + "/work";
  for (const auto& d : {root, upper, work}) (void)makeDirs(d);
  std::string opts = "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work;
  if (::mount("overlay", root.c_str(), "overlay", 0, opts.c_str()) != 0) {
    return fail("image profile", errnoError("mount overlay"));
  }
  m.dirs.push_back(root);
  ::sync();
  (void)writeKernelFile("/proc/sys/vm/drop_caches", "3");
  for (const auto& id : ids) (void)svc.post("/v1/layers/" + id + "/trace-reset", "{}");
  (void)makeDirs(root + "/proc");
  // env runs on the host side of the chroot: the image need not have one.
  std::vector<std::string> argv{"env",
                                "-i",
                                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                "unshare",
                                "--mount",
                                "--pid",
                                "--fork",
                                "--mount-proc=" + root + "/proc",
                                "chroot",
                                root};
  argv.insert(argv.end(), cmd.begin(), cmd.end());
  auto run = runCapture(argv);
  if (!run.ok()) return fail("image profile", run.error());
  std::printf("%s", run->out.c_str());
  if (run->exit_code != 0) {
    std::fprintf(stderr, "%s", run->err.c_str());
    return fail("image profile",
                makeError("the command exited with " + std::to_string(run->exit_code) + "; no profile stored"));
  }
  uint64_t total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    json j = json::parse(svc.get("/v1/layers/" + ids[i]).valueOr("{}"), nullptr, false);
    std::vector<uint32_t> chunks =
        j.is_discarded() ? std::vector<uint32_t>{} : j.value("trace", std::vector<uint32_t>{});
    total += chunks.size();
    if (auto s = cat.setProfile(rec->diff_ids[i], chunks); !s.ok()) return fail("image profile", s.error());
    std::printf("layer %s: %zu chunks touched\n", ids[i].c_str(), chunks.size());
  }
  std::printf("profile stored for %s: %llu chunks in %zu layers\n", ref.c_str(), static_cast<unsigned long long>(total),
              ids.size());
  return 0;
}

}  // namespace

void registerImageProfileCommand(CLI::App* image, CliContext& ctx) {
  struct Opts {
    std::string ref, node, catalog, backend = "auto";
    std::vector<std::string> cmd;
  };
  auto o = std::make_shared<Opts>();
  auto* p = image->add_subcommand("profile", "run a command in the image once and store the chunks it reads");
  p->add_option("ref", o->ref, "the image reference as converted")->required();
  p->add_option("--node", o->node, "node whose image service serves the layers")->required();
  p->add_option("--catalog", o->catalog, kCatalogLocationHelp);
  p->add_option("--backend", o->backend, "auto, registry or gateway")->capture_default_str();
  p->add_option("cmd", o->cmd, "-- CMD [ARGS...] run in the image")->required();
  p->callback([&ctx, o] {
    ctx.action = [&ctx, o] { return profileImage(ctx, o->ref, o->node, o->catalog, o->backend, o->cmd); };
  });
}

}  // namespace offcore
