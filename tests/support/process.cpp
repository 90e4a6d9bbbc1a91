#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace tc::test {

namespace {

using clock = std::chrono::steady_clock;

exit_status decode(int wstatus) {
  exit_status s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

}  // namespace

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left =
      std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

temp_dir::temp_dir() {
  char tmpl[] = "/tmp/tc-test-XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
}

temp_dir::~temp_dir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, std::string_view content) const {
  if (path_.empty()) return {};
  std::string file = path_ + "/" + name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  out.close();
  return out ? file : std::string{};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string exit_status::describe() const {
  if (exited) return "exit " + std::to_string(code);
  return "signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
}

std::optional<endpoint> parse_endpoint(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= s.size()) return std::nullopt;
  std::string_view host = s.substr(0, colon);
  std::string_view port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned long>(c - '0');
    if (value > 65535) return std::nullopt;
  }
  return endpoint{std::string(host), static_cast<uint16_t>(value)};
}

std::map<std::string, std::string> parse_kv(std::string_view line) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t end = i;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t') ++end;
    std::string_view word = line.substr(i, end - i);
    auto eq = word.find('=');
    if (eq != std::string_view::npos && eq > 0)
      out.emplace(std::string(word.substr(0, eq)), std::string(word.substr(eq + 1)));
    i = end;
  }
  return out;
}

process::~process() {
  if (pid_ > 0 && !status_) stop();
  if (out_fd_ >= 0) ::close(out_fd_);
  if (pidfd_ >= 0) ::close(pidfd_);
}

bool process::start(const std::string& binary, const std::vector<std::string>& args,
                    const options& opts) {
  error_.clear();
  if (pid_ > 0) {
    error_ = "already started";
    return false;
  }
  int out[2];
  int err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    error_ = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    error_ = std::string("pipe: ") + std::strerror(errno);
    ::close(out[0]);
    ::close(out[1]);
    return false;
  }

  // Everything the child needs is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> argv_s;
  argv_s.push_back(binary);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int err_fd = -1;
  if (!opts.stderr_path.empty()) {
    err_fd = ::open(opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
      error_ = "open " + opts.stderr_path + ": " + std::strerror(errno);
      ::close(out[0]);
      ::close(out[1]);
      ::close(err[0]);
      ::close(err[1]);
      return false;
    }
  }
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (opts.address_space_limit != 0) {
      const rlimit as{opts.address_space_limit, opts.address_space_limit};
      if (::setrlimit(RLIMIT_AS, &as) != 0) {
        int e = errno;  // reported like a failed exec
        ssize_t ignored = ::write(err[1], &e, sizeof e);
        (void)ignored;
        ::_exit(127);
      }
    }
    ::dup2(out[1], STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    int e = errno;
    ssize_t ignored = ::write(err[1], &e, sizeof e);
    (void)ignored;
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  if (err_fd >= 0) ::close(err_fd);
  if (pid < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    ::close(out[0]);
    ::close(err[0]);
    return false;
  }
  pid_ = pid;
  out_fd_ = out[0];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  // exec succeeded when the error pipe closes without data.
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    error_ = "exec " + binary + ": " + std::strerror(child_errno);
    reap(true);
    return false;
  }
  return true;
}

bool process::read_some(milliseconds timeout) {
  if (out_fd_ < 0) return false;
  pollfd p{out_fd_, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  char chunk[4096];
  ssize_t n;
  do {
    n = ::read(out_fd_, chunk, sizeof chunk);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    ::close(out_fd_);
    out_fd_ = -1;
    return false;
  }
  buf_.append(chunk, static_cast<std::size_t>(n));
  std::size_t nl;
  while ((nl = buf_.find('\n')) != std::string::npos) {
    std::string line = buf_.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines_.push_back(std::move(line));
    buf_.erase(0, nl + 1);
  }
  return true;
}

std::optional<std::string> process::wait_for_line(std::string_view prefix, milliseconds timeout) {
  error_.clear();
  auto deadline = clock::now() + timeout;
  std::size_t next = 0;
  // Bounded: every pass either consumes bytes or ends at EOF / the deadline.
  for (int pass = 0; pass < 1'000'000; ++pass) {
    for (; next < lines_.size(); ++next) {
      if (lines_[next].rfind(prefix, 0) == 0) return lines_[next];
    }
    if (out_fd_ < 0) {
      error_ = "stdout closed before a line starting with '" + std::string(prefix) + "'";
      if (wait_exit(milliseconds(1000))) error_ += "; child ended: " + status_->describe();
      return std::nullopt;
    }
    int left = remaining_ms(deadline);
    if (left == 0) break;
    read_some(milliseconds(left));
  }
  error_ = "no line starting with '" + std::string(prefix) + "' within " +
           std::to_string(timeout.count()) + " ms";
  return std::nullopt;
}

void process::drain_stdout(milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  for (int pass = 0; pass < 100'000 && out_fd_ >= 0; ++pass) {
    int left = remaining_ms(deadline);
    if (left == 0) break;
    read_some(milliseconds(left));
  }
  if (out_fd_ < 0 && !buf_.empty()) {
    lines_.push_back(buf_);
    buf_.clear();
  }
}

bool process::reap(bool block) {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(ws);
    if (pidfd_ >= 0) {
      ::close(pidfd_);
      pidfd_ = -1;
    }
    return true;
  }
  if (r < 0) {
    // Not our child any more (reaped elsewhere): treat as gone.
    status_ = exit_status{};
    return true;
  }
  return false;
}

bool process::running() {
  return pid_ > 0 && !reap(false);
}

bool process::wait_exit(milliseconds timeout) {
  if (pid_ <= 0) return false;
  if (reap(false)) return true;
  auto deadline = clock::now() + timeout;
  if (pidfd_ >= 0) {
    for (int pass = 0; pass < 1000; ++pass) {
      pollfd p{pidfd_, POLLIN, 0};
      int r = ::poll(&p, 1, remaining_ms(deadline));
      if (r > 0) return reap(true);
      if (r == 0) return reap(false);
      if (errno != EINTR) break;
    }
    return reap(false);
  }
  // No pidfd (old kernel): check in short steps, bounded by the deadline.
  for (int pass = 0; pass < 100'000; ++pass) {
    if (reap(false)) return true;
    if (remaining_ms(deadline) == 0) return false;
    timespec ts{0, 2'000'000};
    ::nanosleep(&ts, nullptr);
  }
  return reap(false);
}

void process::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

exit_status process::stop(milliseconds grace) {
  if (pid_ <= 0) return exit_status{};
  if (!status_) {
    ::kill(pid_, SIGTERM);
    if (!wait_exit(grace)) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return status_.value_or(exit_status{});
}

exit_status process::kill9() {
  if (pid_ <= 0) return exit_status{};
  if (!status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  return status_.value_or(exit_status{});
}

std::string bin_path(const std::string& name) {
  const char* env = std::getenv("TC_BIN_DIR");
  std::string dir = env != nullptr && *env != '\0' ? env : "";
#ifdef TC_BIN_DIR
  if (dir.empty()) dir = TC_BIN_DIR;
#endif
  return dir + "/" + name;
}

std::string source_dir() {
  const char* env = std::getenv("TC_SOURCE_DIR");
  if (env != nullptr && *env != '\0') return env;
#ifdef TC_SOURCE_DIR
  return TC_SOURCE_DIR;
#else
  return ".";
#endif
}

uint16_t unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  uint16_t port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace tc::test
