#include "snapshotter/metastore.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/files.h"
#include "snapshotter/errors.h"
#include "snapshotter/filter.h"

namespace offcore {
namespace {

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/offcore_meta_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ASSERT_TRUE(removeTree(dir_).ok());
    ASSERT_TRUE(makeDirs(dir_).ok());
    reopen();
  }
  void TearDown() override {
    store_.reset();
    (void)removeTree(dir_);
  }
  void reopen() {
    store_.reset();
    auto s = MetaStore::open(dir_ + "/metadata.db");
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(*s);
  }
  SnapshotRecord mustCreate(SnapshotKind kind, const std::string& key, const std::string& parent,
                            const SnapshotLabels& labels = {}) {
    auto r = store_->create(kind, key, parent, labels);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : SnapshotRecord{};
  }

  std::string dir_;
  std::unique_ptr<MetaStore> store_;
};

TEST_F(MetaStoreTest, KeyRules) {
  auto a = mustCreate(SnapshotKind::kActive, "a", "", {{"x", "1"}});
  EXPECT_EQ(a.info.kind, SnapshotKind::kActive);
  EXPECT_EQ(a.info.labels.at("x"), "1");
  EXPECT_GT(a.info.created_ns, 0);
  EXPECT_EQ(store_->create(SnapshotKind::kActive, "a", "", {}).error().code, snap::kAlreadyExists);
  EXPECT_EQ(store_->create(SnapshotKind::kView, "a", "", {}).error().code, snap::kAlreadyExists);
  EXPECT_EQ(store_->create(SnapshotKind::kActive, "b", "missing", {}).error().code, snap::kNotFound);
  // containerd (snapshots/storage CreateSnapshot): an uncommitted parent is InvalidArgument.
  EXPECT_EQ(store_->create(SnapshotKind::kActive, "b", "a", {}).error().code, snap::kInvalidArgument);
  EXPECT_EQ(store_->create(SnapshotKind::kCommitted, "b", "", {}).error().code, snap::kInvalidArgument);
  EXPECT_EQ(store_->get("b").error().code, snap::kNotFound);
}

TEST_F(MetaStoreTest, FailureInTransactionRollsBack) {
  auto r = store_->create(SnapshotKind::kActive, "a", "", {},
                          [](const SnapshotRecord&) -> Status { return makeError("disk on fire"); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(store_->get("a").error().code, snap::kNotFound);
  mustCreate(SnapshotKind::kActive, "a", "");
}

TEST_F(MetaStoreTest, CommitKeepsIdAndTakesCommitLabels) {
  auto a = mustCreate(SnapshotKind::kActive, "a", "", {{"active", "yes"}});
  auto c = store_->commit("c1", "a", {{"containerd.io/snapshot.ref", "sha256:1"}}, 4096, 3);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->id, a.id);
  EXPECT_EQ(c->info.kind, SnapshotKind::kCommitted);
  EXPECT_EQ(c->info.labels.count("active"), 0u);
  EXPECT_EQ(c->info.labels.at("containerd.io/snapshot.ref"), "sha256:1");
  EXPECT_EQ(c->size, 4096);
  EXPECT_EQ(c->inodes, 3);
  EXPECT_EQ(store_->get("a").error().code, snap::kNotFound);
  EXPECT_EQ(store_->commit("c2", "a", {}, 0, 0).error().code, snap::kNotFound);
  mustCreate(SnapshotKind::kView, "v", "c1");
  EXPECT_EQ(store_->commit("c2", "v", {}, 0, 0).error().code, snap::kFailedPrecondition);
  mustCreate(SnapshotKind::kActive, "b", "c1");
  EXPECT_EQ(store_->commit("c1", "b", {}, 0, 0).error().code, snap::kAlreadyExists);
  auto c2 = store_->commit("c2", "b", {}, 0, 0);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->info.parent, "c1");
  auto chain = store_->chain("c2");
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[1].info.name, "c1");
}

