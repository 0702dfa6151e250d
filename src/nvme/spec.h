// Constants and byte layouts from the NVMe base specification (2.0), the
// NVMe over Fabrics specification (1.1) and the NVMe/TCP transport binding.
// Offsets are bytes from the start of the structure named in each block;
// every multi-byte field is little-endian on the wire.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace offcore::nvme {

// ---- little-endian access -------------------------------------------------
inline uint16_t getLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t getLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
inline uint64_t getLe64(const uint8_t* p) {
  return static_cast<uint64_t>(getLe32(p)) | (static_cast<uint64_t>(getLe32(p + 4)) << 32);
}
inline void putLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void putLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void putLe64(uint8_t* p, uint64_t v) {
  putLe32(p, static_cast<uint32_t>(v));
  putLe32(p + 4, static_cast<uint32_t>(v >> 32));
}
// ASCII fields are space padded, NQN fields NUL padded.
inline void putAscii(uint8_t* p, size_t width, const char* s) {
  size_t n = std::strlen(s);
  for (size_t i = 0; i < width; ++i) p[i] = i < n ? static_cast<uint8_t>(s[i]) : ' ';
}

// ---- NVMe/TCP PDUs -----------------------------------------------------------
enum PduType : uint8_t {
  kIcReq = 0x00,
  kIcResp = 0x01,
  kH2CTermReq = 0x02,
  kC2HTermReq = 0x03,
  kCapsuleCmd = 0x04,
  kCapsuleResp = 0x05,
  kH2CData = 0x06,
  kC2HData = 0x07,
  kR2T = 0x09,
};

// Common header: type(0) flags(1) hlen(2) pdo(3) plen(4..7).
inline constexpr size_t kCommonHeaderSize = 8;
inline constexpr size_t kDigestSize = 4;

enum PduFlags : uint8_t {
  kFlagHdgst = 1 << 0,    // a header digest follows the header
  kFlagDdgst = 1 << 1,    // a data digest follows the data
  kFlagLastPdu = 1 << 2,  // H2CData/C2HData: last PDU of the transfer
  kFlagSuccess = 1 << 3,  // C2HData: command done, no CapsuleResp follows
};

// Header lengths (HLEN) per type.
inline constexpr uint8_t kIcHlen = 128;
inline constexpr uint8_t kCapsuleCmdHlen = 72;   // 8 + 64-byte SQE
inline constexpr uint8_t kCapsuleRespHlen = 24;  // 8 + 16-byte CQE
inline constexpr uint8_t kDataHlen = 24;         // H2CData, C2HData
inline constexpr uint8_t kR2THlen = 24;
inline constexpr uint8_t kTermHlen = 24;
inline constexpr size_t kTermMaxHeaderCopy = 128;  // errored header bytes carried by a TermReq

// ICReq: pfv(8..9) hpda(10) dgst(11) maxr2t(12..15).
// ICResp: pfv(8..9) cpda(10) dgst(11) maxh2cdata(12..15).
enum DigestBits : uint8_t { kHdgstEnable = 1 << 0, kDdgstEnable = 1 << 1 };

// H2CData/C2HData: cccid(8..9) ttag(10..11) datao(12..15) datal(16..19).
// R2T: cccid(8..9) ttag(10..11) r2to(12..15) r2tl(16..19).
// TermReq: fes(8..9) fei(10..13), then the errored PDU header.
enum FatalErrorStatus : uint16_t {
  kFesInvalidHeaderField = 0x01,
  kFesPduSequenceError = 0x02,
  kFesHeaderDigestError = 0x03,
  kFesDataOutOfRange = 0x04,
  kFesDataLimitExceeded = 0x05,  // also "R2T limit exceeded"
  kFesUnsupportedParameter = 0x06,
};

