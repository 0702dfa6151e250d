#include "cli/common.h"

#include <cstdio>

#include "api/api_client.h"
#include "base/files.h"
#include "dpu/node.h"

namespace offcore {

int fail(const std::string& what, const Error& error) {
  std::fprintf(stderr, "offcore: %s: %s\n", what.c_str(), error.message.c_str());
  return 1;
}

std::string renderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    if (widths.size() < r.size()) widths.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(widths[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string humanBytes(uint64_t bytes) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
  return buf;
}

Result<nlohmann::json> fetchNodeStatus(NodeManager& nodes, const std::string& name) {
  OC_ASSIGN_OR_RETURN(NodeState state, nodes.state(name));
  NodeLayout l = nodes.layout(name);
  ApiClient client(l.api_socket, 2000);
  auto body = client.call("GET", "/v1/status");
  if (body.ok()) {
    auto doc = nlohmann::json::parse(*body, nullptr, false);
    if (!doc.is_discarded()) return doc;
  }
  std::string vfs = readFile(l.run_dir + "/vfs.json").valueOr("[]");
  OC_ASSIGN_OR_RETURN(std::string local, nodes.statusJson(name, "[]", vfs, "unreachable"));
  return nlohmann::json::parse(local);
}

}  // namespace offcore
