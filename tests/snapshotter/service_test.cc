// Drives the Snapshots gRPC service in-process over a temp unix socket with
// the generated stub, as containerd's proxy snapshotter would.
#include <github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <mutex>

#include "base/files.h"
#include "snapshotter/server.h"

namespace offcore {
namespace {

namespace pb = containerd::services::snapshots::v1;

// A RemoteSource test double: converted layers are listed in `layers`.
class FakeRemoteSource : public RemoteSource {
 public:
  explicit FakeRemoteSource(std::string dir) : dir_(std::move(dir)) {}

  Result<std::optional<RemoteLayerRef>> lookup(const std::string& chain_id, const SnapshotLabels&) override {
    std::lock_guard l(mu);
    ++lookups;
    auto it = layers.find(chain_id);
    if (it == layers.end()) return std::optional<RemoteLayerRef>();
    return std::optional<RemoteLayerRef>(RemoteLayerRef{chain_id, it->second, "h-" + chain_id.substr(7)});
  }
  Result<std::string> mountLayer(const RemoteLayerRef& layer) override {
    std::string d = dir_ + "/layer-" + layer.handle;
    OC_TRY(makeDirs(d));
    return d;
  }
  Result<std::string> prepareFlatRootfs(const std::string& id, const RemoteLayerRef& top, bool ro) override {
    std::lock_guard l(mu);
    flat[id] = top.chain_id + (ro ? ":ro" : ":rw");
    std::string d = dir_ + "/flat-" + id;
    OC_TRY(makeDirs(d));
    return d;
  }
  Status removeFlatRootfs(const std::string& id) override {
    std::lock_guard l(mu);
    flat.erase(id);
    return okStatus();
  }
  // A stub layer is a marker file naming the chain it stands for.
  Result<std::optional<RemoteLayerRef>> adoptStub(const std::string& upper_dir, const std::string&) override {
    auto marker = readFile(upper_dir + "/.stub");
    if (!marker.ok()) return std::optional<RemoteLayerRef>();
    std::string chain = trim(*marker);
    return std::optional<RemoteLayerRef>(RemoteLayerRef{chain, RemoteMode::kLayered, "h-" + chain.substr(7)});
  }
  Status releaseLayer(const RemoteLayerRef& layer) override {
    std::lock_guard l(mu);
    released.push_back(layer.chain_id);
    return okStatus();
  }
  void warmLayer(const RemoteLayerRef& layer, const std::optional<RemoteLayerRef>& parent) override {
    std::lock_guard l(mu);
    warmed.push_back(layer.chain_id);
    warmed_on.push_back(parent ? parent->chain_id : "");
  }

  std::mutex mu;
  std::map<std::string, RemoteMode> layers;
  std::map<std::string, std::string> flat;
  std::vector<std::string> released;
  std::vector<std::string> warmed;     // layers the pull handed over for warming
  std::vector<std::string> warmed_on;  // the remote parent of each, "" for none
  int lookups = 0;

 private:
  std::string dir_;
};

class SnapshotServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/offcore_snsvc_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(removeTree(dir_).ok());
    ASSERT_TRUE(makeDirs(dir_).ok());
    start();
  }
  void TearDown() override {
    if (server_) server_->shutdown();
    server_.reset();
    (void)removeTree(dir_);
  }
  void start() {
    auto fake = std::make_unique<FakeRemoteSource>(dir_ + "/remote");
    fake_ = fake.get();
    auto sn = Snapshotter::open(dir_ + "/root", std::move(fake));
    ASSERT_TRUE(sn.ok()) << sn.error().message;
    server_ = makeSnapshotterServer(std::move(*sn));
    auto st = server_->start(dir_ + "/sn.sock");
    ASSERT_TRUE(st.ok()) << st.error().message;
    stub_ =
        pb::Snapshots::NewStub(grpc::CreateChannel("unix://" + dir_ + "/sn.sock", grpc::InsecureChannelCredentials()));
  }
  void restart() {
    server_->shutdown();
    server_.reset();
    start();
  }

