// tcbench machine: see machine.hpp. Each round trip is the main thread writing one byte and
// blocking in read(2) until the echo thread, itself blocked in read(2), has sent it back.
#include "tools/tcbench/machine.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

namespace tc::bench {

namespace {

using bench_clock = std::chrono::steady_clock;

constexpr unsigned kBatch = 500;  ///< round trips per timed batch

/// Closes a file descriptor at scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

/// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus() {
  std::vector<int> out;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

/// Pins the calling thread to `cpu`; false if the kernel refuses.
bool pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

/// Writes all of `n` bytes; false on an error or a closed peer.
bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

/// Reads exactly one byte; false at end of stream or on an error.
bool read_one(int fd, char& c) {
  for (;;) {
    const ssize_t r = ::read(fd, &c, 1);
    if (r == 1) return true;
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

/// Times round trips between the calling thread (pinned to `main_cpu`) and an echo thread
/// (pinned to `echo_cpu`) over the connected pair `mine` / `theirs`. Both ends are closed here.
round_trip_figure ping_pong(int mine, int theirs, int main_cpu, int echo_cpu, const machine_args& a,
                            std::string& error) {
  fd_guard m{mine}, t{theirs};
  round_trip_figure fig;
  bool echo_pinned = true;
  std::thread echo([&] {
    echo_pinned = pin_to(echo_cpu);
    char c;
    while (read_one(theirs, c))
      if (!write_all(theirs, &c, 1)) break;
  });
  cpu_set_t before;
  CPU_ZERO(&before);
  pthread_getaffinity_np(pthread_self(), sizeof before, &before);
  const bool main_pinned = pin_to(main_cpu);
  std::vector<double> batches;
  const auto deadline = bench_clock::now() + std::chrono::duration<double>(a.max_seconds);
  const unsigned wanted = std::max(1u, a.round_trips / kBatch);
  bool ok = main_pinned;
  char c = 'x';
  // One untimed batch first: the echo thread pins itself and both ends warm up.
  for (unsigned b = 0; ok && b <= wanted && bench_clock::now() < deadline; ++b) {
    const auto t0 = bench_clock::now();
    for (unsigned i = 0; ok && i < kBatch; ++i) ok = write_all(mine, &c, 1) && read_one(mine, c);
    const std::chrono::duration<double, std::micro> spent = bench_clock::now() - t0;
    if (ok && b > 0) batches.push_back(spent.count() / kBatch);
  }
  ::shutdown(mine, SHUT_WR);  // the echo thread reads end of stream and returns
  echo.join();
  pthread_setaffinity_np(pthread_self(), sizeof before, &before);
  if (!main_pinned || !echo_pinned) {
    error = "cannot pin a thread to CPU " + std::to_string(main_pinned ? echo_cpu : main_cpu);
    return fig;
  }
  if (!ok) {
    error = "the echo thread stopped answering";
    return fig;
  }
  if (batches.empty()) return fig;  // not even one batch before the deadline
  std::sort(batches.begin(), batches.end());
  fig.measured = true;
  fig.median_us = batches[batches.size() / 2];
  fig.fastest_us = batches.front();
  fig.round_trips = static_cast<unsigned>(batches.size()) * kBatch;
  return fig;
}

bool unix_pair(int& a, int& b, std::string& error) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    error = errno_text("socketpair");
    return false;
  }
  a = sv[0];
  b = sv[1];
  return true;
}

/// A connected loopback TCP pair (127.0.0.1, port 0), both ends with TCP_NODELAY.
bool tcp_pair(int& a, int& b, std::string& error) {
  fd_guard listener{::socket(AF_INET, SOCK_STREAM, 0)};
  if (listener.fd < 0) {
    error = errno_text("socket");
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener.fd, 1) != 0 ||
      ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    error = errno_text("listen on 127.0.0.1");
    return false;
  }
  fd_guard client{::socket(AF_INET, SOCK_STREAM, 0)};
  if (client.fd < 0 || ::connect(client.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    error = errno_text("connect to 127.0.0.1");
    return false;
  }
  const int server = ::accept(listener.fd, nullptr, nullptr);
  if (server < 0) {
    error = errno_text("accept");
    return false;
  }
  const int one = 1;
  ::setsockopt(client.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  a = client.fd;
  client.fd = -1;
  b = server;
  return true;
}

/// Nanoseconds per call of `fn`, over `n` calls.
template <class F>
double ns_per_call(unsigned n, F fn) {
  const auto t0 = bench_clock::now();
  for (unsigned i = 0; i < n; ++i) fn();
  const std::chrono::duration<double, std::nano> spent = bench_clock::now() - t0;
  return spent.count() / n;
}

void print_figure(const char* what, const round_trip_figure& f) {
  if (!f.measured) {
    std::printf("| %s | not measured | | |\n", what);
    return;
  }
  std::printf("| %s | %.2f µs | %.2f µs | %u |\n", what, f.median_us, f.fastest_us, f.round_trips);
}

std::string field(const char* key, const round_trip_figure& f) {
  char buf[64];
  if (f.measured)
    std::snprintf(buf, sizeof buf, " %s=%.2f", key, f.median_us);
  else
    std::snprintf(buf, sizeof buf, " %s=NA", key);
  return buf;
}

}  // namespace

bool measure_machine(const machine_args& a, machine_figures& out, std::string& error) {
  out = machine_figures{};
  error.clear();
  volatile long sink = 0;
  out.syscall_ns = ns_per_call(200000, [&] { sink = sink + ::syscall(SYS_getppid); });
  out.clock_ns = ns_per_call(1000000, [&] {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    sink = sink + ts.tv_nsec;
  });
  out.cpus = allowed_cpus();
  if (out.cpus.empty()) {
    error = errno_text("sched_getaffinity");
    return false;
  }
  const int first = out.cpus[0];
  if (out.cpus.size() > 1) out.cpus.resize(2);
  const bool two = out.cpus.size() > 1;
  const int second = two ? out.cpus[1] : first;
  // One figure: a fresh connected pair, the echo thread on `echo_cpu`.
  auto figure = [&](bool (*make_pair)(int&, int&, std::string&), int echo_cpu,
                    round_trip_figure& into) {
    int x = -1, y = -1;
    if (!make_pair(x, y, error)) return false;
    into = ping_pong(x, y, first, echo_cpu, a, error);
    return error.empty();
  };
  return (!two || figure(unix_pair, second, out.unix_two_cpus)) &&
         figure(unix_pair, first, out.unix_one_cpu) &&
         (!two || figure(tcp_pair, second, out.tcp_two_cpus)) &&
         figure(tcp_pair, first, out.tcp_one_cpu);
}

int run_machine(const machine_args& a, const std::string& command_line) {
  machine_figures f;
  std::string error;
  if (!measure_machine(a, f, error)) {
    std::fprintf(stderr, "tcbench machine: %s\n", error.c_str());
    return 1;
  }
  std::printf("`%s`: %zu CPU(s) used (", command_line.c_str(), f.cpus.size());
  for (size_t i = 0; i < f.cpus.size(); ++i) std::printf("%s%d", i ? ", " : "", f.cpus[i]);
  std::printf(")\n\n");
  std::printf("| call | time |\n|---|---:|\n");
  std::printf("| a system call (getppid) | %.0f ns |\n", f.syscall_ns);
  std::printf("| clock_gettime(CLOCK_MONOTONIC) | %.1f ns |\n\n", f.clock_ns);
  std::printf(
      "| one-byte round trip between two sleeping threads | median batch | fastest batch "
      "| round trips |\n|---|---:|---:|---:|\n");
  print_figure("socketpair, threads on two CPUs", f.unix_two_cpus);
  print_figure("socketpair, threads on one CPU", f.unix_one_cpu);
  print_figure("loopback TCP, threads on two CPUs", f.tcp_two_cpus);
  print_figure("loopback TCP, threads on one CPU", f.tcp_one_cpu);
  std::printf("\nTCMACHINE syscall_ns=%.0f clock_ns=%.1f%s%s%s%s\n", f.syscall_ns, f.clock_ns,
              field("unix_two_cpus_us", f.unix_two_cpus).c_str(),
              field("unix_one_cpu_us", f.unix_one_cpu).c_str(),
              field("tcp_two_cpus_us", f.tcp_two_cpus).c_str(),
              field("tcp_one_cpu_us", f.tcp_one_cpu).c_str());
  return 0;
}

}  // namespace tc::bench
