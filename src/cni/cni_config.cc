#include "cni/cni_config.h"

#include <algorithm>
#include <cstdio>

#include "dpu/layout.h"

namespace offcore {
namespace {

using Json = nlohmann::ordered_json;

Error envError(const std::string& msg) { return makeError(msg, kCniInvalidEnv); }

// Untrusted text quoted in a message: one line, bounded.
std::string shown(const std::string& s, size_t max = 64) {
  std::string out = s.substr(0, max);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < ' ' || c == 0x7f) c = '?';
  }
  return s.size() > max ? out + "..." : out;
}
Error confError(const std::string& msg) { return makeError(msg, kCniInvalidConfig); }

// Parses a.b.c; false for anything else.
bool parseVersion(const std::string& v, int out[3]) {
  int n = 0;
  char tail = 0;
  if (v.size() > 32 || std::sscanf(v.c_str(), "%d.%d.%d%n%c", &out[0], &out[1], &out[2], &n, &tail) != 3) return false;
  return static_cast<size_t>(n) == v.size() && out[0] >= 0 && out[1] >= 0 && out[2] >= 0;
}

std::string getEnv(const std::map<std::string, std::string>& env, const char* key) {
  auto it = env.find(key);
  return it == env.end() ? "" : it->second;
}

// SPEC.md: a container id starts with an alphanumeric character, then
// alphanumerics, '_', '.' and '-'.
bool validContainerId(const std::string& id) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (id.empty() || id.size() > 1024 || !alnum(id[0])) return false;
  return std::all_of(id.begin(), id.end(), [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// SPEC.md: at most IFNAMSIZ-1 bytes, not "." or "..", no '/', ':' or space.
bool validIfname(const std::string& name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(),
                      [](char c) { return c == '/' || c == ':' || static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

// Printable ASCII without spaces or '/': names the agent will look up.
bool plainName(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f && c != '/'; });
}

// CNI_ARGS is "K=V;K=V". Unknown keys are fine (we read two); a pair
// without '=' is a broken environment.
Result<std::map<std::string, std::string>> parseCniArgs(const std::string& args) {
  std::map<std::string, std::string> out;
  size_t pos = 0;
  while (pos <= args.size()) {
    size_t end = args.find(';', pos);
    if (end == std::string::npos) end = args.size();
    std::string pair = args.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) {
      return envError("CNI_ARGS: '" + shown(pair) + "' is not KEY=VALUE (expected K=V;K=V)");
    }
    out[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  return out;
}

Status readString(const Json& doc, const char* key, std::string& out, bool required) {
  auto it = doc.find(key);
  if (it == doc.end()) {
    if (required) return confError(std::string("network configuration: field '") + key + "' is required");
    return okStatus();
  }
  if (!it->is_string()) return confError(std::string("network configuration: field '") + key + "' must be a string");
  out = it->get<std::string>();
  return okStatus();
}

}  // namespace

const std::vector<std::string>& cniSupportedVersions() {
  static const std::vector<std::string> versions = {"0.3.0", "0.3.1", "0.4.0", "1.0.0"};
  return versions;
}

bool cniVersionAtLeast(const std::string& version, const std::string& min) {
  int a[3], b[3];
  if (!parseVersion(version, a) || !parseVersion(min, b)) return false;
  return std::lexicographical_compare(b, b + 3, a, a + 3) || std::equal(a, a + 3, b);
}

const char* cniCommandName(CniCommand c) {
  switch (c) {
    case CniCommand::kAdd: return "ADD";
    case CniCommand::kDel: return "DEL";
    case CniCommand::kCheck: return "CHECK";
    case CniCommand::kVersion: return "VERSION";
  }
  return "?";
}

Result<CniEnv> parseCniEnv(const std::map<std::string, std::string>& env) {
  CniEnv out;
  std::string command = getEnv(env, "CNI_COMMAND");
  if (command == "ADD")
    out.command = CniCommand::kAdd;
  else if (command == "DEL")
    out.command = CniCommand::kDel;
  else if (command == "CHECK")
    out.command = CniCommand::kCheck;
  else if (command == "VERSION")
    return out;
  else if (command.empty())
    return envError("CNI_COMMAND is not set: this is a CNI plugin, run by a container runtime");
  else
    return envError("CNI_COMMAND '" + shown(command, 32) + "' is not supported (ADD, DEL, CHECK, VERSION)");

  out.container_id = getEnv(env, "CNI_CONTAINERID");
  if (out.container_id.empty()) return envError("CNI_CONTAINERID is not set");
  if (!validContainerId(out.container_id)) {
    return envError("CNI_CONTAINERID '" + shown(out.container_id) +
                    "' is not a container id (alphanumerics, '_', '.', '-'; at most 1024)");
  }
  out.ifname = getEnv(env, "CNI_IFNAME");
  if (out.ifname.empty()) return envError("CNI_IFNAME is not set");
  if (!validIfname(out.ifname)) {
    return envError("CNI_IFNAME '" + shown(out.ifname, 32) +
                    "' is not an interface name (1-15 bytes, no '/', ':' or spaces)");
  }
  out.netns = getEnv(env, "CNI_NETNS");
  if (out.netns.empty() && out.command != CniCommand::kDel) return envError("CNI_NETNS is not set");
  if (!out.netns.empty() &&
      (out.netns[0] != '/' || out.netns.size() > 4096 || out.netns.find('\0') != std::string::npos)) {
    return envError("CNI_NETNS '" + shown(out.netns) + "' is not an absolute path");
  }

  std::string args = getEnv(env, "CNI_ARGS");
  if (args.size() > 65536) return envError("CNI_ARGS is longer than 64 KiB");
  OC_ASSIGN_OR_RETURN(auto kv, parseCniArgs(args));
  out.pod_name = kv.count("K8S_POD_NAME") && !kv["K8S_POD_NAME"].empty() ? kv["K8S_POD_NAME"] : out.container_id;
  out.pod_namespace =
      kv.count("K8S_POD_NAMESPACE") && !kv["K8S_POD_NAMESPACE"].empty() ? kv["K8S_POD_NAMESPACE"] : "default";
  if (!plainName(out.pod_name, 253)) return envError("CNI_ARGS: K8S_POD_NAME is not a name (1-253 printable bytes)");
  if (!plainName(out.pod_namespace, 253)) {
    return envError("CNI_ARGS: K8S_POD_NAMESPACE is not a name (1-253 printable bytes)");
  }
  if (auto sa = kv.find("OFFCORE_SERVICE_ACCOUNT"); sa != kv.end() && !sa->second.empty()) {
    out.service_account = sa->second;
    if (!plainName(out.service_account, 253) || out.service_account.find('/') != std::string::npos) {
      return envError("CNI_ARGS: OFFCORE_SERVICE_ACCOUNT is not a name (1-253 printable bytes, no '/')");
    }
  }
  if (out.pod_namespace.find('/') != std::string::npos) {
    return envError("CNI_ARGS: K8S_POD_NAMESPACE must not contain '/'");
  }
  return out;
}

int jsonNestingDepth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '{' || c == '[')
      deepest = std::max(deepest, ++depth);
    else if ((c == '}' || c == ']') && depth > 0)
      --depth;
  }
  return deepest;
}