  grpc::Status prepare(const std::string& key, const std::string& parent, pb::PrepareSnapshotResponse* out,
                       const std::map<std::string, std::string>& labels = {}) {
    grpc::ClientContext c;
    pb::PrepareSnapshotRequest r;
    r.set_key(key);
    r.set_parent(parent);
    for (const auto& [k, v] : labels) (*r.mutable_labels())[k] = v;
    return stub_->Prepare(&c, r, out);
  }
  grpc::Status view(const std::string& key, const std::string& parent, pb::ViewSnapshotResponse* out) {
    grpc::ClientContext c;
    pb::ViewSnapshotRequest r;
    r.set_key(key);
    r.set_parent(parent);
    return stub_->View(&c, r, out);
  }
  grpc::Status commit(const std::string& name, const std::string& key) {
    grpc::ClientContext c;
    pb::CommitSnapshotRequest r;
    r.set_name(name);
    r.set_key(key);
    (*r.mutable_labels())["containerd.io/snapshot.ref"] = name;
    google::protobuf::Empty e;
    return stub_->Commit(&c, r, &e);
  }
  grpc::Status remove(const std::string& key) {
    grpc::ClientContext c;
    pb::RemoveSnapshotRequest r;
    r.set_key(key);
    google::protobuf::Empty e;
    return stub_->Remove(&c, r, &e);
  }
  grpc::Status mounts(const std::string& key, pb::MountsResponse* out) {
    grpc::ClientContext c;
    pb::MountsRequest r;
    r.set_key(key);
    return stub_->Mounts(&c, r, out);
  }
  grpc::Status stat(const std::string& key, pb::StatSnapshotResponse* out) {
    grpc::ClientContext c;
    pb::StatSnapshotRequest r;
    r.set_key(key);
    return stub_->Stat(&c, r, out);
  }
  grpc::Status cleanup() {
    grpc::ClientContext c;
    google::protobuf::Empty e;
    return stub_->Cleanup(&c, pb::CleanupRequest(), &e);
  }
  std::vector<pb::Info> list(const std::vector<std::string>& filters, grpc::Status* status = nullptr) {
    grpc::ClientContext c;
    pb::ListSnapshotsRequest r;
    for (const auto& f : filters) r.add_filters(f);
    auto reader = stub_->List(&c, r);
    std::vector<pb::Info> out;
    pb::ListSnapshotsResponse resp;
    while (reader->Read(&resp))
      for (const auto& i : resp.info()) out.push_back(i);
    auto st = reader->Finish();
    if (status)
      *status = st;
    else
      EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }
  static std::vector<std::string> opts(const containerd::types::Mount& m) {
    return {m.options().begin(), m.options().end()};
  }
  std::string snap(int id) const { return dir_ + "/root/snapshots/" + std::to_string(id); }
  std::vector<std::string> overlayOpts(std::vector<std::string> o) {
    if (pathExists("/sys/module/overlay/parameters/index")) o.insert(o.begin(), "index=off");
    return o;
  }

  std::string dir_;
  FakeRemoteSource* fake_ = nullptr;
  std::unique_ptr<SnapshotterServer> server_;
  std::unique_ptr<pb::Snapshots::Stub> stub_;
};

