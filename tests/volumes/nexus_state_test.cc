#include "volumes/nexus_state.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "../kv/fake_kv.h"
#include "../kv/kv_backend.h"
#include "base/files.h"
#include "kv/etcd_client.h"

namespace offcore::volumes {
namespace {

const std::vector<std::string> kReplicas{"10.0.0.1:4420/nqn.x:a:v", "10.0.0.2:4420/nqn.x:b:v"};

nexus::NexusRecord sampleRecord(uint64_t regions, uint64_t every) {
  nexus::NexusRecord rec;
  rec.generation = 7;
  rec.region_bytes = 1 << 20;
  rec.size_bytes = regions << 20;
  for (const auto& name : kReplicas) {
    nexus::ReplicaRecord r{name, nexus::ReplicaState::kOnline, std::vector<uint64_t>((regions + 63) / 64, 0)};
    rec.replicas.push_back(r);
  }
  rec.replicas[1].state = nexus::ReplicaState::kFaulted;
  for (uint64_t i = 0; i < regions; i += every) rec.replicas[1].missed[i / 64] |= uint64_t{1} << (i % 64);
  return rec;
}

bool sameRecord(const nexus::NexusRecord& a, const nexus::NexusRecord& b) {
  return nexus::encodeRecord(a) == nexus::encodeRecord(b);
}

// The same cases against each state: the directory, an in-memory etcd with
// etcd's rules, and a real etcd member over gRPC.
class NexusStateTest : public kv::StoreTest {
 protected:
  // Each call is a separate client, as two machines would have.
  std::unique_ptr<NexusState> open() {
    if (!kv_.kv()) return makeDirNexusState(dir_ + "/nexus");
    return makeKvNexusState(kv_.client(), 3);
  }
};

TEST_P(NexusStateTest, ASecondHolderIsRefusedAndToldWhoHoldsTheReplica) {
  auto a = open(), b = open();
  auto first = a->claim(kReplicas, {"node n1 (disk d1)", 11});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ((*first)->lostReason(), "");
  auto second = b->claim({kReplicas[1]}, {"node n2 (disk d2)", 22});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, EBUSY);
  EXPECT_NE(second.error().message.find("node n1 (disk d1) (pid 11)"), std::string::npos) << second.error().message;
  EXPECT_NE(second.error().message.find(kReplicas[1]), std::string::npos) << second.error().message;
  first->reset();  // detached: released at once, not a TTL later
  EXPECT_TRUE(b->claim({kReplicas[1]}, {"node n2 (disk d2)", 22}).ok());
}

TEST_P(NexusStateTest, ARefusedClaimHoldsNothing) {
  auto a = open(), b = open();
  auto held = a->claim({kReplicas[1]}, {"node n1", 1});
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE(b->claim(kReplicas, {"node n2", 2}).ok());
  EXPECT_TRUE(b->claim({kReplicas[0]}, {"node n3", 3}).ok());
}

TEST_P(NexusStateTest, AJournalRoundTripsAndIsRemoved) {
  auto s = open();
  auto claim = s->claim(kReplicas, {"node n1", 1});
  ASSERT_TRUE(claim.ok());
  auto j = s->journal("vol-a", claim->get());
  ASSERT_TRUE(j.ok()) << j.error().message;
  auto none = (*j)->load();
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto rec = sampleRecord(4096, 3);
  ASSERT_TRUE((*j)->save(rec).ok());
  // Another state, another client: what a restart on another node reads.
  auto other = open()->journal("vol-a", nullptr);
  ASSERT_TRUE(other.ok());
  auto back = (*other)->load();
  ASSERT_TRUE(back.ok() && back->has_value()) << (back.ok() ? "none" : back.error().message);
  EXPECT_TRUE(sameRecord(**back, rec));
  EXPECT_TRUE(s->journalRef("vol-a").find("vol-a") != std::string::npos);
  ASSERT_TRUE(s->removeJournal("vol-a").ok());
  auto gone = (*other)->load();
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
  EXPECT_TRUE(s->removeJournal("vol-a").ok()) << "removing twice is not an error";
}

// A bitmap whose runs pass etcd's request limit: 2^20 regions with every
// other one missed encode to several MiB.
TEST_P(NexusStateTest, ABigJournalRoundTrips) {
  auto s = open();
  auto claim = s->claim(kReplicas, {"node n1", 1});
  ASSERT_TRUE(claim.ok());
  auto j = s->journal("big", claim->get());
  ASSERT_TRUE(j.ok());
  auto rec = sampleRecord(uint64_t{1} << 20, 2);
  ASSERT_GT(nexus::encodeRecord(rec).size(), size_t{2} << 20);
  ASSERT_TRUE((*j)->save(rec).ok());
  // Saved again: a new set of parts, the old set goes.
  ASSERT_TRUE((*j)->save(rec).ok());
  auto back = (*j)->load();
  ASSERT_TRUE(back.ok() && back->has_value()) << (back.ok() ? "none" : back.error().message);
  EXPECT_TRUE(sameRecord(**back, rec));
  const std::string parts = "/offcore/nexus/v1/journals/big/parts/";
  if (kv_.kv()) {
    auto r = kv_.raw()->range(parts, kv::prefixEnd(parts));
    ASSERT_TRUE(r.ok());
    size_t want = (nexus::encodeRecord(rec).size() + (512u << 10) - 1) / (512u << 10);
    EXPECT_EQ(r->kvs.size(), want) << "parts of an older save left behind";
  }
  // Saved small: one value, every part goes.
  auto small = sampleRecord(uint64_t{1} << 20, 1000);
  ASSERT_TRUE((*j)->save(small).ok());
  back = (*j)->load();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_TRUE(sameRecord(**back, small));
  if (kv_.kv()) {
    auto r = kv_.raw()->range(parts, kv::prefixEnd(parts));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->kvs.empty()) << r->kvs.size() << " parts left behind";
  }
}

