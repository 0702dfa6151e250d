#include "mesh/tls/ca.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <ctime>

#include "base/files.h"
#include "base/strings.h"
#include "mesh/tls/ossl.h"
#include "mesh/tls/x509_util.h"

namespace offcore::mesh::tls {

namespace {

bool isLabel(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return true;
}

bool isDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!isLabel(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start))) return false;
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

Status addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return makeError("x509 extension " + value + ": " + opensslError());
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok) return makeError("x509 add extension: " + opensslError());
  return okStatus();
}

Status randomSerial(X509* cert) {
  BnPtr bn(BN_new());
  if (!bn || !BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
    return makeError("serial: " + opensslError());
  if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) return makeError("serial: " + opensslError());
  return okStatus();
}

// A certificate skeleton: version 3, random serial, validity, subject O=td.
Result<X509Ptr> newCert(EVP_PKEY* key, const std::string& trust_domain, const std::string& cn, Seconds ttl,
                        std::time_t now) {
  X509Ptr cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), 2)) return makeError("x509: " + opensslError());
  OC_TRY(randomSerial(cert.get()));
  X509_time_adj(X509_getm_notBefore(cert.get()), -60, &now);
  X509_time_adj(X509_getm_notAfter(cert.get()), static_cast<long>(ttl.count()), &now);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(trust_domain.c_str()), -1,
                             -1, 0);
  if (!cn.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                               0);
  }
  if (!X509_set_pubkey(cert.get(), key)) return makeError("x509 pubkey: " + opensslError());
  return cert;
}

// A new CA: an EC P-256 key and its self-signed certificate.
Result<CaMaterial> makeMaterial(const std::string& trust_domain, Seconds lifetime) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return makeError("mesh CA key: " + opensslError());
  OC_ASSIGN_OR_RETURN(X509Ptr cert, newCert(key.get(), trust_domain, "offcore mesh CA", lifetime, std::time(nullptr)));
  X509* c = cert.get();
  X509_set_issuer_name(c, X509_get_subject_name(c));
  OC_TRY(addExt(c, c, NID_basic_constraints, "critical,CA:TRUE"));
  OC_TRY(addExt(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  OC_TRY(addExt(c, c, NID_subject_key_identifier, "hash"));
  if (!X509_sign(c, key.get(), EVP_sha256())) return makeError("mesh CA sign: " + opensslError());
  CaMaterial m;
  m.trust_domain = trust_domain;
  OC_ASSIGN_OR_RETURN(m.key_pem, keyPem(key.get()));
  OC_ASSIGN_OR_RETURN(m.cert_pem, certPem(c));
  return m;
}

}  // namespace

Result<SpiffeId> parseSpiffeId(const std::string& id) {
  static const std::string kScheme = "spiffe://";
  auto bad = [&](const std::string& why) {
    return makeError("'" + id + "' is not a workload SPIFFE ID (" + why +
                     "); write spiffe://<trust-domain>/ns/<ns>/sa/<sa>");
  };
  if (id.rfind(kScheme, 0) != 0) return bad("no spiffe:// scheme");
  std::string rest = id.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string::npos) return bad("no path");
  SpiffeId out;
  out.trust_domain = rest.substr(0, slash);
  if (!isDnsName(out.trust_domain)) return bad("trust domain must be a lower-case DNS name");
  std::string path = rest.substr(slash);
  if (path.rfind("/ns/", 0) != 0) return bad("path must start with /ns/");
  size_t sa = path.find("/sa/", 4);
  if (sa == std::string::npos) return bad("no /sa/");
  out.ns = path.substr(4, sa - 4);
  out.sa = path.substr(sa + 4);
  if (!isLabel(out.ns) || !isLabel(out.sa)) return bad("ns and sa must be DNS labels");
  return out;
}

struct Ca::Keys {
  PkeyPtr key;
  X509Ptr cert;
};

Ca::Ca(std::string trust_domain, std::string ca_pem, std::unique_ptr<Keys> keys, SystemTime not_after)
    : trust_domain_(std::move(trust_domain)),
      ca_pem_(std::move(ca_pem)),
      keys_(std::move(keys)),
      not_after_(not_after) {}

Ca::~Ca() = default;

Result<std::unique_ptr<Ca>> Ca::loadOrCreate(const std::string& dir, const std::string& trust_domain) {
  auto store = makeDirCaStore(dir);
  return loadOrCreate(*store, trust_domain);
}

