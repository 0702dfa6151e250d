// DH-HMAC-CHAP pieces without sockets: the secret format, the key transform
// and response formulas, DH, the message codecs, and a whole transaction
// between the target's state machine and the host's exchange.
#include <gtest/gtest.h>

#include "nvme/auth/dhchap_host.h"
#include "nvme/auth/dhchap_key.h"
#include "nvme/auth/dhchap_messages.h"
#include "nvme/auth/dhchap_target.h"

namespace offcore::nvme::auth {
namespace {

const char* kHost = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555";
const char* kSub = "nqn.2026-11.io.offcore:test:vol1";

Bytes range(uint8_t first, size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(first + i);
  return b;
}
std::string hex(const Bytes& b) {
  std::string s;
  char buf[3];
  for (uint8_t c : b) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    s += buf;
  }
  return s;
}

// No published DH-HMAC-CHAP test vector was found (the NVMe spec, Linux and
// SPDK publish none for the transform or the response). These values were
// computed independently of this code with Python's hmac/hashlib/zlib/base64
// from the formulas in NVMe Base 2.0 8.13.5 (secret representation 8.13.5.8),
// as Linux drivers/nvme/common/auth.c and SPDK lib/nvme/nvme_auth.c compute
// them: transformed = HMAC-SHA256(secret, hostnqn || "NVMe-over-Fabrics"),
// response = HMAC(transformed, C' || le32 S || le16 T_ID || 0x00 || "HostHost"
// || hostnqn || 0x00 || subnqn), C' = HMAC(H(DH secret), C).
TEST(DhchapKey, ParsesAndFormatsTheTextForm) {
  auto k = parseDhchapKey("DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:");
  ASSERT_TRUE(k.ok()) << k.error().message;
  EXPECT_EQ(k->hash, kHashSha256);
  EXPECT_EQ(k->secret, range(0, 32));
  EXPECT_EQ(formatDhchapKey(*k), "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:");
  auto k48 = parseDhchapKey("DHHC-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:\n");
  ASSERT_TRUE(k48.ok()) << k48.error().message;
  EXPECT_EQ(k48->secret, range(0, 48));
}

TEST(DhchapKey, RefusesBadSecretsWithoutEchoingThem) {
  const char* bad[] = {"DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:",  // CRC off by one bit
                       "DHHC-1:04:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",  // unknown hash
                       "DHHC-2:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:",
                       "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR",   // no closing ':'
                       "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx*dHh+KfiaR:",  // bad character
                       "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx:",            // 16-byte secret
                       "",
                       "DHHC-1:",
                       "DHHC-1:01::"};
  for (const char* b : bad) {
    auto k = parseDhchapKey(b);
    EXPECT_FALSE(k.ok()) << b;
    if (!k.ok() && std::string(b).size() > 20) {
      EXPECT_EQ(k.error().message.find(std::string(b).substr(10, 12)), std::string::npos);
    }
  }
}

TEST(DhchapKey, GeneratedSecretsRoundTrip) {
  for (uint8_t h : {kHashNone, kHashSha256, kHashSha384, kHashSha512}) {
    auto k = generateDhchapKey(h);
    ASSERT_TRUE(k.ok());
    EXPECT_EQ(k->secret.size(), h == kHashNone ? 32u : hashLength(h));
    auto back = parseDhchapKey(formatDhchapKey(*k));
    ASSERT_TRUE(back.ok()) << formatDhchapKey(*k);
    EXPECT_EQ(back->secret, k->secret);
    EXPECT_EQ(back->hash, h);
  }
  EXPECT_NE(generateDhchapKey(1)->secret, generateDhchapKey(1)->secret);
}

TEST(DhchapKey, TransformAndResponseMatchTheIndependentVector) {
  DhchapKey k{kHashSha256, range(0, 32)};
  auto t = transformKey(k, kHost);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(hex(*t), "6ce1e4ea31e8331a4fe5826bfde17a5cd386b8f0338748919e279ba6c55bf727");
  Bytes c1 = range(0x40, 32);
  ResponseInput in{kHashSha256, &*t, &c1, nullptr, 0x01020304, 7, kRoleHost, kHost, kSub};
  EXPECT_EQ(hex(*chapResponse(in)), "55093665ccaed7974fcf2d81eb4e4f6004f1a3f551ce1f4bc96131e4f3e3d81d");
  Bytes dh(256);
  for (size_t i = 0; i < dh.size(); ++i) dh[i] = static_cast<uint8_t>(i * 7 + 1);
  in.dh_secret = &dh;
  EXPECT_EQ(hex(*chapResponse(in)), "4ad3b91cc0dc2ed0d1a3158ec543ce56de02b1276971d6a23289898c159f3ddc");
  // Controller response, SHA-512, an untransformed (hh 00) secret.
  DhchapKey ck{kHashNone, range(100, 64)};
  auto ct = transformKey(ck, kSub);
  EXPECT_EQ(*ct, ck.secret);
  Bytes c2 = range(0x40, 32);
  c2.insert(c2.end(), c2.begin(), c2.end());
  ResponseInput cin{kHashSha512, &*ct, &c2, nullptr, 5, 7, kRoleController, kSub, kHost};
  EXPECT_EQ(
      hex(*chapResponse(cin)),
      "674b328b12a931ac81105e15a578f5d8b3a1ccc47384859a47c689ca507eeed4147d6444aa0791a839fdcb5f157d39b2727956b9a5d"
      "30eac64030d8406644bf9");
}

TEST(DhchapCrypto, EveryGroupAgreesAndRefusesBadPeers) {
  for (uint8_t g = kDhFfdhe2048; g <= kDhFfdhe8192; ++g) {
    auto a = DhKeyPair::generate(g), b = DhKeyPair::generate(g);
    ASSERT_TRUE(a.ok() && b.ok()) << dhGroupName(g);
    auto pa = a->publicValue(), pb = b->publicValue();
    ASSERT_EQ(pa->size(), dhPublicLength(g));
    auto sa = a->sharedSecret(*pb), sb = b->sharedSecret(*pa);
    ASSERT_TRUE(sa.ok() && sb.ok()) << dhGroupName(g);
    EXPECT_EQ(*sa, *sb);
    EXPECT_EQ(sa->size(), dhPublicLength(g));
    Bytes one(dhPublicLength(g), 0);
    one.back() = 1;  // y = 1 gives away the secret: must be refused
    EXPECT_FALSE(a->sharedSecret(one).ok()) << dhGroupName(g);
    EXPECT_FALSE(a->sharedSecret(Bytes(dhPublicLength(g), 0xFF)).ok()) << "y >= p";
    EXPECT_FALSE(a->sharedSecret(Bytes(10, 1)).ok()) << "short value";
  }
}

TEST(DhchapMessages, BuildersAndParsersAgreeByteForByte) {
  Negotiate n{0x1234, 0, true, {1, 2, 3}, {0, 1, 5}};
  Bytes nb = buildNegotiate(n);
  ASSERT_EQ(nb.size(), 72u);
  EXPECT_EQ(nb[0], 0x00);
  EXPECT_EQ(nb[1], 0x00);
  EXPECT_EQ(getLe16(nb.data() + 4), 0x1234);
  EXPECT_EQ(nb[7], 1);           // NAPD
  EXPECT_EQ(nb[8], 0x01);        // AUTHID DH-HMAC-CHAP
  EXPECT_EQ(nb[10], 3);          // HALEN
  EXPECT_EQ(nb[11], 3);          // DHLEN
  EXPECT_EQ(nb[12], 1);          // first hash id
  EXPECT_EQ(nb[8 + 34 + 2], 5);  // third DH group id
  auto pn = parseAuthMessage(nb.data(), nb.size(), true);
  ASSERT_TRUE(pn.ok());
  EXPECT_EQ(std::get<Negotiate>(*pn).dhgroups, n.dhgroups);

  Challenge c{9, kHashSha384, kDhFfdhe2048, 0xAABBCCDD, range(1, 48), range(2, 256)};
  Bytes cb = buildChallenge(c);
  ASSERT_EQ(cb.size(), 16u + 48 + 256);
  EXPECT_EQ(cb[0], 0x01);
  EXPECT_EQ(cb[1], 0x01);
  EXPECT_EQ(cb[6], 48);
  EXPECT_EQ(cb[8], kHashSha384);
  EXPECT_EQ(cb[9], kDhFfdhe2048);
  EXPECT_EQ(getLe16(cb.data() + 10), 256);
  EXPECT_EQ(getLe32(cb.data() + 12), 0xAABBCCDDu);
  EXPECT_EQ(cb[16], 1);
  EXPECT_EQ(cb[16 + 48], 2);
  cb.resize(4096, 0);  // a controller may fill the whole allocation
  auto pc = parseAuthMessage(cb.data(), cb.size(), false);
  ASSERT_TRUE(pc.ok());
  EXPECT_EQ(std::get<Challenge>(*pc).dhv, c.dhv);

  Reply r{9, 1, 77, range(3, 32), range(4, 32), {}};
  Bytes rb = buildReply(r);
  ASSERT_EQ(rb.size(), 16u + 64);
  EXPECT_EQ(rb[1], 0x02);
  EXPECT_EQ(rb[8], 1);
  EXPECT_EQ(getLe32(rb.data() + 12), 77u);
  EXPECT_EQ(rb[16 + 32], 4);
  Success1 s1{9, 32, true, range(5, 32)};
  Bytes sb = buildSuccess1(s1);
  EXPECT_EQ(sb.size(), 48u);
  EXPECT_EQ(sb[1], 0x03);
  EXPECT_EQ(sb[8], 1);
  EXPECT_EQ(buildSuccess2(Success2{9}).size(), 16u);
  Bytes fb = buildFailure(Failure{9, kMsgFailure1, kFailureRescode, kReasonFailed});
  ASSERT_EQ(fb.size(), 8u);
  EXPECT_EQ(fb[1], 0xF1);
  EXPECT_EQ(fb[6], 1);
  EXPECT_EQ(fb[7], 1);
}

TEST(DhchapMessages, MalformedMessagesNameTheReason) {
  Bytes nb = buildNegotiate(Negotiate{1, 0, true, {1}, {0}});
  nb[7] = 200;  // NAPD far past the message
  auto r = parseAuthMessage(nb.data(), nb.size(), true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kReasonIncorrectPayload);
  nb[7] = 1;
  nb[10] = 31;  // HALEN > 30
  EXPECT_FALSE(parseAuthMessage(nb.data(), nb.size(), true).ok());
  Bytes rb = buildReply(Reply{1, 0, 0, range(0, 32), Bytes(32), {}});
  putLe16(rb.data() + 10, 0xFFFF);  // DHVLEN past the end
  EXPECT_FALSE(parseAuthMessage(rb.data(), rb.size(), true).ok());
  rb = buildReply(Reply{1, 0, 0, range(0, 32), Bytes(32), {}});
  rb[6] = 33;  // HL not a hash length
  EXPECT_FALSE(parseAuthMessage(rb.data(), rb.size(), true).ok());
  rb[6] = 32;
  rb.push_back(0);  // trailing byte where the length must be exact
  EXPECT_FALSE(parseAuthMessage(rb.data(), rb.size(), true).ok());
  Bytes junk{0x01, 0x09, 0, 0, 0, 0, 0, 0};
  auto j = parseAuthMessage(junk.data(), junk.size(), true);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.error().code, kReasonIncorrectMessage);
  Bytes huge(kMaxAuthMessage + 1, 0);
  EXPECT_FALSE(parseAuthMessage(huge.data(), huge.size(), false).ok());
}

