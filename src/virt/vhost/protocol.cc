// Parsing and encoding of vhost-user messages (see protocol.h).
#include "virt/vhost/protocol.h"

#include <cstring>

namespace offcore::virt {
namespace {

template <typename T>
T load(std::span<const uint8_t> b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));  // the protocol is little-endian, as is the host
  return v;
}

template <typename T>
void store(std::vector<uint8_t>& out, T v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

// On the wire: u32 nregions, u32 padding, then per region gpa, size, uva, mmap offset.
constexpr size_t kMemoryHeaderSize = 8;
constexpr size_t kRegionSize = 32;
// GET/SET_CONFIG: u32 offset, u32 size, u32 flags, then the bytes.
constexpr size_t kConfigHeaderSize = 12;
// GET/SET_INFLIGHT_FD: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, padding.
constexpr size_t kInflightSize = 24;

Error sizeError(const Header& h, const std::string& want) {
  return makeError(std::string(requestName(h.request)) + ": payload of " + std::to_string(h.size) + " bytes, want " +
                   want + " (front end and back end disagree on the protocol)");
}

Status wantSize(const Header& h, size_t n) {
  if (h.size != n) return sizeError(h, std::to_string(n));
  return okStatus();
}

Status wantFds(const Header& h, size_t have, size_t want) {
  if (have == want) return okStatus();
  return makeError(std::string(requestName(h.request)) + ": " + std::to_string(have) + " fds attached, want " +
                   std::to_string(want));
}

Status parseMemTable(const Header& h, std::span<const uint8_t> p, Message& m) {
  if (h.size < kMemoryHeaderSize) return sizeError(h, "at least 8");
  const uint32_t n = load<uint32_t>(p, 0);
  if (n == 0) return makeError("SET_MEM_TABLE: no regions; the front end must send at least one");
  if (n > kMaxMemoryRegions) {
    return makeError("SET_MEM_TABLE: " + std::to_string(n) + " regions, at most " + std::to_string(kMaxMemoryRegions) +
                     " are supported (do not offer CONFIGURE_MEM_SLOTS)");
  }
  OC_TRY(wantSize(h, kMemoryHeaderSize + n * kRegionSize));
  OC_TRY(wantFds(h, m.fds.size(), n));
  for (uint32_t i = 0; i < n; ++i) {
    const size_t o = kMemoryHeaderSize + i * kRegionSize;
    MemoryRegionDesc r;
    r.guestPhysAddr = load<uint64_t>(p, o);
    r.size = load<uint64_t>(p, o + 8);
    r.userAddr = load<uint64_t>(p, o + 16);
    r.mmapOffset = load<uint64_t>(p, o + 24);
    r.fd = m.fds[i].get();
    m.regions.push_back(r);
  }
  return okStatus();
}

Status parseConfig(const Header& h, std::span<const uint8_t> p, Message& m) {
  if (h.size < kConfigHeaderSize) return sizeError(h, "at least 12");
  m.config.offset = load<uint32_t>(p, 0);
  const uint32_t n = load<uint32_t>(p, 4);
  m.config.flags = load<uint32_t>(p, 8);
  if (n > kMaxConfigSize) {
    return makeError(std::string(requestName(h.request)) + ": config of " + std::to_string(n) + " bytes, at most " +
                     std::to_string(kMaxConfigSize));
  }
  OC_TRY(wantSize(h, kConfigHeaderSize + n));
  m.config.data.assign(p.begin() + kConfigHeaderSize, p.begin() + kConfigHeaderSize + n);
  return okStatus();
}

Status parseBody(const Header& h, std::span<const uint8_t> p, Message& m) {
  const size_t nfds = m.fds.size();
  switch (m.request) {
    case Request::kGetFeatures:
    case Request::kGetProtocolFeatures:
    case Request::kSetOwner:
    case Request::kResetOwner:
    case Request::kResetDevice:
    case Request::kGetQueueNum: OC_TRY(wantSize(h, 0)); return wantFds(h, nfds, 0);
    case Request::kSetFeatures:
    case Request::kSetProtocolFeatures:
      OC_TRY(wantSize(h, 8));
      m.u64 = load<uint64_t>(p, 0);
      return wantFds(h, nfds, 0);
    case Request::kSetVringNum:
    case Request::kSetVringBase:
    case Request::kGetVringBase:
    case Request::kSetVringEnable:
      OC_TRY(wantSize(h, sizeof(vhost_vring_state)));
      std::memcpy(&m.state, p.data(), sizeof(m.state));
      return wantFds(h, nfds, 0);
    case Request::kSetVringAddr:
      OC_TRY(wantSize(h, sizeof(vhost_vring_addr)));
      std::memcpy(&m.addr, p.data(), sizeof(m.addr));
      return wantFds(h, nfds, 0);
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr:
      OC_TRY(wantSize(h, 8));
      m.u64 = load<uint64_t>(p, 0);
      if ((m.u64 & ~(kVringIndexMask | kVringNoFd)) != 0) {
        return makeError(std::string(requestName(h.request)) + ": unknown bits set besides the queue index and NOFD");
      }
      m.vringIndex = static_cast<uint32_t>(m.u64 & kVringIndexMask);
      return wantFds(h, nfds, (m.u64 & kVringNoFd) ? 0 : 1);
    case Request::kSetMemTable: return parseMemTable(h, p, m);
    case Request::kSetLogBase:
      OC_TRY(wantSize(h, 16));
      m.log.size = load<uint64_t>(p, 0);
      m.log.offset = load<uint64_t>(p, 8);
      return wantFds(h, nfds, 1);
    case Request::kSetLogFd: OC_TRY(wantSize(h, 0)); return wantFds(h, nfds, 1);
    case Request::kGetConfig:
    case Request::kSetConfig: OC_TRY(parseConfig(h, p, m)); return wantFds(h, nfds, 0);
    case Request::kGetInflightFd:
    case Request::kSetInflightFd:
      OC_TRY(wantSize(h, kInflightSize));
      m.inflight.mmapSize = load<uint64_t>(p, 0);
      m.inflight.mmapOffset = load<uint64_t>(p, 8);
      m.inflight.numQueues = load<uint16_t>(p, 16);
      m.inflight.queueSize = load<uint16_t>(p, 18);
      return wantFds(h, nfds, m.request == Request::kSetInflightFd ? 1 : 0);
    default: break;
  }
  return makeError("unsupported request " + std::to_string(h.request) + " (" + requestName(h.request) +
                   "); the front end used a feature this back end did not offer");
}

}  // namespace

