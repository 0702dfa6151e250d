// `offcore demo`, images: a registry host on the fabric (Debian's
// docker-registry), a small image built from this machine's Debian packages
// (scripts/demo-image.sh), `offcore image convert` to a lazy image, then a
// private containerd pulls and runs it twice, cold each time: with its own
// overlayfs snapshotter (the original image) and with the offcore proxy
// snapshotter (the lazy image, layers served by the node's SoC). Times and
// the bytes that crossed the SoC's uplink are shown side by side.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "cli/demo_common.h"
#include "dpu/netns.h"
#include "kv/etcd_client.h"

#ifndef OFFCORE_SOURCE_DIR
#define OFFCORE_SOURCE_DIR "."
#endif

namespace offcore::demo {

namespace {

using nlohmann::json;

// Versioned: a change to scripts/demo-image.sh gets a new directory.
const char* kImageCache = "/var/cache/offcore/demo-image-v2";

struct ColdStart {
  double pull_s = 0, run_s = 0;
  uint64_t fetched = 0;
  std::string out;
};

// Builds the demo image once (cached: the package files do not change
// between runs); returns whether it was built now.
Result<bool> ensureImage() {
  if (pathExists(std::string(kImageCache) + "/index.json")) return false;
  std::string script = std::string(OFFCORE_SOURCE_DIR) + "/scripts/demo-image.sh";
  if (!pathExists(script)) return makeError("the image script " + script + " is missing (run from a source checkout)");
  std::string tmp = std::string(kImageCache) + ".tmp-" + std::to_string(::getpid());
  (void)removeTree(tmp);
  OC_TRY(makeDirs("/var/cache/offcore"));
  Status s = run({"bash", script, tmp});
  if (!s.ok()) {
    (void)removeTree(tmp);
    return s.error();
  }
  if (::rename(tmp.c_str(), kImageCache) != 0) {
    Error e = errnoError("rename " + tmp);
    (void)removeTree(tmp);
    // Another demo built it at the same time: use theirs.
    if (pathExists(std::string(kImageCache) + "/index.json")) return true;
    return e;
  }
  return true;
}

// containerd's shims outlive it; ours carry our private address in argv.
void killShims(const std::string& address) {
  DIR* d = ::opendir("/proc");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    auto cmd = readFile("/proc/" + std::string(e->d_name) + "/cmdline");
    if (!cmd.ok()) continue;
    std::string c = *cmd;
    for (auto& ch : c)
      if (ch == '\0') ch = ' ';
    if (c.find("containerd-shim") != std::string::npos && c.find("-address " + address + " ") != std::string::npos) {
      ::kill(pid, SIGKILL);
    }
  }
  ::closedir(d);
}

uint64_t uplinkRx(Context& ctx) {
  NodeLayout l = ctx.nodes.layout(ctx.node);
  auto c = linkCounters(l.soc_netns, l.uplink_soc_if);
  return c.ok() ? c->rx_bytes : 0;
}

// Every cgroup directory under <cgroup_root> in every hierarchy. runc makes
// the containers' cgroups (`ctr run --cgroup`) in hierarchies the node does
// not use, with their parents; the step removes the ones it made.
std::vector<std::string> cgroupDirs(const std::string& root) {
  std::vector<std::string> dirs;
  std::function<void(const std::string&)> walk = [&](const std::string& d) {
    DIR* dir = ::opendir(d.c_str());
    if (!dir) return;
    dirs.push_back(d);
    while (dirent* e = ::readdir(dir)) {
      std::string n = e->d_name;
      if (e->d_type == DT_DIR && n != "." && n != "..") walk(d + "/" + n);
    }
    ::closedir(dir);
  };
  DIR* top = ::opendir("/sys/fs/cgroup");
  if (!top) return dirs;
  while (dirent* e = ::readdir(top)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") walk("/sys/fs/cgroup/" + n + "/" + root);
  }
  ::closedir(top);
  if (pathExists("/sys/fs/cgroup/cgroup.controllers")) walk("/sys/fs/cgroup/" + root);
  return dirs;
}

void removeNewCgroups(const std::string& root, const std::vector<std::string>& before) {
  std::vector<std::string> now = cgroupDirs(root);
  std::sort(now.rbegin(), now.rend());  // children before parents
  for (const auto& d : now) {
    if (std::find(before.begin(), before.end(), d) == before.end()) ::rmdir(d.c_str());
  }
}

std::string mib(uint64_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  return b;
}

// Debian's docker-registry on a new fabric host; returns ADDR:PORT.
Result<std::string> startRegistry(Context& ctx, Cleanup& undo, const std::string& dir) {
  auto t = Clock::now();
  const std::string host = "di" + ctx.id;
  OC_TRY(makeDirs(dir + "/registry"));
  OC_ASSIGN_OR_RETURN(std::string ip, addFabricHost(ctx, undo, host));
  const std::string reg = ip + ":5000";
  OC_TRY(writeFileAtomic(dir + "/registry.yml",
                         "version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: " + dir +
                             "/registry}\n  delete: {enabled: true}\nhttp: {addr: \"" + reg + "\"}\n"));
  OC_ASSIGN_OR_RETURN(pid_t pid, startDaemon({ctx.self, "fabric", "exec", host, "--", "docker-registry", "serve",
                                              dir + "/registry.yml"},
                                             dir + "/registry.log"));
  undo.add("registry", [pid] { stopDaemon(pid); });
  auto answers = [&] {
    return runCapture({"curl", "-sf", "--max-time", "1", "-o", "/dev/null", "http://" + reg + "/v2/"})
               .valueOr({1, "", ""})
               .exit_code == 0;
  };
  if (!waitFor(answers, 10000)) {
    OC_TRY(checkInterrupted());
    return makeError("docker-registry did not answer on " + reg + "; see " + dir + "/registry.log");
  }
  std::printf("registry host %s: docker-registry on %s (%.1f s)\n", host.c_str(), reg.c_str(), secondsSince(t));
  return reg;
}

// Builds (once) and pushes the image as `src`, converts it to `lazy`.
// The demo's image catalog: beside the cluster state when that is etcd
// (`--cluster etcd`), else a directory in the demo's scratch space.
std::string catalogFor(const Context& ctx, const std::string& dir) {
  const std::string& store = ctx.cli.config.cluster_store;
  return kv::isEtcdUrl(store) ? store : dir + "/catalog";
}

Status pushAndConvert(Context& ctx, const std::string& dir, const std::string& src, const std::string& lazy) {
  auto t = Clock::now();
  OC_ASSIGN_OR_RETURN(bool built, ensureImage());
  std::printf(
      "image: busybox | libc6 + python3.11 | gcc-12 + binutils + libc6-dev, 3 layers from this machine's "
      "Debian packages (%s %.1f s, %s)\n",
      built ? "built in" : "cached, checked in", secondsSince(t), kImageCache);
  // The demo runs python: the image's config says so (a tag of the cached
  // layout, layers shared), and conversion derives its prefetch list from it.
  const std::string py_tag = std::string(kImageCache) + ":demo-py";
  if (!run({"umoci", "stat", "--image", py_tag}).ok()) {
    OC_TRY(run({"umoci", "config", "--image", std::string(kImageCache) + ":demo", "--tag", "demo-py",
                "--config.entrypoint", "python3.11", "--config.cmd", "-c", "--config.cmd", "import json; print(42)"}));
  }
  OC_TRY(run({"skopeo", "copy", "-q", "--dest-tls-verify=false", "oci:" + py_tag, "docker://" + src}));
  t = Clock::now();
  OC_ASSIGN_OR_RETURN(std::string conv,
                      output({ctx.self, "image", "convert", src, "--to", "registry", "--dest", lazy, "--plain-http",
                              "--catalog", catalogFor(ctx, dir), "--work-dir", dir + "/convert", "--json"}));
  uint64_t compressed = 0, layers = 0;
  auto b = conv.find('{');
  auto j = json::parse(b == std::string::npos ? "" : conv.substr(b), nullptr, false);
  if (j.is_object() && j.contains("layers")) {
    for (const auto& l : j["layers"]) {
      compressed += l.value("compressed_bytes", 0ULL);
      ++layers;
    }
  }
  std::printf("image convert %s -> %s: %llu layers (%s compressed) in %.1f s; catalog %s\n", src.c_str(), lazy.c_str(),
              static_cast<unsigned long long>(layers), mib(compressed).c_str(), secondsSince(t),
              catalogFor(ctx, dir).c_str());
  // Never profiled: what the node prefetches comes from the config alone.
  if (j.is_object() && j.contains("start_files") && j["start_files"].is_array()) {
    const auto& files = j["start_files"];
    std::printf(
        "prefetch list derived at conversion from the config (entrypoint python3.11, no trace run): %zu files\n",
        files.size());
    for (const auto& f : files) {
      if (f.is_string()) std::printf("    %s\n", f.get<std::string>().c_str());
    }
    if (!j.value("start_note", "").empty()) std::printf("  note: %s\n", j.value("start_note", "").c_str());
  }
  return okStatus();
}

// A private containerd and its ctr command line.
struct Ctr {
  std::string address;
  std::vector<std::string> args(const std::vector<std::string>& rest) const {
    std::vector<std::string> a{"ctr", "--address", address};
    a.insert(a.end(), rest.begin(), rest.end());
    return a;
  }
  bool ok(const std::vector<std::string>& rest) const {
    return runCapture(args(rest)).valueOr({1, "", ""}).exit_code == 0;
  }
};

// The offcore snapshotter (started first: containerd dials proxy plugins at
// start), then containerd, both in the host-infra domain; the image service
// the snapshotter starts in the SoC is undone with them.
Result<Ctr> startContainerd(Context& ctx, Cleanup& undo, const std::string& dir) {
  auto t = Clock::now();
  const std::string self = ctx.self, node = ctx.node, run_root = ctx.cli.config.run_root;
  undo.add("image service", [self, node, run_root] {
    (void)runCapture({self, "dpu", "service", "del", "--name", node, "--service", "images"});
    unmountBelow(run_root + "/" + node + "/images");
    (void)removeTree("/var/cache/offcore/" + node);
  });
  const std::string cd = dir + "/cd", sn_sock = cd + "/offcore.sock";
  Ctr ctr{cd + "/containerd.sock"};
  OC_TRY(makeDirs(cd));
  OC_ASSIGN_OR_RETURN(pid_t sn_pid, startDaemon({self, "snapshotter", "--node", node, "--socket", sn_sock, "--root",
                                                 dir + "/sn", "--catalog", catalogFor(ctx, dir), "--plain-http"},
                                                dir + "/snapshotter.log", inDomain(ctx, Domain::kHostInfra)));
  undo.add("snapshotter", [sn_pid, dir] {
    stopDaemon(sn_pid);
    unmountBelow(dir + "/sn");
  });
  if (!waitFor([&] { return pathExists(sn_sock); }, 10000)) {
    OC_TRY(checkInterrupted());
    return makeError("the offcore snapshotter did not start; see " + dir + "/snapshotter.log");
  }
  OC_TRY(writeFileAtomic(cd + "/config.toml",
                         "version = 2\nroot = \"" + cd + "/root\"\nstate = \"" + cd +
                             "/state\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" +
                             ctr.address + "\"\n[ttrpc]\n  address = \"" + ctr.address +
                             ".ttrpc\"\n[proxy_plugins.offcore]\n  type = \"snapshot\"\n  address = \"" + sn_sock +
                             "\"\n"));
  OC_ASSIGN_OR_RETURN(pid_t cd_pid, startDaemon({"containerd", "--config", cd + "/config.toml"},
                                                dir + "/containerd.log", inDomain(ctx, Domain::kHostInfra)));
  undo.add("containerd", [cd_pid, cd, ctr] {
    // Containers, images (and with them every snapshot), then the daemon,
    // its shims and whatever it left mounted.
    auto lines = [&](const std::vector<std::string>& a) {
      return splitLines(runCapture(ctr.args(a)).valueOr({1, "", ""}).out);
    };
    for (const auto& c : lines({"tasks", "ls", "-q"})) (void)ctr.ok({"tasks", "kill", "-s", "KILL", trim(c)});
    for (const auto& c : lines({"containers", "ls", "-q"})) {
      (void)ctr.ok({"tasks", "delete", "-f", trim(c)});
      (void)ctr.ok({"containers", "delete", trim(c)});
    }
    for (const auto& i : lines({"images", "ls", "-q"})) (void)ctr.ok({"images", "rm", "--sync", trim(i)});
    stopDaemon(cd_pid);
    killShims(ctr.address);
    unmountBelow(cd);
  });
  if (!waitFor([&] { return ctr.ok({"version"}); }, 15000)) {
    OC_TRY(checkInterrupted());
    return makeError("containerd did not start; see " + dir + "/containerd.log");
  }
  // containerd dials the proxy snapshotter with backoff: a Prepare reaches it.
  const std::string probe = "probe-" + ctx.id;
  auto reached = [&] {
    if (!ctr.ok({"snapshots", "--snapshotter", "offcore", "prepare", probe})) return false;
    (void)ctr.ok({"snapshots", "--snapshotter", "offcore", "rm", probe});
    return true;
  };
  if (!waitFor(reached, 20000)) {
    OC_TRY(checkInterrupted());
    return makeError("containerd cannot reach the offcore snapshotter; see " + dir + "/snapshotter.log");
  }
  std::printf("containerd (private root, host-infra domain) with the offcore proxy snapshotter: ready in %.1f s\n",
              secondsSince(t));
  return ctr;
}

// Cold caches, then `ctr image pull` and `ctr run` of the workload; the
// container runs in the node's host domain (--cgroup), ctr in host-infra.
Result<ColdStart> coldStart(Context& ctx, const Ctr& ctr, const std::string& snapshotter, const std::string& ref,
                            const std::string& cname) {
  ColdStart c;
  NodeLayout l = ctx.nodes.layout(ctx.node);
  (void)runCapture({"sync"});
  (void)writeKernelFile("/proc/sys/vm/drop_caches", "3");
  uint64_t rx0 = uplinkRx(ctx);
  auto t0 = Clock::now();
  OC_TRY(run(ctr.args({"image", "pull", "--plain-http", "--snapshotter", snapshotter, ref}),
             inDomain(ctx, Domain::kHostInfra)));
  c.pull_s = secondsSince(t0);
  auto t1 = Clock::now();
  OC_ASSIGN_OR_RETURN(
      c.out, output(ctr.args({"run", "--rm", "--snapshotter", snapshotter, "--cgroup", "/" + l.cg_host + "/" + cname,
                              ref, cname, "python3.11", "-c", "import json; print(42)"}),
                    inDomain(ctx, Domain::kHostInfra)));
  c.run_s = secondsSince(t1);
  c.fetched = uplinkRx(ctx) - rx0;
  c.out = trim(c.out);
  return c;
}

}  // namespace

