#include "nvme/auth/dhchap_target.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace offcore::nvme::auth {
namespace {

uint16_t invalidField() { return kScInvalidField | kStatusDnr; }

// SECP/SPSP checks shared by Send and Receive; `len` is TL or AL.
bool validAuthSqe(const Sqe& sqe, uint32_t len) {
  return sqe.b[kAuthSqeSecp] == kAuthSecpNvme && sqe.b[kAuthSqeSpsp0] == kAuthSpspDhchap &&
         sqe.b[kAuthSqeSpsp1] == kAuthSpspDhchap && len > 0 && len == sqe.sglLength();
}

}  // namespace

TargetAuthSession::TargetAuthSession(DhchapSecrets secrets, std::string hostnqn, std::string subnqn,
                                     DhchapPolicy policy)
    : secrets_(std::move(secrets)),
      hostnqn_(std::move(hostnqn)),
      subnqn_(std::move(subnqn)),
      policy_(std::move(policy)) {}

void TargetAuthSession::fail1(uint8_t reason, const std::string& why) {
  state_ = State::kFailure1;
  fail_reason_ = reason;
  authenticated_ = false;
  dh_.reset();
  last_error_ = why;
}

uint16_t TargetAuthSession::send(const Sqe& sqe, const Bytes& data) {
  uint32_t tl = getLe32(sqe.b + kAuthSqeLength);
  if (!validAuthSqe(sqe, tl) || tl != data.size()) return invalidField();
  auto parsed = parseAuthMessage(data.data(), data.size(), /*exact=*/true);
  if (state_ == State::kFailed || state_ == State::kFailure1) {
    // A failed transaction stays failed: the host reads its Failure1 and drops the queue.
    if (state_ == State::kFailed) fail1(kReasonIncorrectMessage, "message after a failed transaction");
    return kScSuccess;
  }
  if (!parsed.ok()) {
    fail1(static_cast<uint8_t>(parsed.error().code), parsed.error().message);
    return kScSuccess;
  }
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, Negotiate>) {
          onNegotiate(m);
        } else if constexpr (std::is_same_v<M, Reply>) {
          onReply(m);
        } else if constexpr (std::is_same_v<M, Success2>) {
          if (state_ != State::kSuccess2) return fail1(kReasonIncorrectMessage, "Success2 out of sequence");
          if (m.tid != tid_) return fail1(kReasonIncorrectPayload, "Success2 with another transaction id");
          state_ = State::kDone;
          authenticated_ = true;
        } else if constexpr (std::is_same_v<M, Failure>) {
          if (m.id != kMsgFailure2 || state_ != State::kSuccess2) {
            return fail1(kReasonIncorrectMessage, "AUTH_Failure out of sequence");
          }
          state_ = State::kFailed;
          authenticated_ = false;
          last_error_ = std::string("the host rejected the controller: ") + failureReasonText(m.reason);
        } else {
          fail1(kReasonIncorrectMessage, "a controller message sent by the host");
        }
      },
      *parsed);
  return kScSuccess;
}

void TargetAuthSession::onNegotiate(const Negotiate& m) {
  if (state_ != State::kNegotiate && state_ != State::kDone) {
    return fail1(kReasonIncorrectMessage, "Negotiate in the middle of a transaction");
  }
  tid_ = m.tid;
  if (m.sc_c != 0) return fail1(kReasonScMismatch, "secure channel concatenation requested (not supported)");
  if (!m.has_dhchap) return fail1(kReasonProtocolUnusable, "the host offers no DH-HMAC-CHAP descriptor");
  auto pick = [](const std::vector<uint8_t>& ours, const std::vector<uint8_t>& theirs) -> int {
    for (uint8_t id : ours) {
      if (std::find(theirs.begin(), theirs.end(), id) != theirs.end()) return id;
    }
    return -1;
  };
  int hash = pick(policy_.hashes, m.hashes);
  if (hash < 0) return fail1(kReasonHashUnusable, "no hash function in common");
  int group = pick(policy_.dhgroups, m.dhgroups);
  if (group < 0) return fail1(kReasonDhGroupUnusable, "no DH group in common");
  hash_ = static_cast<uint8_t>(hash);
  dhgroup_ = static_cast<uint8_t>(group);
  state_ = State::kChallenge;
}

