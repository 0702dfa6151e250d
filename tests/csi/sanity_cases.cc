#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "csi.grpc.pb.h"
#include "sanity.h"

namespace offcore::test {

SanityTarget& sanityTarget() {
  static SanityTarget t;
  return t;
}

std::function<void()>& sanityFallback() {
  static std::function<void()> f;
  return f;
}

namespace {

namespace v1 = ::csi::v1;
using Mode = v1::VolumeCapability::AccessMode;

std::string uniqueName(const std::string& what) {
  static std::atomic<int> n{0};
  return "sanity-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

v1::VolumeCapability mountCap(Mode::Mode mode = Mode::SINGLE_NODE_WRITER) {
  v1::VolumeCapability c;
  c.mutable_mount();
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

v1::VolumeCapability blockCap(Mode::Mode mode = Mode::SINGLE_NODE_WRITER) {
  v1::VolumeCapability c;
  c.mutable_block();
  c.mutable_access_mode()->set_mode(mode);
  return c;
}

class CsiSanity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (sanityTarget().controller.empty() && sanityFallback()) sanityFallback()();
    const auto& t = sanityTarget();
    ASSERT_FALSE(t.controller.empty()) << "no CSI endpoints configured";
    auto cc = grpc::CreateChannel("unix://" + t.controller, grpc::InsecureChannelCredentials());
    auto nc = grpc::CreateChannel("unix://" + t.node, grpc::InsecureChannelCredentials());
    cid_ = v1::Identity::NewStub(cc);
    nid_ = v1::Identity::NewStub(nc);
    ctl_ = v1::Controller::NewStub(cc);
    node_ = v1::Node::NewStub(nc);
    v1::NodeGetInfoResponse info;
    ASSERT_TRUE(call(&v1::Node::Stub::NodeGetInfo, node_.get(), v1::NodeGetInfoRequest(), &info).ok());
    node_id_ = info.node_id();
  }

  void TearDown() override {
    // Best effort, newest first: whatever a failed case left behind.
    for (auto it = cleanup_.rbegin(); it != cleanup_.rend(); ++it) (*it)();
  }

  template <typename Stub, typename Req, typename Resp>
  grpc::Status call(grpc::Status (Stub::*m)(grpc::ClientContext*, const Req&, Resp*), Stub* stub, const Req& req,
                    Resp* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return (stub->*m)(&ctx, req, resp);
  }

  grpc::StatusCode createCode(const v1::CreateVolumeRequest& req) {
    v1::CreateVolumeResponse r;
    auto s = call(&v1::Controller::Stub::CreateVolume, ctl_.get(), req, &r);
    if (s.ok()) forgetLater(r.volume().volume_id());
    return s.error_code();
  }

  v1::CreateVolumeRequest createReq(const std::string& name, v1::VolumeCapability cap = mountCap()) {
    v1::CreateVolumeRequest req;
    req.set_name(name);
    req.mutable_capacity_range()->set_required_bytes(sanityTarget().volume_bytes);
    *req.add_volume_capabilities() = cap;
    req.mutable_parameters()->insert(sanityTarget().parameters.begin(), sanityTarget().parameters.end());
    return req;
  }

  v1::Volume create(const std::string& name, v1::VolumeCapability cap = mountCap()) {
    v1::CreateVolumeResponse r;
    auto s = call(&v1::Controller::Stub::CreateVolume, ctl_.get(), createReq(name, cap), &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) forgetLater(r.volume().volume_id());
    return r.volume();
  }

  void forgetLater(const std::string& id) {
    cleanup_.push_back([this, id] {
      v1::ControllerUnpublishVolumeRequest u;
      u.set_volume_id(id);
      v1::ControllerUnpublishVolumeResponse ur;
      (void)call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), u, &ur);
      v1::DeleteVolumeRequest d;
      d.set_volume_id(id);
      v1::DeleteVolumeResponse dr;
      (void)call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr);
    });
  }

  v1::Snapshot snapshot(const std::string& source, const std::string& name) {
    v1::CreateSnapshotRequest req;
    req.set_source_volume_id(source);
    req.set_name(name);
    v1::CreateSnapshotResponse r;
    auto s = call(&v1::Controller::Stub::CreateSnapshot, ctl_.get(), req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) {
      std::string id = r.snapshot().snapshot_id();
      cleanup_.push_back([this, id] {
        v1::DeleteSnapshotRequest d;
        d.set_snapshot_id(id);
        v1::DeleteSnapshotResponse dr;
        (void)call(&v1::Controller::Stub::DeleteSnapshot, ctl_.get(), d, &dr);
      });
    }
    return r.snapshot();
  }

  // The calls a flow makes, with their status (the field checks build
  // their requests by hand).
  grpc::Status controllerPublish(const std::string& id, const std::string& node, const v1::VolumeCapability& cap,
                                 bool readonly = false) {
    v1::ControllerPublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    *r.mutable_volume_capability() = cap;
    r.set_readonly(readonly);
    v1::ControllerPublishVolumeResponse out;
    return call(&v1::Controller::Stub::ControllerPublishVolume, ctl_.get(), r, &out);
  }
  grpc::Status controllerUnpublish(const std::string& id, const std::string& node) {
    v1::ControllerUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_node_id(node);
    v1::ControllerUnpublishVolumeResponse out;
    return call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), r, &out);
  }
  grpc::Status deleteVolume(const std::string& id) {
    v1::DeleteVolumeRequest r;
    r.set_volume_id(id);
    v1::DeleteVolumeResponse out;
    return call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), r, &out);
  }
  grpc::Status stage(const std::string& id, const std::string& staging, const v1::VolumeCapability& cap) {
    v1::NodeStageVolumeRequest r;
    r.set_volume_id(id);
    r.set_staging_target_path(staging);
    *r.mutable_volume_capability() = cap;
    v1::NodeStageVolumeResponse out;
    return call(&v1::Node::Stub::NodeStageVolume, node_.get(), r, &out);
  }
  grpc::Status unstage(const std::string& id, const std::string& staging) {
    v1::NodeUnstageVolumeRequest r;
    r.set_volume_id(id);
    r.set_staging_target_path(staging);
    v1::NodeUnstageVolumeResponse out;
    return call(&v1::Node::Stub::NodeUnstageVolume, node_.get(), r, &out);
  }
  grpc::Status nodePublish(const std::string& id, const std::string& staging, const std::string& target,
                           const v1::VolumeCapability& cap, bool readonly = false) {
    v1::NodePublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_staging_target_path(staging);
    r.set_target_path(target);
    r.set_readonly(readonly);
    *r.mutable_volume_capability() = cap;
    v1::NodePublishVolumeResponse out;
    return call(&v1::Node::Stub::NodePublishVolume, node_.get(), r, &out);
  }
  grpc::Status nodeUnpublish(const std::string& id, const std::string& target) {
    v1::NodeUnpublishVolumeRequest r;
    r.set_volume_id(id);
    r.set_target_path(target);
    v1::NodeUnpublishVolumeResponse out;
    return call(&v1::Node::Stub::NodeUnpublishVolume, node_.get(), r, &out);
  }
  grpc::Status stats(const std::string& id, const std::string& path, v1::NodeGetVolumeStatsResponse* out) {
    v1::NodeGetVolumeStatsRequest r;
    r.set_volume_id(id);
    r.set_volume_path(path);
    return call(&v1::Node::Stub::NodeGetVolumeStats, node_.get(), r, out);
  }

  std::string path(const std::string& leaf) {
    auto p = std::filesystem::path(sanityTarget().work_dir) / (uniqueName(leaf));
    return p.string();
  }

  std::unique_ptr<v1::Identity::Stub> cid_, nid_;
  std::unique_ptr<v1::Controller::Stub> ctl_;
  std::unique_ptr<v1::Node::Stub> node_;
  std::string node_id_;
  std::vector<std::function<void()>> cleanup_;
};

