#include "kv/etcd_transport.h"

#include <cerrno>

#include "kv/etcd_errors.h"
#include "kv/etcd_json.h"

namespace offcore::kv {

namespace {

constexpr size_t kMaxIdleHandles = 8;

struct Sink {
  std::string* out;
  size_t limit;
  bool overflow = false;
};

size_t appendBounded(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  if (s->out->size() + size * n > s->limit) {
    s->overflow = true;
    return 0;  // aborts the transfer
  }
  s->out->append(data, size * n);
  return size * n;
}

}  // namespace

EtcdTransport::EtcdTransport(EtcdOptions o) : o_(std::move(o)) {
  if (o_.endpoints.empty()) o_.endpoints.push_back("http://127.0.0.1:2379");
}

EtcdTransport::~EtcdTransport() {
  for (CURL* h : idle_) curl_easy_cleanup(h);
}

std::string EtcdTransport::describe() const {
  std::string out = "etcd://";
  for (size_t i = 0; i < o_.endpoints.size(); ++i) {
    const std::string& e = o_.endpoints[i];
    out += (i ? "," : "") + e.substr(e.find("://") + 3);
  }
  return out;
}

void EtcdTransport::configure(CURL* h) const {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o_.connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  if (!o_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, o_.ca_file.c_str());
  if (!o_.cert_file.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, o_.cert_file.c_str());
  if (!o_.key_file.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, o_.key_file.c_str());
}

CURL* EtcdTransport::takeHandle() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* h = curl_easy_init();
  if (h) configure(h);
  return h;
}

void EtcdTransport::giveBack(CURL* h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdleHandles) {
    idle_.push_back(h);
    return;
  }
  curl_easy_cleanup(h);
}

Result<std::string> EtcdTransport::authHeader(bool fresh) {
  if (o_.user.empty()) return std::string();
  std::lock_guard<std::mutex> lock(auth_mu_);
  if (fresh || token_.empty()) {
    std::string body = "{\"name\":" + etcdjson::quote(o_.user) + ",\"password\":" + etcdjson::quote(o_.password) + "}";
    auto answer = post("/v3/auth/authenticate", body, "");
    if (!answer.ok()) return answer.error().wrap("authenticating to etcd as user '" + o_.user + "'");
    OC_ASSIGN_OR_RETURN(token_, etcdjson::parseAuthenticate(*answer));
  }
  return "Authorization: " + token_;
}

Result<std::string> EtcdTransport::call(const std::string& path, const std::string& body) {
  OC_ASSIGN_OR_RETURN(std::string auth, authHeader(false));
  auto answer = post(path, body, auth);
  if (!answer.ok() && !o_.user.empty() && etcdStaleToken(answer.error())) {
    // Once more with a new token.
    OC_ASSIGN_OR_RETURN(auth, authHeader(true));
    answer = post(path, body, auth);
  }
  if (!answer.ok() && answer.error().code == EACCES) return etcdDenied(answer.error(), o_.user);
  return answer;
}

Result<std::string> EtcdTransport::post(const std::string& path, const std::string& body, const std::string& header) {
  CURL* h = takeHandle();
  if (!h) return makeError("etcd: curl_easy_init failed", ENOMEM);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!header.empty()) headers = curl_slist_append(headers, header.c_str());
  std::string failures;
  size_t first = preferred();
  for (size_t k = 0; k < o_.endpoints.size(); ++k) {
    size_t i = (first + k) % o_.endpoints.size();
    const std::string& member = o_.endpoints[i];
    std::string url = member + path, answer;
    Sink sink{&answer, o_.max_response_bytes};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o_.request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &appendBounded);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    std::string host = member.substr(member.find("://") + 3);
    if (sink.overflow) {
      failures += (failures.empty() ? "" : "; ") + host + ": answer over " +
                  std::to_string(o_.max_response_bytes >> 20) + " MiB";
      continue;
    }
    if (rc != CURLE_OK) {
      failures += (failures.empty() ? "" : "; ") + host + ": " + curl_easy_strerror(rc);
      continue;
    }
    if (status == 200) {
      prefer(i);
      curl_slist_free_all(headers);
      giveBack(h);
      return answer;
    }
    etcdjson::GatewayError e = etcdjson::parseError(answer);
    if (etcdMemberUnavailable(e.grpc_code) || (status >= 500 && e.grpc_code == 2)) {
      failures += (failures.empty() ? "" : "; ") + host + ": " + e.message;
      continue;
    }
    curl_slist_free_all(headers);
    giveBack(h);
    return makeError("etcd " + host + ": " + e.message, errnoOfEtcdCode(e.grpc_code));
  }
  curl_slist_free_all(headers);
  giveBack(h);
  return makeError("etcd: no member of " + describe() + " answered (" + failures + "); is a quorum of the cluster up?",
                   EHOSTUNREACH);
}

}  // namespace offcore::kv
