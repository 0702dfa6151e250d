#include "api/api.h"
#include "base/json.h"

#include <nlohmann/json.hpp>

namespace offcore {

ApiResponse ApiResponse::json(int status, const std::string& body) {
  return ApiResponse{status, "application/json", body};
}

ApiResponse ApiResponse::error(int status, const std::string& message) {
  return ApiResponse{status, "application/json", dumpJson(nlohmann::json{{"error", message}}) + "\n"};
}

ApiResponse ApiResponse::text(int status, const std::string& body) {
  return ApiResponse{status, "text/plain; version=0.0.4", body};
}

}  // namespace offcore