using SC = grpc::StatusCode;

// --- Identity --------------------------------------------------------------

TEST_F(CsiSanity, IdentityNamesThePluginOnBothSockets) {
  for (auto* stub : {cid_.get(), nid_.get()}) {
    v1::GetPluginInfoResponse info;
    ASSERT_TRUE(call(&v1::Identity::Stub::GetPluginInfo, stub, v1::GetPluginInfoRequest(), &info).ok());
    EXPECT_EQ(info.name(), "csi.offcore.io");
    EXPECT_FALSE(info.vendor_version().empty());
    v1::ProbeResponse probe;
    ASSERT_TRUE(call(&v1::Identity::Stub::Probe, stub, v1::ProbeRequest(), &probe).ok());
    EXPECT_TRUE(!probe.has_ready() || probe.ready().value());
  }
  v1::GetPluginCapabilitiesResponse caps;
  ASSERT_TRUE(
      call(&v1::Identity::Stub::GetPluginCapabilities, cid_.get(), v1::GetPluginCapabilitiesRequest(), &caps).ok());
  bool controller = false;
  for (const auto& c : caps.capabilities()) {
    controller |= c.has_service() && c.service().type() == v1::PluginCapability::Service::CONTROLLER_SERVICE;
  }
  EXPECT_TRUE(controller);
}

// --- CreateVolume / DeleteVolume ---------------------------------------------

TEST_F(CsiSanity, CreateVolumeRefusesMissingFields) {
  auto req = createReq("");
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "no name";
  req = createReq(uniqueName("nocaps"));
  req.clear_volume_capabilities();
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "no capabilities";
  req = createReq(uniqueName("nomode"));
  req.mutable_volume_capabilities(0)->clear_access_mode();
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "no access mode";
  req = createReq(uniqueName("notype"));
  req.mutable_volume_capabilities(0)->clear_mount();
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "no access type";
  req = createReq(uniqueName("multi"), mountCap(Mode::MULTI_NODE_MULTI_WRITER));
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "a mode offcore cannot serve";
  req = createReq(uniqueName("param"));
  (*req.mutable_parameters())["no-such-parameter"] = "1";
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "an unknown parameter";
  req = createReq(uniqueName("range"));
  req.mutable_capacity_range()->set_limit_bytes(sanityTarget().volume_bytes / 2);
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "limit below required";
  req = createReq(uniqueName("neg"));
  req.mutable_capacity_range()->set_required_bytes(-1);
  EXPECT_EQ(createCode(req), SC::INVALID_ARGUMENT) << "negative size";
  req = createReq(uniqueName("tiny"));
  req.mutable_capacity_range()->set_required_bytes(4096);
  req.mutable_capacity_range()->set_limit_bytes(8192);
  EXPECT_EQ(createCode(req), SC::OUT_OF_RANGE) << "no size offcore makes fits the range";
  req = createReq(uniqueName("snapsrc"));
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id("sanity-no-such-snapshot");
  EXPECT_EQ(createCode(req), SC::NOT_FOUND) << "a source snapshot that is not there";
  req = createReq(uniqueName("volsrc"));
  req.mutable_volume_content_source()->mutable_volume()->set_volume_id("sanity-no-such-volume");
  EXPECT_EQ(createCode(req), SC::NOT_FOUND) << "a source volume that is not there";
}