Result<std::unique_ptr<Ca>> Ca::loadOrCreate(CaStore& store, const std::string& trust_domain) {
  if (!isDnsName(trust_domain)) return makeError("mesh CA: trust domain '" + trust_domain + "' is not a DNS name");
  OC_ASSIGN_OR_RETURN(auto have, store.load());
  CaMaterial m;
  if (have) {
    m = std::move(*have);
  } else {
    OC_ASSIGN_OR_RETURN(CaMaterial made, makeMaterial(trust_domain, kCaLifetime));
    // Another keeper may have stored its CA first: then that one is used.
    OC_ASSIGN_OR_RETURN(m, store.createOrLoad(made));
  }
  const std::string where = "mesh CA in " + store.location();
  if (m.trust_domain != trust_domain) {
    return makeError(where + " is for trust domain '" + printableLine(m.trust_domain) + "', not '" + trust_domain +
                     "'; use the same trust domain, or another CA location");
  }
  auto keys = std::make_unique<Keys>();
  auto key = parseKey(m.key_pem);
  if (!key.ok()) return key.error().wrap(where);
  keys->key = std::move(*key);
  auto cert = parseCert(m.cert_pem);
  if (!cert.ok()) return cert.error().wrap(where);
  keys->cert = std::move(*cert);
  if (X509_check_private_key(keys->cert.get(), keys->key.get()) != 1) {
    return makeError(where + ": its key does not match its certificate; restore both or remove both");
  }
  SystemTime not_after = asn1Time(X509_get0_notAfter(keys->cert.get()));
  if (not_after <= std::chrono::system_clock::now()) {
    return makeError(where + " expired; remove it to create a new one");
  }
  return std::unique_ptr<Ca>(new Ca(trust_domain, m.cert_pem, std::move(keys), not_after));
}

namespace {

// The workload certificate over `key`: the one place that decides its content.
Result<IssuedCert> certify(EVP_PKEY* key, X509* ca_cert, EVP_PKEY* ca_key, const std::string& trust_domain,
                           SystemTime ca_not_after, const std::string& spiffe_id, Seconds ttl) {
  OC_ASSIGN_OR_RETURN(SpiffeId id, parseSpiffeId(spiffe_id));
  if (id.trust_domain != trust_domain) {
    return makeError("mesh CA: " + spiffe_id + " is outside trust domain " + trust_domain);
  }
  if (ttl < Seconds(1)) return makeError("mesh CA: certificate lifetime must be at least 1 s");
  // Whole seconds, as the certificate's times are: notAfter - issued_at is ttl.
  auto now = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  if (now + ttl > ca_not_after) return makeError("mesh CA: it expires before the certificate would; renew the CA");
  OC_ASSIGN_OR_RETURN(X509Ptr cert, newCert(key, trust_domain, "", ttl, std::chrono::system_clock::to_time_t(now)));
  X509* c = cert.get();
  X509_set_issuer_name(c, X509_get_subject_name(ca_cert));
  OC_TRY(addExt(c, ca_cert, NID_basic_constraints, "critical,CA:FALSE"));
  OC_TRY(addExt(c, ca_cert, NID_key_usage, "critical,digitalSignature,keyAgreement"));
  OC_TRY(addExt(c, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth"));
  OC_TRY(addExt(c, ca_cert, NID_subject_alt_name, "critical,URI:" + id.str()));
  OC_TRY(addExt(c, ca_cert, NID_authority_key_identifier, "keyid:always"));
  if (!X509_sign(c, ca_key, EVP_sha256())) return makeError("workload cert sign: " + opensslError());
  IssuedCert out;
  out.spiffe_id = id.str();
  OC_ASSIGN_OR_RETURN(out.cert_pem, certPem(c));
  out.serial = serialHex(c);
  out.issued_at = now;
  out.not_before = asn1Time(X509_get0_notBefore(c));
  out.not_after = asn1Time(X509_get0_notAfter(c));
  return out;
}

}  // namespace

Result<IssuedCert> Ca::issue(const std::string& spiffe_id, Seconds ttl) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return makeError("workload key: " + opensslError());
  OC_ASSIGN_OR_RETURN(IssuedCert out, certify(key.get(), keys_->cert.get(), keys_->key.get(), trust_domain_, not_after_,
                                              spiffe_id, ttl));
  OC_ASSIGN_OR_RETURN(out.key_pem, keyPem(key.get()));
  return out;
}

Result<IssuedCert> Ca::sign(const std::string& csr_pem, const std::string& spiffe_id, Seconds ttl) {
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  X509ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) return makeError("mesh CA: the CSR is not a PEM certificate request: " + opensslError());
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  char group[64] = {0};
  if (!key || !EVP_PKEY_is_a(key, "EC") ||
      !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, nullptr) ||
      std::string(group) != "prime256v1") {
    ERR_clear_error();
    return makeError("mesh CA: the CSR's key is not EC P-256; generate a P-256 key");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return makeError("mesh CA: the CSR's signature does not verify (no proof of possession of its key)");
  }
  return certify(key, keys_->cert.get(), keys_->key.get(), trust_domain_, not_after_, spiffe_id, ttl);
}

}  // namespace offcore::mesh::tls
