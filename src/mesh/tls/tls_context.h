// The mesh's TLS: OpenSSL contexts and sessions for proxy-to-proxy mTLS.
//
// Every context is TLS 1.3 only, offers/selects ALPN "h2", requires the
// peer's certificate and verifies it chains to the mesh CA and is within its
// validity. After the handshake the peer's SPIFFE ID (its only URI SAN) is
// checked: a client requires exactly the identity it expected, a server
// requires one of its trust domain. A refusal carries a one-line reason.
//
// A node proxy holds certificates for several identities (one per service
// account of its pods). The client names the identity it expects in SNI
// ("<sa>.<ns>.<trust-domain>", see sniForIdentity), and the server switches
// to that identity's context during the ClientHello.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/result.h"
#include "mesh/tls/ca.h"
#include "mesh/tls/ossl.h"

namespace offcore::mesh::tls {

class TlsContextSource;

class TlsContext {
 public:
  // Presents `cert` and trusts `ca_pem`.
  static Result<std::shared_ptr<TlsContext>> create(const std::string& ca_pem, const std::string& trust_domain,
                                                    const IssuedCert& cert);
  // A server's accepting context: no certificate until the client's SNI
  // picks one from `source` (which must outlive it).
  static Result<std::shared_ptr<TlsContext>> createAcceptor(const std::string& ca_pem, const std::string& trust_domain,
                                                            TlsContextSource* source);
  SSL_CTX* raw() const { return ctx_.get(); }
  const std::string& identity() const { return identity_; }
  const std::string& serial() const { return serial_; }
  const std::string& trustDomain() const { return trust_domain_; }

 private:
  TlsContext() = default;
  SslCtxPtr ctx_;
  std::string identity_;
  std::string serial_;
  std::string trust_domain_;
};

// Where TLS contexts come from (CertManager in the proxy, fixed ones in tests).
class TlsContextSource {
 public:
  virtual ~TlsContextSource() = default;
  // The current context for one of this node's identities; new handshakes
  // take the newest, connections keep the one they started with.
  virtual Result<std::shared_ptr<TlsContext>> contextFor(const std::string& identity) = 0;
  virtual std::shared_ptr<TlsContext> acceptContext() = 0;
};

std::string sniForIdentity(const SpiffeId& id);
Result<std::string> identityFromSni(const std::string& sni, const std::string& trust_domain);

// One TLS connection over a non-blocking socket (a socket BIO that sends
// with MSG_NOSIGNAL).
class TlsSession {
 public:
  enum class Step { kDone, kWantRead, kWantWrite, kFailed };

  static Result<std::unique_ptr<TlsSession>> client(std::shared_ptr<TlsContext> ctx, int fd,
                                                    const std::string& expected_peer);
  static Result<std::unique_ptr<TlsSession>> server(TlsContextSource& source, int fd);
  ~TlsSession();

  // Drives the handshake; kDone also means the peer identity was accepted.
  Step handshake();
  // Why the handshake or the connection failed (one line).
  const std::string& failure() const { return failure_; }

  // > 0 bytes; 0 = would block (wantWrite() says on what); -1 = closed or
  // failed (failure() says why; "" for a clean close).
  ssize_t read(char* buf, size_t len);
  ssize_t write(const char* buf, size_t len);
  bool wantWrite() const { return want_write_; }

  const std::string& peerIdentity() const { return peer_identity_; }
  const std::string& peerSerial() const { return peer_serial_; }
  const std::string& localIdentity() const { return local_identity_; }

  // Used by the SNI callback.
  TlsContextSource* source() const { return source_; }
  void setLocalContext(std::shared_ptr<TlsContext> ctx);
  void setFailure(std::string why) { failure_ = std::move(why); }

 private:
  TlsSession() = default;
  Step fail(int ret);
  ssize_t ioError(int ret);

  SslPtr ssl_;
  bool is_client_ = false;
  std::shared_ptr<TlsContext> local_ctx_;
  TlsContextSource* source_ = nullptr;
  std::string trust_domain_;
  std::string expected_peer_;
  std::string peer_identity_;
  std::string peer_serial_;
  std::string local_identity_;
  std::string failure_;
  bool want_write_ = false;
};

}  // namespace offcore::mesh::tls
