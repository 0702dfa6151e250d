// RegistryClient: the Registry HTTP API v2 (the OCI distribution spec) over
// libcurl: manifests, blobs, ranged blob reads and monolithic pushes. Plain
// HTTP is used for loopback registries and when asked (--plain-http); HTTPS
// otherwise, verified against the system CAs or a CA file the user gives.
// Authentication (registry_auth.h): a 401 is answered with Basic
// credentials or a bearer token from the registry's token service, cached
// per repository until it expires (then fetched again).
//
// Thread-safe: each call borrows a curl easy handle from a small pool, so
// connections are reused across calls and several threads fetch in
// parallel (the lazy loader's FUSE workers do).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "image/registry_auth.h"

namespace offcore::oci {

struct RegistryOptions {
  bool plain_http = false;  // forced plain HTTP (loopback registries always use it)
  long connect_timeout_ms = 3000;
  long timeout_ms = 600000;       // whole-blob transfers
  long range_timeout_ms = 10000;  // one chunk; the lazy loader retries
  size_t pool_size = 8;
  // Credentials: given, or read when a registry first asks, from creds_file
  // ("" = Docker's config.json); none there: anonymous.
  std::optional<RegistryCredentials> credentials;
  std::string creds_file;
  std::string ca_file;  // PEM CAs for HTTPS ("" = the system's)
};

struct FetchedManifest {
  std::string body;
  std::string media_type;
  std::string digest;  // sha256 of body
};

using ByteProgress = std::function<void(uint64_t done, uint64_t total)>;

class RegistryClient {
 public:
  RegistryClient(std::string registry, RegistryOptions options = {});
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const std::string& registry() const { return registry_; }
  std::string baseUrl() const;

  // Accepts OCI and Docker manifests and indexes. A digest reference is
  // verified against the body.
  Result<FetchedManifest> getManifest(const std::string& repo, const std::string& reference);
  // Small blobs (configs, indexes) into memory; verified against digest.
  Result<std::string> getBlob(const std::string& repo, const std::string& digest, size_t max_bytes = 64 << 20);
  // Large blobs straight to a file; verified against digest.
  Status getBlobToFile(const std::string& repo, const std::string& digest, const std::string& path,
                       const ByteProgress& progress = {});
  // Bytes [offset, offset+len) of a blob (HTTP Range; 206 expected).
  Result<std::string> getBlobRange(const std::string& repo, const std::string& digest, uint64_t offset, uint64_t len);

  Result<bool> hasBlob(const std::string& repo, const std::string& digest);
  // POST + PUT monolithic upload; skipped when the registry has the blob.
  Status pushBlobFile(const std::string& repo, const std::string& digest, const std::string& path);
  Status pushBlob(const std::string& repo, const std::string& digest, const std::string& data);
  // Cross-repository blob mount (POST ...?mount=DIGEST&from=REPO): true when
  // the registry linked the blob into repo (201), false when it would not
  // (it opened an upload instead, 202, which is cancelled): push it then.
  Result<bool> mountBlob(const std::string& repo, const std::string& digest, const std::string& from);
  Status putManifest(const std::string& repo, const std::string& reference, const std::string& media_type,
                     const std::string& body);

  uint64_t bytesDownloaded() const;
  uint64_t tokensFetched() const { return tokens_fetched_.load(); }

 private:
  struct Handle;
  struct Response;
  std::unique_ptr<Handle> borrow();
  void giveBack(std::unique_ptr<Handle> h);
  // perform() with authentication: adds what the repository's last
  // challenge asked for, and on a 401 answers the challenge and tries again.
  Result<Response> request(const std::string& repo, const std::string& method, const std::string& url,
                           const std::vector<std::string>& headers, const std::string* body,
                           const std::string* upload_path, int out_fd, size_t max_body, long timeout_ms,
                           const ByteProgress* progress);
  Status answerChallenge(const std::string& repo, const std::string& challenge);
  std::string authorization(const std::string& repo);
  Result<Response> perform(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                           const std::string* body, const std::string* upload_path, int out_fd, size_t max_body,
                           long timeout_ms, const ByteProgress* progress);

  const std::string registry_;
  const RegistryOptions options_;
  bool plain_http_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> pool_;
  std::atomic<uint64_t> downloaded_{0};
  std::atomic<uint64_t> tokens_fetched_{0};
  struct Token {
    std::string header;  // "Authorization: ..."
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex auth_mu_;
  std::map<std::string, Token> auth_;  // by repository ("" for Basic, which covers them all)
};

bool isLoopbackRegistry(const std::string& registry);

}  // namespace offcore::oci