Status runImages(Context& ctx) {
  Cleanup undo("images");
  const std::string dir = ctx.work + "/images";
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });
  const std::string cg_root = ctx.cli.config.cgroup_root;
  undo.add("containers' cgroups", [cg_root, before = cgroupDirs(cg_root)] { removeNewCgroups(cg_root, before); });

  OC_ASSIGN_OR_RETURN(std::string reg, startRegistry(ctx, undo, dir));
  const std::string src = reg + "/demo:v1", lazy = reg + "/demo:lazy";
  OC_TRY(pushAndConvert(ctx, dir, src, lazy));
  OC_ASSIGN_OR_RETURN(Ctr ctr, startContainerd(ctx, undo, dir));

  std::printf("cold pull + `ctr run ... python3.11 -c 'import json; print(42)'` (page cache dropped before each):\n");
  OC_ASSIGN_OR_RETURN(ColdStart ov, coldStart(ctx, ctr, "overlayfs", src, "ov-" + ctx.id));
  std::printf(
      "  overlayfs (containerd's own, full pull): pull %.2f s + run %.2f s = %.2f s, printed '%s', "
      "fetched %s\n",
      ov.pull_s, ov.run_s, ov.pull_s + ov.run_s, ov.out.c_str(), mib(ov.fetched).c_str());
  OC_ASSIGN_OR_RETURN(ColdStart oc, coldStart(ctx, ctr, "offcore", lazy, "oc-" + ctx.id));
  std::printf(
      "  offcore lazy (layers served by the SoC):  pull %.2f s + run %.2f s = %.2f s, printed '%s', "
      "fetched %s\n",
      oc.pull_s, oc.run_s, oc.pull_s + oc.run_s, oc.out.c_str(), mib(oc.fetched).c_str());
  if (ov.out != "42" || oc.out != "42") return makeError("a container printed something other than 42");
  uint64_t lf = 0, ls = 0, prefetched = 0, requests = 0;
  auto layers_out = output({ctx.self, "image", "layers", "--node", ctx.node, "--json"});
  if (layers_out.ok()) {
    auto j = json::parse(*layers_out, nullptr, false);
    if (j.is_object() && j.contains("layers")) {
      for (const auto& ly : j["layers"]) {
        lf += ly["stats"].value("bytes_fetched", 0ULL);
        prefetched += ly["stats"].value("prefetched", 0ULL);
        requests += ly["stats"].value("range_requests", 0ULL);
        ls += ly.value("size_bytes", 0ULL);
      }
    }
  }
  double tov = ov.pull_s + ov.run_s, toc = oc.pull_s + oc.run_s;
  std::printf(
      "pull+run: offcore %.2f s vs overlayfs %.2f s (%.2fx); bytes fetched (SoC uplink): offcore %s vs "
      "overlayfs %s (%.2fx)\n",
      toc, tov, tov > 0 ? toc / tov : 0, mib(oc.fetched).c_str(), mib(ov.fetched).c_str(),
      ov.fetched ? static_cast<double>(oc.fetched) / static_cast<double>(ov.fetched) : 0);
  std::printf(
      "the SoC's image service read %s of the %s of layer images it serves (%llu chunks prefetched from the "
      "derived list, %llu range requests)\n",
      mib(lf).c_str(), mib(ls).c_str(), static_cast<unsigned long long>(prefetched),
      static_cast<unsigned long long>(requests));
  return okStatus();
}

}  // namespace offcore::demo