TEST_F(CsiSanity, CreateVolumeIsIdempotentAndRefusesAnotherSizeUnderTheSameName) {
  std::string name = uniqueName("idem");
  auto v1st = create(name);
  ASSERT_FALSE(v1st.volume_id().empty());
  EXPECT_GE(v1st.capacity_bytes(), sanityTarget().volume_bytes);
  auto v2nd = create(name);
  EXPECT_EQ(v2nd.volume_id(), v1st.volume_id());
  EXPECT_EQ(v2nd.capacity_bytes(), v1st.capacity_bytes());
  auto other = createReq(name);
  other.mutable_capacity_range()->set_required_bytes(sanityTarget().volume_bytes * 2);
  EXPECT_EQ(createCode(other), SC::ALREADY_EXISTS);
}

TEST_F(CsiSanity, CreateVolumeTakesNamesThatAreNotVolumeNames) {
  std::string name = "Sanity/Odd Name " + uniqueName("x");
  auto v = create(name);
  ASSERT_FALSE(v.volume_id().empty());
  EXPECT_EQ(create(name).volume_id(), v.volume_id());
  std::string longName = uniqueName("long");
  longName += std::string(128 - longName.size(), 'x');  // the 128 bytes COs may send
  auto l = create(longName);
  ASSERT_FALSE(l.volume_id().empty());
  EXPECT_EQ(create(longName).volume_id(), l.volume_id());
}

TEST_F(CsiSanity, CreateVolumeAcceptsAnyCompatibleRangeForAnExistingName) {
  std::string name = uniqueName("range");
  auto v = create(name);
  auto again = createReq(name);
  again.mutable_capacity_range()->set_required_bytes(sanityTarget().volume_bytes / 2);
  EXPECT_EQ(createCode(again), SC::OK) << "a smaller floor is still satisfied by the volume";
  auto capped = createReq(name);
  capped.mutable_capacity_range()->set_required_bytes(0);
  capped.mutable_capacity_range()->set_limit_bytes(v.capacity_bytes() / 2);
  EXPECT_EQ(createCode(capped), SC::ALREADY_EXISTS) << "a ceiling below the volume";
  auto only = createReq(uniqueName("limitonly"));
  only.mutable_capacity_range()->set_required_bytes(0);
  only.mutable_capacity_range()->set_limit_bytes(sanityTarget().volume_bytes + 12345);
  v1::CreateVolumeResponse r;
  auto s = call(&v1::Controller::Stub::CreateVolume, ctl_.get(), only, &r);
  ASSERT_TRUE(s.ok()) << "a limit alone is met by rounding down: " << s.error_message();
  forgetLater(r.volume().volume_id());
  EXPECT_LE(r.volume().capacity_bytes(), sanityTarget().volume_bytes + 12345);
  EXPECT_GT(r.volume().capacity_bytes(), 0);
}

TEST_F(CsiSanity, MoreReplicasThanStorageHostsIsRefusedAndMakesNothing) {
  int n = sanityTarget().unplaceable_replicas;
  if (n == 0) GTEST_SKIP() << "no --unplaceable-replicas given";
  std::string name = uniqueName("toomany");
  auto req = createReq(name);
  (*req.mutable_parameters())["replicas"] = std::to_string(n);
  v1::CreateVolumeResponse r;
  auto s = call(&v1::Controller::Stub::CreateVolume, ctl_.get(), req, &r);
  if (s.ok()) forgetLater(r.volume().volume_id());
  EXPECT_EQ(s.error_code(), SC::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("replicas"), std::string::npos) << s.error_message();
  v1::ListVolumesResponse list;
  ASSERT_TRUE(call(&v1::Controller::Stub::ListVolumes, ctl_.get(), v1::ListVolumesRequest(), &list).ok());
  for (const auto& e : list.entries()) EXPECT_NE(e.volume().volume_id(), name) << "a refused create left a volume";
}

TEST_F(CsiSanity, DeleteVolumeIsIdempotent) {
  v1::DeleteVolumeRequest d;
  v1::DeleteVolumeResponse dr;
  EXPECT_EQ(call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr).error_code(), SC::INVALID_ARGUMENT);
  d.set_volume_id("sanity-never-made");
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr).ok());
  auto v = create(uniqueName("del"));
  d.set_volume_id(v.volume_id());
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr).ok());
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr).ok());
  v1::ListVolumesResponse list;
  ASSERT_TRUE(call(&v1::Controller::Stub::ListVolumes, ctl_.get(), v1::ListVolumesRequest(), &list).ok());
  for (const auto& e : list.entries()) EXPECT_NE(e.volume().volume_id(), v.volume_id());
}

// --- ValidateVolumeCapabilities, ListVolumes, GetCapacity ---------------------

