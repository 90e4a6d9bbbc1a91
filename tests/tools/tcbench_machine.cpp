// tools/tcbench/machine.cpp: every figure is measured and plausible, the one-CPU round trips run
// on one CPU, and the per-figure deadline bounds the run.
#include "tools/tcbench/machine.hpp"

#include <sched.h>

#include <chrono>
#include <cmath>
#include <string>

#include <doctest/doctest.h>

using namespace tc::bench;

namespace {

/// How many CPUs this process may run on.
int allowed_cpu_count() {
  cpu_set_t set;
  CPU_ZERO(&set);
  REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
  return CPU_COUNT(&set);
}

void check_figure(const round_trip_figure& f, unsigned round_trips) {
  CHECK(f.measured);
  CHECK(f.round_trips == round_trips);
  CHECK(std::isfinite(f.median_us));
  CHECK(f.fastest_us > 0);
  CHECK(f.fastest_us <= f.median_us);
  CHECK(f.median_us < 100000);  // 0.1 s a round trip would be a hang, not a machine
}

}  // namespace

TEST_CASE("tcbench machine measures a system call, a clock read and four round trips") {
  machine_args a;
  a.round_trips = 1000;
  a.max_seconds = 30;
  machine_figures f;
  std::string error;
  REQUIRE_MESSAGE(measure_machine(a, f, error), error);
  CHECK(error.empty());
  CHECK(f.syscall_ns > 0);
  CHECK(f.clock_ns > 0);
  check_figure(f.unix_one_cpu, 1000);
  check_figure(f.tcp_one_cpu, 1000);
  if (allowed_cpu_count() >= 2) {
    REQUIRE(f.cpus.size() == 2);
    CHECK(f.cpus[0] != f.cpus[1]);
    check_figure(f.unix_two_cpus, 1000);
    check_figure(f.tcp_two_cpus, 1000);
  } else {
    CHECK(f.cpus.size() == 1);
    CHECK_FALSE(f.unix_two_cpus.measured);
    CHECK_FALSE(f.tcp_two_cpus.measured);
  }
}

TEST_CASE("tcbench machine stops each figure at its deadline") {
  machine_args a;
  a.round_trips = 10'000'000;  // far more than fits in the deadline
  a.max_seconds = 0.05;
  machine_figures f;
  std::string error;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_MESSAGE(measure_machine(a, f, error), error);
  const std::chrono::duration<double> spent = std::chrono::steady_clock::now() - t0;
  CHECK(spent.count() < 10);  // four figures of 0.05 s each, one batch over at most
  CHECK(f.unix_one_cpu.round_trips < 10'000'000);
  CHECK(f.tcp_one_cpu.round_trips < 10'000'000);
}