// The host's exchange driving the target's state machine directly.
class Direct final : public AuthTransport {
 public:
  explicit Direct(TargetAuthSession& t) : t_(t) {}
  Result<uint16_t> send(const Bytes& m) override {
    Sqe s = authSendSqe(static_cast<uint32_t>(m.size()));
    putLe32(s.b + kSqeSgl + 8, static_cast<uint32_t>(m.size()));
    return t_.send(s, m);
  }
  Result<std::pair<uint16_t, Bytes>> receive(uint32_t al) override {
    Sqe s = authReceiveSqe(al);
    putLe32(s.b + kSqeSgl + 8, al);
    auto r = t_.receive(s);
    return std::make_pair(r.status, r.data);
  }
  TargetAuthSession& t_;
};

TEST(DhchapTransaction, SucceedsAndFailsAsTheSecretsSay) {
  auto hk = *generateDhchapKey(kHashSha256);
  auto ck = *generateDhchapKey(kHashSha512);
  {
    TargetAuthSession t(DhchapSecrets{hk, ck}, kHost, kSub);
    Direct d(t);
    auto r = authenticateQueue(d, HostAuthConfig{hk, ck}, kHost, kSub, 3);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(t.authenticated());
    EXPECT_TRUE(r->bidirectional);
    EXPECT_EQ(r->hash, kHashSha512);  // the controller picks the strongest offered
  }
  {
    auto other = *generateDhchapKey(kHashSha256);
    TargetAuthSession t(DhchapSecrets{hk, std::nullopt}, kHost, kSub);
    Direct d(t);
    auto r = authenticateQueue(d, HostAuthConfig{other, std::nullopt, {kHashSha256}, {kDhNull}}, kHost, kSub, 4);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("authentication failed"), std::string::npos) << r.error().message;
    EXPECT_FALSE(t.authenticated());
    EXPECT_TRUE(t.failed());
  }
  {
    // The host is right but the controller holds another controller secret.
    TargetAuthSession t(DhchapSecrets{hk, *generateDhchapKey(kHashSha256)}, kHost, kSub);
    Direct d(t);
    auto r = authenticateQueue(d, HostAuthConfig{hk, ck, {kHashSha256}, {kDhFfdhe2048}}, kHost, kSub, 5);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("controller secret"), std::string::npos) << r.error().message;
    EXPECT_FALSE(t.authenticated()) << "a Failure2 leaves the queue unauthenticated";
  }
  {
    // The same secret presented for another host NQN fails: the transform binds the NQN.
    TargetAuthSession t(DhchapSecrets{hk, std::nullopt}, kHost, kSub);
    Direct d(t);
    EXPECT_FALSE(authenticateQueue(d, HostAuthConfig{hk, std::nullopt}, "nqn.2014-08.org.evil:host", kSub, 6).ok());
  }
}

