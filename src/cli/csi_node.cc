// NodeOps over `disk attach` (csi_ops.h): NodeStage attaches the volume in
// the node's SoC (the host sees one disk file), puts a loop device on it,
// makes ext4 on a blank volume and mounts it at the staging path;
// NodePublish bind-mounts that (or the loop device, for a block volume)
// into the pod's target path. What is staged where lives in
// <run_root>/<node>/csi/ID.json (0600), so a restarted plugin answers
// retries the same way.
#include <sys/statvfs.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/subprocess.h"
#include "cli/csi_ops.h"
#include "cli/disk_common.h"
#include "cli/volume_replicated.h"
#include "dpu/mounts.h"

namespace offcore {

using nlohmann::json;

namespace {

Status run(const std::vector<std::string>& argv) {
  OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture(argv));
  if (out.exit_code == 0) return okStatus();
  auto lines = splitLines(out.err.empty() ? out.out : out.err);
  return makeError(argv[0] + (argv.size() > 1 ? " " + argv[1] : "") + " failed (" + std::to_string(out.exit_code) +
                   "): " + (lines.empty() ? "no output" : lines.back()));
}

Result<std::string> output(const std::vector<std::string>& argv) {
  OC_ASSIGN_OR_RETURN(ProcessOutput out, runCapture(argv));
  if (out.exit_code != 0) {
    auto lines = splitLines(out.err);
    return makeError(argv[0] + " failed: " + (lines.empty() ? "exit " + std::to_string(out.exit_code) : lines.back()));
  }
  return trim(out.out);
}

std::string canonical(const std::string& p) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

bool isMountPoint(const std::string& path) {
  std::string want = canonical(path);
  for (const auto& m : parseMountPoints(readFile("/proc/self/mountinfo").valueOr(""))) {
    if (m == want) return true;
  }
  return false;
}

json capJson(const csi::Capability& c) {
  return {{"block", c.type == csi::AccessType::kBlock},
          {"mode", static_cast<int>(c.mode)},
          {"fs_type", c.fs_type},
          {"mount_flags", c.mount_flags}};
}

bool allowsManyTargets(csi::AccessMode m) {
  return m == csi::AccessMode::kSingleNodeMultiWriter || m == csi::AccessMode::kMultiNodeReaderOnly ||
         m == csi::AccessMode::kMultiNodeSingleWriter || m == csi::AccessMode::kMultiNodeMultiWriter;
}

class CsiNode final : public csi::NodeOps {
 public:
  CsiNode(const CliContext& ctx, CsiNodeConfig cfg) : ctx_(ctx), cfg_(std::move(cfg)) {}

  Status checkCapability(const csi::Capability& cap) override { return checkCsiCapability(cap); }

  csi::NodeInfo info() override { return {cfg_.node, cfg_.max_volumes, {{"topology.csi.offcore.io/node", cfg_.node}}}; }

