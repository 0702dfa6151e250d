#include "storage/meta_state.h"

#include <algorithm>
#include <cerrno>
#include <unordered_set>

namespace offcore {
namespace {

std::string volName(const MetaState& s, uint64_t id) {
  const VolumeRecord* v = s.find(id);
  return v ? "'" + v->name + "'" : "#" + std::to_string(id);
}

Status checkSize(uint64_t size) {
  if (size == 0 || size % kVolumeBlockSize != 0 || size > kMaxVolumeBytes)
    return makeError("size " + std::to_string(size) + " must be a non-zero multiple of " +
                         std::to_string(kVolumeBlockSize) + " up to 1 PiB",
                     EINVAL);
  return okStatus();
}

Status checkNewVolume(const MetaState& s, uint64_t id, const std::string& name) {
  if (id == 0 || id < s.next_id || s.find(id))
    return makeError("volume id " + std::to_string(id) + " is already used", EEXIST);
  OC_TRY(validateVolumeName(name));
  if (s.findByName(name)) return makeError("volume '" + name + "' already exists", EEXIST);
  return okStatus();
}

Result<const VolumeRecord*> writable(const MetaState& s, uint64_t id) {
  const VolumeRecord* v = s.find(id);
  if (!v) return makeError("no volume #" + std::to_string(id), ENOENT);
  if (v->read_only) return makeError("'" + v->name + "' is a read-only snapshot", EROFS);
  return v;
}

Status checkClusterRecord(const MetaState& s, const MetaRecord& r) {
  OC_ASSIGN_OR_RETURN(const VolumeRecord* v, writable(s, r.id));
  if (r.vcluster >= clustersFor(v->size_bytes))
    return makeError("cluster " + std::to_string(r.vcluster) + " is beyond '" + v->name + "'", ERANGE);
  if (r.type == RecordType::kUnmap) return okStatus();
  auto it = v->map.find(r.vcluster);
  if (it != v->map.end() && it->second != kZeroCluster)
    return makeError("cluster " + std::to_string(r.vcluster) + " of '" + v->name + "' is already mapped", EEXIST);
  if (r.pcluster >= kMaxPhysicalClusters) return makeError("physical cluster out of range", ERANGE);
  if (r.pcluster < s.high_water && !s.free.contains(r.pcluster))
    return makeError("physical cluster " + std::to_string(r.pcluster) + " is not free", EEXIST);
  return okStatus();
}

}  // namespace

const char* recordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kCreate: return "create";
    case RecordType::kDelete: return "delete";
    case RecordType::kResize: return "resize";
    case RecordType::kSnapshot: return "snapshot";
    case RecordType::kClone: return "clone";
    case RecordType::kMap: return "map";
    case RecordType::kUnmap: return "unmap";
    case RecordType::kSetHosts: return "set-hosts";
  }
  return "unknown";
}

Status validateVolumeName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 && name[0] != '.' && name[0] != '-';
  for (char c : name) {
    bool allowed =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    ok = ok && allowed;
  }
  if (!ok)
    return makeError(
        "invalid volume name '" + name.substr(0, 80) + "': use 1-64 of [a-zA-Z0-9._-], not starting with '.' or '-'",
        EINVAL);
  return okStatus();
}

Status validateHostNqn(const std::string& nqn) {
  bool ok = !nqn.empty() && nqn.size() <= kMaxNqnLength;
  for (char c : nqn) ok = ok && c > 0x20 && c < 0x7f;
  if (!ok) return makeError("invalid host NQN (1-223 printable characters, no spaces)", EINVAL);
  return okStatus();
}

VolumeRecord* MetaState::find(uint64_t id) {
  auto it = volumes.find(id);
  return it == volumes.end() ? nullptr : &it->second;
}

const VolumeRecord* MetaState::find(uint64_t id) const {
  auto it = volumes.find(id);
  return it == volumes.end() ? nullptr : &it->second;
}

const VolumeRecord* MetaState::findByName(const std::string& name) const {
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : find(it->second);
}

void MetaState::rebuildDerived() {
  by_name.clear();
  owned = 0;
  for (auto& [id, v] : volumes) {
    by_name.emplace(v.name, id);
    v.owned = 0;
    for (const auto& [vc, pc] : v.map) v.owned += pc != kZeroCluster;
    owned += v.owned;
  }
}

