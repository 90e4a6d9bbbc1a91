// tcbench machine: what this machine charges for the operations a proxied request is made of,
// so a benchmark run can say what state the machine was in. A system call, a clock read, and
// the round trip of one byte between two threads that each sleep until the other writes: over a
// socketpair and over loopback TCP, with the two threads on two CPUs and on one. On a VM the
// two-CPU round trip includes waking a halted virtual CPU, which can cost ten times the
// one-CPU figure.
#pragma once

#include <string>
#include <vector>

namespace tc::bench {

struct machine_args {
  unsigned round_trips = 10000;  ///< per figure, in batches of 500 (the median batch is kept)
  double max_seconds = 5;        ///< per figure; a slower machine measures fewer batches
};

/// Mean time of one round trip in the median batch and in the fastest one, microseconds.
struct round_trip_figure {
  bool measured = false;  ///< false: not measured (e.g. only one CPU is allowed)
  double median_us = 0;
  double fastest_us = 0;
  unsigned round_trips = 0;  ///< how many were timed
};

struct machine_figures {
  double syscall_ns = 0;  ///< getppid(2) through syscall(2): the kernel entry and exit
  double clock_ns = 0;    ///< clock_gettime(CLOCK_MONOTONIC), the vDSO's
  round_trip_figure unix_two_cpus, unix_one_cpu;  ///< socketpair(AF_UNIX, SOCK_STREAM)
  round_trip_figure tcp_two_cpus, tcp_one_cpu;    ///< 127.0.0.1, TCP_NODELAY
  std::vector<int> cpus;  ///< the CPUs used: [0] for one, [0] and [1] for two
};

/// Measures every figure. False, with `error` set, when a socket or a thread cannot be made.
/// Blocks for up to about 4 x max_seconds.
bool measure_machine(const machine_args& a, machine_figures& out, std::string& error);

/// Runs the measurement and prints the report and one `TCMACHINE key=value ...` line.
int run_machine(const machine_args& a, const std::string& command_line);

}  // namespace tc::bench
