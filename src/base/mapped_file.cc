#include "base/mapped_file.h"

#include <linux/magic.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <ucontext.h>

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <mutex>

namespace offcore {
namespace {

// The copy in progress on this thread, if any: where SIGBUS jumps back to,
// and the source range whose faults it takes. volatile, and fenced below:
// the compiler sees no reader of the stores that arm it before the memcpy
// (only the signal handler reads them) and would drop them otherwise.
thread_local sigjmp_buf* volatile tl_copy_guard = nullptr;
thread_local const char* volatile tl_copy_begin = nullptr;
thread_local const char* volatile tl_copy_end = nullptr;
struct sigaction g_previous_sigbus;

void onSigbus(int sig, siginfo_t* info, void* ctx) {
  sigjmp_buf* guard = tl_copy_guard;
  const auto* addr = static_cast<const char*>(info->si_addr);
  // Ours: a fault (si_code > 0, not a signal someone sent) on the source of
  // the copy in progress on this thread.
  if (guard != nullptr && info->si_code > 0 && addr >= tl_copy_begin && addr < tl_copy_end) {
    tl_copy_guard = nullptr;
    // The jump skips the kernel's mask restore, and an interposed handler
    // (TSan's) may have blocked every signal around ours: put back the mask
    // the fault interrupted, or the next fault on this thread would meet a
    // blocked SIGBUS and kill the process.
    ::pthread_sigmask(SIG_SETMASK, &static_cast<ucontext_t*>(ctx)->uc_sigmask, nullptr);
    siglongjmp(*guard, 1);
  }
  // Not ours: put the previous action back. A fault repeats when we return
  // and goes there; a sent signal is raised again.
  ::sigaction(SIGBUS, &g_previous_sigbus, nullptr);
  if (info->si_code <= 0) ::raise(sig);
}

Status installSigbusHandler() {
  static std::once_flag once;
  static int failed_errno = 0;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = onSigbus;
    // SA_NODEFER: SIGBUS is not blocked while the handler runs (a sent one
    // is raised again from inside it); the jump restores the mask itself.
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
  tl_copy_begin = src;
  tl_copy_end = src + n;
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
