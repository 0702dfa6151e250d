#include "nexus/nexus.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "fakes.h"

namespace offcore::nexus {
namespace {

using test::FaultyDevice;
using test::MemoryDevice;
using test::MemoryJournal;

constexpr uint64_t kSize = 16 << 20;  // 16 regions of 1 MiB
constexpr uint64_t kRegion = 1 << 20;

struct Rig {
  std::vector<std::shared_ptr<MemoryDevice>> mem;
  std::vector<std::shared_ptr<FaultyDevice>> dev;
  std::shared_ptr<MemoryJournal> journal = std::make_shared<MemoryJournal>();

  explicit Rig(int n) {
    for (int i = 0; i < n; ++i) {
      mem.push_back(std::make_shared<MemoryDevice>(kSize));
      dev.push_back(std::make_shared<FaultyDevice>(mem.back()));
    }
  }
  // A fresh set of replica objects over the same data (a restart).
  std::vector<ReplicaDevice> replicas() {
    std::vector<ReplicaDevice> r;
    for (size_t i = 0; i < dev.size(); ++i) r.push_back({"r" + std::to_string(i), dev[i]});
    return r;
  }
  std::unique_ptr<Nexus> open(NexusOptions o = manual()) {
    auto nx = openNexus(replicas(), journal, o);
    EXPECT_TRUE(nx.ok()) << (nx.ok() ? "" : nx.error().message);
    return nx.ok() ? std::move(*nx) : nullptr;
  }
  static NexusOptions manual() {
    NexusOptions o;
    o.probe_interval_ms = 0;  // rebuilds only when asked
    o.rebuild_mib_per_s = 0;
    return o;
  }
};

std::vector<uint8_t> pattern(size_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (size_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

ReplicaState stateOf(Nexus& nx, int i) { return nx.status().replicas[static_cast<size_t>(i)].state; }

TEST(Nexus, WritesReachEveryReplicaAndReadsAreSpread) {
  Rig rig(2);
  auto nx = rig.open();
  auto data = pattern(64 << 10, 3);
  ASSERT_TRUE(nx->write(kRegion * 3, data.data(), data.size()).ok());
  for (auto& m : rig.mem) {
    std::vector<uint8_t> got(data.size());
    ASSERT_TRUE(m->read(kRegion * 3, got.data(), got.size()).ok());
    EXPECT_EQ(got, data);
  }
  for (int i = 0; i < 20; ++i) {
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE(nx->read(kRegion * 3, got.data(), got.size()).ok());
  }
  // Idle replicas tie on load; the tie is broken round-robin.
  EXPECT_GT(rig.dev[0]->reads.load(), 0u);
  EXPECT_GT(rig.dev[1]->reads.load(), 0u);
  EXPECT_EQ(nx->status().state, "online");
}

TEST(Nexus, AFailedReplicaIsFaultedAndWritesGoOnDegraded) {
  Rig rig(2);
  auto nx = rig.open();
  rig.dev[1]->down();
  auto data = pattern(8192, 9);
  ASSERT_TRUE(nx->write(kRegion * 5 + 4096, data.data(), data.size()).ok());
  EXPECT_EQ(stateOf(*nx, 1), ReplicaState::kFaulted);
  EXPECT_EQ(nx->status().state, "degraded");
  // The missed region is durable in the journal by the time the write is
  // acknowledged.
  auto rec = rig.journal->get();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->replicas[1].state, ReplicaState::kFaulted);
  EXPECT_EQ(rec->replicas[1].missed[0], uint64_t{1} << 5);
  EXPECT_EQ(rec->replicas[0].missed[0], 0u);
  // Later writes skip it (no attempt), and mark their regions too.
  uint64_t before = rig.dev[1]->writes;
  ASSERT_TRUE(nx->write(kRegion * 9, data.data(), data.size()).ok());
  EXPECT_EQ(rig.dev[1]->writes.load(), before);
  EXPECT_EQ(rig.journal->get()->replicas[1].missed[0], (uint64_t{1} << 5) | (uint64_t{1} << 9));
  EXPECT_EQ(nx->status().replicas[1].missed_bytes, 2 * kRegion);
}

TEST(Nexus, AFailedReadIsRetriedOnAnotherReplica) {
  Rig rig(2);
  auto nx = rig.open();
  auto data = pattern(4096, 1);
  ASSERT_TRUE(nx->write(0, data.data(), data.size()).ok());
  rig.dev[0]->fail_reads = true;
  for (int i = 0; i < 4; ++i) {
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE(nx->read(0, got.data(), got.size()).ok());
    EXPECT_EQ(got, data);
  }
  EXPECT_EQ(stateOf(*nx, 0), ReplicaState::kFaulted);
}

TEST(Nexus, AFaultedReplicaIsNeverReadEvenWhenItAnswersAgain) {
  Rig rig(2);
  auto nx = rig.open();
  rig.dev[1]->down();
  auto data = pattern(4096, 5);
  ASSERT_TRUE(nx->write(0, data.data(), data.size()).ok());
  rig.dev[1]->up();  // back, but stale: it lacks the write above
  uint64_t reads = rig.dev[1]->reads;
  for (int i = 0; i < 10; ++i) {
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE(nx->read(0, got.data(), got.size()).ok());
    EXPECT_EQ(got, data);
  }
  EXPECT_EQ(rig.dev[1]->reads.load(), reads);
}

TEST(Nexus, EveryReplicaFailingFailsTheWrite) {
  Rig rig(2);
  auto nx = rig.open();
  rig.dev[0]->down();
  rig.dev[1]->down();
  auto data = pattern(4096, 5);
  Status st = nx->write(0, data.data(), data.size());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, kBlockIo);
  EXPECT_EQ(nx->status().state, "faulted");
  std::vector<uint8_t> got(4096);
  EXPECT_FALSE(nx->read(0, got.data(), got.size()).ok());
}

TEST(Nexus, AWriteWhoseMissIsNotDurableIsFailed) {
  Rig rig(2);
  auto nx = rig.open();
  rig.journal->fail = true;
  rig.dev[1]->down();
  auto data = pattern(4096, 5);
  Status st = nx->write(0, data.data(), data.size());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("journal disk full"), std::string::npos) << st.error().message;
}

TEST(Nexus, RebuildCopiesOnlyTheMissedRegions) {
  Rig rig(2);
  auto nx = rig.open();
  auto base = pattern(kSize, 0);
  ASSERT_TRUE(nx->write(0, base.data(), base.size()).ok());
  rig.dev[1]->down();
  auto data = pattern(4096, 77);
  for (uint64_t r : {2, 3, 11}) ASSERT_TRUE(nx->write(r * kRegion + 8192, data.data(), data.size()).ok());
  rig.dev[1]->up();
  uint64_t writes = rig.dev[1]->writes;
  ASSERT_TRUE(nx->rebuild("r1").ok());
  ASSERT_TRUE(nx->waitIdle(5000));
  EXPECT_EQ(rig.dev[1]->writes.load() - writes, 3u);  // one copy per missed region
  EXPECT_EQ(nx->status().state, "online");
  EXPECT_EQ(nx->status().replicas[1].missed_bytes, 0u);
  EXPECT_EQ(rig.journal->get()->replicas[1].state, ReplicaState::kOnline);
  std::vector<uint8_t> a(kSize), b(kSize);
  ASSERT_TRUE(rig.mem[0]->read(0, a.data(), kSize).ok());
  ASSERT_TRUE(rig.mem[1]->read(0, b.data(), kSize).ok());
  EXPECT_TRUE(a == b);
}

TEST(Nexus, RebuildUnderConcurrentWritesLeavesIdenticalReplicas) {
  Rig rig(3);
  NexusOptions o = Rig::manual();
  o.region_bytes = 64 << 10;  // many regions, so writes and the copy meet often
  auto nx = rig.open(o);
  rig.dev[2]->down();
  std::atomic<bool> stop{false};
  // Each writer keeps to its half: like any block device (and md's raid1),
  // the nexus gives two overlapping writes in flight at once no order, so
  // replicas may take them in different orders. Clients never do that.
  auto writer = [&](int seed) {
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    const uint64_t half = kSize / 2, base = static_cast<uint64_t>(seed - 1) * half;
    while (!stop) {
      uint64_t off = base + (rng() % (half / 4096 - 4)) * 4096;
      auto d = pattern(4096 * (1 + rng() % 4), static_cast<uint8_t>(rng()));
      ASSERT_TRUE(nx->write(off, d.data(), d.size()).ok());
    }
  };
  std::thread w1(writer, 1), w2(writer, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rig.dev[2]->up();
  ASSERT_TRUE(nx->rebuild("r2").ok());
  bool idle = nx->waitIdle(20000);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  w1.join();
  w2.join();
  ASSERT_TRUE(idle);
  std::vector<uint8_t> a(kSize), b(kSize), c(kSize);
  ASSERT_TRUE(rig.mem[0]->read(0, a.data(), kSize).ok());
  ASSERT_TRUE(rig.mem[1]->read(0, b.data(), kSize).ok());
  ASSERT_TRUE(rig.mem[2]->read(0, c.data(), kSize).ok());
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(a == c);
}

TEST(Nexus, AReplicaBehindStaysOutOfReadsAfterARestart) {
  Rig rig(2);
  {
    auto nx = rig.open();
    rig.dev[1]->down();
    auto data = pattern(4096, 42);
    ASSERT_TRUE(nx->write(kRegion * 7, data.data(), data.size()).ok());
  }
  rig.dev[1]->up();
  auto nx = rig.open();  // a new process: only the journal remembers
  EXPECT_EQ(stateOf(*nx, 1), ReplicaState::kFaulted);
  uint64_t reads = rig.dev[1]->reads;
  std::vector<uint8_t> got(4096);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(nx->read(kRegion * 7, got.data(), got.size()).ok());
  EXPECT_EQ(rig.dev[1]->reads.load(), reads);
  EXPECT_EQ(got, pattern(4096, 42));
  ASSERT_TRUE(nx->rebuild("r1").ok());
  ASSERT_TRUE(nx->waitIdle(5000));
  std::vector<uint8_t> b(4096);
  ASSERT_TRUE(rig.mem[1]->read(kRegion * 7, b.data(), b.size()).ok());
  EXPECT_EQ(b, pattern(4096, 42));
}

TEST(Nexus, AReplicaTheJournalDoesNotKnowIsRebuiltWhole) {
  Rig rig(2);
  { auto nx = rig.open(); }
  // The record now names r0 and r1; a third replica joins.
  rig.mem.push_back(std::make_shared<MemoryDevice>(kSize));
  rig.dev.push_back(std::make_shared<FaultyDevice>(rig.mem.back()));
  auto nx = rig.open();
  EXPECT_EQ(stateOf(*nx, 2), ReplicaState::kFaulted);
  EXPECT_EQ(nx->status().replicas[2].missed_bytes, kSize);
  ASSERT_TRUE(nx->rebuild("r2").ok());
  ASSERT_TRUE(nx->waitIdle(5000));
  EXPECT_EQ(rig.dev[2]->writes.load(), kSize / kRegion);
}

TEST(Nexus, AProbedReplicaIsRebuiltWithoutBeingAsked) {
  Rig rig(2);
  NexusOptions o;
  o.probe_interval_ms = 20;
  auto nx = rig.open(o);
  rig.dev[1]->down();
  auto data = pattern(4096, 8);
  ASSERT_TRUE(nx->write(0, data.data(), data.size()).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(60));  // probes fail meanwhile
  EXPECT_EQ(stateOf(*nx, 1), ReplicaState::kFaulted);
  rig.dev[1]->up();
  ASSERT_TRUE(nx->waitIdle(5000));
}

TEST(Nexus, RebuildStopsWhenTheReplicaFailsAgainAndKeepsItsBitmap) {
  Rig rig(2);
  auto nx = rig.open();
  rig.dev[1]->down();
  auto data = pattern(4096, 8);
  for (uint64_t r = 0; r < 4; ++r) ASSERT_TRUE(nx->write(r * kRegion, data.data(), data.size()).ok());
  rig.dev[1]->fail_reads = false;  // probe passes, copies fail
  ASSERT_TRUE(nx->rebuild("r1").ok());
  for (int i = 0; i < 200 && nx->status().replicas[1].errors < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(stateOf(*nx, 1), ReplicaState::kFaulted);
  EXPECT_EQ(nx->status().replicas[1].missed_bytes, 4 * kRegion);
  EXPECT_NE(nx->status().replicas[1].last_error.find("rebuild stopped"), std::string::npos);
}

TEST(Nexus, RejectsMismatchedReplicasAndUnalignedIo) {
  std::vector<ReplicaDevice> r{{"a", std::make_shared<MemoryDevice>(kSize)},
                               {"b", std::make_shared<MemoryDevice>(kSize / 2)}};
  auto nx = openNexus(r, std::make_shared<MemoryJournal>());
  ASSERT_FALSE(nx.ok());
  EXPECT_NE(nx.error().message.find("replicas must match"), std::string::npos);
  std::vector<ReplicaDevice> dup{{"a", std::make_shared<MemoryDevice>(kSize)},
                                 {"a", std::make_shared<MemoryDevice>(kSize)}};
  EXPECT_FALSE(openNexus(dup, std::make_shared<MemoryJournal>()).ok());
  Rig rig(2);
  auto ok = rig.open();
  std::vector<uint8_t> b(8192);
  EXPECT_EQ(ok->write(100, b.data(), 4096).error().code, kBlockInvalid);
  EXPECT_EQ(ok->read(kSize, b.data(), 4096).error().code, kBlockOutOfRange);
}

TEST(Nexus, TheRebuildRateIsBounded) {
  Rig rig(2);
  NexusOptions o = Rig::manual();
  o.rebuild_mib_per_s = 40;
  auto nx = rig.open(o);
  rig.dev[1]->down();
  auto data = pattern(4096, 1);
  for (uint64_t r = 0; r < 8; ++r) ASSERT_TRUE(nx->write(r * kRegion, data.data(), data.size()).ok());
  rig.dev[1]->up();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(nx->rebuild("r1").ok());
  ASSERT_TRUE(nx->waitIdle(10000));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(s, 8.0 / 40 * 0.9);  // 8 MiB at 40 MiB/s: no faster than the bound
}

TEST(Nexus, ARequestEveryReplicaRefusesFaultsNone) {
  // Read-only replicas (a snapshot): the write fails with EROFS, all stay online.
  std::vector<ReplicaDevice> r{{"a", std::make_shared<MemoryDevice>(kSize, /*read_only=*/true)},
                               {"b", std::make_shared<MemoryDevice>(kSize, /*read_only=*/true)}};
  auto journal = std::make_shared<MemoryJournal>();
  auto nx = openNexus(r, journal, Rig::manual());
  ASSERT_TRUE(nx.ok());
  auto data = pattern(4096, 1);
  Status st = (*nx)->write(0, data.data(), data.size());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, kBlockReadOnly);
  EXPECT_EQ((*nx)->status().state, "online");
  EXPECT_EQ((*nx)->status().replicas[0].missed_bytes, 0u);
  std::vector<uint8_t> got(4096);
  EXPECT_TRUE((*nx)->read(0, got.data(), got.size()).ok());
}

TEST(Nexus, AReplicaRefusingWhatAnotherTookIsFaulted) {
  std::vector<ReplicaDevice> r{{"a", std::make_shared<MemoryDevice>(kSize)},
                               {"b", std::make_shared<MemoryDevice>(kSize, /*read_only=*/true)}};
  auto nx = openNexus(r, std::make_shared<MemoryJournal>(), Rig::manual());
  ASSERT_TRUE(nx.ok());
  auto data = pattern(4096, 1);
  ASSERT_TRUE((*nx)->write(0, data.data(), data.size()).ok());
  EXPECT_EQ((*nx)->status().replicas[1].state, ReplicaState::kFaulted);
  EXPECT_EQ((*nx)->status().replicas[1].missed_bytes, kRegion);
}

TEST(Nexus, DiscardAndZeroesGoToEveryReplica) {
  Rig rig(2);
  auto nx = rig.open();
  auto data = pattern(8192, 4);
  ASSERT_TRUE(nx->write(0, data.data(), data.size()).ok());
  ASSERT_TRUE(nx->discard(0, 4096).ok());
  ASSERT_TRUE(nx->writeZeroes(4096, 4096).ok());
  for (auto& m : rig.mem) {
    std::vector<uint8_t> got(8192);
    ASSERT_TRUE(m->read(0, got.data(), got.size()).ok());
    EXPECT_EQ(got, std::vector<uint8_t>(8192, 0));
  }
  ASSERT_TRUE(nx->flush().ok());
}

}  // namespace
}  // namespace offcore::nexus
