// Builds Ethernet/IPv4/TCP|UDP frames with correct checksums, independently
// of the dataplane, so a fixture's expected output is computed, not copied
// from what the program produced.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace offcore::testing {

using Mac = std::array<uint8_t, 6>;

struct FrameSpec {
  Mac dst_mac{0x02, 0, 0, 0, 0, 0xaa};
  Mac src_mac{0x02, 0, 0, 0, 0, 0xbb};
  std::string src = "10.1.0.2", dst = "10.1.0.3";
  uint16_t sport = 40000, dport = 80;
  uint8_t proto = 6;  // 6 TCP, 17 UDP, 1 ICMP
  std::string payload = "hello";
  uint8_t tcp_flags = 0x02;  // SYN; 0x12 SYN-ACK, 0x10 ACK
};

inline uint32_t ip(const std::string& s) {
  in_addr a{};
  inet_pton(AF_INET, s.c_str(), &a);
  return a.s_addr;  // network order
}

inline uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n & 1) sum += p[n - 1] << 8;
  return sum;
}

inline std::vector<uint8_t> buildFrame(const FrameSpec& f) {
  size_t l4len = f.proto == 6 ? 20 : 8;  // UDP and ICMP echo: 8
  std::vector<uint8_t> b(14 + 20 + l4len + f.payload.size(), 0);
  std::copy(f.dst_mac.begin(), f.dst_mac.end(), b.begin());
  std::copy(f.src_mac.begin(), f.src_mac.end(), b.begin() + 6);
  b[12] = 0x08;
  b[13] = 0x00;
  uint8_t* iph = b.data() + 14;
  iph[0] = 0x45;
  uint16_t tot = static_cast<uint16_t>(20 + l4len + f.payload.size());
  iph[2] = tot >> 8;
  iph[3] = tot & 0xff;
  iph[6] = 0x40;  // DF
  iph[8] = 64;
  iph[9] = f.proto;
  uint32_t s = ip(f.src), d = ip(f.dst);
  std::memcpy(iph + 12, &s, 4);
  std::memcpy(iph + 16, &d, 4);
  uint16_t c = fold(sum16(iph, 20));
  iph[10] = c >> 8;
  iph[11] = c & 0xff;
  uint8_t* l4 = iph + 20;
  if (f.proto == 1) {
    // ICMP echo: type in sport's high byte (8 request, 0 reply), id/seq in dport.
    l4[0] = static_cast<uint8_t>(f.sport >> 8);
    l4[4] = f.dport >> 8;
    l4[5] = f.dport & 0xff;
    std::memcpy(l4 + 8, f.payload.data(), f.payload.size());
    uint16_t ic = fold(sum16(l4, 8 + f.payload.size()));
    l4[2] = ic >> 8;
    l4[3] = ic & 0xff;
    return b;
  }
  l4[0] = f.sport >> 8;
  l4[1] = f.sport & 0xff;
  l4[2] = f.dport >> 8;
  l4[3] = f.dport & 0xff;
  if (f.proto == 6) {
    l4[12] = 5 << 4;
    l4[13] = f.tcp_flags;
    l4[14] = 0xff;
    l4[15] = 0xff;
  } else {
    uint16_t ulen = static_cast<uint16_t>(8 + f.payload.size());
    l4[4] = ulen >> 8;
    l4[5] = ulen & 0xff;
  }
  std::memcpy(l4 + l4len, f.payload.data(), f.payload.size());
  // Pseudo-header checksum.
  uint32_t sum = sum16(iph + 12, 8);
  sum += f.proto;
  sum += static_cast<uint32_t>(l4len + f.payload.size());
  sum = sum16(l4, l4len + f.payload.size(), sum);
  uint16_t l4c = fold(sum);
  if (f.proto == 17 && l4c == 0) l4c = 0xffff;
  size_t off = f.proto == 6 ? 16 : 6;
  l4[off] = l4c >> 8;
  l4[off + 1] = l4c & 0xff;
  return b;
}

inline std::vector<uint8_t> buildArp(const Mac& src_mac) {
  std::vector<uint8_t> b(42, 0);
  for (int i = 0; i < 6; ++i) b[i] = 0xff;
  std::copy(src_mac.begin(), src_mac.end(), b.begin() + 6);
  b[12] = 0x08;
  b[13] = 0x06;
  return b;
}

}  // namespace offcore::testing
