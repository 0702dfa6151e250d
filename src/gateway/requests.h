// Parsers for the gateway's management API bodies (docs/API.md, "Storage
// gateway"). Each parses the whole body before anything is changed, so a
// request is taken all or nothing; every error is one line a client can show.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace offcore::gateway {

inline constexpr size_t kMaxAllowedHosts = 1024;
inline constexpr size_t kMaxNqnBytes = 223;  // NVMe Base 2.0, 4.5: an NQN is at most 223 bytes

// An allowed_hosts entry is a host NQN, or a prefix ending in ":*" that
// admits every host NQN below it (e.g. "nqn.2026-11.io.offcore:node:*", the
// cluster's nodes). '*' is accepted nowhere else; a prefix has no secret.

// What a request asks for one host's DH-HMAC-CHAP secret (or its controller
// secret): an entry of "allowed_hosts" is an NQN string, or an object
// {"nqn": ..., "dhchap_secret": S, "dhchap_ctrl_secret": S} with S one of
// "generate", "none" or a secret "DHHC-1:..:..:".
struct SecretRequest {
  enum class Mode { kDefault, kGenerate, kNone, kGiven };
  Mode mode = Mode::kDefault;  // host secret: a new host gets one, a listed host keeps its own; controller: none
  std::string text;            // kGiven
};
struct HostAuthRequest {
  SecretRequest secret;
  SecretRequest ctrl_secret;
};

// POST /v1/volumes {"name": "v1", "size": "10G" | 10737418240, "allowed_hosts": ["nqn...", {...}, ...]}
struct CreateVolumeRequest {
  std::string name;
  uint64_t size_bytes = 0;
  std::optional<std::vector<std::string>> allowed_hosts;  // absent: any host
  std::map<std::string, HostAuthRequest> host_auth;       // entries given as objects
};
Result<CreateVolumeRequest> parseCreateVolume(const std::string& body);

// POST /v1/volumes/NAME/hosts {"allowed_hosts": [...]}
struct HostsRequest {
  std::vector<std::string> hosts;
  std::map<std::string, HostAuthRequest> host_auth;
};
Result<HostsRequest> parseHostsRequest(const std::string& body);
// POST /v1/volumes/NAME/{snapshot,clone} {"name": "...", "allowed_hosts": ["nqn...", ...]}
// The new volume's access list is set before it is exported (absent: any
// host); its hosts are NQN only until /hosts gives them secrets.
struct DerivedVolumeRequest {
  std::string name;
  std::optional<std::vector<std::string>> allowed_hosts;
};
Result<DerivedVolumeRequest> parseDerivedVolume(const std::string& body);
// POST /v1/volumes/NAME/resize {"size": ...}
Result<uint64_t> parseResizeRequest(const std::string& body);

}  // namespace offcore::gateway
