#include "netctl/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace offcore {

namespace {

uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

}  // namespace

Status createPersistentTap(const std::string& ifname, int queues) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return makeError("tap name '" + ifname + "' must be 1-15 bytes");
  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return errnoError("open /dev/net/tun (is the tun module loaded?)");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0);
  Status st = okStatus();
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) {
    st = errnoError("create tap " + ifname);
  } else if (::ioctl(fd, TUNSETPERSIST, 1) != 0) {
    st = errnoError("make tap " + ifname + " persistent");
  }
  ::close(fd);
  return st;
}

std::string vmTapName(const std::string& vm) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "ocvm%08x", fnv1a(vm));
  return buf;
}

std::string vmMac(const std::string& vm) {
  uint32_t h = fnv1a("mac/" + vm);
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:0d:%02x:%02x:%02x:%02x", (h >> 24) & 0xff, (h >> 16) & 0xff, (h >> 8) & 0xff,
                h & 0xff);
  return buf;
}

}  // namespace offcore
