#include "storage/cluster_set.h"

#include <algorithm>
#include <iterator>

namespace offcore {

bool ClusterSet::contains(uint64_t c) const {
  auto it = ranges_.upper_bound(c);
  if (it == ranges_.begin()) return false;
  --it;
  return c < it->second;
}

std::optional<uint64_t> ClusterSet::lowest() const {
  if (ranges_.empty()) return std::nullopt;
  return ranges_.begin()->first;
}

void ClusterSet::insertRange(uint64_t begin, uint64_t end) {
  if (begin >= end) return;
  auto it = ranges_.upper_bound(begin);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= begin) {  // overlaps or touches the range before
      begin = prev->first;
      end = std::max(end, prev->second);
      count_ -= prev->second - prev->first;
      it = ranges_.erase(prev);
    }
  }
  while (it != ranges_.end() && it->first <= end) {
    end = std::max(end, it->second);
    count_ -= it->second - it->first;
    it = ranges_.erase(it);
  }
  ranges_.emplace(begin, end);
  count_ += end - begin;
}

bool ClusterSet::erase(uint64_t c) {
  auto it = ranges_.upper_bound(c);
  if (it == ranges_.begin()) return false;
  --it;
  if (c >= it->second) return false;
  uint64_t begin = it->first, end = it->second;
  ranges_.erase(it);
  if (begin < c) ranges_.emplace(begin, c);
  if (c + 1 < end) ranges_.emplace(c + 1, end);
  --count_;
  return true;
}

}  // namespace offcore