TEST(DhchapTransaction, NoCommonHashOrGroupIsAFailure1WithItsReason) {
  auto hk = *generateDhchapKey(kHashSha256);
  DhchapPolicy only256;
  only256.hashes = {kHashSha256};
  only256.dhgroups = {kDhFfdhe2048};
  TargetAuthSession t(DhchapSecrets{hk, std::nullopt}, kHost, kSub, only256);
  Direct d(t);
  auto r = authenticateQueue(d, HostAuthConfig{hk, std::nullopt, {kHashSha512}, {kDhFfdhe2048}}, kHost, kSub, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("hash function not usable"), std::string::npos) << r.error().message;
  TargetAuthSession t2(DhchapSecrets{hk, std::nullopt}, kHost, kSub, only256);
  Direct d2(t2);
  auto r2 = authenticateQueue(d2, HostAuthConfig{hk, std::nullopt, {kHashSha256}, {kDhNull}}, kHost, kSub, 1);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("DH group not usable"), std::string::npos) << r2.error().message;
}

TEST(DhchapTransaction, BadSqeFieldsAreInvalidField) {
  auto hk = *generateDhchapKey(kHashSha256);
  TargetAuthSession t(DhchapSecrets{hk, std::nullopt}, kHost, kSub);
  Bytes m = buildNegotiate(Negotiate{1, 0, true, {1}, {0}});
  Sqe s = authSendSqe(static_cast<uint32_t>(m.size()));
  putLe32(s.b + kSqeSgl + 8, static_cast<uint32_t>(m.size()));
  Sqe bad = s;
  bad.b[kAuthSqeSecp] = 0xEA;
  EXPECT_EQ(t.send(bad, m), kScInvalidField | kStatusDnr);
  bad = s;
  bad.b[kAuthSqeSpsp0] = 2;
  EXPECT_EQ(t.send(bad, m), kScInvalidField | kStatusDnr);
  bad = s;
  putLe32(bad.b + kAuthSqeLength, 71);  // TL != data
  EXPECT_EQ(t.send(bad, m), kScInvalidField | kStatusDnr);
  EXPECT_EQ(t.send(s, m), kScSuccess);
  Sqe rs = authReceiveSqe(20);  // AL too small for a Challenge
  putLe32(rs.b + kSqeSgl + 8, 20);
  auto got = t.receive(rs);
  ASSERT_EQ(got.status, kScSuccess);
  ASSERT_EQ(got.data.size(), 8u);
  EXPECT_EQ(got.data[1], kMsgFailure1);
  EXPECT_EQ(got.data[7], kReasonIncorrectPayload);
  EXPECT_TRUE(t.failed());
}

}  // namespace
}  // namespace offcore::nvme::auth
