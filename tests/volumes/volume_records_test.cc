#include "volumes/volume_records.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "../kv/fake_kv.h"
#include "../kv/kv_backend.h"
#include "base/files.h"
#include "kv/etcd_client.h"

namespace offcore::volumes {
namespace {

class VolumeRecordsTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-volrec-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto up = kv_.start(GetParam());
    ASSERT_TRUE(up.ok()) << up.error().message;
  }
  void TearDown() override { (void)removeTree(dir_); }

  std::unique_ptr<VolumeRecords> open() {
    if (!kv_.kv()) return makeDirVolumeRecords(dir_ + "/volumes");
    return makeKvVolumeRecords(kv_.client());
  }

  std::string dir_;
  kv::KvBackend kv_;
};

TEST_P(VolumeRecordsTest, PutGetListRemove) {
  auto r = open();
  auto none = r->get("a");
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto empty = r->names();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  {
    auto lock = r->lock("test");
    ASSERT_TRUE(lock.ok()) << lock.error().message;
    ASSERT_TRUE(r->put("b", "{\"name\": \"b\"}\n").ok());
    ASSERT_TRUE(r->put("a", "{\"name\": \"a\"}\n").ok());
    ASSERT_TRUE(r->put("a.1", "{}\n").ok());
  }
  auto other = open();
  auto got = other->get("a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "{\"name\": \"a\"}\n");
  auto names = other->names();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "a.1", "b"}));
  ASSERT_TRUE(other->remove("a").ok());
  EXPECT_TRUE(other->remove("a").ok()) << "removing twice is not an error";
  auto gone = r->get("a");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  if (!kv_.kv()) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/volumes/b.json").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, VolumeRecordsTest, ::testing::Values("dir", "fake", "etcd"),
                         [](const auto& info) { return info.param; });

// --- etcd only ---------------------------------------------------------------

TEST(KvVolumeRecordsTest, OneLockHolderClusterWideAndTheOtherToldWho) {
  auto kv = std::make_shared<kv::FakeKv>();
  auto a = makeKvVolumeRecords(kv), b = makeKvVolumeRecords(kv);
  auto held = a->lock("offcore volume create v1");
  ASSERT_TRUE(held.ok());
  auto t0 = std::chrono::steady_clock::now();
  auto refused = b->lock("offcore volume delete v2", 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900)) << "it did not wait";
  EXPECT_EQ(refused.error().code, EBUSY);
  EXPECT_NE(refused.error().message.find("offcore volume create v1 (pid "), std::string::npos)
      << refused.error().message;
  held->reset();
  auto next = b->lock("offcore volume delete v2", 1);
  EXPECT_TRUE(next.ok()) << next.error().message;
  auto r = kv->range("/offcore/volumes/v1/lock", "");
  ASSERT_TRUE(r.ok() && r->kvs.size() == 1u);
  EXPECT_NE(r->kvs[0].lease, 0) << "a dead holder would keep the lock forever";
}

// A holder whose lease ran out (cut off from etcd) writes nothing: another
// may hold the lock by then.
TEST(KvVolumeRecordsTest, AHolderWhoseLockExpiredWritesNothing) {
  auto kv = std::make_shared<kv::FakeKv>();
  auto a = makeKvVolumeRecords(kv);
  auto held = a->lock("offcore volume create v1");
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(a->put("v1", "one").ok());
  auto r = kv->range("/offcore/volumes/v1/lock", "");
  ASSERT_TRUE(r.ok() && r->kvs.size() == 1u);
  kv->expire(r->kvs[0].lease);
  auto b = makeKvVolumeRecords(kv);
  auto other = b->lock("offcore volume delete v1", 1);
  ASSERT_TRUE(other.ok());
  auto late = a->put("v1", "two");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, EBUSY);
  EXPECT_FALSE(a->remove("v1").ok());
  auto got = b->get("v1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "one");
  auto keys = kv->range("/offcore/volumes/v1/records/", kv::prefixEnd("/offcore/volumes/v1/records/"));
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->kvs.size(), 1u);
  EXPECT_EQ(keys->kvs[0].key, "/offcore/volumes/v1/records/v1");
}

}  // namespace
}  // namespace offcore::volumes