TEST_F(SnapshotServiceTest, OverlayLifecycle) {
  pb::PrepareSnapshotResponse p;
  ASSERT_TRUE(prepare("a", "", &p).ok());
  ASSERT_EQ(p.mounts_size(), 1);
  EXPECT_EQ(p.mounts(0).type(), "bind");
  EXPECT_EQ(p.mounts(0).source(), snap(1) + "/fs");
  EXPECT_EQ(opts(p.mounts(0)), (std::vector<std::string>{"rw", "rbind"}));
  EXPECT_EQ(prepare("a", "", &p).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(prepare("z", "nope", &p).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(prepare("z", "a", &p).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  std::ofstream(snap(1) + "/fs/hello") << "hello";

  {
    grpc::ClientContext c;
    pb::UsageRequest r;
    r.set_key("a");
    pb::UsageResponse u;
    ASSERT_TRUE(stub_->Usage(&c, r, &u).ok());
    EXPECT_EQ(u.inodes(), 2);
    EXPECT_GT(u.size(), 0);
  }
  ASSERT_TRUE(commit("c1", "a").ok());
  EXPECT_EQ(commit("c1", "a").error_code(), grpc::StatusCode::NOT_FOUND);
  pb::MountsResponse m;
  EXPECT_EQ(mounts("c1", &m).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(mounts("a", &m).error_code(), grpc::StatusCode::NOT_FOUND);

  ASSERT_TRUE(prepare("b", "c1", &p).ok());
  ASSERT_EQ(p.mounts_size(), 1);
  EXPECT_EQ(p.mounts(0).type(), "overlay");
  EXPECT_EQ(p.mounts(0).source(), "overlay");
  EXPECT_EQ(opts(p.mounts(0)), overlayOpts({"workdir=" + snap(2) + "/work", "upperdir=" + snap(2) + "/fs",
                                            "lowerdir=" + snap(1) + "/fs"}));
  ASSERT_TRUE(mounts("b", &m).ok());
  EXPECT_EQ(opts(m.mounts(0)), opts(p.mounts(0)));

  pb::ViewSnapshotResponse v;
  ASSERT_TRUE(view("v1", "c1", &v).ok());
  EXPECT_EQ(v.mounts(0).type(), "bind");
  EXPECT_EQ(v.mounts(0).source(), snap(1) + "/fs");
  EXPECT_EQ(opts(v.mounts(0)), (std::vector<std::string>{"ro", "rbind"}));
  EXPECT_FALSE(pathExists(snap(3) + "/work"));

  ASSERT_TRUE(commit("c2", "b").ok());
  ASSERT_TRUE(view("v2", "c2", &v).ok());
  EXPECT_EQ(v.mounts(0).type(), "overlay");
  EXPECT_EQ(opts(v.mounts(0)), overlayOpts({"lowerdir=" + snap(2) + "/fs:" + snap(1) + "/fs"}));

  pb::StatSnapshotResponse s;
  ASSERT_TRUE(stat("c2", &s).ok());
  EXPECT_EQ(s.info().name(), "c2");
  EXPECT_EQ(s.info().parent(), "c1");
  EXPECT_EQ(s.info().kind(), pb::COMMITTED);
  EXPECT_EQ(s.info().labels().at("containerd.io/snapshot.ref"), "c2");
  EXPECT_GT(s.info().created_at().seconds(), 1600000000);

  EXPECT_EQ(list({}).size(), 4u);
  EXPECT_EQ(list({"kind==view"}).size(), 2u);
  EXPECT_EQ(list({"parent==c1", "name==c1"}).size(), 3u);
  grpc::Status st;
  list({"name=="}, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  {
    grpc::ClientContext c;
    pb::UpdateSnapshotRequest r;
    r.mutable_info()->set_name("c2");
    (*r.mutable_info()->mutable_labels())["extra"] = "1";
    r.mutable_update_mask()->add_paths("labels.extra");
    pb::UpdateSnapshotResponse u;
    ASSERT_TRUE(stub_->Update(&c, r, &u).ok());
    EXPECT_EQ(u.info().labels().size(), 2u);
  }

  EXPECT_EQ(remove("c1").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(remove("v2").ok());
  EXPECT_FALSE(pathExists(snap(4)));
  ASSERT_TRUE(remove("c2").ok());
  ASSERT_TRUE(remove("v1").ok());
  ASSERT_TRUE(remove("c1").ok());
  EXPECT_EQ(remove("c1").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(list({}).empty());
}

TEST_F(SnapshotServiceTest, CleanupAndRestart) {
  pb::PrepareSnapshotResponse p;
  ASSERT_TRUE(prepare("a", "", &p).ok());
  ASSERT_TRUE(commit("c1", "a").ok());
  ASSERT_TRUE(prepare("b", "c1", &p).ok());
  ASSERT_TRUE(makeDirs(snap(77) + "/fs").ok());                // a crash after mkdir, before the row
  ASSERT_TRUE(makeDirs(dir_ + "/root/snapshots/new-x").ok());  // a crash mid-Prepare
  restart();
  pb::MountsResponse m;
  ASSERT_TRUE(mounts("b", &m).ok());
  EXPECT_EQ(opts(m.mounts(0)).back(), "lowerdir=" + snap(1) + "/fs");
  ASSERT_TRUE(cleanup().ok());
  EXPECT_FALSE(pathExists(snap(77)));
  EXPECT_FALSE(pathExists(dir_ + "/root/snapshots/new-x"));
  EXPECT_TRUE(pathExists(snap(1) + "/fs"));
  EXPECT_TRUE(pathExists(snap(2) + "/work"));
  ASSERT_TRUE(prepare("c", "", &p).ok());
  EXPECT_EQ(p.mounts(0).source(), snap(3) + "/fs");
}

TEST_F(SnapshotServiceTest, RemoteLayersAnswerAlreadyExists) {
  fake_->layers["sha256:l1"] = RemoteMode::kLayered;
  fake_->layers["sha256:l2"] = RemoteMode::kLayered;
  pb::PrepareSnapshotResponse p;
  std::map<std::string, std::string> labels{{"containerd.io/snapshot.ref", "sha256:l1"}};
  auto st = prepare("default/1/extract-1 sha256:l1", "", &p, labels);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(st.error_message().find("sha256:l1"), std::string::npos);
  // What containerd's metadata layer does next: find it by label and parent.
  auto found = list({R"(labels."containerd.io/snapshot.ref"==sha256:l1,parent=="")"});
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].name(), "sha256:l1");
  EXPECT_EQ(found[0].kind(), pb::COMMITTED);
  pb::StatSnapshotResponse s;
  ASSERT_TRUE(stat("sha256:l1", &s).ok());
  EXPECT_EQ(s.info().labels().at("containerd.io/snapshot.ref"), "sha256:l1");
  // The pull hands the layer over to be made ready ahead of a container.
  EXPECT_EQ(fake_->warmed, (std::vector<std::string>{"sha256:l1"}));
  // Known already: no second lookup.
  EXPECT_EQ(prepare("default/2/extract-2 sha256:l1", "", &p, labels).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(fake_->lookups, 1);
  labels["containerd.io/snapshot.ref"] = "sha256:l2";
  EXPECT_EQ(prepare("k2", "sha256:l1", &p, labels).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // Each handed over with the remote layer it was committed on.
  EXPECT_EQ(fake_->warmed, (std::vector<std::string>{"sha256:l1", "sha256:l2"}));
  EXPECT_EQ(fake_->warmed_on, (std::vector<std::string>{"", "sha256:l1"}));
  // Not converted: a normal overlay Prepare over the remote layers.
  labels["containerd.io/snapshot.ref"] = "sha256:l3";
  ASSERT_TRUE(prepare("k3", "sha256:l2", &p, labels).ok());
  EXPECT_EQ(opts(p.mounts(0)).back(), "lowerdir=" + dir_ + "/remote/layer-h-l2:" + dir_ + "/remote/layer-h-l1");
  pb::ViewSnapshotResponse v;
  ASSERT_TRUE(view("v", "sha256:l1", &v).ok());
  EXPECT_EQ(v.mounts(0).type(), "bind");
  EXPECT_EQ(v.mounts(0).source(), dir_ + "/remote/layer-h-l1");
  {
    grpc::ClientContext c;
    pb::UsageRequest r;
    r.set_key("sha256:l1");
    pb::UsageResponse u;
    ASSERT_TRUE(stub_->Usage(&c, r, &u).ok());
    EXPECT_EQ(u.size(), 0);
  }
  // Release happens in Cleanup, once nothing refers to the layer.
  ASSERT_TRUE(remove("k3").ok());
  ASSERT_TRUE(remove("sha256:l2").ok());
  ASSERT_TRUE(cleanup().ok());
  EXPECT_EQ(fake_->released, (std::vector<std::string>{"sha256:l2"}));
  restart();  // remote rows survive; Mounts re-mounts through the source
  pb::MountsResponse m;
  ASSERT_TRUE(mounts("v", &m).ok());
  EXPECT_EQ(m.mounts(0).source(), dir_ + "/remote/layer-h-l1");
}

// `ctr image pull` sends no target label: a lazy image's stub layer is
// applied into an ordinary snapshot, and Commit turns it into a remote one.
TEST_F(SnapshotServiceTest, CommittedStubBecomesRemote) {
  pb::PrepareSnapshotResponse p;
  ASSERT_TRUE(prepare("a", "", &p).ok());
  std::ofstream(snap(1) + "/fs/.stub") << "sha256:s1\n";
  ASSERT_TRUE(commit("c1", "a").ok());
  pb::StatSnapshotResponse s;
  ASSERT_TRUE(stat("c1", &s).ok());
  EXPECT_EQ(s.info().kind(), pb::COMMITTED);
  EXPECT_EQ(fake_->warmed, (std::vector<std::string>{"sha256:s1"}));
  ASSERT_TRUE(prepare("b", "c1", &p).ok());
  EXPECT_EQ(opts(p.mounts(0)).back(), "lowerdir=" + dir_ + "/remote/layer-h-s1");
  std::ofstream(snap(2) + "/fs/file") << "local";
  ASSERT_TRUE(commit("c2", "b").ok());
  ASSERT_TRUE(prepare("d", "c2", &p).ok());
  EXPECT_EQ(opts(p.mounts(0)).back(), "lowerdir=" + snap(2) + "/fs:" + dir_ + "/remote/layer-h-s1");
  {
    grpc::ClientContext c;
    pb::UsageRequest r;
    r.set_key("c1");
    pb::UsageResponse u;
    ASSERT_TRUE(stub_->Usage(&c, r, &u).ok());
    EXPECT_EQ(u.size(), 0);
  }
  // A name already taken leaves the active snapshot alone, as containerd expects.
  ASSERT_TRUE(prepare("e", "", &p).ok());
  std::ofstream(snap(4) + "/fs/.stub") << "sha256:s2\n";
  EXPECT_EQ(commit("c1", "e").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(stat("e", &s).ok());
  EXPECT_EQ(s.info().kind(), pb::ACTIVE);
  restart();
  ASSERT_TRUE(remove("d").ok());
  ASSERT_TRUE(remove("c2").ok());
  ASSERT_TRUE(remove("c1").ok());
  ASSERT_TRUE(cleanup().ok());
  EXPECT_EQ(fake_->released, (std::vector<std::string>{"sha256:s1"}));
  EXPECT_FALSE(pathExists(snap(1)));
}

TEST_F(SnapshotServiceTest, FlatModeBindsThePreparedRootfs) {
  fake_->layers["sha256:f1"] = RemoteMode::kFlat;
  pb::PrepareSnapshotResponse p;
  std::map<std::string, std::string> labels{{"containerd.io/snapshot.ref", "sha256:f1"}};
  ASSERT_EQ(prepare("x", "", &p, labels).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  // The pull hands the flat image over too: the source makes a rootfs ahead.
  EXPECT_EQ(fake_->warmed, (std::vector<std::string>{"sha256:f1"}));
  ASSERT_TRUE(prepare("ctr", "sha256:f1", &p).ok());
  ASSERT_EQ(p.mounts_size(), 1);
  EXPECT_EQ(p.mounts(0).type(), "bind");
  EXPECT_EQ(opts(p.mounts(0)), (std::vector<std::string>{"rw", "rbind"}));
  std::string id = p.mounts(0).source().substr(p.mounts(0).source().rfind('-') + 1);
  EXPECT_EQ(p.mounts(0).source(), dir_ + "/remote/flat-" + id);
  EXPECT_EQ(fake_->flat[id], "sha256:f1:rw");
  pb::ViewSnapshotResponse v;
  ASSERT_TRUE(view("ro", "sha256:f1", &v).ok());
  EXPECT_EQ(opts(v.mounts(0)), (std::vector<std::string>{"ro", "rbind"}));
  auto st = commit("c", "ctr");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("flat"), std::string::npos);
  EXPECT_EQ(remove("sha256:f1").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(remove("ctr").ok());
  ASSERT_TRUE(remove("ro").ok());
  EXPECT_TRUE(fake_->flat.empty());
}

TEST_F(SnapshotServiceTest, RefusesALiveSocketAndReplacesAStaleOne) {
  auto sn = Snapshotter::open(dir_ + "/root2", nullptr);
  ASSERT_TRUE(sn.ok());
  auto other = makeSnapshotterServer(std::move(*sn));
  auto st = other->start(dir_ + "/sn.sock");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("another process"), std::string::npos);
  std::ofstream(dir_ + "/file") << "x";
  EXPECT_FALSE(other->start(dir_ + "/file").ok());
  // A socket nobody listens on any more (a SIGKILLed snapshotter's).
  std::string stale = dir_ + "/stale.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", stale.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  st = other->start(stale);
  ASSERT_TRUE(st.ok()) << st.error().message;
  struct stat sb;
  ASSERT_EQ(::stat(stale.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0660u);
  other->shutdown();
  EXPECT_FALSE(pathExists(stale));
}

}  // namespace
}  // namespace offcore
