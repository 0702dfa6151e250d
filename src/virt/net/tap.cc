// The Linux tap device behind Tap (see tap.h).
#include "virt/net/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "virt/vhost/unique_fd.h"

namespace offcore::virt {
namespace {

class LinuxTap final : public Tap {
 public:
  LinuxTap(std::string name, std::vector<UniqueFd> fds) : name_(std::move(name)), fds_(std::move(fds)) {}

  const std::string& name() const override { return name_; }
  uint16_t queuePairs() const override { return static_cast<uint16_t>(fds_.size()); }
  int queueFd(uint16_t pair) const override { return fds_.at(pair).get(); }

  Status setHeaderSize(int bytes) override {
    // The size is the device's, not the fd's: once is enough.
    if (::ioctl(fds_[0].get(), TUNSETVNETHDRSZ, &bytes) != 0) {
      return errnoError("tap " + name_ + ": TUNSETVNETHDRSZ " + std::to_string(bytes));
    }
    return okStatus();
  }

  Status setOffloads(unsigned tunFlags) override {
    for (const UniqueFd& fd : fds_) {
      if (::ioctl(fd.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tunFlags)) != 0) {
        return errnoError("tap " + name_ + ": TUNSETOFFLOAD 0x" + std::to_string(tunFlags));
      }
    }
    return okStatus();
  }

 private:
  std::string name_;
  std::vector<UniqueFd> fds_;
};

// One TUNSETIFF; errno is left for the caller on failure.
int attach(const std::string& ifname, short flags) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = flags;
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Tap>> openTap(const std::string& ifname, uint16_t queuePairs) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return makeError("tap name '" + ifname + "' must be 1.." + std::to_string(IFNAMSIZ - 1) + " bytes");
  }
  if (queuePairs == 0) return makeError("a tap needs at least one queue pair");
  short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (queuePairs > 1) flags |= IFF_MULTI_QUEUE;
  std::vector<UniqueFd> fds;
  int fd = attach(ifname, flags);
  if (fd < 0 && errno == EINVAL && queuePairs == 1) {
    // An existing multi_queue tap takes single-queue users only as such.
    flags |= IFF_MULTI_QUEUE;
    fd = attach(ifname, flags);
  }
  if (fd < 0) {
    if (errno == EINVAL) {
      return makeError("tap " + ifname + " exists but is not a " + (queuePairs > 1 ? "multi_queue " : "") +
                       "tap; delete it or create it with `ip tuntap add dev " + ifname + " mode tap" +
                       (queuePairs > 1 ? " multi_queue" : "") + "`");
    }
    return errnoError("open tap " + ifname + " (/dev/net/tun, TUNSETIFF; needs CAP_NET_ADMIN)");
  }
  fds.emplace_back(fd);
  for (uint16_t i = 1; i < queuePairs; ++i) {
    fd = attach(ifname, flags);
    if (fd < 0) return errnoError("open queue " + std::to_string(i) + " of tap " + ifname);
    fds.emplace_back(fd);
  }
  return std::unique_ptr<Tap>(new LinuxTap(ifname, std::move(fds)));
}

}  // namespace offcore::virt
