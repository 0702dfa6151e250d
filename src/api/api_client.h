// ApiClient: the CLI's side of the API channel (libcurl over a unix socket).
#pragma once

#include <string>

#include "base/result.h"

namespace offcore {

struct ApiReply {
  long status = 0;
  std::string body;
};

class ApiClient {
 public:
  explicit ApiClient(std::string socket_path, long timeout_ms = 5000);

  Result<ApiReply> get(const std::string& path) const;
  Result<ApiReply> post(const std::string& path, const std::string& json_body) const;
  Result<ApiReply> del(const std::string& path) const;

  // A 2xx reply's body, or an error carrying the server's {"error": ...}.
  Result<std::string> call(const std::string& method, const std::string& path, const std::string& json_body = "") const;

 private:
  Result<ApiReply> request(const std::string& method, const std::string& path, const std::string& body) const;
  std::string socket_path_;
  long timeout_ms_;
};

}  // namespace offcore
