// The same KvClient cases against the fake and a real etcd member, so the
// fake keeps etcd's rules; then what only the real client does (members
// that are down, answers that are not etcd's).
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "etcd_member.h"
#include "fake_kv.h"
#include "kv/etcd_client.h"
#include "kv/etcd_json.h"

namespace offcore::kv {
namespace {

// Collects watch batches from the watch's thread.
struct Collected {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<WatchEvent> events;
  int64_t compacted = 0;
  WatchCallback callback() {
    return [this](const WatchBatch& b) {
      std::lock_guard<std::mutex> lock(mu);
      events.insert(events.end(), b.events.begin(), b.events.end());
      if (b.compacted) compacted = b.compacted;
      cv.notify_all();
    };
  }
  bool waitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return events.size() >= n || compacted > 0; });
  }
};

class KvClientTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "fake") {
      kv_ = std::make_unique<FakeKv>();
      return;
    }
    auto s = member_.start();
    ASSERT_TRUE(s.ok()) << s.error().message;
    EtcdOptions o = member_.options();
    o.wire = GetParam() == "gateway" ? EtcdOptions::Wire::Gateway : EtcdOptions::Wire::Grpc;
    kv_ = makeEtcdClient(o);
  }
  KvClient& kv() { return *kv_; }

  EtcdMember member_;
  std::unique_ptr<KvClient> kv_;
};

TEST_P(KvClientTest, PutsRangesAndComparesOnRevisions) {
  auto t1 = kv().txn({{"/p/a", Compare::Target::Version, Compare::Result::Equal, 0, ""}},
                     {Op::put("/p/a", "1"), Op::put("/p/b", "2")});
  ASSERT_TRUE(t1.ok()) << t1.error().message;
  EXPECT_TRUE(t1->succeeded);
  auto r = kv().range("/p/", prefixEnd("/p/"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "/p/a");
  EXPECT_EQ(r->kvs[1].value, "2");
  EXPECT_EQ(r->kvs[0].mod_revision, t1->revision);
  EXPECT_EQ(r->revision, t1->revision);

  // Create-if-absent again fails; a compare on the seen mod revision wins once.
  auto again = kv().txn({{"/p/a", Compare::Target::Version, Compare::Result::Equal, 0, ""}}, {Op::put("/p/a", "x")});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->succeeded);
  int64_t seen = r->kvs[0].mod_revision;
  auto cas1 = kv().txn({{"/p/a", Compare::Target::Mod, Compare::Result::Equal, seen, ""}}, {Op::put("/p/a", "3")});
  auto cas2 = kv().txn({{"/p/a", Compare::Target::Mod, Compare::Result::Equal, seen, ""}}, {Op::put("/p/a", "4")},
                       {Op::put("/p/lost", "yes")});
  ASSERT_TRUE(cas1.ok() && cas2.ok());
  EXPECT_TRUE(cas1->succeeded);
  EXPECT_FALSE(cas2->succeeded);
  auto a = kv().range("/p/a", "");
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->kvs.size(), 1u);
  EXPECT_EQ(a->kvs[0].value, "3");
  EXPECT_EQ(a->kvs[0].version, 2);
  EXPECT_EQ(kv().range("/p/lost", "")->kvs.size(), 1u);  // the failure branch ran

  // Binary keys and values survive (base64 on the wire).
  std::string bin("k\0\xff", 3);
  ASSERT_TRUE(kv().txn({}, {Op::put("/p/" + bin, bin)}).ok());
  auto b = kv().range("/p/" + bin, "");
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->kvs.size(), 1u);
  EXPECT_EQ(b->kvs[0].value, bin);

  // A range delete.
  ASSERT_TRUE(kv().txn({}, {Op::del("/p/", prefixEnd("/p/"))}).ok());
  EXPECT_TRUE(kv().range("/p/", prefixEnd("/p/"))->kvs.empty());
}