// ---- submission / completion queue entries ----------------------------------
inline constexpr size_t kSqeSize = 64;
inline constexpr size_t kCqeSize = 16;
// SQE: opcode(0) flags(1: FUSE 1:0, PSDT 7:6) cid(2..3) nsid(4..7) cdw2(8) cdw3(12)
//      mptr(16..23) dptr(24..39: SGL1) cdw10(40) cdw11(44) cdw12(48) cdw13(52) cdw14(56) cdw15(60)
inline constexpr size_t kSqeCdw10 = 40;
inline constexpr size_t kSqeSgl = 24;
// SGL descriptor: address(0..7) length(8..11) type(15: type 7:4, subtype 3:0).
enum SglId : uint8_t {
  kSglDataBlockOffset = 0x01,     // data block, address is an offset into the capsule
  kSglTransportDataBlock = 0x5A,  // transport data block: NVMe/TCP H2C/C2H data PDUs
};
// CQE: dw0(0..3) dw1(4..7) sqhd(8..9) sqid(10..11) cid(12..13) status(14..15: P bit0, SF 15:1)

// Status = (SCT << 8) | SC; on the wire it sits in CQE bits 15:1 of bytes 14..15, with DNR at bit 15.
enum StatusCode : uint16_t {
  kScSuccess = 0x000,
  kScInvalidOpcode = 0x001,
  kScInvalidField = 0x002,
  kScCidConflict = 0x003,
  kScDataTransferError = 0x004,
  kScInternal = 0x006,
  kScAbortRequested = 0x007,
  kScInvalidNamespace = 0x00B,
  kScNamespaceWriteProtected = 0x020,
  kScCommandSequenceError = 0x00C,
  kScSglInvalidDescriptorType = 0x011,
  kScSglDataLengthInvalid = 0x00F,
  kScSglOffsetInvalid = 0x016,
  kScLbaOutOfRange = 0x080,
  kScCapacityExceeded = 0x081,
  kScNamespaceNotReady = 0x082,
  // command specific (SCT 1)
  kScInvalidQueueId = 0x101,
  kScInvalidQueueSize = 0x102,
  kScAerLimitExceeded = 0x105,
  kScInvalidLogPage = 0x109,
  kScFeatureNotSaveable = 0x10D,
  kScFeatureNotChangeable = 0x10E,
  kScConnectIncompatibleFormat = 0x180,
  kScConnectControllerBusy = 0x181,
  kScConnectInvalidParameters = 0x182,
  kScConnectRestartDiscovery = 0x183,
  kScConnectInvalidHost = 0x184,
  kScAuthRequired = 0x191,  // Fabrics: the queue has not completed in-band authentication
  // media and data integrity (SCT 2)
  kScWriteFault = 0x280,
  kScUnrecoveredReadError = 0x281,
  kScAccessDenied = 0x286,
};
inline constexpr uint16_t kStatusDnr = 0x4000;  // do not retry, in the 15-bit status field

