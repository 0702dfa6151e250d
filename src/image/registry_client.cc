#include "image/registry_client.h"

#include <algorithm>

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/base64.h"
#include "image/digest.h"
#include "image/oci.h"

namespace offcore::oci {

struct RegistryClient::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl) curl_easy_cleanup(curl);
  }
};

struct RegistryClient::Response {
  long status = 0;
  std::string body;
  std::string content_type;
  std::string location;
  std::string docker_digest;
  std::string www_authenticate;
};

namespace {

struct Sink {
  std::string* body;
  size_t max_body;
  int fd;
  Sha256Stream* hash;
  uint64_t received = 0;
  bool overflow = false;
  bool write_failed = false;
  const ByteProgress* progress;
  uint64_t total = 0;
};

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  size_t len = size * n;
  s->received += len;
  if (s->fd >= 0) {
    size_t off = 0;
    while (off < len) {
      ssize_t w = ::write(s->fd, data + off, len - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        s->write_failed = true;
        return 0;
      }
      off += static_cast<size_t>(w);
    }
    if (s->hash) s->hash->update(data, len);
    if (s->progress && *s->progress) (*s->progress)(s->received, s->total);
    return len;
  }
  if (s->body->size() + len > s->max_body) {
    s->overflow = true;
    return 0;
  }
  s->body->append(data, len);
  return len;
}

struct Headers {
  std::string content_type, location, docker_digest, content_length, www_authenticate;
};

std::string headerValue(const std::string& line, const char* name) {
  size_t n = std::strlen(name);
  if (line.size() <= n || strncasecmp(line.c_str(), name, n) != 0 || line[n] != ':') return "";
  std::string v = line.substr(n + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* h = static_cast<Headers*>(user);
  std::string line(data, size * n);
  if (auto v = headerValue(line, "Content-Type"); !v.empty()) h->content_type = v;
  if (auto v = headerValue(line, "Location"); !v.empty()) h->location = v;
  if (auto v = headerValue(line, "Docker-Content-Digest"); !v.empty()) h->docker_digest = v;
  if (auto v = headerValue(line, "Content-Length"); !v.empty()) h->content_length = v;
  if (auto v = headerValue(line, "WWW-Authenticate"); !v.empty()) h->www_authenticate = v;
  return size * n;
}

size_t onUpload(char* buf, size_t size, size_t n, void* user) {
  int fd = *static_cast<int*>(user);
  ssize_t r = ::read(fd, buf, size * n);
  return r < 0 ? CURL_READFUNC_ABORT : static_cast<size_t>(r);
}

const bool curl_ready = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();

std::string httpError(const std::string& what, long status, const std::string& body) {
  std::string detail = body.substr(0, 300);
  for (auto& c : detail) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string hint;
  if (status == 404) hint = " (check the repository, tag or digest)";
  if (status == 401 || status == 403) {
    hint = " (access denied: check the credentials, --creds FILE or ~/.docker/config.json)";
  }
  return what + ": HTTP " + std::to_string(status) + hint + (detail.empty() ? "" : ": " + detail);
}

}  // namespace

bool isLoopbackRegistry(const std::string& registry) {
  return registry.rfind("127.", 0) == 0 || registry.rfind("localhost", 0) == 0 || registry.rfind("[::1]", 0) == 0;
}

RegistryClient::RegistryClient(std::string registry, RegistryOptions options)
    : registry_(std::move(registry)),
      options_(options),
      plain_http_(options.plain_http || isLoopbackRegistry(registry_)) {
  (void)curl_ready;
}

RegistryClient::~RegistryClient() = default;

std::string RegistryClient::baseUrl() const { return (plain_http_ ? "http://" : "https://") + registry_; }

uint64_t RegistryClient::bytesDownloaded() const { return downloaded_.load(); }

std::unique_ptr<RegistryClient::Handle> RegistryClient::borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!pool_.empty()) {
      auto h = std::move(pool_.back());
      pool_.pop_back();
      curl_easy_reset(h->curl);  // keeps the connection cache
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  return h;
}