  Status stage(const csi::StageRequest& req) override {
    const std::string staging = canonical(req.staging_path);
    if (auto st = load(req.volume_id); st.ok()) {
      if (st->value("staging", "") != staging || (*st)["capability"] != capJson(req.capability)) {
        return makeError("volume " + req.volume_id + " is staged at " + st->value("staging", "") +
                             " with another capability; NodeUnstageVolume it first",
                         EEXIST);
      }
      if (st->value("ready", false)) {
        const std::string file = disksDir(ctx_, cfg_.node) + "/" + st->value("disk", "");
        if (req.capability.type == csi::AccessType::kMount ? !isMountPoint(staging) : loopsOf(file).empty()) {
          return makeError("volume " + req.volume_id + " was staged at " + staging +
                           " but its mount or loop device is gone; NodeUnstageVolume and stage again");
        }
        return okStatus();
      }
    }
    auto v = loadReplicatedVolume(ctx_, req.volume_id);
    if (!v.ok() || v->read_only) return Error{ENOENT, "no volume " + req.volume_id};
    const std::string disk = csiDiskNameFor(req.volume_id);
    json st{{"volume", req.volume_id},
            {"staging", staging},
            {"capability", capJson(req.capability)},
            {"disk", disk},
            {"loop", ""},
            {"ready", false},
            {"published", json::object()}};
    OC_TRY(save(req.volume_id, st));  // from here, unstage undoes whatever was done
    const std::string file = disksDir(ctx_, cfg_.node) + "/" + disk;
    if (!pathExists(file + ".json")) {
      std::vector<std::string> argv{selfExe(), "disk",    "attach", "--volume", req.volume_id,
                                    "--node",  cfg_.node, "--name", disk};
      // A mirrored volume drops a lost replica in 2 s and runs degraded;
      // one replica waits for its path like any disk.
      if (v->replicas.size() > 1) argv.insert(argv.end(), {"--fast-io-fail", "2"});
      if (auto s = run(argv); !s.ok())
        return s.error().wrap("attach volume " + req.volume_id + " on node " + cfg_.node);
    }
    OC_ASSIGN_OR_RETURN(std::string loop, loopOf(file));
    st["loop"] = loop;
    st["loop_backing"] = backingOf(loop);  // to know it again once the file is gone (fenced)
    OC_TRY(save(req.volume_id, st));
    if (req.capability.type == csi::AccessType::kMount) {
      OC_TRY(makeDirs(staging, 0750));
      if (!isMountPoint(staging)) {
        bool ro = req.capability.mode == csi::AccessMode::kSingleNodeReaderOnly;
        // blkid -p: 0 found a signature, 2 found none (blank); anything else
        // (ambiguous signatures, a read error) is not a reason to format.
        OC_ASSIGN_OR_RETURN(ProcessOutput probe, runCapture({"blkid", "-p", "-o", "value", "-s", "TYPE", loop}));
        if (probe.exit_code != 0 && probe.exit_code != 2) {
          return makeError("blkid could not tell what volume " + req.volume_id + " holds (exit " +
                           std::to_string(probe.exit_code) + "): " + trim(probe.err) + "; not formatting it");
        }
        std::string have = probe.exit_code == 0 ? trim(probe.out) : "";
        if (have.empty() && probe.exit_code == 0) {
          return makeError("volume " + req.volume_id + " holds something blkid cannot name; not formatting it", EBUSY);
        }
        if (have.empty()) {
          if (ro)
            return makeError("volume " + req.volume_id + " is blank and asked read-only: nothing to mount", EBUSY);
          OC_TRY(run({"mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1", "-L", label(req.volume_id), loop}));
          have = "ext4";
        } else if (have != "ext4") {
          return makeError("volume " + req.volume_id + " holds " + have + ", not ext4", EBUSY);
        }
        std::string opts = ro ? "ro" : "rw";
        for (const auto& f : req.capability.mount_flags) opts += "," + f;
        OC_TRY(run({"mount", "-t", "ext4", "-o", opts, loop, staging}));
      }
    }
    st["ready"] = true;
    return save(req.volume_id, st);
  }

  Status unstage(const std::string& volume_id, const std::string& staging_path) override {
    auto st = load(volume_id);
    if (!st.ok()) return okStatus();  // not staged here: done
    const std::string staging = canonical(staging_path);
    if (st->value("staging", "") != staging) {
      return makeError("volume " + volume_id + " is staged at " + st->value("staging", "") + ", not " + staging, EBUSY);
    }
    if (!(*st)["published"].empty()) {
      return makeError("volume " + volume_id + " is still published at " + (*st)["published"].begin().key() +
                           "; NodeUnpublishVolume first",
                       EBUSY);
    }
    if (isMountPoint(staging)) OC_TRY(run({"umount", staging}));
    const std::string disk = st->value("disk", csiDiskNameFor(volume_id));
    const std::string file = disksDir(ctx_, cfg_.node) + "/" + disk;
    // The loop devices on our disk file now (a recorded name may since
    // belong to another file).
    for (const auto& l : loopsOf(file)) (void)run({"losetup", "-d", l});
    // A disk detached under us (ControllerUnpublish fenced this node) leaves
    // its loop device on a file no path names any more: the one we made is
    // known by the device and inode it was made on.
    const std::string loop = st->value("loop", ""), backing = st->value("loop_backing", "");
    if (!loop.empty() && !backing.empty() && backingOf(loop) == backing) (void)run({"losetup", "-d", loop});
    if (pathExists(file + ".json")) {
      if (auto s = run({selfExe(), "disk", "detach", disk, "--node", cfg_.node}); !s.ok()) {
        return s.error().wrap("detach volume " + volume_id + " from node " + cfg_.node);
      }
    }
    std::remove(statePath(volume_id).c_str());
    return okStatus();
  }

