#include "nvme/auth/dhchap_crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

namespace offcore::nvme::auth {
namespace {

struct MacFree {
  void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
  void operator()(BIGNUM* b) const { BN_free(b); }
};
template <typename T>
using Owned = std::unique_ptr<T, MacFree>;

Error sslError(const std::string& what) { return makeError("openssl: " + what + " failed"); }

}  // namespace

size_t hashLength(uint8_t hash) {
  switch (hash) {
    case kHashSha256: return 32;
    case kHashSha384: return 48;
    case kHashSha512: return 64;
    default: return 0;
  }
}

const char* hashName(uint8_t hash) {
  switch (hash) {
    case kHashSha256: return "sha256";
    case kHashSha384: return "sha384";
    case kHashSha512: return "sha512";
    default: return nullptr;
  }
}

size_t dhPublicLength(uint8_t group) {
  switch (group) {
    case kDhFfdhe2048: return 256;
    case kDhFfdhe3072: return 384;
    case kDhFfdhe4096: return 512;
    case kDhFfdhe6144: return 768;
    case kDhFfdhe8192: return 1024;
    default: return 0;
  }
}

const char* dhGroupName(uint8_t group) {
  switch (group) {
    case kDhNull: return "null";
    case kDhFfdhe2048: return "ffdhe2048";
    case kDhFfdhe3072: return "ffdhe3072";
    case kDhFfdhe4096: return "ffdhe4096";
    case kDhFfdhe6144: return "ffdhe6144";
    case kDhFfdhe8192: return "ffdhe8192";
    default: return nullptr;
  }
}

bool knownDhGroup(uint8_t group) { return group <= kDhFfdhe8192; }

Status randomBytes(uint8_t* out, size_t len) {
  if (len == 0) return okStatus();
  if (RAND_bytes(out, static_cast<int>(len)) != 1) return sslError("RAND_bytes");
  return okStatus();
}

Result<Bytes> digest(uint8_t hash, const uint8_t* data, size_t len) {
  const char* name = hashName(hash);
  if (!name) return makeError("unknown hash id " + std::to_string(hash));
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int n = 0;
  if (EVP_Digest(data, len, out.data(), &n, EVP_get_digestbyname(name), nullptr) != 1) return sslError("digest");
  out.resize(n);
  return out;
}

Result<Bytes> hmac(uint8_t hash, const Bytes& key, std::initializer_list<std::string_view> parts) {
  const char* name = hashName(hash);
  if (!name) return makeError("unknown hash id " + std::to_string(hash));
  Owned<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) return sslError("EVP_MAC_fetch(HMAC)");
  Owned<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(mac.get()));
  if (!ctx) return sslError("EVP_MAC_CTX_new");
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(name), 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1) return sslError("HMAC init");
  for (auto p : parts) {
    if (!p.empty() && EVP_MAC_update(ctx.get(), reinterpret_cast<const uint8_t*>(p.data()), p.size()) != 1) {
      return sslError("HMAC update");
    }
  }
  Bytes out(hashLength(hash));
  size_t n = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &n, out.size()) != 1 || n != out.size()) return sslError("HMAC final");
  return out;
}

Result<DhKeyPair> DhKeyPair::generate(uint8_t group) {
  const char* name = dhGroupName(group);
  if (!name || group == kDhNull) return makeError("no DH key pair for group " + std::to_string(group));
  Owned<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return sslError("DH keygen init");
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(name), 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_PKEY_CTX_set_params(ctx.get(), params) != 1) return sslError(std::string("DH group ") + name);
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &key) != 1) return sslError("DH keygen");
  return DhKeyPair(group, key);
}

DhKeyPair::DhKeyPair(DhKeyPair&& o) noexcept : group_(o.group_), pkey_(o.pkey_) { o.pkey_ = nullptr; }
DhKeyPair& DhKeyPair::operator=(DhKeyPair&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_));
    group_ = o.group_;
    pkey_ = o.pkey_;
    o.pkey_ = nullptr;
  }
  return *this;
}
DhKeyPair::~DhKeyPair() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

Result<Bytes> DhKeyPair::publicValue() const {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(static_cast<EVP_PKEY*>(pkey_), OSSL_PKEY_PARAM_PUB_KEY, &raw) != 1) {
    return sslError("DH public value");
  }
  Owned<BIGNUM> bn(raw);
  Bytes out(dhPublicLength(group_));
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size())) != static_cast<int>(out.size())) {
    return sslError("DH public value encoding");
  }
  return out;
}

Result<Bytes> DhKeyPair::sharedSecret(const Bytes& peer_public) const {
  const size_t len = dhPublicLength(group_);
  if (peer_public.size() != len) {
    return makeError("DH public value is " + std::to_string(peer_public.size()) + " bytes, " + dhGroupName(group_) +
                     " needs " + std::to_string(len));
  }
  Owned<BIGNUM> bn(BN_bin2bn(peer_public.data(), static_cast<int>(peer_public.size()), nullptr));
  Owned<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bn || !bld) return sslError("DH peer value");
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, dhGroupName(group_), 0) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, bn.get()) != 1) {
    return sslError("DH peer params");
  }
  Owned<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Owned<EVP_PKEY_CTX> fctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  EVP_PKEY* peer_raw = nullptr;
  if (!params || !fctx || EVP_PKEY_fromdata_init(fctx.get()) != 1 ||
      EVP_PKEY_fromdata(fctx.get(), &peer_raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return makeError("the peer's DH public value is not valid in " + std::string(dhGroupName(group_)));
  }
  Owned<EVP_PKEY> peer(peer_raw);
  Owned<EVP_PKEY_CTX> dctx(EVP_PKEY_CTX_new(static_cast<EVP_PKEY*>(pkey_), nullptr));
  if (!dctx || EVP_PKEY_derive_init(dctx.get()) != 1) return sslError("DH derive init");
  // Linux and SPDK use the secret at the prime's full width (leading zeros kept).
  if (EVP_PKEY_CTX_set_dh_pad(dctx.get(), 1) <= 0) return sslError("DH pad");
  // validate_peer = 1: a public value outside 1 < y < p-1 is refused.
  if (EVP_PKEY_derive_set_peer_ex(dctx.get(), peer.get(), 1) != 1) {
    return makeError("the peer's DH public value failed validation in " + std::string(dhGroupName(group_)));
  }
  size_t n = len;
  Bytes out(len);
  if (EVP_PKEY_derive(dctx.get(), out.data(), &n) != 1 || n != len) return sslError("DH derive");
  return out;
}

}  // namespace offcore::nvme::auth
