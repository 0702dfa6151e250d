// A cluster directory's records moving into etcd when the config starts
// naming it (volumes/open.h, importDirRecords), over the in-memory fake.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>

#include "../kv/fake_kv.h"
#include "base/files.h"
#include "nexus/claim.h"
#include "nexus/nexus_journal.h"
#include "volumes/open.h"

namespace offcore::volumes {
namespace {

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-import-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    config_.cluster_dir = tmpl;
  }
  void TearDown() override { (void)removeTree(config_.cluster_dir); }
  std::string dir(const char* folder) const { return config_.cluster_dir + "/" + folder; }

  Config config_;
  std::shared_ptr<kv::FakeKv> kv_ = std::make_shared<kv::FakeKv>();
};

TEST_F(ImportTest, RecordsMoveOnceAndWhatEtcdRemovesStaysRemoved) {
  auto old = makeDirRecordStore(dir("csi"), kCsiRecords);
  ASSERT_TRUE(old->put("a", "{\"a\": 1}\n").ok());
  ASSERT_TRUE(old->put("b", "{\"b\": 2}\n").ok());
  auto to = makeKvRecordStore(kv_, kCsiRecords);
  auto s = importDirRecords(config_, *to, kCsiRecords);
  ASSERT_TRUE(s.ok()) << s.error().message;
  auto names = to->names();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(**to->get("b"), "{\"b\": 2}\n");
  EXPECT_FALSE(pathExists(dir("csi")));
  EXPECT_TRUE(pathExists(dir("csi.imported") + "/a.json")) << "the old files are kept aside";
  ASSERT_TRUE(to->remove("a").ok());
  ASSERT_TRUE(importDirRecords(config_, *to, kCsiRecords).ok());
  EXPECT_FALSE(to->get("a")->has_value()) << "a record removed in etcd came back from the directory";
  // Nothing to import: no folder is made.
  ASSERT_TRUE(importDirRecords(config_, *makeKvRecordStore(kv_, kVmRecords), kVmRecords).ok());
  EXPECT_FALSE(pathExists(dir("vms")));
}

TEST_F(ImportTest, ARecordBothHoldDifferentlyStopsTheImport) {
  ASSERT_TRUE(makeDirRecordStore(dir("vms"), kVmRecords)->put("v1", "{\"node\": \"a\"}\n").ok());
  auto to = makeKvRecordStore(kv_, kVmRecords);
  ASSERT_TRUE(to->put("v1", "{\"node\": \"b\"}\n").ok());
  auto s = importDirRecords(config_, *to, kVmRecords);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EEXIST);
  EXPECT_NE(s.error().message.find("VM v1 is in both"), std::string::npos) << s.error().message;
  EXPECT_TRUE(pathExists(dir("vms") + "/v1.json")) << "the folder was set aside with a record not imported";
  EXPECT_EQ(**to->get("v1"), "{\"node\": \"b\"}\n");
}

TEST_F(ImportTest, VolumesTakeTheirJournalsAndWaitForDirectoryDisks) {
  ASSERT_TRUE(makeDirRecordStore(dir("volumes"), kVolumeRecords)->put("kv", "{\"name\": \"kv\"}\n").ok());
  nexus::NexusRecord rec;
  rec.generation = 3;
  rec.region_bytes = 1 << 20;
  rec.size_bytes = 64 << 20;
  rec.replicas.push_back({"10.0.0.1:4420/nqn.x:a:kv", nexus::ReplicaState::kOnline, std::vector<uint64_t>(1, 0)});
  rec.replicas.push_back({"10.0.0.2:4420/nqn.x:b:kv", nexus::ReplicaState::kFaulted, std::vector<uint64_t>(1, 5)});
  auto dir_nexus = makeDirNexusState(dir("nexus"));
  ASSERT_TRUE((*dir_nexus->journal("kv", nullptr))->save(rec).ok());
  auto to = makeKvRecordStore(kv_, kVolumeRecords);
  auto nexus_to = makeKvNexusState(kv_);
  {
    // A disk attached in directory mode holds its replicas' claims.
    auto held = dir_nexus->claim({rec.replicas[0].name}, {"node n1 (disk kv)", ::getpid()});
    ASSERT_TRUE(held.ok()) << held.error().message;
    auto busy = importDirRecords(config_, *to, kVolumeRecords, nexus_to.get());
    ASSERT_FALSE(busy.ok());
    EXPECT_EQ(busy.error().code, EBUSY);
    EXPECT_NE(busy.error().message.find("detach it"), std::string::npos) << busy.error().message;
    EXPECT_FALSE(to->get("kv")->has_value());
  }
  auto s = importDirRecords(config_, *to, kVolumeRecords, nexus_to.get());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_TRUE(to->get("kv")->has_value());
  auto moved = (*nexus_to->journal("kv", nullptr))->load();
  ASSERT_TRUE(moved.ok() && moved->has_value());
  EXPECT_EQ(nexus::encodeRecord(**moved), nexus::encodeRecord(rec)) << "the journal (replica b behind) was not moved";
  EXPECT_FALSE(pathExists(dir("volumes")));
  EXPECT_FALSE(pathExists(dir("nexus")));
}

}  // namespace
}  // namespace offcore::volumes