  Status publish(const csi::PublishRequest& req) override {
    auto st = load(req.volume_id);
    const std::string staging = canonical(req.staging_path);
    if (!st.ok() || !st->value("ready", false)) {
      if (!loadReplicatedVolume(ctx_, req.volume_id).ok()) return Error{ENOENT, "no volume " + req.volume_id};
      return makeError("volume " + req.volume_id + " is not staged on this node; NodeStageVolume first", EBUSY);
    }
    if (st->value("staging", "") != staging) {
      return makeError("volume " + req.volume_id + " is staged at " + st->value("staging", "") + ", not " + staging,
                       EBUSY);
    }
    const std::string target = canonical(req.target_path);
    json want{{"readonly", req.readonly}, {"capability", capJson(req.capability)}};
    json& pubs = (*st)["published"];
    if (pubs.contains(target)) {
      if (pubs[target] != want) {
        return makeError("volume " + req.volume_id + " is published at " + target + " with other arguments", EEXIST);
      }
      if (isMountPoint(target)) return okStatus();
    } else if (!pubs.empty() && !allowsManyTargets(req.capability.mode)) {
      return makeError("volume " + req.volume_id + " is published at " + pubs.begin().key() +
                           " and its access mode allows one target (SINGLE_NODE_MULTI_WRITER allows several)",
                       EBUSY);
    }
    bool block = req.capability.type == csi::AccessType::kBlock;
    if ((*st)["capability"].value("block", false) != block) {
      return makeError("volume " + req.volume_id + " was staged as " + (block ? "a file system" : "a block device") +
                           "; publish it the same way",
                       EBUSY);
    }
    std::string source = staging;
    if (block) {
      auto loops = loopsOf(disksDir(ctx_, cfg_.node) + "/" + st->value("disk", ""));
      if (loops.empty()) {
        return makeError("volume " + req.volume_id + " has no loop device any more; NodeUnstageVolume and stage again",
                         EBUSY);
      }
      source = loops[0];
    }
    pubs[target] = want;
    OC_TRY(save(req.volume_id, *st));
    std::filesystem::path tp(target);
    OC_TRY(makeDirs(tp.parent_path().string(), 0750));
    if (block) {
      if (!pathExists(target)) OC_TRY(writeFileAtomic(target, "", 0600));
    } else {
      OC_TRY(makeDirs(target, 0750));
    }
    if (!isMountPoint(target)) {
      OC_TRY(run({"mount", "--bind", source, target}));
      if (req.readonly) {
        if (auto s = run({"mount", "-o", "remount,bind,ro", target}); !s.ok()) {
          (void)run({"umount", target});
          return s;
        }
      }
    }
    return okStatus();
  }

  Status unpublish(const std::string& volume_id, const std::string& target_path) override {
    const std::string target = canonical(target_path);
    auto st = load(volume_id);
    bool ours = st.ok() && (*st)["published"].contains(target);
    if (!ours) {
      // Not published there by us: nothing to undo, and whatever is mounted
      // there belongs to someone else.
      if (!st.ok() && !loadReplicatedVolume(ctx_, volume_id).ok()) return Error{ENOENT, "no volume " + volume_id};
      return okStatus();
    }
    while (isMountPoint(target)) OC_TRY(run({"umount", target}));
    std::error_code ec;
    std::filesystem::remove(target, ec);
    (*st)["published"].erase(target);
    return save(volume_id, *st);
  }

  Result<csi::VolumeStats> stats(const std::string& volume_id, const std::string& path) override {
    auto st = load(volume_id);
    const std::string p = canonical(path);
    if (!st.ok() || (st->value("staging", "") != p && !(*st)["published"].contains(p))) {
      return Error{ENOENT, "volume " + volume_id + " is not staged or published at " + path};
    }
    if (!pathExists(p)) return Error{ENOENT, path + " does not exist"};
    csi::VolumeStats out;
    out.block = (*st)["capability"].value("block", false);
    if (out.block) {
      auto loops = loopsOf(disksDir(ctx_, cfg_.node) + "/" + st->value("disk", ""));
      if (loops.empty()) return makeError("volume " + volume_id + " has no loop device; stage it again");
      OC_ASSIGN_OR_RETURN(std::string n, output({"blockdev", "--getsize64", loops[0]}));
      out.total_bytes = std::strtoull(n.c_str(), nullptr, 10);
    } else {
      struct statvfs vfs {};
      if (::statvfs(p.c_str(), &vfs) != 0) return errnoError("statvfs " + p);
      out.total_bytes = vfs.f_blocks * vfs.f_frsize;
      out.available_bytes = vfs.f_bavail * vfs.f_frsize;
      out.used_bytes = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
      out.total_inodes = vfs.f_files;
      out.available_inodes = vfs.f_favail;
      out.used_inodes = vfs.f_files - vfs.f_ffree;
    }
    // The condition: the nexus's or the initiator's state, as the disk reports it.
    auto v = loadReplicatedVolume(ctx_, volume_id);
    if (v.ok()) {
      if (auto at = replicatedAttachedAt(ctx_, *v)) {
        out.abnormal = !at->problem.empty();
        out.condition = at->problem.empty() ? at->state : at->problem;
      } else {
        out.abnormal = true;
        out.condition = "the volume's disk is not attached on node " + cfg_.node;
      }
    }
    return out;
  }