TEST_F(CsiSanity, ValidateVolumeCapabilities) {
  v1::ValidateVolumeCapabilitiesRequest req;
  v1::ValidateVolumeCapabilitiesResponse r;
  *req.add_volume_capabilities() = mountCap();
  EXPECT_EQ(call(&v1::Controller::Stub::ValidateVolumeCapabilities, ctl_.get(), req, &r).error_code(),
            SC::INVALID_ARGUMENT);
  req.set_volume_id("sanity-never-made");
  EXPECT_EQ(call(&v1::Controller::Stub::ValidateVolumeCapabilities, ctl_.get(), req, &r).error_code(), SC::NOT_FOUND);
  auto v = create(uniqueName("validate"));
  req.set_volume_id(v.volume_id());
  req.clear_volume_capabilities();
  EXPECT_EQ(call(&v1::Controller::Stub::ValidateVolumeCapabilities, ctl_.get(), req, &r).error_code(),
            SC::INVALID_ARGUMENT);
  *req.add_volume_capabilities() = mountCap();
  ASSERT_TRUE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, ctl_.get(), req, &r).ok());
  EXPECT_TRUE(r.has_confirmed());
  req.clear_volume_capabilities();
  *req.add_volume_capabilities() = mountCap(Mode::MULTI_NODE_MULTI_WRITER);
  r.Clear();
  ASSERT_TRUE(call(&v1::Controller::Stub::ValidateVolumeCapabilities, ctl_.get(), req, &r).ok());
  EXPECT_FALSE(r.has_confirmed());
  EXPECT_FALSE(r.message().empty());
}

TEST_F(CsiSanity, ListVolumesPagesThroughEveryVolume) {
  std::set<std::string> made;
  for (int i = 0; i < 3; ++i) made.insert(create(uniqueName("list")).volume_id());
  std::set<std::string> seen;
  v1::ListVolumesRequest req;
  req.set_max_entries(1);
  for (int pages = 0; pages < 1000; ++pages) {
    v1::ListVolumesResponse r;
    ASSERT_TRUE(call(&v1::Controller::Stub::ListVolumes, ctl_.get(), req, &r).ok());
    ASSERT_LE(r.entries_size(), 1);
    for (const auto& e : r.entries()) seen.insert(e.volume().volume_id());
    if (r.next_token().empty()) break;
    req.set_starting_token(r.next_token());
  }
  for (const auto& id : made) EXPECT_TRUE(seen.count(id)) << id;
  req.set_starting_token("not-a-token");
  v1::ListVolumesResponse r;
  EXPECT_EQ(call(&v1::Controller::Stub::ListVolumes, ctl_.get(), req, &r).error_code(), SC::ABORTED);
  req.clear_starting_token();
  req.set_max_entries(-1);
  EXPECT_EQ(call(&v1::Controller::Stub::ListVolumes, ctl_.get(), req, &r).error_code(), SC::INVALID_ARGUMENT);
}

TEST_F(CsiSanity, GetCapacity) {
  v1::GetCapacityRequest req;
  req.mutable_parameters()->insert(sanityTarget().parameters.begin(), sanityTarget().parameters.end());
  v1::GetCapacityResponse r;
  ASSERT_TRUE(call(&v1::Controller::Stub::GetCapacity, ctl_.get(), req, &r).ok());
  EXPECT_GT(r.available_capacity(), 0);
  (*req.mutable_parameters())["no-such-parameter"] = "x";
  EXPECT_EQ(call(&v1::Controller::Stub::GetCapacity, ctl_.get(), req, &r).error_code(), SC::INVALID_ARGUMENT);
}

// --- ControllerPublish / Unpublish ---------------------------------------------

TEST_F(CsiSanity, ControllerPublishFollowsTheSpecTable) {
  v1::ControllerPublishVolumeRequest req;
  v1::ControllerPublishVolumeResponse r;
  auto code = [&] { return call(&v1::Controller::Stub::ControllerPublishVolume, ctl_.get(), req, &r).error_code(); };
  req.set_node_id(node_id_);
  *req.mutable_volume_capability() = mountCap();
  EXPECT_EQ(code(), SC::INVALID_ARGUMENT) << "no volume id";
  req.set_volume_id("sanity-never-made");
  req.clear_node_id();
  EXPECT_EQ(code(), SC::INVALID_ARGUMENT) << "no node id";
  req.set_node_id(node_id_);
  req.clear_volume_capability();
  EXPECT_EQ(code(), SC::INVALID_ARGUMENT) << "no capability";
  *req.mutable_volume_capability() = mountCap();
  EXPECT_EQ(code(), SC::NOT_FOUND) << "no such volume";
  auto v = create(uniqueName("pub"));
  req.set_volume_id(v.volume_id());
  req.set_node_id("sanity-no-such-node");
  EXPECT_EQ(code(), SC::NOT_FOUND) << "no such node";
  req.set_node_id(node_id_);
  EXPECT_EQ(code(), SC::OK);
  EXPECT_EQ(code(), SC::OK) << "the same publish again";
  req.set_readonly(true);
  EXPECT_EQ(code(), SC::ALREADY_EXISTS) << "published there differently";
  req.set_readonly(false);
  if (!sanityTarget().other_node.empty()) {
    req.set_node_id(sanityTarget().other_node);
    grpc::ClientContext ctx;
    auto s = ctl_->ControllerPublishVolume(&ctx, req, &r);
    EXPECT_EQ(s.error_code(), SC::FAILED_PRECONDITION);
    EXPECT_NE(s.error_message().find(node_id_), std::string::npos) << "names the node it is on: " << s.error_message();
  }
  v1::DeleteVolumeRequest d;
  d.set_volume_id(v.volume_id());
  v1::DeleteVolumeResponse dr;
  EXPECT_EQ(call(&v1::Controller::Stub::DeleteVolume, ctl_.get(), d, &dr).error_code(), SC::FAILED_PRECONDITION)
      << "a published volume is in use";
  v1::ControllerUnpublishVolumeRequest u;
  v1::ControllerUnpublishVolumeResponse ur;
  EXPECT_EQ(call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), u, &ur).error_code(),
            SC::INVALID_ARGUMENT);
  u.set_volume_id(v.volume_id());
  u.set_node_id(node_id_);
  EXPECT_TRUE(call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), u, &ur).ok());
  EXPECT_TRUE(call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), u, &ur).ok()) << "idempotent";
  u.set_volume_id("sanity-never-made");
  EXPECT_TRUE(call(&v1::Controller::Stub::ControllerUnpublishVolume, ctl_.get(), u, &ur).ok());
}

