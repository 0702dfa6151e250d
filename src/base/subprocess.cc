#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <climits>
#include <cstring>
#include <sstream>

#include "base/files.h"

namespace offcore {
namespace {

std::vector<char*> toCArgv(const std::vector<std::string>& argv) {
  std::vector<char*> c;
  c.reserve(argv.size() + 1);
  for (const auto& a : argv) c.push_back(const_cast<char*>(a.c_str()));
  c.push_back(nullptr);
  return c;
}

// Child side after fork: report a setup failure on stderr and exit 127, the
// shell's convention for "could not run".
[[noreturn]] void childFail(const std::string& message) {
  std::string line = "offcore: " + message + "\n";
  ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
  (void)n;
  ::_exit(127);
}

void closeQuiet(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

std::string selfExe() {
  std::array<char, PATH_MAX> buf{};
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "offcore";
  return std::string(buf.data(), static_cast<size_t>(n));
}

Error execInPlace(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return makeError("nothing to run");
  if (options.in_child) {
    Status s = options.in_child();
    if (!s.ok()) return s.error();
  }
  auto c = toCArgv(argv);
  ::execvp(c[0], c.data());
  return errnoError("cannot run '" + argv[0] + "'");
}

Result<ProcessOutput> runCapture(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return makeError("nothing to run");
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return errnoError("pipe");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return errnoError("pipe");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return errnoError("pipe");

  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork");
  if (pid == 0) {
    ::dup2(in_pipe[0], STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    Error e = execInPlace(argv, options);
    childFail(e.message);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  // Write stdin in full first; our inputs (nft scripts) are far below a pipe buffer.
  int in_fd = in_pipe[1];
  if (!options.stdin_data.empty()) {
    signal(SIGPIPE, SIG_IGN);
    size_t off = 0;
    while (off < options.stdin_data.size()) {
      ssize_t n = ::write(in_fd, options.stdin_data.data() + off, options.stdin_data.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }
  closeQuiet(in_fd);

  ProcessOutput result;
  int out_fd = out_pipe[0], err_fd = err_pipe[0];
  char buf[8192];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      } else {
        closeQuiet(fd);
      }
    }
  }
  auto code = waitExit(pid);
  if (!code.ok()) return code.error();
  result.exit_code = code.value();
  return result;
}

Status runChecked(const std::vector<std::string>& argv, const SpawnOptions& options) {
  auto r = runCapture(argv, options);
  if (!r.ok()) return r.error().wrap(argv[0]);
  if (r->exit_code != 0) {
    std::string err = r->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    auto nl = err.rfind('\n');
    if (nl != std::string::npos) err = err.substr(nl + 1);
    return makeError("'" + joinArgv(argv) + "' failed (exit " + std::to_string(r->exit_code) +
                     "): " + (err.empty() ? "no message" : err));
  }
  return okStatus();
}

Result<pid_t> spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty()) return makeError("nothing to run");
  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork");
  if (pid == 0) {
    if (options.new_session) ::setsid();
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    if (!options.output_file.empty()) {
      int fd = ::open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd < 0) childFail("cannot open " + options.output_file + ": " + std::strerror(errno));
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    // Services must not inherit the parent's blocked signal mask (the agent
    // blocks SIGCHLD/SIGTERM for its signalfd).
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    Error e = execInPlace(argv, options);
    childFail(e.message);
  }
  return pid;
}

Result<int> waitExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errnoError("waitpid");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

Result<std::vector<std::string>> procStatFields(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  OC_ASSIGN_OR_RETURN(std::string stat, readFile(path));
  auto close = stat.rfind(')');
  if (close == std::string::npos) return makeError("bad " + path);
  std::vector<std::string> fields;
  std::istringstream rest(stat.substr(close + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

uint64_t processStartTicks(pid_t pid) {
  auto fields = procStatFields(pid);
  if (!fields.ok() || fields->size() < 20 || (*fields)[0] == "Z") return 0;
  return std::strtoull((*fields)[19].c_str(), nullptr, 10);
}

}  // namespace offcore
