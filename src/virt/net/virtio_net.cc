// virtio-net (virtio 1.1 §5.1) over a tap, as a VhostDevice (see virtio_net.h).
//
// Header: struct virtio_net_hdr_v1, 12 bytes with VERSION_1 or MRG_RXBUF (the
// last two, num_buffers, are the device's on receive), else the legacy 10.
// The tap is told the same size, so what it reads and writes lines up.
//
// Receive, per queue pair, on the rx queue's thread only: one frame is read
// from the tap into a buffer (64 KiB + header: a TSO frame), then chains are
// popped until their writable bytes hold it — several with MRG_RXBUF
// (num_buffers = how many), one without. The frame is copied as one stream
// over them and they are pushed together (the used idx moves once). Too few
// chains: they are given back (unpop), kicks are turned on, and the frame
// waits in the buffer for the next kick while the tap is not read.
#include "virt/net/virtio_net.h"

#include <endian.h>
#include <linux/if_tun.h>
#include <linux/virtio_config.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "base/log.h"

namespace offcore::virt {
namespace {

constexpr uint64_t bit(unsigned n) { return 1ull << n; }
constexpr size_t kMaxFrame = 65536 + 256;  // a GSO frame (64 KiB) and its link header
constexpr int kRxBudget = 64;              // frames per fill() before the thread looks at stop()
constexpr size_t kMaxTxSegments = IOV_MAX;

struct Counter {
  std::atomic<uint64_t> v{0};
  void add(uint64_t n = 1) { v.fetch_add(n, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

// The receive side of one queue pair: owned by its rx queue's thread.
struct RxState {
  std::vector<uint8_t> buf;  // header + frame
  size_t len = 0;            // 0: no frame in hand
  std::vector<Chain> chains;
  std::vector<uint32_t> written;
};

class VirtioNetImpl final : public VirtioNet {
 public:
  explicit VirtioNetImpl(Tap& tap) : tap_(tap), rx_(tap.queuePairs()), iov_(tap.queuePairs()) {}

  uint64_t deviceFeatures() const override {
    uint64_t f = bit(vnet::kFCsum) | bit(vnet::kFGuestCsum) | bit(vnet::kFGuestTso4) | bit(vnet::kFGuestTso6) |
                 bit(vnet::kFGuestEcn) | bit(vnet::kFHostTso4) | bit(vnet::kFHostTso6) | bit(vnet::kFHostEcn) |
                 bit(vnet::kFMrgRxbuf);
    if (tap_.queuePairs() > 1) f |= bit(vnet::kFMq);
    return f;
  }

  uint16_t maxQueues() const override { return static_cast<uint16_t>(2 * tap_.queuePairs()); }

  std::vector<uint8_t> configSpace(uint16_t numQueues) const override {
    (void)numQueues;
    // struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu
    // (little-endian). QEMU answers the guest with its own; this is for
    // front ends that ask.
    std::vector<uint8_t> c(12, 0);
    const uint16_t status = htole16(vnet::kStatusLinkUp), pairs = htole16(tap_.queuePairs());
    std::memcpy(c.data() + 6, &status, 2);
    std::memcpy(c.data() + 8, &pairs, 2);
    return c;
  }

  Status setFeatures(uint64_t features) override {
    const bool v1 = features & bit(VIRTIO_F_VERSION_1);
    mergeable_ = features & bit(vnet::kFMrgRxbuf);
    const size_t hdrLen = (v1 || mergeable_) ? vnet::kHdrV1 : vnet::kHdrLegacy;
    // A frame read under another header size is not valid under this one
    // (QEMU sends the same features once per queue pair: keep it then).
    if (hdrLen != hdrLen_) {
      for (RxState& rx : rx_) rx.len = 0;
    }
    hdrLen_ = hdrLen;
    OC_TRY(tap_.setHeaderSize(static_cast<int>(hdrLen_)));
    // What the tap may hand us is what the guest takes.
    unsigned offloads = 0;
    if (features & bit(vnet::kFGuestCsum)) {
      offloads |= TUN_F_CSUM;
      if (features & bit(vnet::kFGuestTso4)) offloads |= TUN_F_TSO4;
      if (features & bit(vnet::kFGuestTso6)) offloads |= TUN_F_TSO6;
      if ((offloads & (TUN_F_TSO4 | TUN_F_TSO6)) && (features & bit(vnet::kFGuestEcn))) {
        offloads |= TUN_F_TSO_ECN;
      }
    }
    return tap_.setOffloads(offloads);
  }

  int sourceFd(uint16_t queue) const override {
    if (queue % 2 != 0 || queue / 2 >= tap_.queuePairs()) return -1;
    return tap_.queueFd(queue / 2);
  }

  // Transmit: the chain is the header and one frame, all device-readable.
  uint32_t handle(uint16_t queue, const Chain& chain) override {
    if (queue % 2 == 0 || queue / 2 >= tap_.queuePairs()) return 0;  // not a tx queue: sourceFd() owns it
    std::vector<iovec>& iov = iov_[queue / 2];
    iov.clear();
    uint64_t total = 0;
    for (const Segment& s : chain.segments) {
      if (s.deviceWritable) {
        txMalformed_.add();
        return 0;
      }
      if (s.len == 0) continue;
      iov.push_back(iovec{s.data, s.len});
      total += s.len;
    }
    if (total < hdrLen_ || iov.size() > kMaxTxSegments) {
      txMalformed_.add();
      return 0;
    }
    ssize_t n = ::writev(tap_.queueFd(queue / 2), iov.data(), static_cast<int>(iov.size()));
    if (n < 0) {
      txDropped_.add();
      return 0;
    }
    txFrames_.add();
    txBytes_.add(total - hdrLen_);
    return 0;
  }

  Fill fill(uint16_t queue, VirtQueue& vq) override {
    if (queue % 2 != 0 || queue / 2 >= tap_.queuePairs()) return Fill::kIdle;
    RxState& rx = rx_[queue / 2];
    if (rx.buf.empty()) rx.buf.resize(vnet::kHdrV1 + kMaxFrame);
    const int fd = tap_.queueFd(queue / 2);
    vq.setKicksEnabled(false);
    for (int frames = 0; frames < kRxBudget; ++frames) {
      if (rx.len == 0) {
        ssize_t n = ::read(fd, rx.buf.data(), rx.buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Fill::kIdle;
        if (n < 0) {
          spdlog::error("virtio-net: read from tap {}: errno {}", tap_.name(), errno);
          return Fill::kSourceFailed;
        }
        if (static_cast<size_t>(n) < hdrLen_) {
          rxDropped_.add();
          continue;
        }
        rx.len = static_cast<size_t>(n);
      }
      Fill r = deliver(rx, vq);
      if (r != Fill::kMore) return r;
    }
    return Fill::kMore;
  }

  VirtioNetStats stats() const override {
    VirtioNetStats s;
    s.txFrames = txFrames_.get();
    s.txBytes = txBytes_.get();
    s.txDropped = txDropped_.get();
    s.txMalformed = txMalformed_.get();
    s.rxFrames = rxFrames_.get();
    s.rxBytes = rxBytes_.get();
    s.rxDropped = rxDropped_.get();
    s.rxMalformed = rxMalformed_.get();
    return s;
  }

 private:
  static uint64_t writableBytes(const Chain& c, bool& malformed) {
    uint64_t n = 0;
    malformed = false;
    for (const Segment& s : c.segments) {
      if (!s.deviceWritable) malformed = true;
      n += s.len;
    }
    malformed = malformed || n == 0;
    return n;
  }

  // Puts the frame in hand into chains. kMore: delivered or dropped, go on.
  Fill deliver(RxState& rx, VirtQueue& vq) {
    rx.chains.clear();
    uint64_t room = 0;
    bool kicksOn = false;
    while (room < rx.len) {
      auto c = vq.pop();
      if (!c.ok()) return Fill::kBroken;  // the frame stays for the next setup
      if (!c->has_value()) {
        if (!kicksOn) {
          // Ask for a kick, then look once more: a buffer posted in between
          // would otherwise wait for a kick that is not coming.
          vq.setKicksEnabled(true);
          kicksOn = true;
          continue;
        }
        vq.unpop(static_cast<uint16_t>(rx.chains.size()));
        rx.chains.clear();
        vq.setKicksEnabled(true);  // with EVENT_IDX: a kick past what was given back
        return Fill::kNoBuffers;
      }
      bool malformed = false;
      uint64_t n = writableBytes(**c, malformed);
      if (malformed) {
        // A receive chain must be writable: return it (and any gathered for
        // this frame) empty, and drop the frame.
        rxMalformed_.add();
        rx.chains.push_back(std::move(**c));
        rx.written.assign(rx.chains.size(), 0);
        vq.pushMany(rx.chains, rx.written);
        rx.chains.clear();
        dropFrame(rx);
        if (kicksOn) vq.setKicksEnabled(false);
        return Fill::kMore;
      }
      rx.chains.push_back(std::move(**c));
      room += n;
      if (!mergeable_ && room < rx.len) {
        // Without MRG_RXBUF one chain holds the frame; guests post buffers
        // big enough, so this frame fits nowhere.
        vq.unpop(1);
        rx.chains.clear();
        dropFrame(rx);
        if (kicksOn) vq.setKicksEnabled(false);
        return Fill::kMore;
      }
    }
    if (kicksOn) vq.setKicksEnabled(false);
    if (hdrLen_ == vnet::kHdrV1) {
      const uint16_t numBuffers = htole16(static_cast<uint16_t>(rx.chains.size()));
      std::memcpy(rx.buf.data() + vnet::kNumBuffersOffset, &numBuffers, 2);
    }
    scatter(rx);
    vq.pushMany(rx.chains, rx.written);
    rxFrames_.add();
    rxBytes_.add(rx.len - hdrLen_);
    rx.chains.clear();
    rx.len = 0;
    return Fill::kMore;
  }

  // Copies the frame in hand over rx.chains' segments, in order.
  static void scatter(RxState& rx) {
    rx.written.assign(rx.chains.size(), 0);
    size_t at = 0;
    for (size_t i = 0; i < rx.chains.size() && at < rx.len; ++i) {
      for (const Segment& s : rx.chains[i].segments) {
        size_t n = std::min<size_t>(s.len, rx.len - at);
        std::memcpy(s.data, rx.buf.data() + at, n);
        at += n;
        rx.written[i] += static_cast<uint32_t>(n);
        if (at == rx.len) break;
      }
    }
  }

  void dropFrame(RxState& rx) {
    rx.len = 0;
    rxDropped_.add();
  }

  Tap& tap_;
  // Set by setFeatures() while every queue is stopped; read by queue threads.
  size_t hdrLen_ = vnet::kHdrLegacy;
  bool mergeable_ = false;
  std::vector<RxState> rx_;              // [pair], its rx thread's
  std::vector<std::vector<iovec>> iov_;  // [pair], its tx thread's
  Counter txFrames_, txBytes_, txDropped_, txMalformed_;
  Counter rxFrames_, rxBytes_, rxDropped_, rxMalformed_;
};

}  // namespace

std::unique_ptr<VirtioNet> makeVirtioNet(Tap& tap) { return std::make_unique<VirtioNetImpl>(tap); }

}  // namespace offcore::virt
