#include "image/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <vector>

namespace offcore::oci {

struct Sha256Stream::Ctx {
  EVP_MD_CTX* md = nullptr;
};

Sha256Stream::Sha256Stream() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(ctx_->md); }

void Sha256Stream::update(const void* data, size_t len) { EVP_DigestUpdate(ctx_->md, data, len); }

std::string Sha256Stream::finish() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, out, &n);
  static const char* hex = "0123456789abcdef";
  std::string s = "sha256:";
  for (unsigned i = 0; i < n; ++i) {
    s += hex[out[i] >> 4];
    s += hex[out[i] & 15];
  }
  return s;
}

std::string sha256Digest(const void* data, size_t len) {
  Sha256Stream s;
  s.update(data, len);
  return s.finish();
}

Result<std::string> sha256DigestOfFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("open " + path);
  Sha256Stream s;
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      Error e = errnoError("read " + path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    s.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return s.finish();
}

}  // namespace offcore::oci