void RegistryClient::giveBack(std::unique_ptr<Handle> h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pool_.size() < options_.pool_size) pool_.push_back(std::move(h));
}

Result<RegistryClient::Response> RegistryClient::perform(const std::string& method, const std::string& url,
                                                         const std::vector<std::string>& headers,
                                                         const std::string* body, const std::string* upload_path,
                                                         int out_fd, size_t max_body, long timeout_ms,
                                                         const ByteProgress* progress) {
  auto h = borrow();
  if (!h->curl) return makeError("curl_easy_init failed");
  CURL* c = h->curl;
  Response resp;
  Headers hdr;
  Sink sink{&resp.body, max_body, out_fd, nullptr, 0, false, false, progress, 0};
  curl_slist* list = nullptr;
  for (const auto& x : headers) list = curl_slist_append(list, x.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdr);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, method == "GET" ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  if (!options_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, options_.ca_file.c_str());
  int upload_fd = -1;
  if (method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body->c_str() : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body ? static_cast<long>(body->size()) : 0L);
  } else if (method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    if (upload_path) {
      upload_fd = ::open(upload_path->c_str(), O_RDONLY | O_CLOEXEC);
      if (upload_fd < 0) {
        curl_slist_free_all(list);
        return errnoError("open " + *upload_path);
      }
      struct stat st {};
      ::fstat(upload_fd, &st);
      curl_easy_setopt(c, CURLOPT_READFUNCTION, onUpload);
      curl_easy_setopt(c, CURLOPT_READDATA, &upload_fd);
      curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(st.st_size));
    } else {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
      curl_easy_setopt(c, CURLOPT_UPLOAD, 0L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body->c_str() : "");
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body ? static_cast<long>(body->size()) : 0L);
    }
  }
  CURLcode rc = curl_easy_perform(c);
  long os_errno = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
  if (upload_fd >= 0) ::close(upload_fd);
  curl_slist_free_all(list);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  downloaded_ += sink.received;
  giveBack(std::move(h));
  if (sink.overflow)
    return makeError(method + " " + url + ": response larger than " + std::to_string(max_body) + " bytes");
  if (sink.write_failed) return errnoError(method + " " + url + ": writing the download");
  if (rc == CURLE_COULDNT_CONNECT && (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)) {
    // The fabric's unreachable route (docs/NETWORK.md) answers here.
    return makeError(method + " " + url + ": no route to fabric address " + registry_ +
                         ": start a node (`offcore dpu up`) or run from a fabric host's namespace",
                     static_cast<int>(os_errno));
  }
  if (rc != CURLE_OK) {
    std::string hint = rc == CURLE_COULDNT_CONNECT ? " (is the registry running and reachable?)"
                       : rc == CURLE_PEER_FAILED_VERIFICATION
                           ? " (the registry's certificate is not signed by a CA we trust: pass --ca-file CA.pem)"
                           : "";
    return makeError(method + " " + url + ": " + curl_easy_strerror(rc) + hint,
                     rc == CURLE_OPERATION_TIMEDOUT ? 110 : 5);
  }
  resp.content_type = hdr.content_type;
  resp.location = hdr.location;
  resp.docker_digest = hdr.docker_digest;
  resp.www_authenticate = hdr.www_authenticate;
  return resp;
}

std::string RegistryClient::authorization(const std::string& repo) {
  std::lock_guard<std::mutex> lock(auth_mu_);
  auto now = std::chrono::steady_clock::now();
  for (const std::string& key : {repo, std::string()}) {
    auto it = auth_.find(key);
    if (it == auth_.end()) continue;
    if (it->second.expires <= now) {  // expired: the next 401 fetches a fresh one
      auth_.erase(it);
      continue;
    }
    return it->second.header;
  }
  return "";
}

