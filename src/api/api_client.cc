#include "api/api_client.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

namespace offcore {
namespace {

size_t appendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, long timeout_ms)
    : socket_path_(std::move(socket_path)), timeout_ms_(timeout_ms) {}

Result<ApiReply> ApiClient::request(const std::string& method, const std::string& path, const std::string& body) const {
  CURL* curl = curl_easy_init();
  if (!curl) return makeError("curl_easy_init failed");
  ApiReply reply;
  std::string url = "http://offcore" + path;
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms_);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &appendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_slist* headers = nullptr;
  if (method == "POST" || method == "PUT") {
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return makeError("cannot reach the agent at " + socket_path_ + ": " + curl_easy_strerror(rc));
  }
  return reply;
}

Result<ApiReply> ApiClient::get(const std::string& path) const { return request("GET", path, ""); }
Result<ApiReply> ApiClient::post(const std::string& path, const std::string& body) const {
  return request("POST", path, body);
}
Result<ApiReply> ApiClient::del(const std::string& path) const { return request("DELETE", path, ""); }

Result<std::string> ApiClient::call(const std::string& method, const std::string& path, const std::string& body) const {
  OC_ASSIGN_OR_RETURN(ApiReply reply, request(method, path, body));
  if (reply.status >= 200 && reply.status < 300) return reply.body;
  auto j = nlohmann::json::parse(reply.body, nullptr, false);
  // A peer may send anything; only a string "error" is taken as the message.
  std::string message = (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_string())
                            ? j["error"].get<std::string>()
                            : reply.body;
  return makeError(message);
}

}  // namespace offcore