TEST_F(MetaStoreTest, RemoveRefusesParents) {
  mustCreate(SnapshotKind::kActive, "a", "");
  ASSERT_TRUE(store_->commit("c1", "a", {}, 0, 0).ok());
  mustCreate(SnapshotKind::kActive, "b", "c1");
  mustCreate(SnapshotKind::kView, "v", "c1");
  EXPECT_EQ(store_->remove("c1").error().code, snap::kFailedPrecondition);
  EXPECT_TRUE(store_->remove("b").ok());
  EXPECT_EQ(store_->remove("c1").error().code, snap::kFailedPrecondition);
  EXPECT_TRUE(store_->remove("v").ok());
  auto r = store_->remove("c1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(store_->remove("c1").error().code, snap::kNotFound);
  EXPECT_TRUE(store_->ids()->empty());
}

TEST_F(MetaStoreTest, UpdateHonoursFieldMask) {
  mustCreate(SnapshotKind::kActive, "a", "", {{"keep", "1"}, {"drop", "2"}});
  SnapshotInfo in;
  in.name = "a";
  in.labels = {{"new", "3"}, {"drop", "x"}};
  auto u = store_->update(in, {"labels.new"});
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->labels, (SnapshotLabels{{"keep", "1"}, {"drop", "2"}, {"new", "3"}}));
  u = store_->update(in, {"labels"});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->labels, in.labels);
  in.labels = {{"only", "1"}};
  u = store_->update(in, {});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->labels, in.labels);
  EXPECT_GE(u->updated_ns, u->created_ns);
  EXPECT_EQ(store_->update(in, {"parent"}).error().code, snap::kInvalidArgument);
  in.name = "missing";
  EXPECT_EQ(store_->update(in, {}).error().code, snap::kNotFound);
  EXPECT_EQ(store_->get("a")->info.labels, (SnapshotLabels{{"only", "1"}}));
}

TEST_F(MetaStoreTest, RemoteRowsAndLayerRelease) {
  RemoteLayerRef ref{"sha256:l1", RemoteMode::kLayered, "vol-17"};
  auto r = store_->createRemote("sha256:l1", "", {{"containerd.io/snapshot.ref", "sha256:l1"}}, ref);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->info.kind, SnapshotKind::kCommitted);
  ASSERT_TRUE(r->remote);
  EXPECT_EQ(r->remote->handle, "vol-17");
  EXPECT_EQ(store_->createRemote("sha256:l1", "", {}, ref).error().code, snap::kAlreadyExists);
  RemoteLayerRef flat{"sha256:l2", RemoteMode::kFlat, "img-9"};
  ASSERT_TRUE(store_->createRemote("sha256:l2", "sha256:l1", {}, flat).ok());
  EXPECT_TRUE(store_->unusedRemoteLayers()->empty());
  reopen();
  auto l2 = store_->get("sha256:l2");
  ASSERT_TRUE(l2.ok());
  ASSERT_TRUE(l2->remote);
  EXPECT_EQ(l2->remote->mode, RemoteMode::kFlat);
  EXPECT_EQ(l2->info.parent, "sha256:l1");
  ASSERT_TRUE(store_->remove("sha256:l2").ok());
  auto unused = store_->unusedRemoteLayers();
  ASSERT_TRUE(unused.ok());
  ASSERT_EQ(unused->size(), 1u);
  EXPECT_EQ((*unused)[0].chain_id, "sha256:l2");
  EXPECT_EQ((*unused)[0].handle, "img-9");
  EXPECT_EQ((*unused)[0].mode, RemoteMode::kFlat);
  ASSERT_TRUE(store_->forgetRemoteLayer("sha256:l2").ok());
  EXPECT_TRUE(store_->unusedRemoteLayers()->empty());
  // A layer referenced again is not forgotten.
  ASSERT_TRUE(store_->forgetRemoteLayer("sha256:l1").ok());
  ASSERT_TRUE(store_->remove("sha256:l1").ok());
  EXPECT_EQ(store_->unusedRemoteLayers()->size(), 1u);
}

