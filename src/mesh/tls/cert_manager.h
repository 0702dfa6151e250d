// CertManager: the workload certificates a node proxy holds, one per
// identity (service account) of its mesh pods, rotated at half life.
//
// Rotation builds a new TlsContext; new handshakes use it while open
// connections keep the SSL_CTX they started with (OpenSSL reference-counts
// it), so nothing is dropped. Lives on one EventLoop (timers).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/tls_context.h"

namespace offcore::mesh::tls {

struct CertStatus {
  std::string identity;
  std::string serial;
  SystemTime not_before;
  SystemTime not_after;
  SystemTime next_rotation;
  uint64_t rotations = 0;
};

class CertManager : public TlsContextSource {
 public:
  struct Options {
    Seconds ttl = Ca::kDefaultTtl;
    // After a failed issue, try again after this long.
    std::chrono::milliseconds retry{10000};
  };

  // `issuer` must outlive the manager.
  CertManager(EventLoop& loop, CertIssuer& issuer, Options options);
  ~CertManager() override;
  CertManager(const CertManager&) = delete;
  CertManager& operator=(const CertManager&) = delete;

  // Builds the accepting context. Call once before use.
  Status init();
  // Issues a certificate for `identity` now and keeps it rotated; adding an
  // identity already held is a no-op.
  Status add(const std::string& identity);
  // Stops rotating; open connections keep working, new handshakes fail.
  void remove(const std::string& identity);
  // Replaces the certificate of `identity` now (also the rotation timer's job).
  Status rotate(const std::string& identity);

  Result<std::shared_ptr<TlsContext>> contextFor(const std::string& identity) override;
  std::shared_ptr<TlsContext> acceptContext() override { return acceptor_; }

  // For `offcore mesh status`, sorted by identity.
  std::vector<CertStatus> status() const;

 private:
  struct Held {
    IssuedCert cert;
    std::shared_ptr<TlsContext> ctx;
    EventLoop::TimerId timer = 0;
    SystemTime next_rotation;
    uint64_t rotations = 0;
  };
  void schedule(const std::string& identity, Held& held, std::chrono::milliseconds delay);

  EventLoop& loop_;
  CertIssuer& issuer_;
  Options options_;
  std::shared_ptr<TlsContext> acceptor_;
  std::map<std::string, Held> held_;
};

}  // namespace offcore::mesh::tls