void TargetAuthSession::onReply(const Reply& m) {
  if (state_ != State::kReply) return fail1(kReasonIncorrectMessage, "Reply out of sequence");
  const size_t hl = hashLength(hash_);
  if (m.tid != tid_) return fail1(kReasonIncorrectPayload, "Reply with another transaction id");
  if (m.response.size() != hl) return fail1(kReasonIncorrectPayload, "Reply HL does not match the hash");
  if (m.dhv.size() != dhPublicLength(dhgroup_)) return fail1(kReasonIncorrectPayload, "Reply DH value length");
  if (m.cvalid && m.seqnum == 0) return fail1(kReasonIncorrectPayload, "Reply asks for bidirectional auth with S2 = 0");
  std::optional<Bytes> secret;
  if (dh_) {
    auto s = dh_->sharedSecret(m.dhv);
    if (!s.ok()) return fail1(kReasonIncorrectPayload, s.error().message);
    secret = std::move(*s);
  }
  auto key = transformKey(secrets_.host, hostnqn_);
  if (!key.ok()) return fail1(kReasonFailed, key.error().message);
  ResponseInput in{hash_, &*key, &c1_, secret ? &*secret : nullptr, seqnum_, tid_, kRoleHost, hostnqn_, subnqn_};
  auto expected = chapResponse(in);
  if (!expected.ok()) return fail1(kReasonFailed, expected.error().message);
  if (CRYPTO_memcmp(expected->data(), m.response.data(), hl) != 0) {
    return fail1(kReasonFailed, "the host's response does not match its secret");
  }
  bidirectional_ = m.cvalid != 0;
  if (bidirectional_) {
    if (!secrets_.ctrl)
      return fail1(kReasonFailed, "the host asks us to authenticate but we have no controller secret");
    auto ckey = transformKey(*secrets_.ctrl, subnqn_);
    if (!ckey.ok()) return fail1(kReasonFailed, ckey.error().message);
    ResponseInput cin{hash_,           &*ckey,  &m.cval, secret ? &*secret : nullptr, m.seqnum, tid_,
                      kRoleController, subnqn_, hostnqn_};
    auto r = chapResponse(cin);
    if (!r.ok()) return fail1(kReasonFailed, r.error().message);
    ctrl_response_ = std::move(*r);
  }
  dh_.reset();
  state_ = State::kSuccess1;
}

TargetAuthSession::Received TargetAuthSession::receive(const Sqe& sqe) {
  uint32_t al = getLe32(sqe.b + kAuthSqeLength);
  if (!validAuthSqe(sqe, al)) return {invalidField(), {}};
  Bytes msg;
  switch (state_) {
    case State::kChallenge: {
      const size_t hl = hashLength(hash_);
      c1_.assign(hl, 0);
      Challenge c{tid_, hash_, dhgroup_, 0, {}, {}};
      if (!randomBytes(c1_.data(), hl).ok()) {
        fail1(kReasonFailed, "no random bytes");
        break;
      }
      do {
        uint8_t s[4];
        if (!randomBytes(s, 4).ok()) break;
        seqnum_ = getLe32(s);
      } while (seqnum_ == 0);
      c.seqnum = seqnum_;
      c.cval = c1_;
      if (dhgroup_ != kDhNull) {
        auto kp = DhKeyPair::generate(dhgroup_);
        if (!kp.ok()) {
          fail1(kReasonFailed, kp.error().message);
          break;
        }
        auto pub = kp->publicValue();
        if (!pub.ok()) {
          fail1(kReasonFailed, pub.error().message);
          break;
        }
        c.dhv = std::move(*pub);
        dh_ = std::move(*kp);
      }
      msg = buildChallenge(c);
      if (msg.size() > al) {
        fail1(kReasonIncorrectPayload, "the host's AL is too small for the Challenge");
        msg.clear();
        break;
      }
      state_ = State::kReply;
      return {kScSuccess, std::move(msg)};
    }
    case State::kSuccess1: {
      Success1 s{tid_, static_cast<uint8_t>(hashLength(hash_)), bidirectional_,
                 bidirectional_ ? ctrl_response_ : Bytes{}};
      msg = buildSuccess1(s);
      if (msg.size() > al) {
        fail1(kReasonIncorrectPayload, "the host's AL is too small for Success1");
        msg.clear();
        break;
      }
      if (bidirectional_) {
        state_ = State::kSuccess2;
      } else {
        state_ = State::kDone;
        authenticated_ = true;
      }
      return {kScSuccess, std::move(msg)};
    }
    case State::kFailure1: break;
    default: fail1(kReasonIncorrectMessage, "Authentication Receive out of sequence"); break;
  }
  // Failure1: the transaction is over and the queue stays unauthenticated.
  msg = buildFailure(Failure{tid_, kMsgFailure1, kFailureRescode, fail_reason_});
  state_ = State::kFailed;
  authenticated_ = false;
  if (msg.size() > al) return {invalidField(), {}};
  return {kScSuccess, std::move(msg)};
}

}  // namespace offcore::nvme::auth