TEST_P(KvClientTest, LeasedKeysGoWithTheLease) {
  auto lease = kv().leaseGrant(30);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  ASSERT_TRUE(kv().txn({}, {Op::put("/live/a", "x", *lease)}).ok());
  auto r = kv().range("/live/a", "");
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].lease, *lease);
  auto ttl = kv().leaseKeepAlive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.error().message;
  EXPECT_GT(*ttl, 0);
  ASSERT_TRUE(kv().leaseRevoke(*lease).ok());
  EXPECT_TRUE(kv().range("/live/a", "")->kvs.empty());
  auto gone = kv().leaseKeepAlive(*lease);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ENOENT);
  EXPECT_TRUE(kv().leaseRevoke(*lease).ok());  // twice is fine
}

TEST_P(KvClientTest, WatchReplaysFromARevisionAndFollows) {
  auto t = kv().txn({}, {Op::put("/w/a", "1")});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(kv().txn({}, {Op::put("/w/b", "2"), Op::put("/other", "x")}).ok());
  Collected got;
  auto w = kv().watch("/w/", prefixEnd("/w/"), t->revision, got.callback());
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_TRUE(got.waitFor(2));
  ASSERT_TRUE(kv().txn({}, {Op::del("/w/a")}).ok());
  ASSERT_TRUE(got.waitFor(3));
  std::lock_guard<std::mutex> lock(got.mu);
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[0].kv.key, "/w/a");
  EXPECT_EQ(got.events[1].kv.key, "/w/b");
  EXPECT_EQ(got.events[2].type, WatchEvent::Type::Delete);
  EXPECT_EQ(got.events[2].kv.key, "/w/a");
  EXPECT_GT(got.events[2].kv.mod_revision, got.events[1].kv.mod_revision);
}

TEST_P(KvClientTest, WatchFromACompactedRevisionSaysSo) {
  auto t1 = kv().txn({}, {Op::put("/c/a", "1")});
  auto t2 = kv().txn({}, {Op::put("/c/a", "2")});
  ASSERT_TRUE(t1.ok() && t2.ok());
  ASSERT_TRUE(kv().compact(t2->revision).ok());
  Collected got;
  auto w = kv().watch("/c/", prefixEnd("/c/"), t1->revision, got.callback());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(got.waitFor(1));
  std::lock_guard<std::mutex> lock(got.mu);
  EXPECT_EQ(got.compacted, t2->revision);
  EXPECT_TRUE(got.events.empty());
  auto old = kv().range("/c/", prefixEnd("/c/"), t1->revision);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, ERANGE);
}

INSTANTIATE_TEST_SUITE_P(Backends, KvClientTest, ::testing::Values("fake", "grpc", "gateway"),
                         [](const auto& info) { return info.param; });

// What only the real clients do, over each wire.
class EtcdClientTest : public ::testing::TestWithParam<EtcdOptions::Wire> {
 protected:
  EtcdOptions over(EtcdOptions o) const {
    o.wire = GetParam();
    return o;
  }
};

TEST_P(EtcdClientTest, SkipsAMemberThatIsDownAndNamesEveryFailure) {
  EtcdMember member;
  ASSERT_TRUE(member.start().ok());
  EtcdOptions o = over(member.options());
  int dead = EtcdMember::freePort();
  o.endpoints.insert(o.endpoints.begin(), "http://127.0.0.1:" + std::to_string(dead));
  auto kv = makeEtcdClient(o);
  auto t = kv->txn({}, {Op::put("k", "v")});
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->succeeded);

  member.stop();
  auto r = kv->range("k", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EHOSTUNREACH);
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
  EXPECT_NE(r.error().message.find(std::to_string(dead)), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("quorum"), std::string::npos) << r.error().message;
}

