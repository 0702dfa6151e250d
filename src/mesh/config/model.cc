#include "mesh/config/model.h"

namespace offcore::mesh {

std::string canonicalHost(const std::string& host) {
  auto dot = host.find('.');
  return dot == std::string::npos ? host : host.substr(0, dot);
}

}  // namespace offcore::mesh
