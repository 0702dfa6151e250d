#include "mesh/tls/tls_context.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "mesh/tls/x509_util.h"

namespace offcore::mesh::tls {
namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

int sessionIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnH2, sizeof kAlpnH2, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// The server side's SNI: switch to the certificate of the named identity.
int selectIdentity(SSL* ssl, int* alert, void*) {
  auto* session = static_cast<TlsSession*>(SSL_get_ex_data(ssl, sessionIndex()));
  if (!session || !session->source()) return SSL_TLSEXT_ERR_ALERT_FATAL;
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  auto acceptor = session->source()->acceptContext();
  if (!sni) {
    session->setFailure("the client sent no SNI naming the identity it expects");
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  auto id = identityFromSni(sni, acceptor->trustDomain());
  if (!id.ok()) {
    session->setFailure(id.error().message);
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  auto ctx = session->source()->contextFor(*id);
  if (!ctx.ok()) {
    session->setFailure("the client asked for " + *id + ": " + ctx.error().message);
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  SSL_set_SSL_CTX(ssl, (*ctx)->raw());
  session->setLocalContext(*ctx);
  return SSL_TLSEXT_ERR_OK;
}

// A socket BIO that sends with MSG_NOSIGNAL: a peer that vanishes must not
// end the proxy with SIGPIPE (docs/PITFALLS.md).
int sockWrite(BIO* bio, const char* buf, int len) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(fd, buf, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int sockRead(BIO* bio, char* buf, int len) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::recv(fd, buf, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long sockCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int sockCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* sockMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "offcore-mesh-socket");
    BIO_meth_set_write(m, sockWrite);
    BIO_meth_set_read(m, sockRead);
    BIO_meth_set_ctrl(m, sockCtrl);
    BIO_meth_set_create(m, sockCreate);
    return m;
  }();
  return method;
}

bool attachSocket(SSL* ssl, int fd) {
  BIO* bio = BIO_new(sockMethod());
  if (!bio) return false;
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  SSL_set_bio(ssl, bio, bio);
  return true;
}

Result<SslCtxPtr> baseContext(const std::string& ca_pem) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) return makeError("tls context: " + opensslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  OC_ASSIGN_OR_RETURN(X509Ptr ca, parseCert(ca_pem));
  if (!X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.get())) {
    return makeError("tls context: CA: " + opensslError());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), 2);
  SSL_CTX_set_alpn_select_cb(ctx.get(), selectAlpn, nullptr);
  if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof kAlpnH2) != 0) return makeError("tls context: ALPN");
  // Idle connections give their read/write buffers back (bounded memory).
  SSL_CTX_set_mode(ctx.get(),
                   SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  return ctx;
}

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::create(const std::string& ca_pem, const std::string& trust_domain,
                                                       const IssuedCert& cert) {
  std::shared_ptr<TlsContext> out(new TlsContext());
  OC_ASSIGN_OR_RETURN(out->ctx_, baseContext(ca_pem));
  OC_ASSIGN_OR_RETURN(X509Ptr x509, parseCert(cert.cert_pem));
  OC_ASSIGN_OR_RETURN(PkeyPtr key, parseKey(cert.key_pem));
  if (SSL_CTX_use_certificate(out->ctx_.get(), x509.get()) != 1 ||
      SSL_CTX_use_PrivateKey(out->ctx_.get(), key.get()) != 1 || SSL_CTX_check_private_key(out->ctx_.get()) != 1) {
    return makeError("tls context for " + cert.spiffe_id + ": " + opensslError());
  }
  out->identity_ = cert.spiffe_id;
  out->serial_ = serialHex(x509.get());
  out->trust_domain_ = trust_domain;
  return out;
}

Result<std::shared_ptr<TlsContext>> TlsContext::createAcceptor(const std::string& ca_pem,
                                                               const std::string& trust_domain,
                                                               TlsContextSource* source) {
  std::shared_ptr<TlsContext> out(new TlsContext());
  OC_ASSIGN_OR_RETURN(out->ctx_, baseContext(ca_pem));
  SSL_CTX_set_tlsext_servername_callback(out->ctx_.get(), selectIdentity);
  out->trust_domain_ = trust_domain;
  (void)source;  // reached through the session (one acceptor may serve many)
  return out;
}

std::string sniForIdentity(const SpiffeId& id) { return id.sa + "." + id.ns + "." + id.trust_domain; }

Result<std::string> identityFromSni(const std::string& sni, const std::string& trust_domain) {
  size_t a = sni.find('.');
  size_t b = a == std::string::npos ? a : sni.find('.', a + 1);
  if (b == std::string::npos || sni.substr(b + 1) != trust_domain) {
    return makeError("SNI '" + sni + "' does not name an identity of trust domain " + trust_domain);
  }
  OC_ASSIGN_OR_RETURN(SpiffeId id, parseSpiffeId("spiffe://" + trust_domain + "/ns/" + sni.substr(a + 1, b - a - 1) +
                                                 "/sa/" + sni.substr(0, a)));
  return id.str();
}

