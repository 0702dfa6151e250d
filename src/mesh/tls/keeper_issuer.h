// KeeperIssuer: the proxy worker's CertIssuer. The worker holds no CA: for
// each certificate it makes an EC P-256 key (which never leaves it), sends
// a CSR and the SPIFFE ID it wants over the CA channel its keeper handed it
// (csr_wire.h), and gets back a certificate whose content the keeper
// decided. The CA certificate and trust domain come over the same channel
// at connect().
//
// Synchronous: issue() blocks its caller (the worker's loop) for one round
// trip, bounded by the timeout (docs/CONCURRENCY.md). The keeper answers
// in about a millisecond; a failure is retried by CertManager.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "base/result.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/csr_wire.h"

namespace offcore::mesh::tls {

class KeeperIssuer : public CertIssuer {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{2000};

  // Takes `fd` (this end of the channel) and asks for the trust bundle.
  static Result<std::unique_ptr<KeeperIssuer>> connect(int fd, std::chrono::milliseconds timeout = kDefaultTimeout);
  ~KeeperIssuer() override;
  KeeperIssuer(const KeeperIssuer&) = delete;
  KeeperIssuer& operator=(const KeeperIssuer&) = delete;

  Result<IssuedCert> issue(const std::string& spiffe_id, Seconds ttl) override;
  const std::string& caPem() const override { return ca_pem_; }
  const std::string& trustDomain() const override { return trust_domain_; }

 private:
  KeeperIssuer(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  // Sends `request` (its id filled in) and waits for the answer to it;
  // answers to earlier, timed-out requests are skipped.
  Result<CsrResponse> roundTrip(CsrRequest request);

  int fd_;
  std::chrono::milliseconds timeout_;
  uint64_t next_id_ = 1;
  FrameReader reader_;
  std::string ca_pem_, trust_domain_;
};

}  // namespace offcore::mesh::tls
