// Istio-shaped YAML -> MeshConfig, and MeshConfig <-> JSON.
//
// `offcore mesh apply -f` takes the documents users write for Istio:
// VirtualService and DestinationRule (networking.istio.io/v1alpha3,
// v1beta1, v1), PeerAuthentication and AuthorizationPolicy
// (security.istio.io/v1beta1, v1), with Istio's field names and meanings
// for the subset model.h holds. Everything else - a field offcore does not
// implement (`mirror`, `corsPolicy`, `when`, ...) or one Istio does not
// know either - is an error `file:line: Kind "name": field.path: not
// supported by offcore`, never ignored. All errors of a file are reported
// at once, one per line; nothing is returned unless every document is
// valid. Never throws.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "mesh/config/model.h"

namespace offcore::mesh {

// Canonical kind names, as in YAML.
inline constexpr const char* kVirtualService = "VirtualService";
inline constexpr const char* kDestinationRule = "DestinationRule";
inline constexpr const char* kPeerAuthentication = "PeerAuthentication";
inline constexpr const char* kAuthorizationPolicy = "AuthorizationPolicy";

// Where one parsed document came from, for the cross-checks of an apply
// (mesh_store.h) to name file:line.
struct MeshDocument {
  std::string kind;  // canonical, e.g. "VirtualService"
  std::string ns, name;
  size_t index = 0;  // into the MeshConfig vector of its kind
  std::string file;
  int line = 0;  // of the document's first line
  // Lines of the fields cross-checked against the cluster: "spec.hosts[0]",
  // "spec.host", "spec.http[0].route[1].destination.host", "....subset".
  std::map<std::string, int> field_lines;
  // `file:line: Kind "name": ` for an error at a field (its line when known).
  std::string where(const std::string& field = "") const;
};

struct ParsedMesh {
  MeshConfig config;
  std::vector<MeshDocument> documents;  // in file order
};

// Every document of a multi-document YAML text.
Result<ParsedMesh> parseMeshDocuments(const std::string& text, const std::string& file);
// The same, without the locations.
Result<MeshConfig> parseMeshYaml(const std::string& text, const std::string& file);

// User spellings ("vs", "virtualservice", "VirtualServices", "dr", "pa",
// "authorizationpolicy", ...) -> the canonical kind.
Result<std::string> canonicalMeshKind(const std::string& text);
// "virtualservice" for "VirtualService": kubectl's resource/name output.
std::string lowerKind(const std::string& kind);

// "1.5s", "200ms", "1m", "2h", "0s" -> milliseconds; whole milliseconds only.
Result<Millis> parseDuration(const std::string& text);
// The shortest exact spelling: 1500ms -> "1.5s", 200ms -> "200ms".
std::string formatDuration(Millis d);

// The JSON form of the applied config (<cluster_dir>/mesh/config.json,
// `mesh get --json`). Field names are Istio's where it has one.
nlohmann::json toJson(const MeshConfig& c);
nlohmann::json toJson(const VirtualService& v);
nlohmann::json toJson(const DestinationRule& d);
nlohmann::json toJson(const PeerAuthentication& p);
nlohmann::json toJson(const AuthorizationPolicy& a);
// Inverse of toJson; `where` prefixes errors. Never throws.
Result<MeshConfig> meshConfigFromJson(const nlohmann::json& j, const std::string& where);

}  // namespace offcore::mesh
