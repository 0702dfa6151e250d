// Flat mode: one layer of the merged rootfs, built the way the seed builds
// it — on a clone of the previous layer's snapshot (or a fresh ext4 volume
// for the base), then snapshotted so the next layer and every container can
// clone it. The volume is reached like any disk: NVMe/TCP initiator, FUSE
// block file, loop device, ext4 mount.
#include <sys/mount.h>
#include <unistd.h>

#include "base/files.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "disk/fuse_disk.h"
#include "gateway/client.h"
#include "image/converter.h"
#include "image/gateway_volumes.h"
#include "image/layer_apply.h"

namespace offcore {

namespace {

// Everything a mounted volume holds, released in reverse order however the
// build ends.
struct MountedVolume {
  std::shared_ptr<nvme::NvmeTcpHost> host;
  std::unique_ptr<FuseDisk> disk;
  std::string loop, mountpoint;
  bool mounted = false;

  Status release() {
    Status first = {};
    auto keep = [&](Status s) {
      if (first.ok() && !s.ok()) first = s;
    };
    if (mounted) {
      ::sync();
      if (::umount(mountpoint.c_str()) != 0) keep(errnoError("umount " + mountpoint));
      mounted = false;
      ::rmdir(mountpoint.c_str());
    }
    if (!loop.empty()) {
      keep(runChecked({"losetup", "-d", loop}));
      loop.clear();
    }
    if (disk) {
      keep(disk->unmount());
      std::remove(disk->path().c_str());
      disk.reset();
    }
    if (host) {
      keep(host->flush());
      host->close();
      host.reset();
    }
    return first;
  }
  ~MountedVolume() { (void)release(); }
};

Status mountVolume(const GatewayVolume& vol, const std::string& work_file, bool make_fs, MountedVolume& mv) {
  const std::string& uri = vol.uri;
  std::string secret;
  if (auto it = vol.new_secrets.find(kConverterHostNqn); it != vol.new_secrets.end()) secret = it->second;
  OC_ASSIGN_OR_RETURN(mv.host, connectVolumeAsConverter(uri, std::chrono::seconds(30), secret));
  FuseDiskOptions fo;
  fo.allow_other = false;
  fo.max_threads = 16;
  fo.fsname = "offcore-convert";
  OC_ASSIGN_OR_RETURN(mv.disk, FuseDisk::mount(work_file, mv.host, fo));
  OC_ASSIGN_OR_RETURN(auto lo, runCapture({"losetup", "--find", "--show", "--direct-io=on", work_file}));
  if (lo.exit_code != 0) return makeError("losetup " + work_file + ": " + trim(lo.err));
  mv.loop = trim(lo.out);
  if (make_fs) OC_TRY(runChecked({"mkfs.ext4", "-q", "-F", "-L", "offcore-rootfs", mv.loop}));
  mv.mountpoint = work_file + ".mnt";
  OC_TRY(makeDirs(mv.mountpoint));
  if (::mount(mv.loop.c_str(), mv.mountpoint.c_str(), "ext4", 0, nullptr) != 0) {
    return errnoError("mount " + mv.loop + " on " + mv.mountpoint);
  }
  mv.mounted = true;
  return {};
}

}  // namespace

Result<ConvertedLayer> buildFlatLayer(const ConvertOptions& o, const FlatStep& step, Catalog& catalog) {
  std::string target = o.gateway.substr(std::string("nvme-tcp://").size());
  while (!target.empty() && target.back() == '/') target.pop_back();
  OC_ASSIGN_OR_RETURN(auto gw, GatewayClient::open(o.run_root, target));
  const std::string work = "fw-" + shortId(step.chain_id), snap = "f-" + shortId(step.chain_id);
  // Leftovers of an interrupted run are rebuilt, not trusted.
  OC_TRY(gw.remove(work, true));  // first: a work volume left after its snapshot is the snapshot's clone
  OC_TRY(gw.remove(snap, true));
  // The work volume admits only the converter; the snapshot it becomes
  // is read-only and admits only nodes, which clone it for each container.
  const HostList converter_only = std::vector<std::string>{kConverterHostNqn};
  GatewayVolume vol;
  if (step.parent_chain_id.empty()) {
    OC_ASSIGN_OR_RETURN(vol, gw.create(work, o.flat_size, converter_only));
  } else {
    OC_ASSIGN_OR_RETURN(auto parent, catalog.flat(step.parent_chain_id));
    if (!parent) return makeError("flat parent " + step.parent_chain_id + " is missing from the catalog");
    OC_ASSIGN_OR_RETURN(vol, gw.clone(parent->gateway.volume, work, converter_only));
  }
  ConvertedLayer out;
  out.chain_id = step.chain_id;
  out.created.push_back("volume " + work);
  {
    MountedVolume mv;
    OC_TRY(mountVolume(vol, o.work_dir + "/" + work + ".img", step.parent_chain_id.empty(), mv));
    auto applied = applyLayerFile(step.blob_path, mv.mountpoint, WhiteoutMode::kApplyInPlace, o.bounds, step.layer);
    if (!applied.ok()) return applied.error().wrap("apply layer " + step.chain_id);
    OC_TRY(mv.release());
  }
  OC_ASSIGN_OR_RETURN(auto snapped, gw.snapshot(work, snap, std::vector<std::string>{nodeHostsPattern()}));
  // After the snapshot the work volume is an empty clone of it: nothing
  // reads it, and a writable volume left behind is one more thing to attack.
  OC_TRY(gw.remove(work, true));
  out.created.push_back("snapshot " + snap);
  // A flat volume's size is virtual (thin): the summary reports tar bytes.
  out.fs_bytes = 0;
  OC_TRY(catalog.putFlat(
      FlatRecord{step.chain_id, GatewayArtifact{snapped.uri, gw.name(), snap, ""}, snapped.size_bytes}));
  return out;
}

}  // namespace offcore
