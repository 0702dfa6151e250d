#include "nvme/auth/dhchap_host.h"

#include <openssl/crypto.h>

#include <algorithm>

namespace offcore::nvme::auth {
namespace {

Sqe authSqe(uint8_t fctype, uint32_t len) {
  Sqe s;
  s.b[0] = kFabricsCommand;
  s.b[4] = fctype;
  s.b[kAuthSqeSpsp0] = kAuthSpspDhchap;
  s.b[kAuthSqeSpsp1] = kAuthSpspDhchap;
  s.b[kAuthSqeSecp] = kAuthSecpNvme;
  putLe32(s.b + kAuthSqeLength, len);
  return s;
}

std::string statusText(uint16_t status) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%03x", status);
  return buf;
}

bool contains(const std::vector<uint8_t>& v, uint8_t id) { return std::find(v.begin(), v.end(), id) != v.end(); }

}  // namespace

Sqe authSendSqe(uint32_t tl) { return authSqe(kFctAuthSend, tl); }
Sqe authReceiveSqe(uint32_t al) { return authSqe(kFctAuthReceive, al); }

Result<HostAuthResult> authenticateQueue(AuthTransport& t, const HostAuthConfig& config, const std::string& hostnqn,
                                         const std::string& subnqn, uint16_t tid) {
  auto sendMessage = [&](const Bytes& m, const char* what) -> Status {
    OC_ASSIGN_OR_RETURN(uint16_t status, t.send(m));
    if (status != kScSuccess) {
      return makeError(std::string("DH-HMAC-CHAP: the target failed our ") + what + " with NVMe status " +
                       statusText(status));
    }
    return okStatus();
  };
  // Tells the controller why we stop (AUTH_Failure2), then reports it.
  auto abandon = [&](uint8_t reason, const std::string& why) -> Error {
    (void)t.send(buildFailure(Failure{tid, kMsgFailure2, kFailureRescode, reason}));
    return makeError("DH-HMAC-CHAP: " + why);
  };
  auto receiveMessage = [&](const char* what) -> Result<AuthMessage> {
    OC_ASSIGN_OR_RETURN(auto got, t.receive(kMaxAuthMessage));
    if (got.first != kScSuccess) {
      return makeError(std::string("DH-HMAC-CHAP: the target failed our receive of ") + what + " with NVMe status " +
                       statusText(got.first));
    }
    auto m = parseAuthMessage(got.second.data(), got.second.size(), /*exact=*/false);
    if (!m.ok()) return abandon(static_cast<uint8_t>(m.error().code), m.error().message);
    if (auto* f = std::get_if<Failure>(&*m)) {
      return makeError(
          std::string("DH-HMAC-CHAP: the target refused authentication (") + failureReasonText(f->reason) +
          (f->reason == kReasonFailed ? "; is the host secret the one the gateway gave for this host?" : "") + ")");
    }
    return m;
  };

  Negotiate n{tid, 0, true, config.hashes, config.dhgroups};
  OC_TRY(sendMessage(buildNegotiate(n), "AUTH_Negotiate"));
  OC_ASSIGN_OR_RETURN(AuthMessage first, receiveMessage("the Challenge"));
  auto* c = std::get_if<Challenge>(&first);
  if (!c) return abandon(kReasonIncorrectMessage, "expected a Challenge from the target");
  const size_t hl = hashLength(c->hash);
  if (c->tid != tid) return abandon(kReasonIncorrectPayload, "Challenge for another transaction");
  if (hl == 0 || !contains(config.hashes, c->hash))
    return abandon(kReasonHashUnusable, "the target chose a hash we did not offer");
  if (c->cval.size() != hl) return abandon(kReasonIncorrectPayload, "Challenge HL does not match its hash");
  if (!knownDhGroup(c->dhgroup) || !contains(config.dhgroups, c->dhgroup)) {
    return abandon(kReasonDhGroupUnusable, "the target chose a DH group we did not offer");
  }
  if (c->dhv.size() != dhPublicLength(c->dhgroup)) return abandon(kReasonIncorrectPayload, "Challenge DH value length");
  if (c->seqnum == 0) return abandon(kReasonIncorrectPayload, "Challenge with sequence number 0");

  Reply r{tid, 0, 0, {}, Bytes(hl, 0), {}};
  std::optional<Bytes> secret;
  if (c->dhgroup != kDhNull) {
    OC_ASSIGN_OR_RETURN(DhKeyPair kp, DhKeyPair::generate(c->dhgroup));
    OC_ASSIGN_OR_RETURN(r.dhv, kp.publicValue());
    auto s = kp.sharedSecret(c->dhv);
    if (!s.ok()) return abandon(kReasonIncorrectPayload, s.error().message);
    secret = std::move(*s);
  }
  OC_ASSIGN_OR_RETURN(Bytes key, transformKey(config.host, hostnqn));
  ResponseInput in{c->hash, &key, &c->cval, secret ? &*secret : nullptr, c->seqnum, tid, kRoleHost, hostnqn, subnqn};
  OC_ASSIGN_OR_RETURN(r.response, chapResponse(in));
  Bytes expected_ctrl;
  if (config.ctrl) {
    r.cvalid = 1;
    OC_TRY(randomBytes(r.cval.data(), hl));
    while (r.seqnum == 0) {
      uint8_t s[4];
      OC_TRY(randomBytes(s, 4));
      r.seqnum = getLe32(s);
    }
    OC_ASSIGN_OR_RETURN(Bytes ckey, transformKey(*config.ctrl, subnqn));
    ResponseInput cin{c->hash,         &ckey,  &r.cval, secret ? &*secret : nullptr, r.seqnum, tid,
                      kRoleController, subnqn, hostnqn};
    OC_ASSIGN_OR_RETURN(expected_ctrl, chapResponse(cin));
  }
  OC_TRY(sendMessage(buildReply(r), "DH-HMAC-CHAP_Reply"));
  OC_ASSIGN_OR_RETURN(AuthMessage second, receiveMessage("Success1"));
  auto* s1 = std::get_if<Success1>(&second);
  if (!s1) return abandon(kReasonIncorrectMessage, "expected Success1 from the target");
  if (s1->tid != tid) return abandon(kReasonIncorrectPayload, "Success1 for another transaction");
  HostAuthResult result{c->hash, c->dhgroup, config.ctrl.has_value()};
  if (!config.ctrl) return result;
  if (!s1->rvalid || s1->rval.size() != hl) {
    return abandon(kReasonIncorrectPayload, "the target did not answer our challenge (no controller response)");
  }
  if (CRYPTO_memcmp(s1->rval.data(), expected_ctrl.data(), hl) != 0) {
    return abandon(kReasonFailed,
                   "the target's response does not match the controller secret: it is not the subsystem we expect "
                   "or --dhchap-ctrl-secret is wrong");
  }
  OC_TRY(sendMessage(buildSuccess2(Success2{tid}), "Success2"));
  return result;
}

}  // namespace offcore::nvme::auth