Status RegistryClient::answerChallenge(const std::string& repo, const std::string& header) {
  auto ch = parseAuthChallenge(header);
  if (!ch.ok()) return makeError("registry " + registry_ + " asks for authentication: " + ch.error().message);
  std::optional<RegistryCredentials> creds = options_.credentials;
  if (!creds) {
    OC_ASSIGN_OR_RETURN(creds, loadRegistryCredentials(registry_, options_.creds_file));
  }
  if (ch->scheme == "basic") {
    if (!creds) {
      return makeError("registry " + registry_ +
                       " needs a username and password: give them with --creds FILE or in ~/.docker/config.json");
    }
    std::lock_guard<std::mutex> lock(auth_mu_);
    auth_[""] = Token{"Authorization: Basic " + base64Encode(creds->username + ":" + creds->password),
                      std::chrono::steady_clock::time_point::max()};
    return {};
  }
  // Bearer: a token for the scope the registry named, from its realm.
  auto escape = [](const std::string& v) {
    char* e = curl_easy_escape(nullptr, v.c_str(), static_cast<int>(v.size()));
    std::string out = e ? e : "";
    curl_free(e);
    return out;
  };
  std::string url = ch->realm + (ch->realm.find('?') == std::string::npos ? "?" : "&") +
                    "service=" + escape(ch->service) + (ch->scope.empty() ? "" : "&scope=" + escape(ch->scope));
  if (creds && !plain_http_ && ch->realm.rfind("http://", 0) == 0) {
    return makeError("registry " + registry_ + " sends its clients to a plain-HTTP token service (" + ch->realm +
                     "); refusing to send credentials there");
  }
  std::vector<std::string> headers;
  if (creds) headers.push_back("Authorization: Basic " + base64Encode(creds->username + ":" + creds->password));
  OC_ASSIGN_OR_RETURN(auto r,
                      perform("GET", url, headers, nullptr, nullptr, -1, 64 << 10, options_.timeout_ms, nullptr));
  if (r.status == 401 || r.status == 403) {
    return makeError("registry " + registry_ + ": its token service " + ch->realm + " refused the credentials (HTTP " +
                     std::to_string(r.status) + "); check --creds FILE or ~/.docker/config.json");
  }
  if (r.status != 200) return makeError(httpError("token from " + ch->realm + " for " + registry_, r.status, r.body));
  auto t = parseTokenResponse(r.body);
  if (!t.ok()) return makeError("registry " + registry_ + ": token service " + ch->realm + ": " + t.error().message);
  ++tokens_fetched_;
  // Renewed a little before it runs out, so a request does not carry a
  // token that expires on the way.
  auto life = std::chrono::seconds(std::max<long>(1, t->expires_in - (t->expires_in > 10 ? 5 : 0)));
  std::lock_guard<std::mutex> lock(auth_mu_);
  auth_[repo] = Token{"Authorization: Bearer " + t->token, std::chrono::steady_clock::now() + life};
  return {};
}

Result<RegistryClient::Response> RegistryClient::request(const std::string& repo, const std::string& method,
                                                         const std::string& url,
                                                         const std::vector<std::string>& headers,
                                                         const std::string* body, const std::string* upload_path,
                                                         int out_fd, size_t max_body, long timeout_ms,
                                                         const ByteProgress* progress) {
  // An error answer (a 401 with its challenge) may be longer than the small
  // body a range read allows: the cap has a floor, still bounded.
  const size_t cap = max_body == 0 ? 0 : std::max<size_t>(max_body, 64 << 10);
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> h = headers;
    if (std::string a = authorization(repo); !a.empty()) h.push_back(a);
    OC_ASSIGN_OR_RETURN(auto r, perform(method, url, h, body, upload_path, out_fd, cap, timeout_ms, progress));
    if (r.status != 401 || r.www_authenticate.empty()) return r;
    if (attempt == 2) {
      return makeError("registry " + registry_ +
                       " refused the credentials (HTTP 401 after authenticating); check "
                       "--creds FILE or ~/.docker/config.json");
    }
    // What the challenge asks for replaces what was sent (a wider scope, a
    // token that expired on the registry's clock).
    {
      std::lock_guard<std::mutex> lock(auth_mu_);
      auth_.erase(repo);
    }
    OC_TRY(answerChallenge(repo, r.www_authenticate));
    if (out_fd >= 0 && (::ftruncate(out_fd, 0) != 0 || ::lseek(out_fd, 0, SEEK_SET) != 0)) {
      return errnoError("rewind the download");
    }
  }
}

