// The packed virtqueue (virtio 1.1 §2.7) behind the VirtQueue interface;
// VirtQueue::create() calls this when VirtQueueConfig::packed is set.
#pragma once

#include <memory>

#include "base/result.h"
#include "virt/vhost/virtqueue.h"

namespace offcore::virt {

Result<std::unique_ptr<VirtQueue>> createPackedQueue(const GuestMemory& mem, const VirtQueueConfig& cfg, DirtyLog* log);

}  // namespace offcore::virt