Result<CniNetConf> parseCniNetConf(const std::string& text, const std::string& default_run_root) {
  auto decodeError = [](const std::string& why) {
    return makeError("network configuration on stdin: " + why, kCniDecodeFailed);
  };
  if (text.size() > kCniMaxConfigBytes) return decodeError("larger than 1 MiB");
  if (jsonNestingDepth(text) > kCniMaxJsonDepth) {
    return decodeError("nested deeper than " + std::to_string(kCniMaxJsonDepth) + " levels");
  }
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded()) return decodeError("not valid JSON");
  if (!doc.is_object()) return decodeError("not a JSON object");

  CniNetConf c;
  auto v = doc.find("cniVersion");
  if (v == doc.end()) return confError("network configuration: field 'cniVersion' is required");
  if (!v->is_string()) return confError("network configuration: field 'cniVersion' must be a string");
  c.cni_version = v->get<std::string>();
  const auto& supported = cniSupportedVersions();
  if (std::find(supported.begin(), supported.end(), c.cni_version) == supported.end()) {
    return makeError("cniVersion '" + shown(c.cni_version, 32) +
                         "' is not supported by offcore-cni (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0)",
                     kCniIncompatibleVersion);
  }

  OC_TRY(readString(doc, "name", c.name, true));
  std::string type;
  OC_TRY(readString(doc, "type", type, false));
  OC_TRY(readString(doc, "node", c.node, true));
  if (auto s = validateName("node", c.node); !s.ok()) {
    return confError("network configuration: " + shown(s.error().message, 200));
  }
  OC_TRY(readString(doc, "vpc", c.vpc, false));
  if (!plainName(c.vpc, 253)) return confError("network configuration: field 'vpc' is not a name");
  OC_TRY(readString(doc, "subnet", c.subnet, true));
  if (!plainName(c.subnet, 253)) return confError("network configuration: field 'subnet' is not a name");

  if (auto m = doc.find("mtu"); m != doc.end()) {
    if (!m->is_number_integer()) return confError("network configuration: field 'mtu' must be an integer");
    auto mtu = m->get<long long>();
    if (mtu < 576 || mtu > 9000) {
      return confError("network configuration: field 'mtu' is " + std::to_string(mtu) + ", must be 576..9000");
    }
    c.mtu = static_cast<int>(mtu);
  }

  if (auto m = doc.find("mesh"); m != doc.end()) {
    if (!m->is_boolean()) return confError("network configuration: field 'mesh' must be true or false");
    c.mesh = m->get<bool>();
  }

  c.run_root = default_run_root;
  OC_TRY(readString(doc, "runRoot", c.run_root, false));
  if (c.run_root.empty() || c.run_root[0] != '/' || c.run_root.find('\0') != std::string::npos) {
    return confError("network configuration: field 'runRoot' must be an absolute path");
  }
  while (c.run_root.size() > 1 && c.run_root.back() == '/') c.run_root.pop_back();
  // sun_path holds 107 bytes plus the terminator.
  if (c.apiSocket().size() > 107) {
    return confError("network configuration: runRoot '" + shown(c.run_root) + "' is too long for a unix socket path");
  }

  if (auto p = doc.find("prevResult"); p != doc.end() && !p->is_null()) {
    if (!p->is_object()) return confError("network configuration: field 'prevResult' must be an object");
    c.prev_result = *p;
  }
  // Runtime-injected fields we do not use; a wrong type still means a broken config.
  for (const char* key : {"runtimeConfig", "args", "capabilities", "ipam", "dns"}) {
    auto it = doc.find(key);
    if (it != doc.end() && !it->is_object() && !it->is_null()) {
      return confError(std::string("network configuration: field '") + key + "' must be an object");
    }
  }
  return c;
}

std::string cniReplyVersion(const std::string& text) {
  if (text.size() > kCniMaxConfigBytes || jsonNestingDepth(text) > kCniMaxJsonDepth) return kCniLatestVersion;
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return kCniLatestVersion;
  auto v = doc.find("cniVersion");
  if (v == doc.end() || !v->is_string()) return kCniLatestVersion;
  const auto& supported = cniSupportedVersions();
  auto s = v->get<std::string>();
  return std::find(supported.begin(), supported.end(), s) == supported.end() ? kCniLatestVersion : s;
}

}  // namespace offcore
