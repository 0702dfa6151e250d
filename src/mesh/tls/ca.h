// The mesh's built-in CA: one EC P-256 key and self-signed certificate per
// trust domain, kept in a CaStore (ca_store.h: a directory, or etcd).
// It issues short-lived workload certificates (X.509 SVIDs) whose only URI
// SAN is the workload's SPIFFE ID, spiffe://<td>/ns/<ns>/sa/<sa>.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "mesh/tls/ca_store.h"

namespace offcore::mesh::tls {

using Seconds = std::chrono::seconds;
using SystemTime = std::chrono::system_clock::time_point;

struct SpiffeId {
  std::string trust_domain;
  std::string ns;
  std::string sa;
  std::string str() const { return "spiffe://" + trust_domain + "/ns/" + ns + "/sa/" + sa; }
};

// Accepts exactly spiffe://<td>/ns/<ns>/sa/<sa>: td a DNS name, ns and sa
// DNS labels (lower-case letters, digits, '-', '.' not allowed in ns/sa).
Result<SpiffeId> parseSpiffeId(const std::string& id);

// One issued certificate and its key, PEM.
struct IssuedCert {
  std::string spiffe_id;
  std::string key_pem;  // "" from Ca::sign: the key stays with whoever made the request
  std::string cert_pem;
  std::string serial;  // hex, as `openssl x509 -serial` prints it
  SystemTime issued_at;
  SystemTime not_before;
  SystemTime not_after;
};

// What a CertManager needs from a CA (the built-in one, or a fake in tests).
class CertIssuer {
 public:
  virtual ~CertIssuer() = default;
  virtual Result<IssuedCert> issue(const std::string& spiffe_id, Seconds ttl) = 0;
  virtual const std::string& caPem() const = 0;
  virtual const std::string& trustDomain() const = 0;
};

class Ca : public CertIssuer {
 public:
  static constexpr Seconds kCaLifetime{365 * 24 * 3600};
  static constexpr Seconds kDefaultTtl{3600};

  // Loads the CA in `store`, or creates it when it holds none (two
  // creators racing: both get the first one stored). A CA of another trust
  // domain, a key that does not match its certificate or an expired CA is
  // refused with one line naming where it is.
  static Result<std::unique_ptr<Ca>> loadOrCreate(CaStore& store, const std::string& trust_domain);
  // The same over a directory (makeDirCaStore; dir 0700).
  static Result<std::unique_ptr<Ca>> loadOrCreate(const std::string& dir, const std::string& trust_domain);
  ~Ca() override;

  // A key and certificate for `spiffe_id` (of this trust domain), valid for
  // `ttl` (>= 1 s) from now; notBefore is backdated 60 s for clock skew.
  Result<IssuedCert> issue(const std::string& spiffe_id, Seconds ttl = kDefaultTtl) override;
  // The same certificate over the public key of `csr_pem`, a PKCS#10 request
  // whose own signature must verify (proof of possession) and whose key is
  // EC P-256. Nothing else of the request is used: subject, SAN, extensions
  // and lifetime are the CA's, as in issue(). key_pem stays empty.
  Result<IssuedCert> sign(const std::string& csr_pem, const std::string& spiffe_id, Seconds ttl = kDefaultTtl);
  const std::string& caPem() const override { return ca_pem_; }
  const std::string& trustDomain() const override { return trust_domain_; }
  SystemTime notAfter() const { return not_after_; }

 private:
  struct Keys;
  Ca(std::string trust_domain, std::string ca_pem, std::unique_ptr<Keys> keys, SystemTime not_after);

  std::string trust_domain_;
  std::string ca_pem_;
  std::unique_ptr<Keys> keys_;
  SystemTime not_after_;
};

}  // namespace offcore::mesh::tls