TEST_P(EtcdClientTest, SpeaksClientTlsAndRefusesAStranger) {
  EtcdMember member;
  auto up = member.start(/*tls=*/true);
  ASSERT_TRUE(up.ok()) << up.error().message;
  auto kv = makeEtcdClient(over(member.options()));
  auto t = kv->txn({}, {Op::put("k", "v")});
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->succeeded);

  // No client certificate: the member refuses the handshake.
  EtcdOptions anonymous = over(member.options());
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  auto refused = makeEtcdClient(anonymous)->range("k", "");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message.find('\n'), std::string::npos);
  // A member whose certificate our CA did not sign is not trusted.
  EtcdOptions wrong_ca = over(member.options());
  wrong_ca.ca_file = member.dir() + "/client.pem";  // a certificate, but not the member's CA
  auto untrusted = makeEtcdClient(wrong_ca)->range("k", "");
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.error().message.find("certificate"), std::string::npos) << untrusted.error().message;
  // Plain http to a TLS member is no way round it.
  EtcdOptions plain = over(member.options());
  plain.endpoints[0].replace(0, 5, "http");
  EXPECT_FALSE(makeEtcdClient(plain)->range("k", "").ok());
}

// The member restarts under a watch: the watch comes back by itself, from the
// revision after the last event it delivered (nothing lost, nothing twice),
// and the next call finds the member without the caller retrying.
TEST_P(EtcdClientTest, AWatchFollowsItsMemberThroughARestart) {
  EtcdMember member;
  ASSERT_TRUE(member.start().ok());
  auto kv = makeEtcdClient(over(member.options()));
  auto first = kv->txn({}, {Op::put("/w/a", "1")});
  ASSERT_TRUE(first.ok()) << first.error().message;
  Collected got;
  auto w = kv->watch("/w/", prefixEnd("/w/"), first->revision + 1, got.callback());
  ASSERT_TRUE(w.ok()) << w.error().message;
  ASSERT_TRUE(kv->txn({}, {Op::put("/w/b", "2")}).ok());
  ASSERT_TRUE(got.waitFor(1));
  auto back = member.restart();
  ASSERT_TRUE(back.ok()) << back.error().message;
  auto c = kv->txn({}, {Op::put("/w/c", "3")});
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_TRUE(kv->txn({}, {Op::del("/w/b")}).ok());
  ASSERT_TRUE(got.waitFor(3));
  std::lock_guard<std::mutex> lock(got.mu);
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[0].kv.key, "/w/b");
  EXPECT_EQ(got.events[1].kv.key, "/w/c");
  EXPECT_EQ(got.events[1].kv.value, "3");
  EXPECT_EQ(got.events[2].kv.key, "/w/b");
  EXPECT_EQ(got.events[2].type, WatchEvent::Type::Delete);
}

INSTANTIATE_TEST_SUITE_P(Wires, EtcdClientTest, ::testing::Values(EtcdOptions::Wire::Grpc, EtcdOptions::Wire::Gateway),
                         [](const auto& info) { return info.param == EtcdOptions::Wire::Grpc ? "grpc" : "gateway"; });

