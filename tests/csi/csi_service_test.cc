// The CSI services over the fakes: the conformance cases (sanity_cases.cc)
// against an in-process server, plus what only a fake can force (two calls
// on one volume at once) and the pieces the services are built from.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "csi.grpc.pb.h"
#include "csi/server.h"
#include "csi/service.h"
#include "csi/service_common.h"
#include "fakes.h"
#include "sanity.h"

namespace offcore::test {

namespace {

struct FakePlugin {
  FakeController controller;
  FakeNode node{controller};
  std::unique_ptr<csi::CsiServer> ctl_server, node_server;
  std::string dir;
};

FakePlugin& fakePlugin() {
  static FakePlugin p;
  return p;
}

// Started on the first CSI case and stopped at the end of the run.
void startFakePlugin() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& p = fakePlugin();
    p.dir = "/tmp/oc-csi-unit-" + std::to_string(::getpid());
    std::filesystem::create_directories(p.dir);
    std::vector<std::unique_ptr<grpc::Service>> cs, ns;
    csi::IdentityInfo ci{csi::kDriverName, "test", true, {}};
    cs.push_back(csi::makeIdentityService(ci));
    cs.push_back(csi::makeControllerService(p.controller));
    csi::IdentityInfo ni{csi::kDriverName, "test", false, {}};
    ns.push_back(csi::makeIdentityService(ni));
    ns.push_back(csi::makeNodeService(p.node));
    auto c = csi::CsiServer::start("unix://" + p.dir + "/controller.sock", std::move(cs));
    auto n = csi::CsiServer::start(p.dir + "/node.sock", std::move(ns));
    if (!c.ok() || !n.ok()) {
      ADD_FAILURE() << "fake CSI plugin: " << (c.ok() ? n.error().message : c.error().message);
      return;
    }
    p.ctl_server = std::move(*c);
    p.node_server = std::move(*n);
    auto& t = sanityTarget();
    t.controller = p.ctl_server->path();
    t.node = p.node_server->path();
    t.work_dir = p.dir;
    t.other_node = "node-b";
    t.unplaceable_replicas = 3;
  });
}

class FakeCsiEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    auto& p = fakePlugin();
    if (p.ctl_server) p.ctl_server->shutdown();
    if (p.node_server) p.node_server->shutdown();
    std::error_code ec;
    if (!p.dir.empty()) std::filesystem::remove_all(p.dir, ec);
  }
};

[[maybe_unused]] auto* const kEnv = ::testing::AddGlobalTestEnvironment(new FakeCsiEnvironment);
[[maybe_unused]] const bool kFallback = [] {
  sanityFallback() = startFakePlugin;
  return true;
}();

TEST(CsiService, ASecondCallOnTheSameVolumeNameIsAborted) {
  startFakePlugin();
  auto& p = fakePlugin();
  std::promise<void> entered, release;
  auto released = release.get_future().share();
  p.controller.on_create = [&] {
    entered.set_value();
    released.wait();
  };
  auto ch = grpc::CreateChannel("unix://" + sanityTarget().controller, grpc::InsecureChannelCredentials());
  auto stub = ::csi::v1::Controller::NewStub(ch);
  ::csi::v1::CreateVolumeRequest req;
  req.set_name("aborted-case");
  auto* cap = req.add_volume_capabilities();
  cap->mutable_mount();
  cap->mutable_access_mode()->set_mode(::csi::v1::VolumeCapability::AccessMode::SINGLE_NODE_WRITER);
  std::thread first([&] {
    grpc::ClientContext ctx;
    ::csi::v1::CreateVolumeResponse r;
    EXPECT_TRUE(stub->CreateVolume(&ctx, req, &r).ok());
  });
  entered.get_future().wait();
  p.controller.on_create = nullptr;  // the second call must not get this far
  grpc::ClientContext ctx;
  ::csi::v1::CreateVolumeResponse r;
  auto s = stub->CreateVolume(&ctx, req, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_NE(s.error_message().find("in progress"), std::string::npos) << s.error_message();
  release.set_value();
  first.join();
  grpc::ClientContext ctx2;
  EXPECT_TRUE(stub->CreateVolume(&ctx2, req, &r).ok()) << "the name is free again once the first call ended";
}

TEST(CsiService, ErrnoCodesMapToTheSpecsStatusCodes) {
  using grpc::StatusCode;
  EXPECT_EQ(csi::toGrpc(makeError("x", ENOENT)).error_code(), StatusCode::NOT_FOUND);
  EXPECT_EQ(csi::toGrpc(makeError("x", EEXIST)).error_code(), StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(csi::toGrpc(makeError("x", EINVAL)).error_code(), StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(csi::toGrpc(makeError("x", ERANGE)).error_code(), StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(csi::toGrpc(makeError("x", EBUSY)).error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(csi::toGrpc(makeError("x", ENOSPC)).error_code(), StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(csi::toGrpc(makeError("x", EAGAIN)).error_code(), StatusCode::ABORTED);
  EXPECT_EQ(csi::toGrpc(makeError("x", EIO)).error_code(), StatusCode::INTERNAL);
  EXPECT_EQ(csi::toGrpc(makeError("the message", EIO)).error_message(), "the message");
}

TEST(CsiService, PagesCoverTheListOnceAndRefuseForeignTokens) {
  auto p = csi::pageOf(5, 2, "");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->begin, 0u);
  EXPECT_EQ(p->end, 2u);
  EXPECT_EQ(p->next_token, "2");
  p = csi::pageOf(5, 2, "4");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->end, 5u);
  EXPECT_EQ(p->next_token, "");
  p = csi::pageOf(5, 0, "5");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->begin, p->end);
  for (const char* bad : {"6", "-1", "x", "1x", " 1"}) {
    auto b = csi::pageOf(5, 0, bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_EQ(b.error().code, EAGAIN);
  }
  EXPECT_FALSE(csi::pageOf(5, -1, "").ok());
}

TEST(CsiService, EndpointsAreUnixSockets) {
  EXPECT_EQ(*csi::socketPathOf("unix:///run/x.sock"), "/run/x.sock");
  EXPECT_EQ(*csi::socketPathOf("/run/x.sock"), "/run/x.sock");
  EXPECT_FALSE(csi::socketPathOf("tcp://1.2.3.4:5").ok());
  EXPECT_FALSE(csi::socketPathOf("relative.sock").ok());
  EXPECT_FALSE(csi::socketPathOf("/" + std::string(200, 'x')).ok());
}

TEST(CsiService, ALiveSocketIsNotTakenOver) {
  startFakePlugin();
  std::vector<std::unique_ptr<grpc::Service>> s;
  s.push_back(csi::makeIdentityService({}));
  auto again = csi::CsiServer::start(sanityTarget().controller, std::move(s));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("another process serves"), std::string::npos) << again.error().message;
}

}  // namespace

}  // namespace offcore::test
