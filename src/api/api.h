// The API channel: HTTP/1.1 with JSON bodies on a unix socket, readable with
// `curl --unix-socket /run/offcore/N/api.sock http://offcore/v1/status`.
//
// A subsystem exposes its endpoints by calling ApiServer::route() from its
// own registerRoutes() function, which the agent calls explicitly at start.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace offcore {

struct ApiRequest {
  std::string method;  // GET, POST, DELETE, PUT
  std::string path;    // without the query string
  std::map<std::string, std::string> query;
  std::string body;
  // The part of the path after the route's prefix, for routes ending in '/'
  // ("/v1/services/" matched by "/v1/services/web" gives "web").
  std::string tail;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;

  static ApiResponse json(int status, const std::string& body);
  // {"error": message}; message says what to do next.
  static ApiResponse error(int status, const std::string& message);
  static ApiResponse text(int status, const std::string& body);
};

using ApiHandler = std::function<ApiResponse(const ApiRequest&)>;

}  // namespace offcore
