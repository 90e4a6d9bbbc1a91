// Child processes for process-level tests: spawn a binary with its stdout on a pipe, wait for
// its ready line with a deadline, and stop it by PID. Also a temporary directory that removes
// itself. Test-only code: used from the test's main thread, never from several threads at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tc::test {

using std::chrono::milliseconds;

/// Milliseconds left until `deadline` (0 once it has passed), for poll(2) timeouts.
int remaining_ms(std::chrono::steady_clock::time_point deadline);

/// A directory made with mkdtemp under /tmp; removed with everything in it by the destructor.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// Absolute path of the directory (empty if mkdtemp failed).
  const std::string& path() const { return path_; }

  /// Writes `content` to path()/name (truncating) and returns the file's path ("" on failure).
  std::string write(const std::string& name, std::string_view content) const;

 private:
  std::string path_;
};

/// Writes `content` to a new file in a fresh temp_dir; both go when the returned object dies.
struct temp_file {
  temp_dir dir;
  std::string path;
  temp_file(const std::string& name, std::string_view content) : path(dir.write(name, content)) {}
};

/// Reads a whole file; empty if it cannot be read.
std::string read_file(const std::string& path);

/// How a child ended.
struct exit_status {
  bool exited = false;  ///< ended by exit(); code() is meaningful
  int code = -1;        ///< exit code when exited
  int signal = 0;       ///< terminating signal when !exited
  /// "exit 0", "signal 9", ...
  std::string describe() const;
};

/// "HOST:PORT" split in two.
struct endpoint {
  std::string host;
  uint16_t port = 0;
};

/// Parses "HOST:PORT" (HOST may be "[::1]"); nullopt when malformed.
std::optional<endpoint> parse_endpoint(std::string_view s);

/// Splits "word key=value key=value" into key -> value (words without '=' are skipped).
std::map<std::string, std::string> parse_kv(std::string_view line);

/// One child process. The destructor stops it (SIGTERM, then SIGKILL) if it still runs.
class process {
 public:
  struct options {
    /// stderr goes to this file when non-empty (appended); else it is inherited.
    std::string stderr_path;
    /// Extra environment entries "NAME=value" on top of the parent's environment.
    std::vector<std::string> env;
    /// The child's RLIMIT_AS in bytes; 0 leaves the parent's.
    std::size_t address_space_limit = 0;
  };

  process() = default;
  ~process();
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  /// Spawns `binary` with `args` (argv[0] is the binary). stdout is piped to this object; the
  /// child gets SIGKILL if the test process dies. Returns false (and error()) on failure.
  bool start(const std::string& binary, const std::vector<std::string>& args, const options& opts);
  bool start(const std::string& binary, const std::vector<std::string>& args) {
    return start(binary, args, options{});
  }

  /// Reads stdout until a line starting with `prefix` arrives; returns that line (no newline).
  /// nullopt when the deadline passes, stdout closes or the child exits first (see error()).
  std::optional<std::string> wait_for_line(std::string_view prefix, milliseconds timeout);

  /// Reads whatever stdout has left until EOF or the deadline (after the child exited).
  void drain_stdout(milliseconds timeout);

  /// Every complete stdout line read so far.
  const std::vector<std::string>& stdout_lines() const { return lines_; }

  /// The child's PID, or -1 when none was started.
  pid_t pid() const { return pid_; }

  /// True while the child has not been reaped and has not exited.
  bool running();

  /// Waits up to `timeout` for the child to exit and reaps it. True when it has exited.
  bool wait_exit(milliseconds timeout);

  /// SIGTERM to the PID; waits up to `grace`; then SIGKILL and reaps. Returns how it ended.
  exit_status stop(milliseconds grace = milliseconds(5000));

  /// SIGKILL to the PID and reap.
  exit_status kill9();

  /// Sends `sig` to the PID if the child still runs.
  void signal(int sig);

  /// How the child ended; nullopt while it runs (or was never started).
  std::optional<exit_status> status() const { return status_; }

  /// Why the last start/wait failed.
  const std::string& error() const { return error_; }

 private:
  bool reap(bool block);
  bool read_some(milliseconds timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int pidfd_ = -1;
  std::string buf_;
  std::vector<std::string> lines_;
  std::optional<exit_status> status_;
  std::string error_;
};

/// Path of a built binary: TC_BIN_DIR/name (TC_BIN_DIR from the environment, else the compile
/// definition).
std::string bin_path(const std::string& name);

/// TC_SOURCE_DIR (environment first, else the compile definition).
std::string source_dir();

/// A port that was free a moment ago on 127.0.0.1 (bound to port 0, then closed).
uint16_t unused_port();

}  // namespace tc::test