Status checkRecord(const MetaState& s, const MetaRecord& r) {
  switch (r.type) {
    case RecordType::kCreate: OC_TRY(checkNewVolume(s, r.new_id, r.name)); return checkSize(r.size);
    case RecordType::kDelete: {
      const VolumeRecord* v = s.find(r.id);
      if (!v) return makeError("no volume #" + std::to_string(r.id), ENOENT);
      if (!v->clones.empty()) return makeError("'" + v->name + "' has clones", ENOTEMPTY);
      return okStatus();
    }
    case RecordType::kResize: {
      OC_ASSIGN_OR_RETURN(const VolumeRecord* v, writable(s, r.id));
      OC_TRY(checkSize(r.size));
      if (r.size < v->size_bytes) return makeError("volumes only grow", EINVAL);
      return okStatus();
    }
    case RecordType::kSnapshot: {
      OC_TRY(writable(s, r.id));
      return checkNewVolume(s, r.new_id, r.name);
    }
    case RecordType::kClone: {
      const VolumeRecord* v = s.find(r.id);
      if (!v) return makeError("no volume #" + std::to_string(r.id), ENOENT);
      if (!v->read_only) return makeError("'" + v->name + "' is not a snapshot", EINVAL);
      return checkNewVolume(s, r.new_id, r.name);
    }
    case RecordType::kMap:
    case RecordType::kUnmap: return checkClusterRecord(s, r);
    case RecordType::kSetHosts: {
      if (!s.find(r.id)) return makeError("no volume #" + std::to_string(r.id), ENOENT);
      if (r.hosts.size() > kMaxAllowedHosts) return makeError("too many allowed hosts", EINVAL);
      for (const auto& h : r.hosts) OC_TRY(validateHostNqn(h));
      return okStatus();
    }
  }
  return makeError("unknown record type " + std::to_string(static_cast<int>(r.type)), EINVAL);
}

Status applyRecord(MetaState& s, const MetaRecord& r, std::vector<uint64_t>* freed) {
  OC_TRY(checkRecord(s, r));
  switch (r.type) {
    case RecordType::kCreate:
    case RecordType::kClone: {
      VolumeRecord v;
      v.id = r.new_id;
      v.name = r.name;
      v.size_bytes = r.size;
      if (r.type == RecordType::kClone) {
        VolumeRecord* snap = s.find(r.id);
        v.size_bytes = snap->size_bytes;
        v.parent_id = snap->id;
        snap->clones.insert(v.id);
      }
      s.by_name.emplace(v.name, v.id);
      s.volumes.emplace(v.id, std::move(v));
      s.next_id = r.new_id + 1;
      break;
    }
    case RecordType::kDelete: {
      VolumeRecord* v = s.find(r.id);
      for (const auto& [vc, pc] : v->map) {
        if (pc == kZeroCluster) continue;
        s.free.insert(pc);
        if (freed) freed->push_back(pc);
      }
      s.owned -= v->owned;
      if (VolumeRecord* p = s.find(v->parent_id)) p->clones.erase(v->id);
      s.by_name.erase(v->name);
      s.volumes.erase(r.id);
      break;
    }
    case RecordType::kResize: s.find(r.id)->size_bytes = r.size; break;
    case RecordType::kSnapshot: {
      VolumeRecord* origin = s.find(r.id);
      VolumeRecord snap;
      snap.id = r.new_id;
      snap.name = r.name;
      snap.size_bytes = origin->size_bytes;
      snap.read_only = true;
      snap.parent_id = origin->parent_id;
      snap.clones.insert(origin->id);
      snap.map = std::move(origin->map);
      snap.owned = origin->owned;
      origin->map.clear();
      origin->owned = 0;
      if (VolumeRecord* p = s.find(origin->parent_id)) {
        p->clones.erase(origin->id);
        p->clones.insert(snap.id);
      }
      origin->parent_id = snap.id;
      s.by_name.emplace(snap.name, snap.id);
      s.volumes.emplace(snap.id, std::move(snap));
      s.next_id = r.new_id + 1;
      break;
    }
    case RecordType::kMap: {
      VolumeRecord* v = s.find(r.id);
      if (r.pcluster >= s.high_water) {
        s.free.insertRange(s.high_water, r.pcluster);
        s.high_water = r.pcluster + 1;
      } else {
        s.free.erase(r.pcluster);
      }
      v->map[r.vcluster] = r.pcluster;
      ++v->owned;
      ++s.owned;
      break;
    }
    case RecordType::kUnmap: {
      VolumeRecord* v = s.find(r.id);
      auto it = v->map.find(r.vcluster);
      if (it != v->map.end() && it->second != kZeroCluster) {
        s.free.insert(it->second);
        if (freed) freed->push_back(it->second);
        --v->owned;
        --s.owned;
      }
      if (r.zero) {
        v->map[r.vcluster] = kZeroCluster;
      } else if (it != v->map.end()) {
        v->map.erase(it);
      }
      break;
    }
    case RecordType::kSetHosts: s.find(r.id)->allowed_hosts = r.hosts; break;
  }
  s.last_seq = r.seq;
  return okStatus();
}

