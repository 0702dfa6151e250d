// The CNI plugin's inputs: the network configuration on stdin and the CNI_*
// environment, parsed and validated into plain structs. Pure functions, no
// I/O. Both inputs are untrusted (whatever execs the plugin chooses them), so
// nothing here throws and every size is bounded.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore {

// CNI's well-known error codes (SPEC.md, "Error"). Inside src/cni an Error's
// `code` carries one of these rather than an errno: it becomes the "code" of
// the error JSON the runtime reads.
enum CniCode : int {
  kCniIncompatibleVersion = 1,
  kCniUnsupportedField = 2,
  kCniUnknownContainer = 3,
  kCniInvalidEnv = 4,
  kCniIoFailure = 5,
  kCniDecodeFailed = 6,
  kCniInvalidConfig = 7,
  kCniTryAgainLater = 11,
};

inline constexpr size_t kCniMaxConfigBytes = 1 << 20;  // stdin
inline constexpr int kCniMaxJsonDepth = 64;
inline constexpr const char* kCniLatestVersion = "1.0.0";

// The versions whose results we can render, oldest first.
const std::vector<std::string>& cniSupportedVersions();
// "0.4.0" >= "0.3.1"; false for anything that is not a.b.c.
bool cniVersionAtLeast(const std::string& version, const std::string& min);

enum class CniCommand { kAdd, kDel, kCheck, kVersion };
const char* cniCommandName(CniCommand c);

struct CniEnv {
  CniCommand command = CniCommand::kVersion;
  std::string container_id;   // CNI_CONTAINERID
  std::string netns;          // CNI_NETNS; may be empty on DEL (the sandbox is gone)
  std::string ifname;         // CNI_IFNAME
  std::string pod_name;       // K8S_POD_NAME from CNI_ARGS, else the container id
  std::string pod_namespace;  // K8S_POD_NAMESPACE from CNI_ARGS, else "default"
  // OFFCORE_SERVICE_ACCOUNT from CNI_ARGS, else "default": the pod's mesh
  // identity (Kubernetes passes no service account to CNI plugins).
  std::string service_account = "default";
};

// The fields of our network configuration; see src/cni/README.md.
struct CniNetConf {
  std::string cni_version;
  std::string name;
  std::string node;  // the offcore node whose SoC serves this host
  std::string vpc = "default";
  std::string subnet;
  int mtu = 1450;
  bool mesh = false;                   // the pod joins the node's service mesh (docs/MESH.md)
  std::string run_root;                // where <node>/api.sock lives
  nlohmann::ordered_json prev_result;  // null when the runtime sent none

  std::string apiSocket() const { return run_root + "/" + node + "/api.sock"; }
};

// Reads only CNI_COMMAND for VERSION; ADD/DEL/CHECK also need CNI_CONTAINERID
// and CNI_IFNAME, ADD/CHECK CNI_NETNS. Errors carry kCniInvalidEnv.
Result<CniEnv> parseCniEnv(const std::map<std::string, std::string>& env);

// `default_run_root` applies when the config has no runRoot. Errors carry
// kCniDecodeFailed, kCniIncompatibleVersion or kCniInvalidConfig.
Result<CniNetConf> parseCniNetConf(const std::string& text, const std::string& default_run_root);

// The cniVersion an error reply should carry: the config's, if it has a
// supported one, else the latest.
std::string cniReplyVersion(const std::string& text);

// Deepest nesting of {} and [] in `text`, not counting brackets inside JSON
// strings; parsing, copying and dumping a json value recurse that deep.
int jsonNestingDepth(const std::string& text);

}  // namespace offcore