TlsSession::~TlsSession() = default;

void TlsSession::setLocalContext(std::shared_ptr<TlsContext> ctx) {
  local_identity_ = ctx->identity();
  local_ctx_ = std::move(ctx);
}

Result<std::unique_ptr<TlsSession>> TlsSession::client(std::shared_ptr<TlsContext> ctx, int fd,
                                                       const std::string& expected_peer) {
  OC_ASSIGN_OR_RETURN(SpiffeId peer, parseSpiffeId(expected_peer));
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->ssl_.reset(SSL_new(ctx->raw()));
  if (!s->ssl_ || !attachSocket(s->ssl_.get(), fd)) return makeError("tls: " + opensslError());
  std::string sni = sniForIdentity(peer);
  SSL_set_tlsext_host_name(s->ssl_.get(), sni.c_str());
  SSL_set_connect_state(s->ssl_.get());
  s->is_client_ = true;
  s->trust_domain_ = ctx->trustDomain();
  s->expected_peer_ = peer.str();
  s->setLocalContext(std::move(ctx));
  return s;
}

Result<std::unique_ptr<TlsSession>> TlsSession::server(TlsContextSource& source, int fd) {
  auto acceptor = source.acceptContext();
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->ssl_.reset(SSL_new(acceptor->raw()));
  if (!s->ssl_ || !attachSocket(s->ssl_.get(), fd)) return makeError("tls: " + opensslError());
  SSL_set_ex_data(s->ssl_.get(), sessionIndex(), s.get());
  SSL_set_accept_state(s->ssl_.get());
  s->source_ = &source;
  s->trust_domain_ = acceptor->trustDomain();
  return s;
}

TlsSession::Step TlsSession::fail(int ret) {
  int err = SSL_get_error(ssl_.get(), ret);
  if (err == SSL_ERROR_WANT_READ) return Step::kWantRead;
  if (err == SSL_ERROR_WANT_WRITE) return Step::kWantWrite;
  std::string queued = opensslError();
  long verify = SSL_get_verify_result(ssl_.get());
  if (!failure_.empty()) {
    // the SNI callback said why
  } else if (verify != X509_V_OK) {
    failure_ = std::string("peer certificate refused: ") + X509_verify_cert_error_string(verify);
  } else if (!queued.empty()) {
    failure_ = queued;
  } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
    failure_ = std::string("tls handshake: ") + std::strerror(errno);
  } else {
    failure_ = "the peer closed the connection during the TLS handshake";
  }
  return Step::kFailed;
}

TlsSession::Step TlsSession::handshake() {
  ERR_clear_error();
  errno = 0;
  int ret = SSL_do_handshake(ssl_.get());
  if (ret != 1) return fail(ret);
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl_.get(), &alpn, &alpn_len);
  if (alpn_len != 2 || std::memcmp(alpn, "h2", 2) != 0) {
    failure_ = "the peer did not negotiate ALPN h2";
    return Step::kFailed;
  }
  X509* peer = SSL_get0_peer_certificate(ssl_.get());
  if (!peer) {
    failure_ = "the peer presented no certificate";
    return Step::kFailed;
  }
  auto id = spiffeIdOf(peer);
  if (!id.ok()) {
    failure_ = "peer certificate refused: " + id.error().message;
    return Step::kFailed;
  }
  auto parsed = parseSpiffeId(*id);
  if (parsed->trust_domain != trust_domain_) {
    failure_ = "peer identity " + *id + " is outside trust domain " + trust_domain_;
    return Step::kFailed;
  }
  if (is_client_ && *id != expected_peer_) {
    failure_ = "peer presented identity " + *id + ", expected " + expected_peer_;
    return Step::kFailed;
  }
  peer_identity_ = *id;
  peer_serial_ = serialHex(peer);
  return Step::kDone;
}

ssize_t TlsSession::ioError(int ret) {
  int err = SSL_get_error(ssl_.get(), ret);
  if (err == SSL_ERROR_WANT_READ) {
    want_write_ = false;
    return 0;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    want_write_ = true;
    return 0;
  }
  if (err == SSL_ERROR_ZERO_RETURN) return -1;
  std::string queued = opensslError();
  if (!queued.empty()) {
    failure_ = queued;
  } else if (err == SSL_ERROR_SYSCALL && errno != 0) {
    failure_ = std::strerror(errno);
  } else {
    failure_ = "the peer closed the connection";
  }
  return -1;
}

ssize_t TlsSession::read(char* buf, size_t len) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_read(ssl_.get(), buf, static_cast<int>(len));
  return n > 0 ? n : ioError(n);
}

ssize_t TlsSession::write(const char* buf, size_t len) {
  ERR_clear_error();
  errno = 0;
  int n = SSL_write(ssl_.get(), buf, static_cast<int>(len));
  return n > 0 ? n : ioError(n);
}

}  // namespace offcore::mesh::tls
