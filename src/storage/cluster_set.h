// ClusterSet: a set of physical cluster numbers kept as disjoint [begin, end)
// ranges, so a pool of millions of free clusters costs a few map nodes and a
// corrupt record naming cluster 2^40 cannot make us allocate 2^40 entries.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace offcore {

class ClusterSet {
 public:
  bool contains(uint64_t c) const;
  bool empty() const { return ranges_.empty(); }
  uint64_t count() const { return count_; }
  std::optional<uint64_t> lowest() const;
  // One past the highest member; 0 when empty.
  uint64_t end() const { return ranges_.empty() ? 0 : ranges_.rbegin()->second; }

  void insert(uint64_t c) { insertRange(c, c + 1); }
  // Adds [begin, end), merging with neighbours and overlaps.
  void insertRange(uint64_t begin, uint64_t end);
  // False if c was not a member.
  bool erase(uint64_t c);

  // begin -> end, ascending and disjoint.
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }
  bool operator==(const ClusterSet& other) const { return ranges_ == other.ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;
  uint64_t count_ = 0;
};

}  // namespace offcore
