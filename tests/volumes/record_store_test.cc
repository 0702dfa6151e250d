#include "volumes/record_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <vector>

#include "../kv/fake_kv.h"
#include "../kv/kv_backend.h"
#include "base/files.h"
#include "kv/etcd_client.h"

namespace offcore::volumes {
namespace {

class RecordStoreTest : public kv::StoreTest {
 protected:
  std::unique_ptr<RecordStore> open(const RecordKind& kind = kVolumeRecords) {
    if (!kv_.kv()) return makeDirRecordStore(dir_ + "/" + kind.folder, kind);
    return makeKvRecordStore(kv_.client(), kind);
  }
};

TEST_P(RecordStoreTest, PutGetListRemove) {
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

// A create never replaces: of eight racing creators exactly one wins, the
// others get EEXIST, and the record is the winner's whole text.
TEST_P(RecordStoreTest, CreateRacersOneWins) {
  constexpr int kRacers = 8;
  std::vector<Status> got(kRacers);
  std::vector<std::thread> racers;
  for (int i = 0; i < kRacers; ++i) {
    racers.emplace_back([&, i] {
      auto s = open(kVmRecords);
      got[static_cast<size_t>(i)] = s->create("vm1", "{\"by\": " + std::to_string(i) + "}\n");
    });
  }
  for (auto& t : racers) t.join();
  int won = -1;
  for (int i = 0; i < kRacers; ++i) {
    const auto& s = got[static_cast<size_t>(i)];
    if (s.ok()) {
      EXPECT_EQ(won, -1) << "two creators won";
      won = i;
    } else {
      EXPECT_EQ(s.error().code, EEXIST) << s.error().message;
      EXPECT_NE(s.error().message.find("VM vm1 exists"), std::string::npos) << s.error().message;
    }
  }
  ASSERT_NE(won, -1) << "no creator won";
  auto rec = open(kVmRecords)->get("vm1");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ(**rec, "{\"by\": " + std::to_string(won) + "}\n");
  auto names = open(kVmRecords)->names();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"vm1"}) << "a creator's own file was left";
}

// Kinds do not see each other's records; a name is one path segment.
TEST_P(RecordStoreTest, KindsApartAndNamesOneSegment) {
  ASSERT_TRUE(open(kCsiRecords)->put("x", "csi").ok());
  ASSERT_TRUE(open(kVmRecords)->put("x", "vm").ok());
  auto vols = open()->names();
  ASSERT_TRUE(vols.ok());
  EXPECT_TRUE(vols->empty());
  auto csi = open(kCsiRecords)->get("x");
  ASSERT_TRUE(csi.ok() && csi->has_value());
  EXPECT_EQ(**csi, "csi");
  if (kv_.kv()) {
    auto k = kv_.client()->range("/offcore/csi/v1/records/x", "");
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(k->kvs.size(), 1u);
  }
  for (const std::string bad : {"", ".", "..", "a/b", "../volumes/x"}) {
    auto s = open(kCsiRecords)->put(bad, "x");
    ASSERT_FALSE(s.ok()) << "'" << bad << "' accepted";
    EXPECT_EQ(s.error().code, EINVAL);
    EXPECT_NE(s.error().message.find("bad CSI catalog entry name"), std::string::npos) << s.error().message;
    EXPECT_FALSE(open(kCsiRecords)->create(bad, "x").ok());
    EXPECT_FALSE(open(kCsiRecords)->get(bad).ok());
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, RecordStoreTest, ::testing::Values("dir", "fake", "etcd"),
                         [](const auto& info) { return info.param; });

// The directory's lock waits at most wait_s too, and names its holder.
TEST(DirRecordStoreTest, ALockHeldTooLongIsRefusedNamingItsHolder) {
  char tmpl[] = "/tmp/oc-dirlock-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/volumes";
  auto a = makeDirRecordStore(dir, kVolumeRecords), b = makeDirRecordStore(dir, kVolumeRecords);
  {
    auto held = a->lock("offcore volume create v1");
    ASSERT_TRUE(held.ok()) << held.error().message;
    auto t0 = std::chrono::steady_clock::now();
    auto refused = b->lock("offcore volume delete v2", 1);
    ASSERT_FALSE(refused.ok());
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900)) << "it did not wait";
    EXPECT_EQ(refused.error().code, EBUSY);
    EXPECT_NE(refused.error().message.find("being changed by offcore volume create v1 (pid "), std::string::npos)
        << refused.error().message;
  }
  auto next = b->lock("offcore volume delete v2", 1);
  EXPECT_TRUE(next.ok()) << next.error().message;
  next->reset();
  (void)removeTree(tmpl);
}

// --- etcd only ---------------------------------------------------------------

TEST(KvRecordStoreTest, OneLockHolderClusterWideAndTheOtherToldWho) {
  auto kv = std::make_shared<kv::FakeKv>();
  auto a = makeKvRecordStore(kv, kVolumeRecords), b = makeKvRecordStore(kv, kVolumeRecords);
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
TEST(KvRecordStoreTest, AHolderWhoseLockExpiredWritesNothing) {
  auto kv = std::make_shared<kv::FakeKv>();
  auto a = makeKvRecordStore(kv, kVolumeRecords);
  auto held = a->lock("offcore volume create v1");
  ASSERT_TRUE(held.ok());
  ASSERT_TRUE(a->put("v1", "one").ok());
  auto r = kv->range("/offcore/volumes/v1/lock", "");
  ASSERT_TRUE(r.ok() && r->kvs.size() == 1u);
  kv->expire(r->kvs[0].lease);
  auto b = makeKvRecordStore(kv, kVolumeRecords);
  auto other = b->lock("offcore volume delete v1", 1);
  ASSERT_TRUE(other.ok());
  auto late = a->put("v1", "two");
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, EBUSY);
  EXPECT_FALSE(a->remove("v1").ok());
  auto late_create = a->create("v2", "new");
  ASSERT_FALSE(late_create.ok());
  EXPECT_EQ(late_create.error().code, EBUSY) << "a create refused by the lock is not 'exists'";
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
