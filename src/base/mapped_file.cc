#include "base/mapped_file.h"

#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <mutex>

namespace offcore {
namespace {

// The copy in progress on this thread, if any: where SIGBUS jumps back to.
// volatile, and fenced below: the compiler sees no reader of the store that
// sets it before the memcpy (only the signal handler reads it) and would
// drop it otherwise.
thread_local sigjmp_buf* volatile tl_copy_guard = nullptr;
struct sigaction g_previous_sigbus;

void onSigbus(int /*sig*/, siginfo_t* /*info*/, void* /*ctx*/) {
  if (sigjmp_buf* guard = tl_copy_guard) {
    tl_copy_guard = nullptr;
    siglongjmp(*guard, 1);
  }
  // Not a mapped copy: put the previous action back and return; the faulting
  // instruction runs again and its SIGBUS goes there.
  ::sigaction(SIGBUS, &g_previous_sigbus, nullptr);
}

Status installSigbusHandler() {
  static std::once_flag once;
  static int failed_errno = 0;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = onSigbus;
    // SA_NODEFER: the jump out of the handler skips the mask restore, so
    // SIGBUS must not be blocked while it runs.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (::sigaction(SIGBUS, &sa, &g_previous_sigbus) != 0) failed_errno = errno;
  });
  if (failed_errno != 0) return errnoError("install the SIGBUS handler for mapped reads", failed_errno);
  return okStatus();
}

// The copy itself, apart so that nothing the caller keeps in registers
// lives across the sigsetjmp.
[[gnu::noinline]] bool guardedCopy(void* dst, const char* src, size_t n) {
  sigjmp_buf guard;
  if (sigsetjmp(guard, 0) != 0) return false;  // a page faulted: tl_copy_guard is already reset
  tl_copy_guard = &guard;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tl_copy_guard = nullptr;
  return true;
}

}  // namespace

Result<std::unique_ptr<MappedReadView>> MappedReadView::map(int fd, uint64_t bytes) {
  if (bytes == 0) return makeError("a mapped view needs a size", EINVAL);
  OC_TRY(installSigbusHandler());
  void* base = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) return errnoError("mmap " + std::to_string(bytes >> 20) + " MiB read-only");
  return std::unique_ptr<MappedReadView>(new MappedReadView(static_cast<const char*>(base), bytes));
}

MappedReadView::~MappedReadView() { ::munmap(const_cast<char*>(base_), bytes_); }

bool MappedReadView::copyOut(void* dst, uint64_t offset, size_t n) const {
  if (offset > bytes_ || n > bytes_ - offset) return false;
  return guardedCopy(dst, base_ + offset, n);
}

bool fileIsInMemory(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  return fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC;
}

}  // namespace offcore
