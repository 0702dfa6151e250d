#include "svc/maglev.h"

#include <gtest/gtest.h>

#include <map>

namespace offcore {
namespace {

std::vector<MaglevBackend> backends(int n, int skip = -1) {
  std::vector<MaglevBackend> out;
  for (int i = 0; i < n; ++i) {
    if (i != skip) out.push_back({"10.1.0." + std::to_string(i) + ":8080", 1});
  }
  return out;
}

TEST(Maglev, TableSizeIsPrimeAndLarge) {
  EXPECT_EQ(MaglevTable::sizeFor(0), 65537u);
  for (size_t n : {1, 3, 10, 100, 1000, 5000}) {
    uint32_t m = MaglevTable::sizeFor(n);
    EXPECT_TRUE(isPrime(m));
    EXPECT_GE(m, 100 * n);
  }
  EXPECT_EQ(MaglevTable::sizeFor(10000), 1000003u);
  EXPECT_FALSE(MaglevTable::build(backends(3), 1000).ok());
}

TEST(Maglev, EveryBackendGetsAFairShare) {
  for (int n : {1, 3, 10, 50}) {
    auto t = MaglevTable::build(backends(n));
    ASSERT_TRUE(t.ok()) << t.error().message;
    std::map<int32_t, int> count;
    for (int32_t s : t->slots()) count[s]++;
    ASSERT_EQ(count.size(), static_cast<size_t>(n)) << "n=" << n;
    double fair = static_cast<double>(t->size()) / n;
    for (auto [b, c] : count) {
      EXPECT_GE(b, 0);
      EXPECT_NEAR(c, fair, fair * 0.02 + 1) << "backend " << b << " of " << n;
    }
  }
}

TEST(Maglev, RemovingOneOfNMovesAboutOneNth) {
  // (At the default size the bound holds up to N ~ 100; N = 200 moves
  // ~2.5/N: see src/svc/README.md.)
  for (int n : {3, 10, 50}) {
    // A Service keeps its table size when backends come and go.
    const uint32_t m = MaglevTable::sizeFor(n);
    auto before = MaglevTable::build(backends(n), m);
    const int removed = n / 2;
    auto after = MaglevTable::build(backends(n, removed), m);
    ASSERT_TRUE(before.ok() && after.ok());
    ASSERT_EQ(before->size(), after->size()) << "compare on the same table size";
    // Indexes shift after the removed one; compare by key.
    auto keyOf = [&](const MaglevTable& t, const std::vector<MaglevBackend>& b, uint32_t slot) {
      return b[static_cast<size_t>(t.slots()[slot])].key;
    };
    auto bb = backends(n), ba = backends(n, removed);
    int moved = 0;
    for (uint32_t s = 0; s < before->size(); ++s) {
      if (keyOf(*before, bb, s) != keyOf(*after, ba, s)) ++moved;
    }
    double share = static_cast<double>(moved) / before->size();
    EXPECT_LE(share, 1.5 / n) << "n=" << n << " moved " << moved;
    EXPECT_GE(share, 0.5 / n) << "the removed backend's own slots must move";
  }
}

// The dataplane's tables are small (M = the smallest prime >= 100 N, at
// least 251) and updated incrementally, so the 1.5/N bound holds at any N.
TEST(Maglev, IncrementalUpdateMovesOnlyTheRemovedShare) {
  for (int n : {2, 3, 10, 50, 200}) {
    const uint32_t m = MaglevTable::sizeFor(n, 251);
    auto bb = backends(n);
    auto before = MaglevTable::build(bb, m);
    ASSERT_TRUE(before.ok());
    const int removed = n / 2;
    auto ba = backends(n, removed);
    auto after = MaglevTable::update(*before, bb, ba);
    ASSERT_TRUE(after.ok()) << after.error().message;
    ASSERT_EQ(after->size(), m);
    int moved = 0;
    std::map<int32_t, int> count;
    for (uint32_t s = 0; s < m; ++s) {
      const auto& was = bb[static_cast<size_t>(before->slots()[s])].key;
      ASSERT_GE(after->slots()[s], 0);
      const auto& now = ba[static_cast<size_t>(after->slots()[s])].key;
      if (was != now) ++moved;
      count[after->slots()[s]]++;
    }
    double share = static_cast<double>(moved) / m;
    EXPECT_LE(share, 1.5 / n) << "n=" << n;
    EXPECT_GE(share, 0.5 / n) << "n=" << n;
    // Still balanced after the update.
    for (auto [b, c] : count) EXPECT_NEAR(c, static_cast<double>(m) / (n - 1), 1.0) << "n=" << n;
    // Adding it back moves about 1/N again, and restores balance.
    auto again = MaglevTable::update(*after, ba, bb);
    ASSERT_TRUE(again.ok());
    int moved_back = 0;
    for (uint32_t s = 0; s < m; ++s) {
      moved_back += ba[static_cast<size_t>(after->slots()[s])].key != bb[static_cast<size_t>(again->slots()[s])].key;
    }
    EXPECT_LE(static_cast<double>(moved_back) / m, 1.5 / n) << "n=" << n;
  }
}

TEST(Maglev, WeightsScaleShares) {
  auto t = MaglevTable::build({{"a", 3}, {"b", 1}});
  ASSERT_TRUE(t.ok());
  int a = 0;
  for (int32_t s : t->slots()) a += s == 0;
  EXPECT_NEAR(static_cast<double>(a) / t->size(), 0.75, 0.02);
}

TEST(Maglev, RejectsBadInputAndHandlesNoBackends) {
  EXPECT_FALSE(MaglevTable::build({{"a", 1}, {"a", 1}}).ok());
  EXPECT_FALSE(MaglevTable::build({{"", 1}}).ok());
  EXPECT_FALSE(MaglevTable::build({{"a", 0}}).ok());
  auto empty = MaglevTable::build({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->lookup(12345), -1);
}

TEST(Maglev, SameInputSameTable) {
  auto a = MaglevTable::build(backends(10));
  auto b = MaglevTable::build(backends(10));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->slots(), b->slots());
}

}  // namespace
}  // namespace offcore