// ---- opcodes -------------------------------------------------------------------
enum AdminOpcode : uint8_t {
  kAdminGetLogPage = 0x02,
  kAdminIdentify = 0x06,
  kAdminAbort = 0x08,
  kAdminSetFeatures = 0x09,
  kAdminGetFeatures = 0x0A,
  kAdminAsyncEventRequest = 0x0C,
  kAdminKeepAlive = 0x18,
  kFabricsCommand = 0x7F,
};
enum IoOpcode : uint8_t {
  kIoFlush = 0x00,
  kIoWrite = 0x01,
  kIoRead = 0x02,
  kIoWriteZeroes = 0x08,
  kIoDatasetManagement = 0x09,
};
// Fabrics command: fctype at SQE byte 4.
enum FabricsType : uint8_t {
  kFctPropertySet = 0x00,
  kFctConnect = 0x01,
  kFctPropertyGet = 0x04,
  kFctAuthSend = 0x05,
  kFctAuthReceive = 0x06,
  kFctDisconnect = 0x08,
};
// Connect SQE: recfmt(40..41) qid(42..43) sqsize(44..45) cattr(46) kato(48..51).
// Connect data (1024 bytes): hostid(0..15) cntlid(16..17) subnqn(256..511) hostnqn(512..767).
inline constexpr size_t kConnectDataSize = 1024;
inline constexpr size_t kConnectDataSubnqn = 256;
inline constexpr size_t kConnectDataHostnqn = 512;
inline constexpr size_t kNqnFieldSize = 256;
inline constexpr uint16_t kCntlidDynamic = 0xFFFF;
inline constexpr uint8_t kCattrDisableSqFlow = 1 << 2;
// Connect response dw0: cntlid(15:0), AUTHREQ(31:16) with ATR at bit 17 (an
// authentication transaction is required) and ASCR at bit 18 (secure channel).
inline constexpr uint32_t kConnectAuthreqAtr = 1u << 17;
inline constexpr uint32_t kConnectAuthreqAscr = 1u << 18;
// Property Get/Set SQE: attrib(40: size 2:0, 0 = 4 bytes, 1 = 8 bytes) ofst(44..47) value(48..55).
// Authentication Send/Receive SQE (NVMe Base 2.0, 6.3/6.2): spsp0(41) spsp1(42)
// secp(43) tl/al(44..47); the message is the command's data.
inline constexpr size_t kAuthSqeSpsp0 = 41;
inline constexpr size_t kAuthSqeSpsp1 = 42;
inline constexpr size_t kAuthSqeSecp = 43;
inline constexpr size_t kAuthSqeLength = 44;
inline constexpr uint8_t kAuthSecpNvme = 0xE9;  // security protocol assigned to NVMe in-band authentication
inline constexpr uint8_t kAuthSpspDhchap = 0x01;

// Controller properties.
enum Property : uint32_t { kPropCap = 0x00, kPropVs = 0x08, kPropCc = 0x14, kPropCsts = 0x1C, kPropNssr = 0x20 };
inline constexpr uint32_t kCcEnable = 1 << 0;
inline constexpr uint32_t kCcShnShift = 14;
inline constexpr uint32_t kCstsReady = 1 << 0;
inline constexpr uint32_t kCstsShstComplete = 2 << 2;

// Identify CNS values.
enum Cns : uint8_t {
  kCnsNamespace = 0x00,
  kCnsController = 0x01,
  kCnsActiveNsList = 0x02,
  kCnsNsDescriptors = 0x03,
};
inline constexpr size_t kIdentifySize = 4096;

// Log pages.
enum LogId : uint8_t {
  kLogError = 0x01,
  kLogSmart = 0x02,
  kLogFirmwareSlot = 0x03,
  kLogChangedNamespaces = 0x04,
  kLogDiscovery = 0x70,
};

// Features.
enum FeatureId : uint8_t {
  kFeatArbitration = 0x01,
  kFeatPowerManagement = 0x02,
  kFeatTempThreshold = 0x04,
  kFeatErrorRecovery = 0x05,
  kFeatVolatileWriteCache = 0x06,
  kFeatNumQueues = 0x07,
  kFeatInterruptCoalescing = 0x08,
  kFeatWriteAtomicity = 0x0A,
  kFeatAsyncEventConfig = 0x0B,
  kFeatKeepAliveTimer = 0x0F,
  kFeatHostIdentifier = 0x81,
};

// Asynchronous event completion dw0: type(2:0) info(15:8) log page(23:16).
inline constexpr uint32_t kAerNoticeNsChanged = 0x02 | (0x00 << 8) | (kLogChangedNamespaces << 16);
inline constexpr uint32_t kAecNsAttributeNotices = 1 << 8;

// Discovery log: 1024-byte header, 1024-byte entries.
inline constexpr size_t kDiscoveryEntrySize = 1024;
inline constexpr uint8_t kTrtypeTcp = 3;
inline constexpr uint8_t kAdrfamIpv4 = 1;
inline constexpr uint8_t kSubtypeNvm = 2;
inline constexpr uint8_t kSubtypeCurrentDiscovery = 3;
inline constexpr uint8_t kTreqNotRequired = 2;  // secure channel not required

inline constexpr const char* kDiscoveryNqn = "nqn.2014-08.org.nvmexpress.discovery";

}  // namespace offcore::nvme
