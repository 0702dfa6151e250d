// The in-band authentication message parser and the controller's state
// machine, fed what a hostile host sends: arbitrary Authentication Send data
// and Receive lengths. First byte: exact-length mode and how to split the
// rest into commands.
#include <cstddef>
#include <cstdint>

#include "nvme/auth/dhchap_messages.h"
#include "nvme/auth/dhchap_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore::nvme;
  using namespace offcore::nvme::auth;
  if (size < 2) return 0;
  auto parsed = parseAuthMessage(data + 1, size - 1, data[0] & 1);
  if (parsed.ok()) {
    // What parses must rebuild to a message that parses again.
    Bytes again = std::visit(
        [](const auto& m) -> Bytes {
          using M = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<M, Negotiate>) {
            return buildNegotiate(m);
          } else if constexpr (std::is_same_v<M, Challenge>) {
            return buildChallenge(m);
          } else if constexpr (std::is_same_v<M, Reply>) {
            return buildReply(m);
          } else if constexpr (std::is_same_v<M, Success1>) {
            return buildSuccess1(m);
          } else if constexpr (std::is_same_v<M, Success2>) {
            return buildSuccess2(m);
          } else {
            return buildFailure(m);
          }
        },
        *parsed);
    if (again.size() > kMaxAuthMessage + 64 || !parseAuthMessage(again.data(), again.size(), false).ok()) {
      __builtin_trap();
    }
  }
  // A session that sees the input as a series of Sends, each followed by a Receive.
  static const DhchapKey key{kHashSha256, Bytes(32, 7)};
  DhchapPolicy cheap;
  cheap.dhgroups = {kDhNull, kDhFfdhe2048};
  TargetAuthSession t(DhchapSecrets{key, key}, "nqn.fuzz:host", "nqn.fuzz:sub", cheap);
  size_t piece = (data[0] >> 1) + 8;
  for (size_t off = 1; off < size; off += piece) {
    size_t n = std::min(piece, size - off);
    Bytes msg(data + off, data + off + n);
    Sqe s;
    s.b[0] = kFabricsCommand;
    s.b[4] = kFctAuthSend;
    s.b[kAuthSqeSpsp0] = s.b[kAuthSqeSpsp1] = kAuthSpspDhchap;
    s.b[kAuthSqeSecp] = kAuthSecpNvme;
    putLe32(s.b + kAuthSqeLength, static_cast<uint32_t>(n));
    putLe32(s.b + kSqeSgl + 8, static_cast<uint32_t>(n));
    (void)t.send(s, msg);
    uint32_t al = data[off] * 16u + 1;
    s.b[4] = kFctAuthReceive;
    putLe32(s.b + kAuthSqeLength, al);
    putLe32(s.b + kSqeSgl + 8, al);
    auto r = t.receive(s);
    if (r.data.size() > al || r.data.size() > kMaxAuthMessage) __builtin_trap();
  }
  return 0;
}
