// The vhost-user wire format, back-end side, as QEMU 7.2 speaks it
// (docs/interop/vhost-user.rst): a 12-byte header (request, flags, size),
// then `size` bytes of payload, with fds in SCM_RIGHTS ancillary data.
//
// parseMessage() is the only place untrusted bytes from the front end are
// interpreted: it checks the payload size of every request type, the number
// of fds it must carry, and region counts, and returns a typed Message or a
// one-line error (fuzz/vhost_message_fuzz.cc).
#pragma once

#include <linux/vhost_types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "virt/vhost/guest_memory.h"
#include "virt/vhost/unique_fd.h"

namespace offcore::virt {

// Request codes, front end -> back end.
enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetSlaveReqFd = 21,
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

const char* requestName(uint32_t request);
// Requests whose reply carries their answer (GET_*): REPLY_ACK does not
// apply to them, so a failure cannot be answered with a u64 status.
bool repliesItself(Request request);

// Header flags.
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagReply = 0x4;
inline constexpr uint32_t kFlagNeedReply = 0x8;

// The feature bit that says the protocol-feature messages exist (not in uapi).
inline constexpr unsigned kFProtocolFeatures = 30;

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
inline constexpr unsigned kProtoMq = 0;
inline constexpr unsigned kProtoLogShmfd = 1;
inline constexpr unsigned kProtoRarp = 2;
inline constexpr unsigned kProtoReplyAck = 3;
inline constexpr unsigned kProtoMtu = 4;
inline constexpr unsigned kProtoSlaveReq = 5;
inline constexpr unsigned kProtoCrossEndian = 6;
inline constexpr unsigned kProtoCryptoSession = 7;
inline constexpr unsigned kProtoPagefault = 8;
inline constexpr unsigned kProtoConfig = 9;
inline constexpr unsigned kProtoSlaveSendFd = 10;
inline constexpr unsigned kProtoHostNotifier = 11;
inline constexpr unsigned kProtoInflightShmfd = 12;
inline constexpr unsigned kProtoResetDevice = 13;
inline constexpr unsigned kProtoInbandNotifications = 14;
inline constexpr unsigned kProtoConfigureMemSlots = 15;
inline constexpr unsigned kProtoStatus = 16;

// SET_VRING_KICK/CALL/ERR payload: the queue index and "no fd attached".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 0x100;

inline constexpr size_t kHeaderSize = 12;
// Larger than any payload we accept (a full memory table is 264 bytes, a
// config message 268): a bigger header size is refused before reading.
inline constexpr size_t kMaxPayloadSize = 512;
// At most this many fds per message (a full memory table).
inline constexpr size_t kMaxFds = kMaxMemoryRegions;
// The largest config space GET_CONFIG/SET_CONFIG may carry.
inline constexpr uint32_t kMaxConfigSize = 256;

struct Header {
  uint32_t request = 0;
  uint32_t flags = 0;
  uint32_t size = 0;
};

// The header alone: version, no REPLY flag, size <= kMaxPayloadSize.
Result<Header> parseHeader(std::span<const uint8_t> bytes);

struct LogArea {
  uint64_t size = 0;
  uint64_t offset = 0;
};

struct ConfigPayload {
  uint32_t offset = 0;
  uint32_t flags = 0;
  std::vector<uint8_t> data;  // GET_CONFIG: data.size() bytes are wanted
};

struct InflightPayload {
  uint64_t mmapSize = 0;
  uint64_t mmapOffset = 0;
  uint16_t numQueues = 0;
  uint16_t queueSize = 0;
};

// One parsed request. Which fields are meaningful depends on `request`.
struct Message {
  Request request{};
  uint32_t flags = 0;
  uint64_t u64 = 0;                       // SET_FEATURES, SET_PROTOCOL_FEATURES
  vhost_vring_state state{};              // SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE
  vhost_vring_addr addr{};                // SET_VRING_ADDR
  uint32_t vringIndex = 0;                // SET_VRING_KICK/CALL/ERR
  std::vector<MemoryRegionDesc> regions;  // SET_MEM_TABLE (fd fields still owned by `fds`)
  LogArea log;                            // SET_LOG_BASE
  ConfigPayload config;                   // GET_CONFIG, SET_CONFIG
  InflightPayload inflight;               // GET/SET_INFLIGHT_FD
  std::vector<UniqueFd> fds;              // in order: one per region, or the one fd of the request

  bool needReply() const { return (flags & kFlagNeedReply) != 0; }
};

// Validates and types one request. Takes the fds received with it; they are
// closed with the Message (or at once on error).
Result<Message> parseMessage(const Header& header, std::span<const uint8_t> payload, std::vector<UniqueFd> fds);

// A reply: header (version | REPLY) + payload bytes.
std::vector<uint8_t> encodeReply(uint32_t request, std::span<const uint8_t> payload);
std::vector<uint8_t> encodeU64Reply(uint32_t request, uint64_t value);
std::vector<uint8_t> encodeStateReply(uint32_t request, uint32_t index, uint32_t num);

}  // namespace offcore::virt
