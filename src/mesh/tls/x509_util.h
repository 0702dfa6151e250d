// X.509 helpers shared by the CA, the certificate manager and the TLS
// contexts: PEM in and out, serials, times, the SPIFFE ID of a certificate.
#pragma once

#include <openssl/x509.h>

#include <string>

#include "base/result.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/ossl.h"

namespace offcore::mesh::tls {

std::string bioString(BIO* bio);
Result<PkeyPtr> parseKey(const std::string& pem);
Result<X509Ptr> parseCert(const std::string& pem);
Result<std::string> certPem(X509* cert);
Result<std::string> keyPem(EVP_PKEY* key);
std::string serialHex(const X509* cert);
SystemTime asn1Time(const ASN1_TIME* t);
// The certificate's only URI SAN, when it is a workload SPIFFE ID.
Result<std::string> spiffeIdOf(X509* cert);

}  // namespace offcore::mesh::tls
