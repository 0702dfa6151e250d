// Internal to the Istio YAML parser (istio_yaml*.cc): the walkers of each
// kind's spec and the value checks they share. Each appends errors to the
// document and fills in what it could.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/yaml_fields.h"
#include "mesh/config/istio_yaml.h"

namespace offcore::mesh::detail {

using yaml::Doc;
using yaml::Fields;

// One document being parsed: its errors and the locations kept for apply.
struct Ctx {
  Doc& doc;
  MeshDocument& md;
};

// A list at key: each(item, "path[i]", line) for every item. A value that
// is not a list is an error; so is an empty one when non_empty.
void eachItem(Fields& f, const std::string& key, bool required, bool non_empty, Doc& doc,
              const std::function<void(const YAML::Node&, const std::string&, int)>& each);
// A list of strings.
void strList(Fields& f, const std::string& key, std::vector<std::string>& out, Doc& doc);
// A Go-style duration ("2s", "1.5s", "200ms"); min is the least allowed.
bool duration(Fields& f, const std::string& key, Millis& out, Millis min, bool required);
// `key: {value: 0-100}` (Istio's Percent).
bool percentage(Fields& f, const std::string& key, double& out, Doc& doc, bool required);
// A plain (unquoted) decimal number in [lo, hi] (a protobuf double / DoubleValue).
bool number(Fields& f, const std::string& key, double& out, double lo, double hi, Doc& doc, bool required);
// A section at key, walked by fn and then finished; false when absent.
bool section(Fields& f, const std::string& key, bool required, Doc& doc, const std::function<void(Fields&)>& fn);
// `selector: {matchLabels: {...}}`.
void selector(Fields& spec, Labels& out, Doc& doc);
// DNS-1123 label (a namespace, a subset name).
std::string labelProblem(const std::string& v);

void parseVirtualService(Fields& spec, VirtualService& vs, Ctx& c);
void parseDestinationRule(Fields& spec, DestinationRule& dr, Ctx& c);
void parsePeerAuthentication(Fields& spec, PeerAuthentication& pa, Ctx& c);
void parseAuthorizationPolicy(Fields& spec, AuthorizationPolicy& ap, Ctx& c);

}  // namespace offcore::mesh::detail
