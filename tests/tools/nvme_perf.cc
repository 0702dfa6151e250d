// offcore-nvme-perf: one thread, no locks, QD commands in flight on each of
// Q I/O queues, driven by epoll: the load a polling initiator (SPDK's perf)
// puts on a target, so the target, not the initiator, is what is measured.
// The admin queue comes up through our initiator's code (nvme/host); the
// I/O queues are plain sockets speaking the PDUs of nvme/pdu.h. Reads and
// writes (R2T answered with H2CData), random or sequential; one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "nvme/host/fabrics.h"

using namespace offcore;
using namespace offcore::nvme;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "offcore-nvme-perf: %s\n", why.c_str());
  std::exit(1);
}

void sendAll(int fd, const std::vector<uint8_t>& b) {
  for (size_t off = 0; off < b.size();) {
    ssize_t n = ::send(fd, b.data() + off, b.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ::usleep(10);  // the socket buffer is full: the target is reading
      continue;
    }
    if (n <= 0) die(std::string("send: ") + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
}

struct Queue {
  int fd = -1;
  Digests digests;
  PduParser parser{Role::kHost};
  uint32_t alignment = 4;
  std::vector<Clock::time_point> started;  // by CID
  std::vector<uint64_t> offset;            // by CID
  std::vector<uint8_t> out;                // PDUs queued during one receive, sent together
};

// Blocks until one whole PDU arrives (queue setup only).
Pdu readPdu(Queue& q) {
  uint8_t buf[4096];
  for (;;) {
    std::optional<FatalError> error;
    auto p = q.parser.next(error);
    if (error) die("bad PDU from the target: " + error->reason);
    if (p) return *p;
    ssize_t n = ::recv(q.fd, buf, sizeof buf, 0);
    if (n <= 0) die("the target closed an I/O queue during setup");
    q.parser.feed(buf, static_cast<size_t>(n));
  }
}

Queue openQueue(const std::string& addr, uint16_t port, uint16_t qid, uint32_t qd, uint16_t cntlid,
                const HostOptions& o, const std::string& nqn, bool digests) {
  Queue q;
  q.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, addr.c_str(), &a.sin_addr) != 1) die("bad address " + addr);
  if (::connect(q.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    die(std::string("connect: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(q.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const uint8_t dgst = digests ? (kHdgstEnable | kDdgstEnable) : 0;
  sendAll(q.fd, buildIcReq(0, dgst, 0));
  uint8_t resp[kIcHlen];
  for (size_t got = 0; got < sizeof resp;) {
    ssize_t n = ::recv(q.fd, resp + got, sizeof resp - got, 0);
    if (n <= 0) die("no ICResp");
    got += static_cast<size_t>(n);
  }
  if (resp[0] != kIcResp) die("the target did not answer ICReq with an ICResp");
  q.alignment = (resp[10] + 1u) * 4u;
  q.digests = Digests{(resp[11] & kHdgstEnable) != 0, (resp[11] & kDdgstEnable) != 0};
  if (digests && !(q.digests.header && q.digests.data)) die("the target did not grant both digests");
  ParserLimits limits;
  limits.header_digest = q.digests.header;
  limits.data_digest = q.digests.data;
  limits.max_data_pdu = 16 << 20;
  limits.max_capsule_data = 0;
  q.parser.setLimits(limits);
  auto data = connectData(o, cntlid, nqn);
  Sqe c = fabricsConnect(qid, static_cast<uint16_t>(std::max<uint32_t>(qd, 2) - 1), 0);  // SQSIZE >= 1
  putLe32(c.b + kSqeSgl + 8, static_cast<uint32_t>(data.size()));
  c.b[kSqeSgl + 15] = kSglDataBlockOffset;
  c.b[1] = static_cast<uint8_t>((c.b[1] & 0x3F) | 0x40);
  sendAll(q.fd, buildCapsuleCmd(c, data.data(), data.size(), q.digests, q.alignment));
  Pdu r = readPdu(q);
  if (r.type != kCapsuleResp) die("Connect of an I/O queue got no CapsuleResp");
  Cqe cqe;
  std::memcpy(cqe.b, r.header.data() + 8, kCqeSize);
  if (cqe.status() != 0)
    die("Connect of I/O queue " + std::to_string(qid) + " failed: status " + std::to_string(cqe.status()));
  q.started.resize(qd);
  q.offset.resize(qd);
  return q;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"a polling-style NVMe/TCP load: one thread, QD per queue"};
  std::string addr = "127.0.0.1", nqn, rw = "read", pattern = "rand";
  uint16_t port = 4420;
  uint32_t bs = 4096, qd = 32;
  int queues = 1;
  double seconds = 5;
  uint64_t size_mib = 256;
  bool digests = false;
  app.add_flag("--digests", digests, "header and data digests (CRC32C)");
  bool busy_poll = false;
  app.add_flag("--busy-poll", busy_poll, "poll the sockets without sleeping, as SPDK's perf does");
  app.add_option("--addr", addr)->capture_default_str();
  app.add_option("--port", port)->capture_default_str();
  app.add_option("--nqn", nqn, "subsystem NQN")->required();
  app.add_option("--rw", rw)->check(CLI::IsMember({"read", "write"}))->capture_default_str();
  app.add_option("--pattern", pattern)->check(CLI::IsMember({"seq", "rand"}))->capture_default_str();
  app.add_option("--bs", bs, "bytes per command (multiple of 512)")->capture_default_str();
  app.add_option("--qd", qd, "commands in flight per queue")->check(CLI::Range(1u, 1024u))->capture_default_str();
  app.add_option("--queues", queues, "I/O queues")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--size-mib", size_mib, "the range covered, from offset 0")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (bs == 0 || bs % 512) die("--bs must be a positive multiple of 512");

  HostOptions o;
  QueueOptions ao{addr, port, false, false, 32, 8192 - kSqeSize, std::chrono::milliseconds(3000)};
  HostQueue admin(ao);
  if (auto s = admin.open(); !s.ok()) die(s.error().message);
  auto cntlid = connectAdmin(admin, o, nqn, 0);
  if (!cntlid.ok()) die(cntlid.error().message);
  Sqe nq = adminSqe(kAdminSetFeatures);
  putLe32(nq.b + 40, kFeatNumQueues);
  putLe32(nq.b + 44, static_cast<uint32_t>(((queues - 1) << 16) | (queues - 1)));
  auto nqc = admin.submit(nq, nullptr, 0, nullptr, 0, std::chrono::milliseconds(3000));
  if (!nqc.ok() || nqc->status() != 0) die("Set Features (number of queues) failed");

  // The namespace's LBA size (Identify Namespace: FLBAS, then LBADS).
  std::vector<uint8_t> id(kIdentifySize);
  Sqe ident = adminSqe(kAdminIdentify, 1);
  putLe32(ident.b + 40, kCnsNamespace);
  auto ic = admin.submit(ident, nullptr, 0, id.data(), id.size(), std::chrono::milliseconds(3000));
  if (!ic.ok() || ic->status() != 0) die("Identify Namespace failed");
  const uint32_t lba = 1u << id[128 + 4 * (id[26] & 0xF) + 2];
  if (bs % lba) die("--bs must be a multiple of the namespace's LBA size, " + std::to_string(lba));
  const uint64_t blocks = (size_mib << 20) / bs;
  if (blocks == 0) die("--size-mib is smaller than one block");
  // In-capsule data for writes that fit the controller's I/O capsule
  // (IOCCSZ, Identify Controller bytes 1792..1795, 16-byte units), as the
  // Linux and SPDK initiators send them; larger writes go by R2T.
  std::vector<uint8_t> ctrl(kIdentifySize);
  Sqe identc = adminSqe(kAdminIdentify, 0);
  putLe32(identc.b + 40, kCnsController);
  auto cc = admin.submit(identc, nullptr, 0, ctrl.data(), ctrl.size(), std::chrono::milliseconds(3000));
  if (!cc.ok() || cc->status() != 0) die("Identify Controller failed");
  const uint32_t ioccsz = getLe32(ctrl.data() + 1792) * 16;
  const uint32_t in_capsule_limit = ioccsz > kSqeSize ? ioccsz - kSqeSize : 0;
  std::vector<Queue> qs;
  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < queues; ++i) {
    qs.push_back(openQueue(addr, port, static_cast<uint16_t>(i + 1), qd, *cntlid, o, nqn, digests));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, qs.back().fd, &ev);
  }
  std::mt19937_64 rng(42);
  uint64_t next_block = 0, ios = 0, errors = 0;
  std::vector<double> lat_us;
  lat_us.reserve(1 << 20);
  std::vector<uint8_t> wbuf(bs, 0xA5);
  const bool write = rw == "write";
  auto submit = [&](Queue& q, uint16_t cid) {
    uint64_t blk = pattern == "rand" ? rng() % blocks : next_block++ % blocks;
    Sqe s = adminSqe(write ? kIoWrite : kIoRead, 1);
    putLe16(s.b + 2, cid);
    putLe64(s.b + 40, blk * (bs / lba));
    putLe32(s.b + 48, bs / lba - 1);
    const bool in_capsule = write && bs <= in_capsule_limit;
    putLe32(s.b + kSqeSgl + 8, bs);
    s.b[kSqeSgl + 15] = in_capsule ? kSglDataBlockOffset : kSglTransportDataBlock;
    s.b[1] = static_cast<uint8_t>((s.b[1] & 0x3F) | 0x40);
    q.started[cid] = Clock::now();
    q.offset[cid] = blk;
    auto pdu = buildCapsuleCmd(s, in_capsule ? wbuf.data() : nullptr, in_capsule ? bs : 0, q.digests, q.alignment);
    q.out.insert(q.out.end(), pdu.begin(), pdu.end());
  };
  // What one receive's completions queued leaves in one send, as a polling
  // initiator flushes its socket once per poll (SPDK's sock layer does).
  auto flush = [&](Queue& q) {
    if (q.out.empty()) return;
    sendAll(q.fd, q.out);
    q.out.clear();
  };
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (auto& q : qs)
    for (uint32_t cid = 0; cid < qd; ++cid) submit(q, static_cast<uint16_t>(cid));
  for (auto& q : qs) flush(q);
  uint8_t buf[262144];
  bool stopping = false;
  size_t outstanding = qs.size() * qd;
  while (outstanding > 0) {
    if (!stopping && Clock::now() >= end) stopping = true;
    epoll_event evs[64];
    int n = ::epoll_wait(ep, evs, 64, busy_poll ? 0 : 1000);
    for (int e = 0; e < n; ++e) {
      Queue& q = qs[evs[e].data.u32];
      ssize_t got = ::recv(q.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got == 0) die("the target closed an I/O queue");
      if (got < 0) continue;
      q.parser.feed(buf, static_cast<size_t>(got));
      for (;;) {
        std::optional<FatalError> error;
        auto p = q.parser.next(error);
        if (error) die("bad PDU from the target: " + error->reason);
        if (!p) break;
        uint16_t cid = 0;
        bool done = false;
        uint16_t status = 0;
        if (p->type == kCapsuleResp) {
          Cqe cqe;
          std::memcpy(cqe.b, p->header.data() + 8, kCqeSize);
          cid = cqe.cid();
          status = cqe.status();
          done = true;
        } else if (p->type == kC2HData) {
          cid = getLe16(p->header.data() + 8);
          if (!p->data_digest_ok) die("a C2HData with a wrong data digest");
          done = (p->flags & kFlagSuccess) != 0;
          q.parser.recycle(std::move(p->data));
        } else if (p->type == kR2T) {
          cid = getLe16(p->header.data() + 8);
          uint16_t ttag = getLe16(p->header.data() + 10);
          uint32_t off = getLe32(p->header.data() + 12), len = getLe32(p->header.data() + 16);
          auto data = buildData(kH2CData, cid, ttag, off, wbuf.data() + off, len, true, false, q.digests, q.alignment);
          q.out.insert(q.out.end(), data.begin(), data.end());
        }
        if (!done) continue;
        if (cid >= qd) die("a completion for an unknown command");
        lat_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - q.started[cid]).count());
        status == 0 ? ++ios : ++errors;
        if (stopping) {
          --outstanding;
        } else {
          submit(q, cid);
        }
      }
      flush(q);
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(lat_us.begin(), lat_us.end());
  auto pct = [&](double f) {
    return lat_us.empty()
               ? 0.0
               : lat_us[std::min(lat_us.size() - 1, static_cast<size_t>(f * static_cast<double>(lat_us.size())))];
  };
  double sum = 0;
  for (double v : lat_us) sum += v;
  std::printf(
      "{\"rw\":\"%s\",\"pattern\":\"%s\",\"bs\":%u,\"qd\":%u,\"queues\":%d,\"digests\":%s,\"seconds\":%.2f,\"ios\":%"
      "llu,"
      "\"errors\":%llu,\"iops\":%.0f,\"mib_s\":%.1f,\"lat_avg_us\":%.1f,\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f}\n",
      rw.c_str(), pattern.c_str(), bs, qd, queues, digests ? "true" : "false", elapsed,
      static_cast<unsigned long long>(ios), static_cast<unsigned long long>(errors), static_cast<double>(ios) / elapsed,
      static_cast<double>(ios) * bs / elapsed / (1 << 20),
      lat_us.empty() ? 0.0 : sum / static_cast<double>(lat_us.size()), pct(0.5), pct(0.99));
  for (auto& q : qs) ::close(q.fd);
  admin.close();
  return errors == 0 ? 0 : 1;
}