// --- Snapshots -----------------------------------------------------------------

TEST_F(CsiSanity, SnapshotsCreateListDeleteAndRestore) {
  v1::CreateSnapshotRequest bad;
  v1::CreateSnapshotResponse br;
  bad.set_name(uniqueName("snap"));
  EXPECT_EQ(call(&v1::Controller::Stub::CreateSnapshot, ctl_.get(), bad, &br).error_code(), SC::INVALID_ARGUMENT);
  bad.set_source_volume_id("sanity-never-made");
  EXPECT_EQ(call(&v1::Controller::Stub::CreateSnapshot, ctl_.get(), bad, &br).error_code(), SC::NOT_FOUND);
  bad.clear_name();
  EXPECT_EQ(call(&v1::Controller::Stub::CreateSnapshot, ctl_.get(), bad, &br).error_code(), SC::INVALID_ARGUMENT);

  auto a = create(uniqueName("snapsrc"));
  auto b = create(uniqueName("snapsrc"));
  std::string sname = uniqueName("snap");
  auto s = snapshot(a.volume_id(), sname);
  ASSERT_FALSE(s.snapshot_id().empty());
  EXPECT_EQ(s.source_volume_id(), a.volume_id());
  EXPECT_TRUE(s.ready_to_use());
  EXPECT_GT(s.creation_time().seconds(), 0);
  EXPECT_EQ(snapshot(a.volume_id(), sname).snapshot_id(), s.snapshot_id()) << "idempotent";
  v1::CreateSnapshotRequest other;
  other.set_name(sname);
  other.set_source_volume_id(b.volume_id());
  EXPECT_EQ(call(&v1::Controller::Stub::CreateSnapshot, ctl_.get(), other, &br).error_code(), SC::ALREADY_EXISTS);

  v1::ListSnapshotsRequest lq;
  v1::ListSnapshotsResponse lr;
  lq.set_snapshot_id(s.snapshot_id());
  ASSERT_TRUE(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), lq, &lr).ok());
  ASSERT_EQ(lr.entries_size(), 1);
  EXPECT_EQ(lr.entries(0).snapshot().source_volume_id(), a.volume_id());
  EXPECT_EQ(lr.entries(0).snapshot().creation_time().seconds(), s.creation_time().seconds()) << "listed as made";
  lq.Clear();
  lq.set_source_volume_id(b.volume_id());
  lr.Clear();
  ASSERT_TRUE(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), lq, &lr).ok());
  EXPECT_EQ(lr.entries_size(), 0);
  lq.Clear();
  lq.set_snapshot_id("sanity-no-such-snapshot");
  lr.Clear();
  ASSERT_TRUE(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), lq, &lr).ok());
  EXPECT_EQ(lr.entries_size(), 0);
  lq.Clear();
  lq.set_starting_token("bogus");
  EXPECT_EQ(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), lq, &lr).error_code(), SC::ABORTED);

  // A volume from the snapshot, and a volume from a volume.
  auto req = createReq(uniqueName("restore"));
  req.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(s.snapshot_id());
  v1::CreateVolumeResponse restored;
  ASSERT_TRUE(call(&v1::Controller::Stub::CreateVolume, ctl_.get(), req, &restored).ok());
  forgetLater(restored.volume().volume_id());
  EXPECT_EQ(restored.volume().content_source().snapshot().snapshot_id(), s.snapshot_id());
  EXPECT_GE(restored.volume().capacity_bytes(), s.size_bytes());
  auto small = createReq(uniqueName("small"));
  small.mutable_capacity_range()->set_required_bytes(s.size_bytes() / 2);
  small.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(s.snapshot_id());
  EXPECT_EQ(createCode(small), SC::OUT_OF_RANGE) << "smaller than its snapshot";
  auto clone = createReq(uniqueName("clone"));
  clone.mutable_volume_content_source()->mutable_volume()->set_volume_id(b.volume_id());
  v1::CreateVolumeResponse cloned;
  ASSERT_TRUE(call(&v1::Controller::Stub::CreateVolume, ctl_.get(), clone, &cloned).ok());
  forgetLater(cloned.volume().volume_id());
  EXPECT_EQ(cloned.volume().content_source().volume().volume_id(), b.volume_id());

  // Paging over every snapshot, one at a time.
  auto s2 = snapshot(b.volume_id(), uniqueName("snap"));
  std::set<std::string> seen;
  v1::ListSnapshotsRequest pq;
  pq.set_max_entries(1);
  for (int pages = 0; pages < 1000; ++pages) {
    v1::ListSnapshotsResponse pr;
    ASSERT_TRUE(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), pq, &pr).ok());
    ASSERT_LE(pr.entries_size(), 1);
    for (const auto& e : pr.entries()) seen.insert(e.snapshot().snapshot_id());
    if (pr.next_token().empty()) break;
    pq.set_starting_token(pr.next_token());
  }
  EXPECT_TRUE(seen.count(s.snapshot_id()) && seen.count(s2.snapshot_id()));

  v1::DeleteSnapshotRequest d;
  v1::DeleteSnapshotResponse dr;
  EXPECT_EQ(call(&v1::Controller::Stub::DeleteSnapshot, ctl_.get(), d, &dr).error_code(), SC::INVALID_ARGUMENT);
  d.set_snapshot_id("sanity-no-such-snapshot");
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, ctl_.get(), d, &dr).ok());
  // Deleted while its source volume and a volume restored from it live:
  // gone for the CO at once, and not a source any more.
  d.set_snapshot_id(s2.snapshot_id());
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, ctl_.get(), d, &dr).ok());
  EXPECT_TRUE(call(&v1::Controller::Stub::DeleteSnapshot, ctl_.get(), d, &dr).ok()) << "idempotent";
  lq.Clear();
  lq.set_snapshot_id(s2.snapshot_id());
  lr.Clear();
  ASSERT_TRUE(call(&v1::Controller::Stub::ListSnapshots, ctl_.get(), lq, &lr).ok());
  EXPECT_EQ(lr.entries_size(), 0) << "a deleted snapshot is still listed";
  auto from = createReq(uniqueName("fromdeleted"));
  from.mutable_volume_content_source()->mutable_snapshot()->set_snapshot_id(s2.snapshot_id());
  EXPECT_EQ(createCode(from), SC::NOT_FOUND) << "a deleted snapshot is not a source";
}

