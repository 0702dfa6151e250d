// VolumeStore's metadata operations on top of StoreCore (store_core.cc has
// the journal and checkpoint machinery, volume_io.cc the data path).
#include "storage/volume_store.h"

#include <algorithm>
#include <cerrno>

#include "storage/store_core.h"

namespace offcore {
namespace {

Status checkVolumeSize(uint64_t size) {
  if (size == 0 || size % kVolumeBlockSize != 0 || size > kMaxVolumeBytes)
    return makeError("volume size " + std::to_string(size) + " must be a non-zero multiple of 4096 up to 1 PiB",
                     kBlockInvalid);
  return okStatus();
}

std::string joinNames(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

class VolumeStoreImpl final : public VolumeStore {
 public:
  explicit VolumeStoreImpl(std::shared_ptr<StoreCore> core) : core_(std::move(core)) {}
  ~VolumeStoreImpl() override { core_->close(); }

  Status create(const std::string& name, uint64_t size_bytes) override { return core_->create(name, size_bytes); }
  Status remove(const std::string& name) override { return core_->remove(name); }
  Status resize(const std::string& name, uint64_t new_size_bytes) override {
    return core_->resize(name, new_size_bytes);
  }
  Status snapshot(const std::string& volume, const std::string& snapshot_name) override {
    return core_->snapshot(volume, snapshot_name);
  }
  Status clone(const std::string& snapshot_name, const std::string& clone_name) override {
    return core_->clone(snapshot_name, clone_name);
  }
  Status setAllowedHosts(const std::string& name, const std::vector<std::string>& host_nqns) override {
    return core_->setAllowedHosts(name, host_nqns);
  }
  Result<VolumeInfo> info(const std::string& name) const override { return core_->info(name); }
  std::vector<VolumeInfo> list() const override { return core_->list(); }
  StoreStats stats() const override { return core_->stats(); }
  Result<std::shared_ptr<BlockDevice>> openVolume(const std::string& name) override {
    OC_ASSIGN_OR_RETURN(auto v, core_->acquire(name));
    return makeVolumeHandle(core_, std::move(v));
  }
  Status checkpoint() override { return core_->checkpoint(); }

 private:
  std::shared_ptr<StoreCore> core_;
};

}  // namespace

Result<std::unique_ptr<VolumeStore>> VolumeStore::open(const std::string& dir, uint64_t capacity_bytes) {
  auto core = StoreCore::open(dir, capacity_bytes);
  if (!core.ok()) return core.error().wrap("volume store " + dir);
  return std::unique_ptr<VolumeStore>(new VolumeStoreImpl(std::move(*core)));
}

Result<std::shared_ptr<VolumeState>> StoreCore::findLocked(const std::string& name) const {
  const VolumeRecord* rec = meta_.findByName(name);
  if (!rec) return makeError("no volume '" + name + "'", ENOENT);
  return live_.at(rec->id);
}

Status StoreCore::create(const std::string& name, uint64_t size_bytes) {
  OC_TRY(validateVolumeName(name));
  OC_TRY(checkVolumeSize(size_bytes));
  std::lock_guard lk(meta_mutex_);
  if (meta_.findByName(name)) return makeError("volume '" + name + "' already exists", EEXIST);
  MetaRecord r;
  r.type = RecordType::kCreate;
  r.new_id = meta_.next_id;
  r.name = name;
  r.size = size_bytes;
  OC_TRY(commitLocked(r, nullptr));
  auto v = std::make_shared<VolumeState>(r.new_id, false);
  v->rec = meta_.find(r.new_id);
  live_.emplace(v->id, std::move(v));
  return okStatus();
}

Status StoreCore::remove(const std::string& name) {
  std::lock_guard lk(meta_mutex_);
  OC_ASSIGN_OR_RETURN(auto v, findLocked(name));
  if (!v->rec->clones.empty()) {
    std::vector<std::string> clones;
    for (uint64_t c : v->rec->clones) clones.push_back(meta_.find(c)->name);
    return makeError("snapshot '" + name + "' has clones: " + joinNames(clones) + "; delete them first", ENOTEMPTY);
  }
  if (int n = v->handles.load(); n > 0)
    return makeError("volume '" + name + "' has " + std::to_string(n) + " open handle(s); close them first", EBUSY);
  MetaRecord r;
  r.type = RecordType::kDelete;
  r.id = v->id;
  OC_TRY(commitLocked(r, nullptr));
  live_.erase(v->id);
  v->rec = nullptr;
  v->parent.reset();
  return okStatus();
}

Status StoreCore::resize(const std::string& name, uint64_t new_size_bytes) {
  OC_TRY(checkVolumeSize(new_size_bytes));
  std::lock_guard lk(meta_mutex_);
  OC_ASSIGN_OR_RETURN(auto v, findLocked(name));
  if (v->read_only) return makeError("'" + name + "' is a snapshot; snapshots cannot be resized", kBlockReadOnly);
  if (new_size_bytes < v->rec->size_bytes)
    return makeError("'" + name + "' is " + std::to_string(v->rec->size_bytes) + " bytes; volumes can only grow",
                     kBlockInvalid);
  if (new_size_bytes == v->rec->size_bytes) return okStatus();
  MetaRecord r;
  r.type = RecordType::kResize;
  r.id = v->id;
  r.size = new_size_bytes;
  return commitLocked(r, v.get());
}

Status StoreCore::snapshot(const std::string& volume, const std::string& snapshot_name) {
  OC_TRY(validateVolumeName(snapshot_name));
  std::shared_ptr<VolumeState> v;
  {
    std::lock_guard lk(meta_mutex_);
    OC_ASSIGN_OR_RETURN(v, findLocked(volume));
  }
  if (v->read_only)
    return makeError("'" + volume + "' is already a snapshot; clone it to get a writable volume", EINVAL);
  // Wait for this volume's in-flight allocations: the snapshot takes its map.
  std::lock_guard write_lock(v->write_mutex);
  std::lock_guard lk(meta_mutex_);
  OC_ASSIGN_OR_RETURN(auto again, findLocked(volume));
  if (again != v) return makeError("volume '" + volume + "' was replaced meanwhile; retry", EAGAIN);
  if (meta_.findByName(snapshot_name)) return makeError("volume '" + snapshot_name + "' already exists", EEXIST);
  MetaRecord r;
  r.type = RecordType::kSnapshot;
  r.id = v->id;
  r.new_id = meta_.next_id;
  r.name = snapshot_name;
  auto snap = std::make_shared<VolumeState>(r.new_id, true);
  OC_TRY(commitLocked(r, v.get(), [&] {
    snap->rec = meta_.find(snap->id);
    snap->parent = v->parent;
    v->parent = snap;
  }));
  live_.emplace(snap->id, std::move(snap));
  return okStatus();
}

Status StoreCore::clone(const std::string& snapshot_name, const std::string& clone_name) {
  OC_TRY(validateVolumeName(clone_name));
  std::lock_guard lk(meta_mutex_);
  OC_ASSIGN_OR_RETURN(auto snap, findLocked(snapshot_name));
  if (!snap->read_only)
    return makeError("'" + snapshot_name + "' is not a snapshot; snapshot it and clone the snapshot", EINVAL);
  if (meta_.findByName(clone_name)) return makeError("volume '" + clone_name + "' already exists", EEXIST);
  MetaRecord r;
  r.type = RecordType::kClone;
  r.id = snap->id;
  r.new_id = meta_.next_id;
  r.name = clone_name;
  OC_TRY(commitLocked(r, nullptr));
  auto c = std::make_shared<VolumeState>(r.new_id, false);
  c->rec = meta_.find(c->id);
  c->parent = snap;
  live_.emplace(c->id, std::move(c));
  return okStatus();
}

Status StoreCore::setAllowedHosts(const std::string& name, const std::vector<std::string>& host_nqns) {
  if (host_nqns.size() > kMaxAllowedHosts)
    return makeError("at most " + std::to_string(kMaxAllowedHosts) + " allowed hosts per volume", EINVAL);
  for (const auto& h : host_nqns) OC_TRY(validateHostNqn(h));
  std::lock_guard lk(meta_mutex_);
  OC_ASSIGN_OR_RETURN(auto v, findLocked(name));
  MetaRecord r;
  r.type = RecordType::kSetHosts;
  r.id = v->id;
  r.hosts = host_nqns;
  return commitLocked(r, nullptr);
}

VolumeInfo StoreCore::infoLocked(const VolumeRecord& v) const {
  VolumeInfo info;
  info.id = v.id;
  info.name = v.name;
  info.size_bytes = v.size_bytes;
  info.read_only = v.read_only;
  if (const VolumeRecord* p = meta_.find(v.parent_id)) info.parent = p->name;
  for (uint64_t c : v.clones) info.clones.push_back(meta_.find(c)->name);
  std::sort(info.clones.begin(), info.clones.end());
  info.allocated_bytes = v.owned * kClusterSize;
  info.allowed_hosts = v.allowed_hosts;
  return info;
}

Result<VolumeInfo> StoreCore::info(const std::string& name) const {
  std::lock_guard lk(meta_mutex_);
  const VolumeRecord* rec = meta_.findByName(name);
  if (!rec) return makeError("no volume '" + name + "'", ENOENT);
  return infoLocked(*rec);
}

std::vector<VolumeInfo> StoreCore::list() const {
  std::lock_guard lk(meta_mutex_);
  std::vector<VolumeInfo> out;
  for (const auto& [name, id] : meta_.by_name) out.push_back(infoLocked(*meta_.find(id)));
  return out;
}

StoreStats StoreCore::stats() const {
  std::lock_guard lk(meta_mutex_);
  StoreStats s;
  s.capacity_bytes = capacity_bytes_;
  s.allocated_bytes = meta_.owned * kClusterSize;
  s.volumes = meta_.volumes.size();
  s.reads_mapped = data_view_ != nullptr;
  return s;
}

Result<std::shared_ptr<VolumeState>> StoreCore::acquire(const std::string& name) {
  std::lock_guard lk(meta_mutex_);
  OC_TRY(usableLocked());
  OC_ASSIGN_OR_RETURN(auto v, findLocked(name));
  v->handles.fetch_add(1);
  return v;
}

}  // namespace offcore