Result<FetchedManifest> RegistryClient::getManifest(const std::string& repo, const std::string& reference) {
  std::string url = baseUrl() + "/v2/" + repo + "/manifests/" + reference;
  std::string accept =
      std::string("Accept: ") + kOciManifest + ", " + kOciIndex + ", " + kDockerManifest + ", " + kDockerList;
  OC_ASSIGN_OR_RETURN(auto r,
                      request(repo, "GET", url, {accept}, nullptr, nullptr, -1, 8 << 20, options_.timeout_ms, nullptr));
  if (r.status != 200)
    return makeError(httpError("manifest " + registry_ + "/" + repo + ":" + reference, r.status, r.body));
  FetchedManifest m;
  m.body = std::move(r.body);
  m.digest = sha256Digest(m.body);
  m.media_type = r.content_type.substr(0, r.content_type.find(';'));
  if (m.media_type.empty() || m.media_type == "application/json") m.media_type = sniffMediaType(m.body);
  if (reference.rfind("sha256:", 0) == 0 && m.digest != reference) {
    return makeError("manifest " + reference + ": the registry sent content with digest " + m.digest, 5);
  }
  return m;
}

Result<std::string> RegistryClient::getBlob(const std::string& repo, const std::string& digest, size_t max_bytes) {
  std::string url = baseUrl() + "/v2/" + repo + "/blobs/" + digest;
  OC_ASSIGN_OR_RETURN(auto r,
                      request(repo, "GET", url, {}, nullptr, nullptr, -1, max_bytes, options_.timeout_ms, nullptr));
  if (r.status != 200) return makeError(httpError("blob " + digest, r.status, r.body));
  if (sha256Digest(r.body) != digest) return makeError("blob " + digest + ": content does not match its digest", 5);
  return std::move(r.body);
}