// --- ControllerExpandVolume ----------------------------------------------------

TEST_F(CsiSanity, ControllerExpandVolume) {
  v1::ControllerExpandVolumeRequest req;
  v1::ControllerExpandVolumeResponse r;
  req.mutable_capacity_range()->set_required_bytes(sanityTarget().volume_bytes * 2);
  EXPECT_EQ(call(&v1::Controller::Stub::ControllerExpandVolume, ctl_.get(), req, &r).error_code(),
            SC::INVALID_ARGUMENT);
  req.set_volume_id("sanity-never-made");
  EXPECT_EQ(call(&v1::Controller::Stub::ControllerExpandVolume, ctl_.get(), req, &r).error_code(), SC::NOT_FOUND);
  auto v = create(uniqueName("grow"));
  req.set_volume_id(v.volume_id());
  req.clear_capacity_range();
  EXPECT_EQ(call(&v1::Controller::Stub::ControllerExpandVolume, ctl_.get(), req, &r).error_code(),
            SC::INVALID_ARGUMENT);
  req.mutable_capacity_range()->set_required_bytes(sanityTarget().volume_bytes * 2);
  ASSERT_TRUE(call(&v1::Controller::Stub::ControllerExpandVolume, ctl_.get(), req, &r).ok());
  EXPECT_GE(r.capacity_bytes(), sanityTarget().volume_bytes * 2);
  EXPECT_TRUE(r.node_expansion_required());
}

// --- Node ------------------------------------------------------------------------

