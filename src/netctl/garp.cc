#include "netctl/garp.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace offcore {

namespace {

struct __attribute__((packed)) ArpPacket {
  uint16_t htype, ptype;
  uint8_t hlen, plen;
  uint16_t op;
  uint8_t sha[6], spa[4], tha[6], tpa[4];
};

}  // namespace

Status sendGratuitousArp(const std::string& ifname, const std::string& ip) {
  in_addr addr{};
  if (::inet_pton(AF_INET, ip.c_str(), &addr) != 1) return makeError("gratuitous ARP: bad address '" + ip + "'");
  if (ifname.size() >= IFNAMSIZ) return makeError("gratuitous ARP: bad interface '" + ifname + "'");
  int fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ARP));
  if (fd < 0) return errnoError("gratuitous ARP: packet socket");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size());
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
    int err = errno;
    ::close(fd);
    return errnoError("gratuitous ARP: MAC of " + ifname, err);
  }
  ArpPacket p{};
  p.htype = htons(ARPHRD_ETHER);
  p.ptype = htons(ETH_P_IP);
  p.hlen = 6;
  p.plen = 4;
  p.op = htons(ARPOP_REQUEST);
  std::memcpy(p.sha, ifr.ifr_hwaddr.sa_data, 6);
  std::memcpy(p.spa, &addr, 4);
  std::memcpy(p.tpa, &addr, 4);  // tha stays zero
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_protocol = htons(ETH_P_ARP);
  to.sll_ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
  to.sll_halen = 6;
  std::memset(to.sll_addr, 0xff, 6);
  ssize_t n = to.sll_ifindex == 0 ? -1 : ::sendto(fd, &p, sizeof p, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof p)) return errnoError("gratuitous ARP for " + ip + " on " + ifname, err);
  return okStatus();
}

}  // namespace offcore