bool repliesItself(Request request) {
  switch (request) {
    case Request::kGetFeatures:
    case Request::kGetProtocolFeatures:
    case Request::kGetQueueNum:
    case Request::kGetVringBase:
    case Request::kGetConfig:
    case Request::kGetInflightFd:
    case Request::kGetMaxMemSlots:
    case Request::kGetStatus: return true;
    default: return false;
  }
}

const char* requestName(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::kGetFeatures: return "GET_FEATURES";
    case Request::kSetFeatures: return "SET_FEATURES";
    case Request::kSetOwner: return "SET_OWNER";
    case Request::kResetOwner: return "RESET_OWNER";
    case Request::kSetMemTable: return "SET_MEM_TABLE";
    case Request::kSetLogBase: return "SET_LOG_BASE";
    case Request::kSetLogFd: return "SET_LOG_FD";
    case Request::kSetVringNum: return "SET_VRING_NUM";
    case Request::kSetVringAddr: return "SET_VRING_ADDR";
    case Request::kSetVringBase: return "SET_VRING_BASE";
    case Request::kGetVringBase: return "GET_VRING_BASE";
    case Request::kSetVringKick: return "SET_VRING_KICK";
    case Request::kSetVringCall: return "SET_VRING_CALL";
    case Request::kSetVringErr: return "SET_VRING_ERR";
    case Request::kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case Request::kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case Request::kGetQueueNum: return "GET_QUEUE_NUM";
    case Request::kSetVringEnable: return "SET_VRING_ENABLE";
    case Request::kSendRarp: return "SEND_RARP";
    case Request::kNetSetMtu: return "NET_SET_MTU";
    case Request::kSetSlaveReqFd: return "SET_SLAVE_REQ_FD";
    case Request::kIotlbMsg: return "IOTLB_MSG";
    case Request::kSetVringEndian: return "SET_VRING_ENDIAN";
    case Request::kGetConfig: return "GET_CONFIG";
    case Request::kSetConfig: return "SET_CONFIG";
    case Request::kGetInflightFd: return "GET_INFLIGHT_FD";
    case Request::kSetInflightFd: return "SET_INFLIGHT_FD";
    case Request::kResetDevice: return "RESET_DEVICE";
    case Request::kGetMaxMemSlots: return "GET_MAX_MEM_SLOTS";
    case Request::kAddMemReg: return "ADD_MEM_REG";
    case Request::kRemMemReg: return "REM_MEM_REG";
    case Request::kSetStatus: return "SET_STATUS";
    case Request::kGetStatus: return "GET_STATUS";
  }
  return "UNKNOWN";
}

Result<Header> parseHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() != kHeaderSize) return makeError("short vhost-user header");
  Header h{load<uint32_t>(bytes, 0), load<uint32_t>(bytes, 4), load<uint32_t>(bytes, 8)};
  if ((h.flags & kVersionMask) != kVersion) {
    return makeError("vhost-user version " + std::to_string(h.flags & kVersionMask) + " in " + requestName(h.request) +
                     ", only version 1 is spoken");
  }
  if (h.flags & kFlagReply) return makeError(std::string(requestName(h.request)) + ": a reply sent as a request");
  if (h.size > kMaxPayloadSize) {
    return makeError(std::string(requestName(h.request)) + ": payload of " + std::to_string(h.size) +
                     " bytes, more than any request carries (" + std::to_string(kMaxPayloadSize) + ")");
  }
  return h;
}

Result<Message> parseMessage(const Header& header, std::span<const uint8_t> payload, std::vector<UniqueFd> fds) {
  if (payload.size() != header.size) {
    return makeError(std::string(requestName(header.request)) + ": header says " + std::to_string(header.size) +
                     " payload bytes, got " + std::to_string(payload.size()));
  }
  if (fds.size() > kMaxFds) return makeError("more than " + std::to_string(kMaxFds) + " fds in one message");
  Message m;
  m.request = static_cast<Request>(header.request);
  m.flags = header.flags;
  m.fds = std::move(fds);
  OC_TRY(parseBody(header, payload, m));
  return m;
}

std::vector<uint8_t> encodeReply(uint32_t request, std::span<const uint8_t> payload) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + payload.size());
  store<uint32_t>(out, request);
  store<uint32_t>(out, kVersion | kFlagReply);
  store<uint32_t>(out, static_cast<uint32_t>(payload.size()));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> encodeU64Reply(uint32_t request, uint64_t value) {
  std::vector<uint8_t> p;
  store(p, value);
  return encodeReply(request, p);
}

std::vector<uint8_t> encodeStateReply(uint32_t request, uint32_t index, uint32_t num) {
  std::vector<uint8_t> p;
  store(p, index);
  store(p, num);
  return encodeReply(request, p);
}

}  // namespace offcore::virt
