// `offcore demo`, Kubernetes storage: the CSI driver's controller and node
// plugins on their sockets, driven as kubelet and the external-provisioner
// would (CreateVolume, ControllerPublish, NodeStage, NodePublish to two pod
// paths). The volume is mirrored over two storage hosts by the node's SoC;
// a pod writes through one path and the other reads it. Beside it, the same
// file system made on a local file (losetup, mkfs, mount): what a
// network-attached, mirrored volume costs to provision, and where the
// write's CPU goes (host vs SoC).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>

#include "base/files.h"
#include "cli/csi_ops.h"
#include "cli/demo_common.h"
#include "csi.grpc.pb.h"

namespace offcore::demo {

namespace {

namespace v1 = ::csi::v1;

template <typename Stub, typename Req, typename Resp>
Status call(const char* what, grpc::Status (Stub::*m)(grpc::ClientContext*, const Req&, Resp*), Stub* stub,
            const Req& req, Resp* resp) {
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto s = (stub->*m)(&c, req, resp);
  if (!s.ok()) return makeError(std::string(what) + ": " + s.error_message());
  return okStatus();
}

v1::VolumeCapability podCap() {
  v1::VolumeCapability c;
  c.mutable_mount()->set_fs_type("ext4");
  c.mutable_access_mode()->set_mode(v1::VolumeCapability::AccessMode::SINGLE_NODE_MULTI_WRITER);
  return c;
}

}  // namespace

Status runCsi(Context& ctx) {
  Cleanup undo("csi");
  const std::string dir = ctx.work + "/csi", self = ctx.self, node = ctx.node;
  const std::string host_a = "dca" + ctx.id, host_b = "dcb" + ctx.id;
  OC_TRY(makeDirs(dir + "/a"));
  OC_TRY(makeDirs(dir + "/b"));
  OC_TRY(makeDirs(dir + "/kubelet"));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });
  undo.add("mounts", [dir] { unmountBelow(dir + "/kubelet"); });
  OC_ASSIGN_OR_RETURN(StorageHost a, startStorageHost(ctx, undo, host_a, dir + "/a"));
  OC_ASSIGN_OR_RETURN(StorageHost b, startStorageHost(ctx, undo, host_b, dir + "/b"));
  (void)a;
  (void)b;
  OC_ASSIGN_OR_RETURN(pid_t ctl, startDaemon({self, "csi", "--mode", "controller", "--endpoint", dir + "/ctl.sock",
                                              "--pool", host_a + "," + host_b, "--replicas", "2"},
                                             dir + "/controller.log"));
  undo.add("csi controller", [ctl] { stopDaemon(ctl); });
  OC_ASSIGN_OR_RETURN(pid_t nd,
                      startDaemon({self, "csi", "--mode", "node", "--node", node, "--endpoint", dir + "/node.sock"},
                                  dir + "/node.log"));
  undo.add("csi node", [nd] { stopDaemon(nd); });
  if (!waitFor([&] { return pathExists(dir + "/ctl.sock") && pathExists(dir + "/node.sock"); }, 10000)) {
    return makeError("the CSI plugins did not start: " + readFile(dir + "/controller.log").valueOr("") +
                     readFile(dir + "/node.log").valueOr(""));
  }
  auto ctlStub =
      v1::Controller::NewStub(grpc::CreateChannel("unix://" + dir + "/ctl.sock", grpc::InsecureChannelCredentials()));
  auto nodeStub =
      v1::Node::NewStub(grpc::CreateChannel("unix://" + dir + "/node.sock", grpc::InsecureChannelCredentials()));
  std::printf("CSI plugins up: controller over storage hosts %s, %s (2 replicas per volume); node plugin for %s\n",
              host_a.c_str(), host_b.c_str(), node.c_str());

  // What the external-provisioner does for a PVC of 256 MiB.
  auto t = Clock::now();
  v1::CreateVolumeRequest cr;
  cr.set_name("pvc-demo-" + ctx.id);
  cr.mutable_capacity_range()->set_required_bytes(256LL << 20);
  *cr.add_volume_capabilities() = podCap();
  v1::CreateVolumeResponse created;
  OC_TRY(call("CreateVolume", &v1::Controller::Stub::CreateVolume, ctlStub.get(), cr, &created));
  const std::string id = created.volume().volume_id();
  undo.add("volume", [self, id] { (void)runCapture({self, "volume", "delete", id, "--force"}); });
  undo.add("disk", [self, id, node] {
    (void)runCapture({self, "disk", "detach", csiDiskNameFor(id), "--node", node, "--force"});
  });
  double t_create = secondsSince(t);

  // What the attach-detach controller and kubelet do for a pod using it.
  t = Clock::now();
  v1::ControllerPublishVolumeRequest pr;
  pr.set_volume_id(id);
  pr.set_node_id(node);
  *pr.mutable_volume_capability() = podCap();
  v1::ControllerPublishVolumeResponse published;
  OC_TRY(
      call("ControllerPublishVolume", &v1::Controller::Stub::ControllerPublishVolume, ctlStub.get(), pr, &published));
  const std::string staging = dir + "/kubelet/staging", pod1 = dir + "/kubelet/pod1", pod2 = dir + "/kubelet/pod2";
  v1::NodeStageVolumeRequest sr;
  sr.set_volume_id(id);
  sr.set_staging_target_path(staging);
  *sr.mutable_volume_capability() = podCap();
  v1::NodeStageVolumeResponse staged;
  OC_TRY(call("NodeStageVolume", &v1::Node::Stub::NodeStageVolume, nodeStub.get(), sr, &staged));
  double t_stage = secondsSince(t);
  t = Clock::now();
  for (const auto& target : {pod1, pod2}) {
    v1::NodePublishVolumeRequest np;
    np.set_volume_id(id);
    np.set_staging_target_path(staging);
    np.set_target_path(target);
    *np.mutable_volume_capability() = podCap();
    v1::NodePublishVolumeResponse r;
    OC_TRY(call("NodePublishVolume", &v1::Node::Stub::NodePublishVolume, nodeStub.get(), np, &r));
  }
  double t_publish = secondsSince(t);
  std::printf(
      "PVC %s: CreateVolume %.2f s (volume %s, mirrored on both hosts), ControllerPublish + NodeStage %.2f s (the SoC "
      "attached it; ext4 made and mounted on the host), NodePublish to two pods %.2f s\n",
      cr.name().c_str(), t_create, id.c_str(), t_stage, t_publish);

  // A pod writes 64 MiB through its path; the other pod reads it back.
  CpuSample c0 = sampleCpu(ctx);
  t = Clock::now();
  OC_TRY(run({"dd", "if=/dev/urandom", "of=" + pod1 + "/data", "bs=1M", "count=64", "conv=fsync", "status=none"},
             inDomain(ctx, Domain::kHost)));
  double t_write = secondsSince(t);
  CpuSample c1 = sampleCpu(ctx);
  OC_ASSIGN_OR_RETURN(std::string sum1, output({"sha256sum", pod1 + "/data"}));
  OC_ASSIGN_OR_RETURN(std::string sum2, output({"sha256sum", pod2 + "/data"}));
  if (sum1.substr(0, 64) != sum2.substr(0, 64)) return makeError("pod2 does not read what pod1 wrote");
  v1::NodeGetVolumeStatsRequest vq;
  vq.set_volume_id(id);
  vq.set_volume_path(pod2);
  v1::NodeGetVolumeStatsResponse stats;
  OC_TRY(call("NodeGetVolumeStats", &v1::Node::Stub::NodeGetVolumeStats, nodeStub.get(), vq, &stats));
  std::printf(
      "pod1 wrote 64 MiB (fsync) in %.2f s, pod2 read the same sha256; NodeGetVolumeStats: %lld MiB used of %lld, "
      "condition %s (%s); CPU for the write: host %.2f s, SoC %.2f s (the mirror's fan-out runs there)\n",
      t_write, static_cast<long long>(stats.usage(0).used() >> 20),
      static_cast<long long>(stats.usage(0).total() >> 20), stats.volume_condition().abnormal() ? "ABNORMAL" : "normal",
      stats.volume_condition().message().c_str(), c1.host - c0.host, c1.soc - c0.soc);

  // Baseline: the same file system on a local file, no network, no mirror.
  t = Clock::now();
  const std::string img = dir + "/local.img", mnt = dir + "/kubelet/local";
  OC_TRY(run({"truncate", "-s", "256M", img}));
  OC_ASSIGN_OR_RETURN(std::string loop_out, output({"losetup", "--find", "--show", "--direct-io=on", img}));
  const std::string loop = trim(loop_out);
  undo.add("loop device", [loop] { (void)runCapture({"losetup", "-d", loop}); });
  OC_TRY(run({"mkfs.ext4", "-q", "-E", "nodiscard,lazy_itable_init=1", loop}));
  OC_TRY(makeDirs(mnt));
  OC_TRY(run({"mount", loop, mnt}));
  double t_local = secondsSince(t);
  OC_TRY(run({"umount", mnt}));
  std::printf(
      "baseline, a local file: losetup + mkfs.ext4 + mount %.2f s; the CSI volume, network-attached and mirrored, "
      "took %.2f s from CreateVolume to two pod mounts (%.1fx)\n",
      t_local, t_create + t_stage + t_publish, (t_create + t_stage + t_publish) / std::max(t_local, 1e-3));

  // The pod goes away, then the PVC.
  t = Clock::now();
  for (const auto& target : {pod1, pod2}) {
    v1::NodeUnpublishVolumeRequest u;
    u.set_volume_id(id);
    u.set_target_path(target);
    v1::NodeUnpublishVolumeResponse r;
    OC_TRY(call("NodeUnpublishVolume", &v1::Node::Stub::NodeUnpublishVolume, nodeStub.get(), u, &r));
  }
  v1::NodeUnstageVolumeRequest us;
  us.set_volume_id(id);
  us.set_staging_target_path(staging);
  v1::NodeUnstageVolumeResponse usr;
  OC_TRY(call("NodeUnstageVolume", &v1::Node::Stub::NodeUnstageVolume, nodeStub.get(), us, &usr));
  v1::ControllerUnpublishVolumeRequest cu;
  cu.set_volume_id(id);
  cu.set_node_id(node);
  v1::ControllerUnpublishVolumeResponse cur;
  OC_TRY(call("ControllerUnpublishVolume", &v1::Controller::Stub::ControllerUnpublishVolume, ctlStub.get(), cu, &cur));
  v1::DeleteVolumeRequest dv;
  dv.set_volume_id(id);
  v1::DeleteVolumeResponse dvr;
  OC_TRY(call("DeleteVolume", &v1::Controller::Stub::DeleteVolume, ctlStub.get(), dv, &dvr));
  std::printf("pods gone, PVC deleted: unmounted, detached from the SoC and removed from both hosts in %.2f s\n",
              secondsSince(t));
  return okStatus();
}

}  // namespace offcore::demo
