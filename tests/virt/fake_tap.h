// A Tap for tests and the fuzz target: one SOCK_SEQPACKET socketpair per
// queue pair (one message = one frame, header first, as on a tap). The
// device uses queueFd(); the test reads and writes frames at peer().
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "virt/net/tap.h"

namespace offcore::virt::test {

class FakeTap : public Tap {
 public:
  explicit FakeTap(uint16_t pairs = 1) {
    for (uint16_t i = 0; i < pairs; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
      // Room for several 64 KiB frames each way.
      int big = 1 << 20;
      ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
      ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
      device_.push_back(sv[0]);
      peer_.push_back(sv[1]);
    }
  }
  ~FakeTap() override {
    for (int fd : device_) ::close(fd);
    for (int fd : peer_) ::close(fd);
  }

  const std::string& name() const override { return name_; }
  uint16_t queuePairs() const override { return static_cast<uint16_t>(device_.size()); }
  int queueFd(uint16_t pair) const override { return device_.at(pair); }
  Status setHeaderSize(int bytes) override {
    headerSize = bytes;
    return okStatus();
  }
  Status setOffloads(unsigned tunFlags) override {
    offloads = tunFlags;
    return okStatus();
  }

  int peer(uint16_t pair = 0) const { return peer_.at(pair); }
  // Sends one frame as the tap would hand it to the device.
  bool inject(const std::vector<uint8_t>& frame, uint16_t pair = 0) {
    return ::send(peer(pair), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size());
  }
  // The next frame the device wrote, or empty when there is none.
  std::vector<uint8_t> take(uint16_t pair = 0) {
    std::vector<uint8_t> buf(1 << 17);
    ssize_t n = ::recv(peer(pair), buf.data(), buf.size(), 0);
    buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return buf;
  }

  int headerSize = 0;
  unsigned offloads = ~0u;

 private:
  std::string name_ = "faketap";
  std::vector<int> device_, peer_;
};

}  // namespace offcore::virt::test
