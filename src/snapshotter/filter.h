// containerd's filter syntax (github.com/containerd/containerd/filters)
// applied to snapshot Info, as List (Walk) requests carry it:
//
//   selectors := selector ("," selector)*       all must match
//   selector  := fieldpath [("==" | "!=" | "~=") value]   no operator: presence
//   fieldpath := field ("." field)*            field: [A-Za-z0-9_]+ or "quoted"
//   value     := "quoted" | [^\s,]+            ~= also takes /re/ and |re|
//
// ~= patterns are RE2 (containerd compiles them with Go's regexp, the same
// syntax), matched in linear time, so a hostile pattern cannot stall List.
//
// A request's filters are OR-ed. Fields: name, parent, kind (active, view,
// committed), labels.KEY; unknown fields are absent, as in containerd.
// containerd's own unpacker sends e.g.
//   labels."containerd.io/snapshot.ref"==sha256:...,parent=="default/3/sha256:..."
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/regex.h"
#include "base/result.h"
#include "snapshotter/metastore.h"

namespace offcore {

class SnapshotFilter {
 public:
  // InvalidArgument (snap::kInvalidArgument) on a syntax error.
  static Result<SnapshotFilter> parse(const std::vector<std::string>& filters);
  bool matches(const SnapshotInfo& info) const;

  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const Regex> re;  // for kMatches (RE2: Go regexp syntax, as containerd)
  };

 private:
  std::vector<std::vector<Selector>> any_;  // OR of ANDs; empty: everything
};

}  // namespace offcore
