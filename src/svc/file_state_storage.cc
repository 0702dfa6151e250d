// The directory store: one JSON document, <dir>/state.json, replaced
// atomically under an exclusive flock on <dir>/.lock for every
// read-modify-write (readers take it shared). Probe results live apart,
// <dir>/health/<node>.json, each written only by its node's agent, so health
// never contends for the lock; so does the heartbeat, <dir>/heartbeat/<node>
// (ms of the last beat, not watched: a beat costs nobody a reconcile).
// Watchers use inotify on dir and dir/health (IN_MOVED_TO of state.json: the
// file is replaced by rename, so a watch on the file itself goes stale).
#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "base/dir_watch.h"
#include "base/files.h"
#include "base/log.h"
#include "base/shared_file_lock.h"
#include "svc/state_storage.h"

namespace offcore::svc {

namespace {

class DirStorage final : public StateStorage {
 public:
  explicit DirStorage(std::string dir) : dir_(std::move(dir)) {}

  Result<ClusterState> load() const override {
    SharedFileLock lock(dir_ + "/.lock");
    return readState();
  }

  // One file: every change reads and writes it whole, whatever its sections.
  Status modify(const Change& fn, uint64_t* generation, unsigned /*sections*/) override {
    auto made = makePrivateDir(dir_);
    if (!made.ok()) return made.error().wrap("cluster store (run as root or pass --cluster-dir)");
    auto lock = FileLock::acquire(dir_ + "/.lock");
    if (!lock.ok()) return lock.error().wrap("cluster store (run as root or pass --cluster-dir)");
    OC_ASSIGN_OR_RETURN(ClusterState before, readState());
    ClusterState after = before;
    OC_TRY(fn(after));
    after.generation = before.generation;
    if (generation) *generation = before.generation;
    if (after == before) return okStatus();
    after.generation = before.generation + 1;
    OC_TRY(writeFileAtomic(stateFile(), after.toJson()));
    if (generation) *generation = after.generation;
    return okStatus();
  }

  Status heartbeat(const std::string& node, uint64_t now_ms) override {
    if (!isPlainName(node)) return makeError("heartbeat: bad node name '" + node + "'");
    std::string dir = dir_ + "/heartbeat";
    OC_TRY(makePrivateDir(dir));
    return writeFileAtomic(dir + "/" + node, std::to_string(now_ms) + "\n");
  }

  std::map<std::string, uint64_t> loadHeartbeats() const override {
    std::map<std::string, uint64_t> out;
    std::string dir = dir_ + "/heartbeat";
    for (const auto& name : listDir(dir)) {
      bool temp = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;  // writeFileAtomic's
      if (!isPlainName(name) || temp) continue;
      auto text = readFile(dir + "/" + name);
      if (!text.ok()) continue;
      char* end = nullptr;
      unsigned long long ms = std::strtoull(text->c_str(), &end, 10);
      if (end != text->c_str()) out[name] = ms;
    }
    return out;
  }

  Status writeHealth(const NodeHealth& health) override {
    if (!isPlainName(health.node)) return makeError("write health: bad node name '" + health.node + "'");
    std::string dir = dir_ + "/health";
    OC_TRY(makePrivateDir(dir));
    return writeFileAtomic(dir + "/" + health.node + ".json", healthToJson(health));
  }

  Result<std::map<std::string, NodeHealth>> loadHealth() const override {
    std::map<std::string, NodeHealth> out;
    std::string dir = dir_ + "/health";
    if (!pathExists(dir)) return out;
    for (const auto& f : listDir(dir)) {
      if (f.size() <= 5 || f.compare(f.size() - 5, 5, ".json") != 0) continue;
      std::string path = dir + "/" + f;
      if (auto h = readableHealth(readFile(path), path)) out[h->node] = std::move(*h);
    }
    return out;
  }

  Status forgetNode(const std::string& name) override {
    if (!isPlainName(name)) return makeError("forget node: bad node name '" + name + "'");
    for (const std::string& path : {dir_ + "/health/" + name + ".json", dir_ + "/heartbeat/" + name}) {
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errnoError("remove " + path);
    }
    return okStatus();
  }

  Result<std::string> claim(const std::string&, const std::string& node, bool want) override {
    return want ? node : std::string();
  }
  Result<std::map<std::string, std::string>> claims() const override { return std::map<std::string, std::string>(); }

  Result<std::unique_ptr<StoreWatch>> watch(EventLoop& loop, Changed changed) override {
    OC_TRY(makeDirs(dir_ + "/health"));
    OC_ASSIGN_OR_RETURN(auto w, DirWatch::start(loop, {dir_, dir_ + "/health"}, [changed = std::move(changed)] {
                          changed(StateDelta());  // state.json is one file: anything may have changed
                        }));
    return std::unique_ptr<StoreWatch>(std::make_unique<HeldWatch<DirWatch>>(std::move(w)));
  }

  std::string describe() const override { return dir_; }

 private:
  std::string stateFile() const { return dir_ + "/state.json"; }

  Result<ClusterState> readState() const {
    auto text = readFile(stateFile());
    if (!text.ok()) {
      if (text.error().code == ENOENT) return ClusterState::empty();
      return text.error();
    }
    return ClusterState::fromJson(*text, stateFile());
  }

  // Names in dir ("" when it cannot be read).
  static std::vector<std::string> listDir(const std::string& dir) {
    std::vector<std::string> names;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return names;
    while (dirent* ent = ::readdir(d)) names.emplace_back(ent->d_name);
    ::closedir(d);
    return names;
  }

  std::string dir_;
};

}  // namespace

std::shared_ptr<StateStorage> makeDirStorage(std::string dir) { return std::make_shared<DirStorage>(std::move(dir)); }

}  // namespace offcore::svc
