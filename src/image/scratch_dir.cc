#include "image/scratch_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "base/files.h"
#include "base/subprocess.h"

namespace offcore {
namespace {

constexpr const char* kPrefix = "run-";
constexpr const char* kLockFile = "/.lock";
constexpr int kStopSignals[] = {SIGTERM, SIGINT};

// The write end of the watcher's pipe, for the handler (non-blocking).
std::atomic<int> g_signal_pipe{-1};

extern "C" void onStopSignal(int sig) {
  int saved = errno;
  int fd = g_signal_pipe.load(std::memory_order_relaxed);
  unsigned char b = static_cast<unsigned char>(sig);
  if (fd >= 0) (void)!::write(fd, &b, 1);
  errno = saved;
}

// Process-wide: the live scratch directories, the handlers, and the thread
// that removes the directories when a stop signal comes (a handler may only
// do async-signal-safe things such as writing to a pipe). A handler, unlike
// a signalfd, also catches signals delivered to threads that libraries
// (curl, libfuse, the NVMe initiator) started before or after us.
class SignalCleaner {
 public:
  static SignalCleaner& instance() {
    static SignalCleaner* c = new SignalCleaner();  // never destroyed: signals may come during exit
    return *c;
  }

  Status add(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    if (paths_.empty()) OC_TRY(start());
    paths_.push_back(path);
    return okStatus();
  }

  void remove(const std::string& path) {
    std::thread watcher;
    int fds[2];
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::erase(paths_, path);
      if (!paths_.empty() || !thread_.joinable()) return;
      restoreHandlers();
      g_signal_pipe.store(-1);
      unsigned char stop = 0;
      (void)!::write(pipe_[1], &stop, 1);
      watcher = std::move(thread_);
      fds[0] = pipe_[0], fds[1] = pipe_[1];
      pipe_[0] = pipe_[1] = -1;
    }
    watcher.join();  // outside the lock: a watcher that caught a signal takes it
    ::close(fds[0]);
    ::close(fds[1]);
  }

 private:
  Status start() {
    if (::pipe2(pipe_, O_CLOEXEC) != 0) return errnoError("pipe for the stop-signal watcher");
    ::fcntl(pipe_[1], F_SETFL, O_NONBLOCK);
    g_signal_pipe.store(pipe_[1]);
    thread_ = std::thread([this, fd = pipe_[0]] { watch(fd); });
    for (size_t i = 0; i < std::size(kStopSignals); i++) {
      struct sigaction sa {};
      sa.sa_handler = onStopSignal;
      sa.sa_flags = SA_RESTART;
      sigfillset(&sa.sa_mask);
      installed_[i] = false;
      if (::sigaction(kStopSignals[i], nullptr, &old_[i]) != 0) continue;
      // An ignored signal (a background job's SIGINT) stays ignored.
      if (old_[i].sa_handler == SIG_IGN) continue;
      installed_[i] = ::sigaction(kStopSignals[i], &sa, nullptr) == 0;
    }
    return okStatus();
  }

  void restoreHandlers() {
    for (size_t i = 0; i < std::size(kStopSignals); i++) {
      if (installed_[i]) ::sigaction(kStopSignals[i], &old_[i], nullptr);
      installed_[i] = false;
    }
  }

  void watch(int fd) {
    unsigned char b = 0;
    for (;;) {
      ssize_t n = ::read(fd, &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || b == 0) return;
      std::vector<std::string> paths;
      {
        std::lock_guard<std::mutex> lock(mu_);
        paths = paths_;
        restoreHandlers();
      }
      // The converter's threads keep running meanwhile and may create
      // entries under a directory being removed: retry until it is gone.
      for (const auto& p : paths) {
        for (int attempt = 0; attempt < 100 && pathExists(p); attempt++) {
          if (!removeTree(p).ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      // The previous disposition (normally the default: terminate) decides
      // what the signal does now; raised in this thread, where it is unblocked.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, b);
      pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
      ::raise(b);
      // A previous handler let the process live on: nothing left to watch.
      return;
    }
  }

  std::mutex mu_;
  std::vector<std::string> paths_;
  int pipe_[2] = {-1, -1};
  std::thread thread_;
  struct sigaction old_[std::size(kStopSignals)] = {};
  bool installed_[std::size(kStopSignals)] = {};
};

bool parseNumber(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  errno = 0;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return errno == 0;
}

// Whether someone holds the directory's lock (a live owner, whatever its pid
// means in this namespace). No lock file: nobody.
bool lockHeld(const std::string& dir) {
  int fd = ::open((dir + kLockFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  bool held = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

}  // namespace

ScratchOwner scratchOwner(const std::string& name) {
  // run-<pid>-<start ticks>-XXXXXX
  if (name.rfind(kPrefix, 0) != 0) return {};
  size_t a = std::string(kPrefix).size(), b = name.find('-', a);
  if (b == std::string::npos) return {};
  size_t c = name.find('-', b + 1);
  if (c == std::string::npos || name.size() - c - 1 != 6) return {};
  uint64_t pid = 0, ticks = 0;
  if (!parseNumber(name.substr(a, b - a), pid) || !parseNumber(name.substr(b + 1, c - b - 1), ticks)) return {};
  if (pid == 0 || pid > 0x7fffffff || ticks == 0) return {};
  return ScratchOwner{static_cast<pid_t>(pid), ticks};
}

Result<std::vector<std::string>> sweepStaleScratch(const std::string& work_dir) {
  DIR* dir = ::opendir(work_dir.c_str());
  if (dir == nullptr) return errnoError("list " + work_dir);
  std::vector<std::string> names;
  while (struct dirent* d = ::readdir(dir)) {
    if (d->d_type == DT_DIR || d->d_type == DT_UNKNOWN) names.emplace_back(d->d_name);
  }
  ::closedir(dir);
  std::vector<std::string> removed;
  for (const auto& name : names) {
    ScratchOwner owner = scratchOwner(name);
    if (owner.pid == 0) continue;
    if (processStartTicks(owner.pid) == owner.start_ticks) continue;  // alive (0 when gone or a zombie)
    std::string path = work_dir + "/" + name;
    if (lockHeld(path)) continue;
    OC_TRY(removeTree(path));
    removed.push_back(path);
  }
  return removed;
}

Result<std::unique_ptr<ScratchDir>> ScratchDir::create(const std::string& work_dir, bool remove_on_signal) {
  pid_t pid = ::getpid();
  uint64_t ticks = processStartTicks(pid);
  if (ticks == 0) return makeError("cannot read this process's start time from /proc");
  std::string tmpl = work_dir + "/" + kPrefix + std::to_string(pid) + "-" + std::to_string(ticks) + "-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return errnoError("mkdtemp under " + work_dir);
  std::unique_ptr<ScratchDir> s(new ScratchDir(tmpl));
  s->lock_fd_ = ::open((tmpl + kLockFile).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (s->lock_fd_ < 0 || ::flock(s->lock_fd_, LOCK_EX | LOCK_NB) != 0) return errnoError("lock " + tmpl + kLockFile);
  if (remove_on_signal) {
    OC_TRY(SignalCleaner::instance().add(tmpl));
    s->on_signal_ = true;
  }
  return s;
}

ScratchDir::~ScratchDir() {
  (void)removeTree(path_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (on_signal_) SignalCleaner::instance().remove(path_);
}

}  // namespace offcore