  Result<uint64_t> expand(const std::string& volume_id, const std::string& path, uint64_t size) override {
    auto st = load(volume_id);
    const std::string p = canonical(path);
    if (!st.ok() || (st->value("staging", "") != p && !(*st)["published"].contains(p))) {
      return Error{ENOENT, "volume " + volume_id + " is not staged or published at " + path};
    }
    auto loops = loopsOf(disksDir(ctx_, cfg_.node) + "/" + st->value("disk", ""));
    if (loops.empty()) return makeError("volume " + volume_id + " has no loop device; stage it again", EBUSY);
    const std::string& loop = loops[0];
    OC_TRY(run({"losetup", "-c", loop}));
    OC_ASSIGN_OR_RETURN(std::string n, output({"blockdev", "--getsize64", loop}));
    uint64_t have = std::strtoull(n.c_str(), nullptr, 10);
    if (size > 0 && have < size) {
      return makeError("the disk of " + volume_id + " is " + std::to_string(have) +
                           " bytes: volumes grow offline, unstage and stage it again after ControllerExpandVolume",
                       EBUSY);
    }
    if (!(*st)["capability"].value("block", false)) OC_TRY(run({"resize2fs", loop}));
    return have;
  }

 private:
  std::string stateDir() const { return ctx_.config.run_root + "/" + cfg_.node + "/csi"; }
  std::string statePath(const std::string& id) const { return stateDir() + "/" + id + ".json"; }

  Result<json> load(const std::string& id) const {
    OC_ASSIGN_OR_RETURN(std::string text, readFile(statePath(id)));
    auto j = json::parse(text, nullptr, false);
    if (!j.is_object() || !j.contains("published") || !j["published"].is_object() || !j.contains("capability")) {
      return makeError("CSI node state " + statePath(id) + " is damaged; unstage by hand (umount, disk detach)");
    }
    return j;
  }

  Status save(const std::string& id, const json& st) const {
    OC_TRY(makePrivateDir(stateDir()));
    return writeFileAtomic(statePath(id), dumpJson(st, 2) + "\n", 0600);
  }

  static std::vector<std::string> loopsOf(const std::string& file) {
    std::vector<std::string> out;
    auto text = output({"losetup", "-j", file, "-O", "NAME", "-n"});
    if (text.ok()) {
      for (const auto& l : splitLines(*text)) {
        if (!trim(l).empty()) out.push_back(trim(l));
      }
    }
    return out;
  }

  // "MAJ:MIN INO" of what a loop device is on ("" if it is on nothing).
  static std::string backingOf(const std::string& loop) {
    auto text = output({"losetup", "-l", "-n", "-O", "BACK-MAJ:MIN,BACK-INO", loop});
    if (!text.ok()) return "";
    std::string t = trim(*text);
    return t.find_first_not_of(" 0:") == std::string::npos ? "" : t;
  }

  static Result<std::string> loopOf(const std::string& file) {
    auto have = loopsOf(file);
    if (!have.empty()) return have[0];
    return output({"losetup", "--find", "--show", "--direct-io=on", file});
  }

  static std::string label(const std::string& id) { return id.substr(0, 16); }

  const CliContext& ctx_;
  CsiNodeConfig cfg_;
};

}  // namespace

std::unique_ptr<csi::NodeOps> makeCsiNode(const CliContext& ctx, CsiNodeConfig config) {
  return std::make_unique<CsiNode>(ctx, std::move(config));
}

}  // namespace offcore