// Both wires decode a member's answer into the same values: keys, values
// (any bytes), every revision, versions and leases.
TEST(EtcdWiresTest, DecodeTheSameRangeAndEvents) {
  EtcdMember member;
  ASSERT_TRUE(member.start().ok());
  EtcdOptions o = member.options();
  o.wire = EtcdOptions::Wire::Grpc;
  auto grpc = makeEtcdClient(o);
  o.wire = EtcdOptions::Wire::Gateway;
  auto gateway = makeEtcdClient(o);
  auto lease = grpc->leaseGrant(30);
  ASSERT_TRUE(lease.ok()) << lease.error().message;
  const std::string binary("v\0\xff\n\"\\", 6);
  ASSERT_TRUE(grpc->txn({}, {Op::put("/d/a", "1"), Op::put("/d/b", binary, *lease)}).ok());
  ASSERT_TRUE(gateway->txn({}, {Op::put("/d/a", "2"), Op::put("/d/c", "")}).ok());
  auto a = grpc->range("/d/", prefixEnd("/d/"));
  auto b = gateway->range("/d/", prefixEnd("/d/"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->revision, b->revision);
  ASSERT_EQ(a->kvs.size(), 3u);
  EXPECT_EQ(a->kvs, b->kvs);
  EXPECT_EQ(a->kvs[0].version, 2);
  EXPECT_EQ(a->kvs[1].value, binary);
  EXPECT_EQ(a->kvs[1].lease, *lease);
  EXPECT_EQ(a->kvs[2].value, "");

  Collected over_grpc, over_gateway;
  auto w1 = grpc->watch("/d/", prefixEnd("/d/"), a->revision - 1, over_grpc.callback());
  auto w2 = gateway->watch("/d/", prefixEnd("/d/"), a->revision - 1, over_gateway.callback());
  ASSERT_TRUE(w1.ok() && w2.ok());
  ASSERT_TRUE(grpc->txn({}, {Op::del("/d/b")}).ok());
  // From the first transaction's revision: its two puts, the second's two, the delete.
  ASSERT_TRUE(over_grpc.waitFor(5));
  ASSERT_TRUE(over_gateway.waitFor(5));
  std::lock_guard<std::mutex> l1(over_grpc.mu), l2(over_gateway.mu);
  ASSERT_EQ(over_grpc.events.size(), 5u);
  ASSERT_EQ(over_gateway.events.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(over_grpc.events[i].type, over_gateway.events[i].type) << i;
    EXPECT_EQ(over_grpc.events[i].kv, over_gateway.events[i].kv) << i;
  }
  EXPECT_EQ(over_grpc.events[1].kv.value, binary);
  EXPECT_EQ(over_grpc.events[4].type, WatchEvent::Type::Delete);
}

TEST(EtcdUrlTest, ParsesClusterUrls) {
  auto o = parseEtcdUrl("etcd://10.0.0.1:2379,etcd-b:2380");
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->endpoints, (std::vector<std::string>{"http://10.0.0.1:2379", "http://etcd-b:2380"}));
  EXPECT_EQ(parseEtcdUrl("etcd://a:1", true)->endpoints[0], "https://a:1");
  for (const char* bad : {"etcd://", "etcd://a", "etcd://a:x", "etcd://a:70000", "etcd://a:1,,b:2", "http://a:1",
                          "etcd://a b:1", "etcd://:1"}) {
    auto r = parseEtcdUrl(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("etcd://host:port"), std::string::npos);
    }
  }
}

TEST(EtcdJsonTest, RefusesAnswersThatAreNotEtcds) {
  EXPECT_FALSE(etcdjson::parseRange("[]").ok());
  EXPECT_FALSE(etcdjson::parseRange(R"({"kvs":{}})").ok());
  EXPECT_FALSE(etcdjson::parseRange(R"({"kvs":[{"key":"!!!!"}]})").ok());
  EXPECT_FALSE(etcdjson::parseRange(R"({"kvs":[{"key":"YQ==","mod_revision":"12x"}]})").ok());
  EXPECT_TRUE(etcdjson::parseRange(R"({"kvs":[{"key":"YQ==","mod_revision":12}]})").ok());
  EXPECT_FALSE(etcdjson::parseTxn(R"({"succeeded":"yes"})").ok());
  EXPECT_FALSE(etcdjson::parseWatchMessage(R"({"result":{"events":[{"type":"NOPE","kv":{}}]}})").ok());
  auto k = etcdjson::parseLeaseKeepAlive(R"({"result":{"ID":"5"}})");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().code, ENOENT);
  auto e = etcdjson::parseError("{\"error\":{\"grpc_code\":14,\"message\":\"no\\nleader\"}}");
  EXPECT_EQ(e.grpc_code, 14);
  EXPECT_EQ(e.message, "no leader");
  EXPECT_EQ(etcdjson::parseError("<html>").message, "<html>");
}

}  // namespace
}  // namespace offcore::kv