INSTANTIATE_TEST_SUITE_P(States, NexusStateTest, ::testing::Values("dir", "fake", "etcd"),
                         [](const auto& info) { return info.param; });

// --- etcd only ---------------------------------------------------------------

class KvNexusStateTest : public ::testing::Test {
 protected:
  std::shared_ptr<kv::FakeKv> kv_ = std::make_shared<kv::FakeKv>();
  std::unique_ptr<NexusState> state_ = makeKvNexusState(kv_, 3);
};

TEST_F(KvNexusStateTest, ClaimsAreKeysUnderALeaseOnePerReplica) {
  auto c = state_->claim(kReplicas, {"node n1 (disk d)", 5});
  ASSERT_TRUE(c.ok());
  auto r = kv_->range("/offcore/nexus/v1/claims/", kv::prefixEnd("/offcore/nexus/v1/claims/"));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "/offcore/nexus/v1/claims/10.0.0.1:4420%2Fnqn.x:a:v");
  EXPECT_NE(r->kvs[0].lease, 0);
  EXPECT_EQ(r->kvs[0].lease, r->kvs[1].lease);
  EXPECT_EQ(state_->journalRef("v"), "etcd:v");
}

// A restarted disk service (same owner, new pid) takes its predecessor's
// claims at once; the predecessor's journal saves are refused from then on.
TEST_F(KvNexusStateTest, TheSameOwnerTakesOverAndTheOldHolderCanNoLongerSave) {
  auto old_claim = state_->claim(kReplicas, {"node n1 (disk d)", 100});
  ASSERT_TRUE(old_claim.ok());
  auto old_journal = state_->journal("v", old_claim->get());
  ASSERT_TRUE(old_journal.ok());
  ASSERT_TRUE((*old_journal)->save(sampleRecord(64, 5)).ok());
  auto new_claim = state_->claim(kReplicas, {"node n1 (disk d)", 200});
  ASSERT_TRUE(new_claim.ok()) << new_claim.error().message;
  auto refused = (*old_journal)->save(sampleRecord(64, 1));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, EBUSY);
  auto new_journal = state_->journal("v", new_claim->get());
  ASSERT_TRUE(new_journal.ok());
  auto back = (*new_journal)->load();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_TRUE(sameRecord(**back, sampleRecord(64, 5))) << "the refused save changed the journal";
  EXPECT_TRUE((*new_journal)->save(sampleRecord(64, 2)).ok());
  // The old claim going (its lease revoked) leaves the new holder's keys.
  old_claim->reset();
  EXPECT_FALSE(state_->claim({kReplicas[0]}, {"node n2 (disk e)", 3}).ok());
}