TEST_F(CsiSanity, NodeRefusesMissingFields) {
  v1::NodeGetCapabilitiesResponse caps;
  ASSERT_TRUE(call(&v1::Node::Stub::NodeGetCapabilities, node_.get(), v1::NodeGetCapabilitiesRequest(), &caps).ok());
  bool stage = false;
  for (const auto& c : caps.capabilities()) {
    stage |= c.rpc().type() == v1::NodeServiceCapability::RPC::STAGE_UNSTAGE_VOLUME;
  }
  EXPECT_TRUE(stage);
  EXPECT_FALSE(node_id_.empty());
  v1::NodeGetInfoResponse info;
  ASSERT_TRUE(call(&v1::Node::Stub::NodeGetInfo, node_.get(), v1::NodeGetInfoRequest(), &info).ok());
  EXPECT_GE(info.max_volumes_per_node(), 0);

  v1::NodeStageVolumeRequest st;
  v1::NodeStageVolumeResponse str;
  auto stageCode = [&] { return call(&v1::Node::Stub::NodeStageVolume, node_.get(), st, &str).error_code(); };
  st.set_staging_target_path(path("stage"));
  *st.mutable_volume_capability() = mountCap();
  EXPECT_EQ(stageCode(), SC::INVALID_ARGUMENT) << "no volume id";
  st.set_volume_id("sanity-never-made");
  st.clear_staging_target_path();
  EXPECT_EQ(stageCode(), SC::INVALID_ARGUMENT) << "no staging path";
  st.set_staging_target_path(path("stage"));
  st.clear_volume_capability();
  EXPECT_EQ(stageCode(), SC::INVALID_ARGUMENT) << "no capability";
  *st.mutable_volume_capability() = mountCap();
  EXPECT_EQ(stageCode(), SC::NOT_FOUND) << "no such volume";

  v1::NodePublishVolumeRequest pub;
  v1::NodePublishVolumeResponse pr;
  pub.set_volume_id("sanity-never-made");
  pub.set_target_path(path("target"));
  *pub.mutable_volume_capability() = mountCap();
  EXPECT_EQ(call(&v1::Node::Stub::NodePublishVolume, node_.get(), pub, &pr).error_code(), SC::FAILED_PRECONDITION)
      << "no staging path with STAGE_UNSTAGE_VOLUME";
  pub.set_staging_target_path(path("stage"));
  pub.clear_target_path();
  EXPECT_EQ(call(&v1::Node::Stub::NodePublishVolume, node_.get(), pub, &pr).error_code(), SC::INVALID_ARGUMENT);
  pub.set_target_path(path("target"));
  EXPECT_EQ(call(&v1::Node::Stub::NodePublishVolume, node_.get(), pub, &pr).error_code(), SC::NOT_FOUND);

  v1::NodeUnpublishVolumeRequest up;
  v1::NodeUnpublishVolumeResponse upr;
  up.set_target_path(path("target"));
  EXPECT_EQ(call(&v1::Node::Stub::NodeUnpublishVolume, node_.get(), up, &upr).error_code(), SC::INVALID_ARGUMENT);
  v1::NodeUnstageVolumeRequest us;
  v1::NodeUnstageVolumeResponse usr;
  us.set_volume_id("sanity-never-made");
  EXPECT_EQ(call(&v1::Node::Stub::NodeUnstageVolume, node_.get(), us, &usr).error_code(), SC::INVALID_ARGUMENT);
  v1::NodeGetVolumeStatsRequest sq;
  v1::NodeGetVolumeStatsResponse sr;
  sq.set_volume_id("sanity-never-made");
  EXPECT_EQ(call(&v1::Node::Stub::NodeGetVolumeStats, node_.get(), sq, &sr).error_code(), SC::INVALID_ARGUMENT);
  sq.set_volume_path(path("nowhere"));
  EXPECT_EQ(call(&v1::Node::Stub::NodeGetVolumeStats, node_.get(), sq, &sr).error_code(), SC::NOT_FOUND);
}

// The Kubernetes-shaped flow: provision, attach, stage, publish to two pods'
// paths, write through one and read through the other, tear it all down.
TEST_F(CsiSanity, KubernetesFlowStagePublishTwiceWriteUnpublishUnstageDelete) {
  const auto cap = mountCap(Mode::SINGLE_NODE_MULTI_WRITER);
  auto v = create(uniqueName("k8s"), cap);
  ASSERT_FALSE(v.volume_id().empty());
  const std::string& id = v.volume_id();
  ASSERT_TRUE(controllerPublish(id, node_id_, cap).ok());

  const std::string staging = path("staging"), t1 = path("pod1"), t2 = path("pod2");
  auto sst = stage(id, staging, cap);
  ASSERT_TRUE(sst.ok()) << sst.error_message();
  ASSERT_TRUE(stage(id, staging, cap).ok()) << "stage is idempotent";
  EXPECT_EQ(stage(id, path("elsewhere"), cap).error_code(), SC::ALREADY_EXISTS);

  auto p1 = nodePublish(id, staging, t1, cap);
  ASSERT_TRUE(p1.ok()) << p1.error_message();
  ASSERT_TRUE(nodePublish(id, staging, t2, cap).ok());
  for (int i = 0; i < 10; ++i) {  // what a kubelet retrying does
    EXPECT_TRUE(stage(id, staging, cap).ok()) << "stage again, " << i;
    EXPECT_TRUE(nodePublish(id, staging, t1, cap).ok()) << "publish again, " << i;
  }
  EXPECT_EQ(nodePublish(id, staging, t1, cap, true).error_code(), SC::ALREADY_EXISTS)
      << "the same target, readonly now";

  if (!sanityTarget().between.empty()) {
    ASSERT_EQ(std::system(sanityTarget().between.c_str()), 0) << sanityTarget().between;
    // What a kubelet does after a plugin restart: the same calls again.
    EXPECT_TRUE(stage(id, staging, cap).ok()) << "stage after the restart";
    EXPECT_TRUE(nodePublish(id, staging, t1, cap).ok()) << "publish after the restart";
    EXPECT_EQ(nodePublish(id, staging, t1, cap, true).error_code(), SC::ALREADY_EXISTS)
        << "the restarted plugin remembers the target";
  }
  if (sanityTarget().real_mounts) {
    {
      std::ofstream f(t1 + "/hello.txt");
      f << "written through pod1\n";
    }
    ::sync();
    std::ifstream g(t2 + "/hello.txt");
    std::string line;
    std::getline(g, line);
    EXPECT_EQ(line, "written through pod1") << "pod2 sees what pod1 wrote";
  }
  v1::NodeGetVolumeStatsResponse sr;
  auto ss = stats(id, t1, &sr);
  ASSERT_TRUE(ss.ok()) << ss.error_message();
  ASSERT_GE(sr.usage_size(), 1);
  EXPECT_GT(sr.usage(0).total(), 0);
  if (sanityTarget().real_mounts) {
    EXPECT_FALSE(sr.volume_condition().abnormal()) << sr.volume_condition().message();
  }

  // NodeExpandVolume: the file system fills what the disk has (offline
  // growth happens at the controller while unpublished; here nothing to grow).
  v1::NodeExpandVolumeRequest ex;
  v1::NodeExpandVolumeResponse exr;
  ex.set_volume_path(t1);
  EXPECT_EQ(call(&v1::Node::Stub::NodeExpandVolume, node_.get(), ex, &exr).error_code(), SC::INVALID_ARGUMENT);
  ex.set_volume_id(id);
  ex.clear_volume_path();
  EXPECT_EQ(call(&v1::Node::Stub::NodeExpandVolume, node_.get(), ex, &exr).error_code(), SC::INVALID_ARGUMENT);
  ex.set_volume_path(path("not-a-volume"));
  EXPECT_EQ(call(&v1::Node::Stub::NodeExpandVolume, node_.get(), ex, &exr).error_code(), SC::NOT_FOUND);
  ex.set_volume_path(t1);
  auto exs = call(&v1::Node::Stub::NodeExpandVolume, node_.get(), ex, &exr);
  EXPECT_TRUE(exs.ok()) << exs.error_message();
  EXPECT_GE(exr.capacity_bytes(), sanityTarget().volume_bytes);

  EXPECT_EQ(unstage(id, staging).error_code(), SC::FAILED_PRECONDITION) << "unstage while published";
  for (const auto& t : {t1, t2}) {
    auto u = nodeUnpublish(id, t);
    EXPECT_TRUE(u.ok()) << u.error_message();
    EXPECT_TRUE(nodeUnpublish(id, t).ok()) << "idempotent";
    if (sanityTarget().real_mounts) {
      EXPECT_FALSE(std::filesystem::exists(t)) << t << " left behind";
    }
  }
  auto u = unstage(id, staging);
  EXPECT_TRUE(u.ok()) << u.error_message();
  EXPECT_TRUE(unstage(id, staging).ok()) << "idempotent";
  EXPECT_TRUE(controllerUnpublish(id, node_id_).ok());
  auto del = deleteVolume(id);
  EXPECT_TRUE(del.ok()) << del.error_message();
}

