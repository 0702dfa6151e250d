// Registry authentication as the distribution spec and Docker clients do it:
// a 401 carries `WWW-Authenticate: Basic realm=...` (send the credentials)
// or `Bearer realm=...,service=...,scope=...` (get a token from the realm,
// with the credentials if there are any, and send it). Credentials come from
// a file the user names (--creds) or Docker's ~/.docker/config.json
// (`auths`, keyed by registry host). Never logged, never in the catalog.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"

namespace offcore::oci {

struct RegistryCredentials {
  std::string username, password;
};

// creds_file: {"username": U, "password": P}, or a Docker config with
// `auths`; "" reads $DOCKER_CONFIG/config.json or $HOME/.docker/config.json.
// No file, or no entry for the registry: nullopt (anonymous). A file that is
// there but malformed is an error.
Result<std::optional<RegistryCredentials>> loadRegistryCredentials(const std::string& registry,
                                                                   const std::string& creds_file);

struct AuthChallenge {
  std::string scheme;  // "basic" or "bearer" (lower case)
  std::string realm, service, scope;
};

// Parses one WWW-Authenticate value (untrusted: from the registry). Quoted
// and bare parameter values; unknown parameters are ignored. Fuzzed.
Result<AuthChallenge> parseAuthChallenge(const std::string& header);

// The token server's answer: {"token"|"access_token", "expires_in"}.
struct BearerToken {
  std::string token;
  long expires_in = 60;  // seconds; the spec's default when absent
};
Result<BearerToken> parseTokenResponse(const std::string& body);

}  // namespace offcore::oci
