#include "image/registry_auth.h"

#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "base/files.h"

namespace offcore::oci {

using nlohmann::json;

namespace {

constexpr size_t kMaxHeader = 4096;
constexpr size_t kMaxToken = 64 * 1024;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "auths" keys name the registry as a host, or as a URL of it.
bool sameRegistry(const std::string& key, const std::string& registry) {
  std::string k = key;
  for (const char* scheme : {"https://", "http://"}) {
    if (k.rfind(scheme, 0) == 0) k = k.substr(std::string(scheme).size());
  }
  k = k.substr(0, k.find('/'));
  return k == registry;
}

}  // namespace

Result<std::optional<RegistryCredentials>> loadRegistryCredentials(const std::string& registry,
                                                                   const std::string& creds_file) {
  std::string path = creds_file;
  if (path.empty()) {
    const char* dc = std::getenv("DOCKER_CONFIG");
    const char* home = std::getenv("HOME");
    if (dc && *dc) {
      path = std::string(dc) + "/config.json";
    } else if (home && *home) {
      path = std::string(home) + "/.docker/config.json";
    } else {
      return std::optional<RegistryCredentials>();
    }
    if (!pathExists(path)) return std::optional<RegistryCredentials>();
  }
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return makeError("credentials file " + path + " is not a JSON object");
  auto str = [](const json& o, const char* k) {
    return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
  };
  if (j.contains("username")) {
    RegistryCredentials c{str(j, "username"), str(j, "password")};
    if (c.username.empty()) return makeError("credentials file " + path + ": empty username");
    return std::optional<RegistryCredentials>(c);
  }
  if (!j.contains("auths") || !j["auths"].is_object()) {
    if (!creds_file.empty()) {
      return makeError("credentials file " + path + " has neither username/password nor auths");
    }
    return std::optional<RegistryCredentials>();
  }
  for (const auto& [key, entry] : j["auths"].items()) {
    if (!sameRegistry(key, registry) || !entry.is_object()) continue;
    if (std::string a = str(entry, "auth"); !a.empty()) {
      auto raw = base64Decode(a, kMaxToken);
      auto colon = raw.ok() ? raw->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        return makeError("credentials file " + path + ": the auth entry for " + key +
                         " is not base64 of user:password");
      }
      return std::optional<RegistryCredentials>(RegistryCredentials{raw->substr(0, colon), raw->substr(colon + 1)});
    }
    if (!str(entry, "username").empty()) {
      return std::optional<RegistryCredentials>(RegistryCredentials{str(entry, "username"), str(entry, "password")});
    }
  }
  return std::optional<RegistryCredentials>();
}

Result<AuthChallenge> parseAuthChallenge(const std::string& header) {
  if (header.empty() || header.size() > kMaxHeader) return makeError("no usable WWW-Authenticate header");
  AuthChallenge c;
  size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  size_t s = i;
  while (i < header.size() && header[i] != ' ') ++i;
  c.scheme = lower(header.substr(s, i - s));
  if (c.scheme != "basic" && c.scheme != "bearer") {
    return makeError("unsupported authentication scheme '" + header.substr(s, std::min<size_t>(i - s, 32)) + "'");
  }
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    size_t k = i;
    while (i < header.size() && header[i] != '=' && header[i] != ',') ++i;
    std::string key = lower(header.substr(k, i - k));
    while (!key.empty() && key.back() == ' ') key.pop_back();
    if (i >= header.size() || header[i] != '=') continue;
    ++i;
    std::string value;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        value += header[i++];
      }
      if (i >= header.size()) return makeError("WWW-Authenticate: unterminated quoted value");
      ++i;
    } else {
      size_t v = i;
      while (i < header.size() && header[i] != ',') ++i;
      value = header.substr(v, i - v);
      while (!value.empty() && value.back() == ' ') value.pop_back();
    }
    if (key == "realm") c.realm = value;
    if (key == "service") c.service = value;
    if (key == "scope") c.scope = value;
  }
  if (c.scheme == "bearer" && c.realm.rfind("http://", 0) != 0 && c.realm.rfind("https://", 0) != 0) {
    return makeError("WWW-Authenticate: the bearer realm is not an http(s) URL");
  }
  return c;
}

Result<BearerToken> parseTokenResponse(const std::string& body) {
  if (body.size() > kMaxToken) return makeError("token response too large");
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return makeError("token response is not a JSON object");
  BearerToken t;
  for (const char* k : {"token", "access_token"}) {
    if (j.contains(k) && j[k].is_string() && !j[k].get<std::string>().empty()) t.token = j[k].get<std::string>();
  }
  if (t.token.empty()) return makeError("token response carries no token");
  for (char ch : t.token) {
    if (ch <= ' ' || ch > '~') return makeError("token response: the token has characters a header cannot carry");
  }
  if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
    t.expires_in = std::max<long>(1, std::min<long>(j["expires_in"].get<long>(), 86400));
  }
  return t;
}

}  // namespace offcore::oci
