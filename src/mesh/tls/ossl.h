// RAII holders for the OpenSSL objects the mesh's TLS code uses, and a
// helper that turns OpenSSL's error queue into one line.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace offcore::mesh::tls {

struct OsslFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, OsslFree>;
using X509Ptr = std::unique_ptr<X509, OsslFree>;
using X509ReqPtr = std::unique_ptr<X509_REQ, OsslFree>;
using BioPtr = std::unique_ptr<BIO, OsslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslFree>;
using SslPtr = std::unique_ptr<SSL, OsslFree>;
using BnPtr = std::unique_ptr<BIGNUM, OsslFree>;

// The oldest queued OpenSSL error as text ("" when none); clears the queue.
std::string opensslError();

}  // namespace offcore::mesh::tls
