#include "image/prefetch_runner.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"

namespace offcore {

using nlohmann::json;

namespace {

std::vector<std::string> strings(const json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.contains(key) || !j[key].is_array()) return out;
  for (const auto& s : j[key]) {
    if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

struct Mounts {
  std::vector<std::string> dirs;
  ~Mounts() {
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
  }
};

}  // namespace

std::string startSpecToJson(const StartSpec& s) {
  return dumpJson(json{{"entrypoint", s.entrypoint}, {"cmd", s.cmd}, {"env", s.env}, {"working_dir", s.working_dir}});
}

Result<StartSpec> startSpecFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return makeError("start spec: not a JSON object");
  StartSpec s;
  s.entrypoint = strings(j, "entrypoint");
  s.cmd = strings(j, "cmd");
  s.env = strings(j, "env");
  s.working_dir = j.contains("working_dir") && j["working_dir"].is_string() ? j["working_dir"].get<std::string>() : "";
  return s;
}

std::string prefetchPlanToJson(const PrefetchPlan& p) {
  json layers = json::array();
  for (const auto& r : p.layer_ranges) {
    json arr = json::array();
    for (const auto& [off, len] : r) arr.push_back({off, len});
    layers.push_back(arr);
  }
  return dumpJson(json{
      {"files", p.start.files}, {"loader_files", p.start.loader_files}, {"note", p.start.note}, {"layers", layers}});
}

Result<PrefetchPlan> prefetchPlanFromJson(const std::string& text, size_t layers) {
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array() || j["layers"].size() != layers) {
    return makeError("the prefetch planner's answer is malformed");
  }
  PrefetchPlan p;
  p.start.files = strings(j, "files");
  p.start.loader_files = strings(j, "loader_files");
  p.start.note = j.value("note", "");
  for (const auto& l : j["layers"]) {
    ByteRanges r;
    if (l.is_array()) {
      for (const auto& e : l) {
        if (e.is_array() && e.size() == 2 && e[0].is_number_unsigned() && e[1].is_number_unsigned()) {
          r.emplace_back(e[0].get<uint64_t>(), e[1].get<uint64_t>());
        }
      }
    }
    p.layer_ranges.push_back(std::move(r));
  }
  return p;
}

Result<PrefetchPlan> planFromLayerImages(const std::vector<std::string>& images, const StartSpec& spec,
                                         const std::string& work) {
  if (images.empty()) return makeError("no layers to plan for");
  Mounts m;
  std::vector<PlanLayer> layers;
  for (size_t i = 0; i < images.size(); ++i) {
    std::string dir = work + "/l" + std::to_string(i);
    OC_TRY(makeDirs(dir));
    if (::mount(images[i].c_str(), dir.c_str(), "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, nullptr) != 0) {
      return errnoError("mount the EROFS image " + images[i]);
    }
    m.dirs.push_back(dir);
    OC_ASSIGN_OR_RETURN(uint64_t base, erofsInodeBase(images[i]));
    layers.push_back(PlanLayer{dir, base});
  }
  std::string root = layers[0].dir;
  if (images.size() > 1) {
    root = work + "/root";
    OC_TRY(makeDirs(root));
    // Relative lower dirs: 55 long absolute ones would pass the kernel's
    // one-page limit on mount options. The planner is its own process.
    if (::chdir(work.c_str()) != 0) return errnoError("chdir " + work);
    std::string lower;
    for (size_t i = layers.size(); i-- > 0;) lower += (lower.empty() ? "" : ":") + ("l" + std::to_string(i));
    std::string opts = "lowerdir=" + lower;
    if (::mount("overlay", root.c_str(), "overlay", MS_RDONLY | MS_NODEV | MS_NOSUID, opts.c_str()) != 0) {
      return errnoError("mount the image's overlay");
    }
    m.dirs.push_back(root);
  }
  return planPrefetch(layers, root, spec);
}

Result<PrefetchPlan> runPrefetchPlanner(const std::vector<std::string>& planner_argv,
                                        const std::vector<std::string>& images, const StartSpec& spec,
                                        const std::string& work) {
  std::vector<std::string> argv = planner_argv;
  argv.insert(argv.end(), {"--work", work});
  for (const auto& i : images) argv.insert(argv.end(), {"--layer", i});
  SpawnOptions o;
  o.stdin_data = startSpecToJson(spec);
  o.in_child = [parent = ::getpid()]() -> Status {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return errnoError("prctl(PR_SET_PDEATHSIG)");
    if (::getppid() != parent) return makeError("the converter is gone");
    if (::unshare(CLONE_NEWNS) != 0) return errnoError("unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errnoError("make / private");
    return okStatus();
  };
  OC_ASSIGN_OR_RETURN(auto out, runCapture(argv, o));
  if (out.exit_code != 0) {
    auto lines = splitLines(out.err);
    return makeError("the prefetch planner failed: " +
                     (lines.empty() ? std::string("exit ") + std::to_string(out.exit_code) : lines.back()));
  }
  return prefetchPlanFromJson(out.out, images.size());
}

}  // namespace offcore