Status RegistryClient::getBlobToFile(const std::string& repo, const std::string& digest, const std::string& path,
                                     const ByteProgress& progress) {
  std::string tmp = path + ".part";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errnoError("create " + tmp);
  std::string url = baseUrl() + "/v2/" + repo + "/blobs/" + digest;
  auto r = request(repo, "GET", url, {}, nullptr, nullptr, fd, 0, options_.timeout_ms, &progress);
  ::close(fd);
  if (!r.ok() || r->status != 200) {
    ::unlink(tmp.c_str());
    if (!r.ok()) return r.error();
    return makeError(httpError("blob " + digest, r->status, ""));
  }
  auto got = sha256DigestOfFile(tmp);
  if (!got.ok() || *got != digest) {
    ::unlink(tmp.c_str());
    return makeError("blob " + digest + ": downloaded content does not match its digest", 5);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errnoError("rename " + tmp);
  return {};
}

Result<std::string> RegistryClient::getBlobRange(const std::string& repo, const std::string& digest, uint64_t offset,
                                                 uint64_t len) {
  if (len == 0) return std::string();
  std::string url = baseUrl() + "/v2/" + repo + "/blobs/" + digest;
  std::string range = "Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + len - 1);
  OC_ASSIGN_OR_RETURN(
      auto r, request(repo, "GET", url, {range}, nullptr, nullptr, -1, len + 1,
                      options_.range_timeout_ms + static_cast<long>(len >> 20) * 2000, nullptr));  // + 2 s per MiB
  if (r.status != 206 && r.status != 200) return makeError(httpError("range of blob " + digest, r.status, r.body), 5);
  if (r.status == 200) {  // a server that ignores Range: cut the piece out
    if (r.body.size() < offset + len) return makeError("blob " + digest + " is shorter than the range asked", 5);
    return r.body.substr(offset, len);
  }
  if (r.body.size() != len) {
    return makeError(
        "range of blob " + digest + ": got " + std::to_string(r.body.size()) + " bytes, asked " + std::to_string(len),
        5);
  }
  return std::move(r.body);
}

Result<bool> RegistryClient::hasBlob(const std::string& repo, const std::string& digest) {
  std::string url = baseUrl() + "/v2/" + repo + "/blobs/" + digest;
  OC_ASSIGN_OR_RETURN(auto r, request(repo, "HEAD", url, {}, nullptr, nullptr, -1, 0, options_.timeout_ms, nullptr));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  return makeError(httpError("HEAD blob " + digest, r.status, ""));
}

Status RegistryClient::pushBlobFile(const std::string& repo, const std::string& digest, const std::string& path) {
  OC_ASSIGN_OR_RETURN(bool have, hasBlob(repo, digest));
  if (have) return {};
  std::string start = baseUrl() + "/v2/" + repo + "/blobs/uploads/";
  OC_ASSIGN_OR_RETURN(auto r,
                      request(repo, "POST", start, {}, nullptr, nullptr, -1, 1 << 16, options_.timeout_ms, nullptr));
  if (r.status != 202 || r.location.empty()) return makeError(httpError("start upload to " + repo, r.status, r.body));
  std::string loc = r.location;
  if (loc.rfind("http", 0) != 0) loc = baseUrl() + loc;
  loc += (loc.find('?') == std::string::npos ? "?" : "&") + std::string("digest=") + digest;
  OC_ASSIGN_OR_RETURN(auto put, request(repo, "PUT", loc, {"Content-Type: application/octet-stream"}, nullptr, &path,
                                        -1, 1 << 16, options_.timeout_ms, nullptr));
  if (put.status != 201) return makeError(httpError("upload blob " + digest, put.status, put.body));
  return {};
}

Result<bool> RegistryClient::mountBlob(const std::string& repo, const std::string& digest, const std::string& from) {
  std::string url = baseUrl() + "/v2/" + repo + "/blobs/uploads/?mount=" + digest + "&from=" + from;
  OC_ASSIGN_OR_RETURN(auto r,
                      request(repo, "POST", url, {}, nullptr, nullptr, -1, 1 << 16, options_.timeout_ms, nullptr));
  if (r.status == 201) return true;
  if (r.status != 202) return makeError(httpError("mount blob " + digest + " from " + from, r.status, r.body));
  // Not mounted (the source is not readable to us, or the registry does not
  // mount): it opened an upload session instead, which would linger.
  if (!r.location.empty()) {
    std::string loc = r.location.rfind("http", 0) == 0 ? r.location : baseUrl() + r.location;
    (void)request(repo, "DELETE", loc, {}, nullptr, nullptr, -1, 1 << 16, options_.timeout_ms, nullptr);
  }
  return false;
}

Status RegistryClient::pushBlob(const std::string& repo, const std::string& digest, const std::string& data) {
  char tmpl[] = "/var/tmp/offcore-blob-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd < 0) return errnoError("mkstemp");
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  Status s = ok ? pushBlobFile(repo, digest, tmpl) : Status(errnoError("write " + std::string(tmpl)));
  ::unlink(tmpl);
  return s;
}

Status RegistryClient::putManifest(const std::string& repo, const std::string& reference, const std::string& media_type,
                                   const std::string& body) {
  std::string url = baseUrl() + "/v2/" + repo + "/manifests/" + reference;
  OC_ASSIGN_OR_RETURN(auto r, request(repo, "PUT", url, {"Content-Type: " + media_type}, &body, nullptr, -1, 1 << 16,
                                      options_.timeout_ms, nullptr));
  if (r.status != 201) return makeError(httpError("put manifest " + repo + ":" + reference, r.status, r.body));
  return {};
}

}  // namespace offcore::oci