std::vector<std::string> checkInvariants(const MetaState& s, std::optional<uint64_t> data_clusters) {
  std::vector<std::string> problems;
  auto problem = [&](std::string line) {
    if (problems.size() < 100) problems.push_back(std::move(line));
  };
  std::set<std::string> names;
  std::vector<std::pair<uint64_t, uint64_t>> owned;  // (physical cluster, volume id)
  for (const auto& [id, v] : s.volumes) {
    std::string who = "volume '" + v.name + "' (#" + std::to_string(id) + ")";
    if (id != v.id || id == 0 || id >= s.next_id) problem(who + ": bad id (next id " + std::to_string(s.next_id) + ")");
    if (!validateVolumeName(v.name).ok()) problem(who + ": invalid name");
    if (!names.insert(v.name).second) problem(who + ": name used twice");
    if (!checkSize(v.size_bytes).ok()) problem(who + ": bad size " + std::to_string(v.size_bytes));
    if (v.allowed_hosts.size() > kMaxAllowedHosts) problem(who + ": too many allowed hosts");
    if (v.parent_id != 0) {
      const VolumeRecord* p = s.find(v.parent_id);
      if (!p) {
        problem(who + ": parent #" + std::to_string(v.parent_id) + " does not exist");
      } else {
        if (!p->read_only) problem(who + ": parent '" + p->name + "' is not a read-only snapshot");
        if (!p->clones.count(id)) problem(who + ": missing from the clone list of its parent '" + p->name + "'");
        if (p->size_bytes > v.size_bytes) problem(who + ": smaller than its parent '" + p->name + "'");
      }
      // Walk up; a chain longer than the number of volumes is a cycle.
      uint64_t cur = v.parent_id;
      size_t steps = 0;
      while (cur != 0 && steps <= s.volumes.size()) {
        const VolumeRecord* a = s.find(cur);
        if (!a) break;
        cur = a->parent_id;
        ++steps;
      }
      if (cur != 0 && steps > s.volumes.size()) problem(who + ": its parent chain has a cycle");
    }
    for (uint64_t c : v.clones) {
      const VolumeRecord* child = s.find(c);
      if (!child || child->parent_id != id)
        problem(who + ": clone list names " + volName(s, c) + ", which is not its child");
    }
    uint64_t limit = clustersFor(v.size_bytes);
    for (const auto& [vc, pc] : v.map) {
      if (vc >= limit) problem(who + ": cluster " + std::to_string(vc) + " is beyond its size");
      if (pc == kZeroCluster) continue;
      if (pc >= s.high_water)
        problem(who + ": physical cluster " + std::to_string(pc) + " is beyond the pool's high water mark");
      if (data_clusters && pc >= *data_clusters)
        problem(who + ": physical cluster " + std::to_string(pc) + " is beyond the end of data.img (" +
                std::to_string(*data_clusters) + " clusters)");
      if (s.free.contains(pc)) problem(who + ": physical cluster " + std::to_string(pc) + " is also on the free list");
      owned.emplace_back(pc, id);
    }
  }
  std::sort(owned.begin(), owned.end());
  for (size_t i = 1; i < owned.size(); ++i) {
    if (owned[i].first == owned[i - 1].first)
      problem("physical cluster " + std::to_string(owned[i].first) + " is owned by both " +
              volName(s, owned[i - 1].second) + " and " + volName(s, owned[i].second));
  }
  if (s.free.end() > s.high_water) problem("the free list reaches beyond the high water mark");
  if (s.free.count() + owned.size() != s.high_water)
    problem("free list (" + std::to_string(s.free.count()) + ") + owned (" + std::to_string(owned.size()) +
            ") clusters != " + std::to_string(s.high_water) + " clusters in the pool");
  return problems;
}

}  // namespace offcore
