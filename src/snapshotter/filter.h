// containerd's filter syntax (github.com/containerd/containerd/filters)
// applied to snapshot Info, as List (Walk) requests carry it:
//
//   selectors := selector ("," selector)*       all must match
//   selector  := fieldpath [("==" | "!=" | "~=") value]   no operator: presence
//   fieldpath := field ("." field)*            field: [A-Za-z0-9_]+ or "quoted"
//   value     := "quoted" | [^\s,]+            ~= also takes /re/ and |re|
//
// A request's filters are OR-ed. Fields: name, parent, kind (active, view,
// committed), labels.KEY; unknown fields are absent, as in containerd.
// containerd's own unpacker sends e.g.
//   labels."containerd.io/snapshot.ref"==sha256:...,parent=="default/3/sha256:..."
#pragma once

#include <regex>
#include <string>
#include <vector>

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
    std::regex re;  // for kMatches
  };

 private:
  std::vector<std::vector<Selector>> any_;  // OR of ANDs; empty: everything
};

}  // namespace offcore
