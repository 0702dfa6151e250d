#include "base/base64.h"

#include <openssl/evp.h>

#include <climits>

namespace offcore {

std::string base64Encode(const std::string& in) {
  if (in.empty()) return "";
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

Result<std::string> base64Decode(const std::string& in, size_t max_in) {
  if (in.size() % 4 != 0 || in.size() > max_in || in.size() > INT_MAX / 2) return makeError("not base64");
  if (in.empty()) return std::string();
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return makeError("not base64");
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (size_t i = in.size(); i > 0 && in[i - 1] == '=' && len > 0; --i) --len;
  out.resize(len);
  return out;
}

}  // namespace offcore