// A node that never unstages (it died; the CO force-detaches): after
// ControllerUnpublish the volume is fenced off that node (its disk
// detached), the node reports it abnormal, and its unstage still cleans up.
TEST_F(CsiSanity, ControllerUnpublishFencesANodeThatDidNotUnstage) {
  if (!sanityTarget().real_mounts) GTEST_SKIP() << "needs a real node (--real-mounts)";
  auto v = create(uniqueName("fence"));
  const std::string& id = v.volume_id();
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(controllerPublish(id, node_id_, mountCap()).ok());
  const std::string staging = path("fstage");
  auto sst = stage(id, staging, mountCap());
  ASSERT_TRUE(sst.ok()) << sst.error_message();
  auto u = controllerUnpublish(id, node_id_);
  ASSERT_TRUE(u.ok()) << u.error_message();
  v1::NodeGetVolumeStatsResponse sr;
  if (stats(id, staging, &sr).ok()) {
    EXPECT_TRUE(sr.volume_condition().abnormal()) << "a fenced volume reads as normal";
  }
  auto un = unstage(id, staging);
  EXPECT_TRUE(un.ok()) << "unstage after the fence: " << un.error_message();
  auto del = deleteVolume(id);
  EXPECT_TRUE(del.ok()) << del.error_message();
}

// A single-writer volume takes one target; a block volume publishes as a file.
TEST_F(CsiSanity, SingleWriterTakesOneTargetAndBlockPublishesADevice) {
  const auto cap = blockCap(Mode::SINGLE_NODE_SINGLE_WRITER);
  auto v = create(uniqueName("blk"), cap);
  const std::string& id = v.volume_id();
  ASSERT_FALSE(id.empty());
  const std::string staging = path("bstage"), t1 = path("bdev1"), t2 = path("bdev2");
  auto sst = stage(id, staging, cap);
  ASSERT_TRUE(sst.ok()) << sst.error_message();
  auto p1 = nodePublish(id, staging, t1, cap);
  ASSERT_TRUE(p1.ok()) << p1.error_message();
  EXPECT_EQ(nodePublish(id, staging, t2, cap).error_code(), SC::FAILED_PRECONDITION)
      << "a second target of a single writer";
  if (sanityTarget().real_mounts) {
    std::string block(4096, 'b');
    {
      std::fstream f(t1, std::ios::in | std::ios::out | std::ios::binary);
      ASSERT_TRUE(f.good()) << "the block target opens";
      f.seekp(1 << 20);
      f.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
    std::ifstream g(t1, std::ios::binary);
    g.seekg(1 << 20);
    std::string back(4096, '\0');
    g.read(back.data(), 4096);
    EXPECT_EQ(back, block);
  }
  v1::NodeGetVolumeStatsResponse sr;
  ASSERT_TRUE(stats(id, t1, &sr).ok());
  ASSERT_GE(sr.usage_size(), 1);
  if (sanityTarget().real_mounts) {
    EXPECT_EQ(sr.usage(0).total(), v.capacity_bytes());
  }
  EXPECT_TRUE(nodeUnpublish(id, t1).ok());
  auto u = unstage(id, staging);
  EXPECT_TRUE(u.ok()) << u.error_message();
}

}  // namespace

}  // namespace offcore::test