TEST_F(MetaStoreTest, CommitCanRecordARemoteLayer) {
  auto a = mustCreate(SnapshotKind::kActive, "a", "");
  RemoteLayerRef ref{"sha256:s1", RemoteMode::kLayered, "stub-1"};
  auto c = store_->commit("c1", "a", {}, 0, 0, ref);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->id, a.id);
  ASSERT_TRUE(c->remote);
  EXPECT_EQ(c->remote->handle, "stub-1");
  EXPECT_TRUE(store_->unusedRemoteLayers()->empty());
  ASSERT_TRUE(store_->remove("c1").ok());
  ASSERT_EQ(store_->unusedRemoteLayers()->size(), 1u);
}

TEST_F(MetaStoreTest, SurvivesReopen) {
  auto a = mustCreate(SnapshotKind::kActive, "a", "", {{"k", "v"}});
  ASSERT_TRUE(store_->commit("c1", "a", {{"k", "c"}}, 10, 1).ok());
  auto b = mustCreate(SnapshotKind::kActive, "b", "c1");
  reopen();
  auto c1 = store_->get("c1");
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(c1->id, a.id);
  EXPECT_EQ(c1->info.labels.at("k"), "c");
  EXPECT_EQ(store_->get("b")->info.parent, "c1");
  // Ids are never reused, so a directory left by a removed snapshot cannot
  // be mistaken for a new one.
  ASSERT_TRUE(store_->remove("b").ok());
  reopen();
  auto d = mustCreate(SnapshotKind::kActive, "d", "");
  EXPECT_GT(d.id, b.id);
  EXPECT_EQ(store_->list()->size(), 2u);
}

SnapshotInfo info(const std::string& name, const std::string& parent, SnapshotKind kind, const SnapshotLabels& labels) {
  SnapshotInfo i;
  i.name = name;
  i.parent = parent;
  i.kind = kind;
  i.labels = labels;
  return i;
}

TEST(SnapshotFilterTest, ContainerdSyntax) {
  auto remote = info("sha256:abc", "default/3/sha256:p", SnapshotKind::kCommitted,
                     {{"containerd.io/snapshot.ref", "sha256:abc"}, {"x", "1"}});
  auto active = info("default/4/extract-1 sha256:abc", "", SnapshotKind::kActive, {});
  auto match = [](const std::vector<std::string>& f, const SnapshotInfo& i) {
    auto p = SnapshotFilter::parse(f);
    EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
    return p.ok() && p->matches(i);
  };
  // What containerd's metadata snapshotter sends after a remote AlreadyExists.
  std::vector<std::string> unpack{R"(labels."containerd.io/snapshot.ref"==sha256:abc,parent=="default/3/sha256:p")"};
  EXPECT_TRUE(match(unpack, remote));
  EXPECT_FALSE(match(unpack, active));
  EXPECT_TRUE(match({}, active));
  EXPECT_TRUE(match({""}, active));
  EXPECT_TRUE(match({"kind==committed"}, remote));
  EXPECT_FALSE(match({"kind==committed"}, active));
  EXPECT_TRUE(match({"kind==committed", "kind==active"}, active));
  EXPECT_TRUE(match({"name==\"default/4/extract-1 sha256:abc\""}, active));
  EXPECT_TRUE(match({"parent==\"\""}, active));
  EXPECT_TRUE(match({"labels.x"}, remote));
  EXPECT_FALSE(match({"labels.x"}, active));
  EXPECT_TRUE(match({"labels.x!=2"}, remote));
  EXPECT_TRUE(match({"name~=^sha256:a"}, remote));
  EXPECT_TRUE(match({"name~=/abc$/"}, remote));
  EXPECT_FALSE(match({"unknown==x"}, remote));
  // Go regexp (RE2) semantics: no backreferences or lookahead, and a
  // pattern that backtracks exponentially elsewhere is matched in linear time
  // against a long name.
  SnapshotInfo longName = remote;
  longName.name = std::string(200000, 'a');
  EXPECT_FALSE(match({"name~=^(a*)*b$"}, longName));
  EXPECT_TRUE(match({"name~=^(a|aa)+$"}, longName));
  for (const char* bad : {"name==", "name=x", "==x", "labels.\"unterminated", "name==/x/", "name~=[", ",", "a b",
                          "name~=(a)\\1", "name~=a(?=b)", "name~=((a{1000}){1000}){1000}"}) {
    auto p = SnapshotFilter::parse({bad});
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.error().code, snap::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace offcore