// A holder whose lease expired (a node that was cut off): another node
// claims; nothing the first saves lands.
TEST_F(KvNexusStateTest, AnExpiredHolderCannotSaveOverItsSuccessor) {
  auto first = state_->claim(kReplicas, {"node n1 (disk d)", 1});
  ASSERT_TRUE(first.ok());
  auto j1 = state_->journal("v", first->get());
  ASSERT_TRUE(j1.ok());
  ASSERT_TRUE((*j1)->save(sampleRecord(64, 5)).ok());
  auto keys = kv_->range("/offcore/nexus/v1/claims/", kv::prefixEnd("/offcore/nexus/v1/claims/"));
  ASSERT_TRUE(keys.ok() && !keys->kvs.empty());
  kv_->expire(keys->kvs[0].lease);
  auto second = state_->claim(kReplicas, {"node n2 (disk d)", 2});
  ASSERT_TRUE(second.ok()) << second.error().message;
  auto j2 = state_->journal("v", second->get());
  ASSERT_TRUE(j2.ok());
  ASSERT_TRUE((*j2)->save(sampleRecord(64, 7)).ok());
  EXPECT_FALSE((*j1)->save(sampleRecord(64, 1)).ok());
  auto back = (*j2)->load();
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_TRUE(sameRecord(**back, sampleRecord(64, 7)));
  // The first one learns it at its next renewal (a quarter TTL).
  for (int i = 0; i < 40 && (*first)->lostReason().empty(); ++i) ::usleep(100 * 1000);
  EXPECT_NE((*first)->lostReason(), "");
}

TEST_F(KvNexusStateTest, AClaimNotRenewedForTwoThirdsOfItsTtlIsLost) {
  auto c = state_->claim(kReplicas, {"node n1", 1});
  ASSERT_TRUE(c.ok());
  kv_->setDown(true);  // etcd unreachable: renewals fail
  for (int i = 0; i < 40 && (*c)->lostReason().empty(); ++i) ::usleep(100 * 1000);
  std::string why = (*c)->lostReason();
  EXPECT_NE(why.find("not renewed"), std::string::npos) << why;
  kv_->setDown(false);
}

TEST_F(KvNexusStateTest, ADamagedJournalIsAOneLineErrorNotAnEmptyOne) {
  ASSERT_TRUE(
      kv_->txn({}, {kv::Op::put("/offcore/nexus/v1/journals/v/head", R"({"parts": 3, "bytes": 10, "set": "x"})")})
          .ok());
  auto j = state_->journal("v", nullptr);
  ASSERT_TRUE(j.ok());
  auto r = (*j)->load();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  EXPECT_NE(r.error().message.find("nexus journal v"), std::string::npos) << r.error().message;
  ASSERT_TRUE(kv_->txn({}, {kv::Op::put("/offcore/nexus/v1/journals/v/head", "{\"version\": 1}")}).ok());
  EXPECT_FALSE((*j)->load().ok());
}

TEST(JournalRefTest, PathsAndEtcdIds) {
  auto a = parseJournalRef("/var/lib/c/nexus/vol.json");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->etcd);
  EXPECT_EQ(a->dir, "/var/lib/c/nexus");
  EXPECT_EQ(a->id, "vol");
  auto b = parseJournalRef("etcd:vol");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->etcd);
  EXPECT_EQ(b->id, "vol");
  EXPECT_FALSE(parseJournalRef("etcd:").ok());
  EXPECT_FALSE(parseJournalRef("etcd:a/b").ok());
  EXPECT_FALSE(parseJournalRef("/x/vol").ok());
}

}  // namespace
}  // namespace offcore::volumes
