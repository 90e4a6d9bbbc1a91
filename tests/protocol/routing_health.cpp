// protocol/routing/health.cpp: EWMAs, the sliding window, Retry-After, the breaker's states and
// open periods, probe slots, the score's bounds and monotonicity, and settings out of range.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "protocol/routing/health.hpp"

using namespace tc::routing;

namespace {

void fail_n(endpoint_health& h, int64_t now_ms, int n,
            outcome_kind k = outcome_kind::server_error) {
  for (int i = 0; i < n; ++i) h.record(now_ms, k, -1, -1);
}

void ok_n(endpoint_health& h, int64_t now_ms, int n, double latency_ms = 100) {
  for (int i = 0; i < n; ++i) h.record(now_ms, outcome_kind::ok, latency_ms, latency_ms / 2);
}

}  // namespace

TEST_CASE("routing health: a fresh endpoint is closed, available, scores 1") {
  const endpoint_health h;
  const health_snapshot s = h.snapshot(1'000);
  CHECK(s.breaker == breaker_state::closed);
  CHECK(s.available);
  CHECK(s.score == 1.0);
  CHECK(s.latency_ms < 0);
  CHECK(s.ttft_ms < 0);
  CHECK(s.samples == 0);
  CHECK(s.error_rate == 0.0);
  CHECK(s.retry_after_until_ms == 0);
}

TEST_CASE("routing health: EWMAs start at the first sample and learn from ok and timeout only") {
  endpoint_health h(health_settings{.ewma_alpha = 0.25});
  h.record(0, outcome_kind::ok, 400, 100);
  CHECK(h.snapshot(0).latency_ms == doctest::Approx(400));
  CHECK(h.snapshot(0).ttft_ms == doctest::Approx(100));
  h.record(0, outcome_kind::ok, 800, -1);  // ttft not measured
  CHECK(h.snapshot(0).latency_ms == doctest::Approx(500));
  CHECK(h.snapshot(0).ttft_ms == doctest::Approx(100));
  h.record(0, outcome_kind::ok, std::nan(""), std::numeric_limits<double>::infinity());
  CHECK(h.snapshot(0).latency_ms == doctest::Approx(500));
  CHECK(h.snapshot(0).ttft_ms == doctest::Approx(100));

  // A fast 429, 5xx or 4xx says nothing about how long an answer takes.
  h.record(0, outcome_kind::rate_limited, 1, 1);
  h.record(0, outcome_kind::server_error, 1, 1);
  h.record(0, outcome_kind::client_error, 1, 1);
  h.record(0, outcome_kind::connect_error, 1, 1);
  CHECK(h.snapshot(0).latency_ms == doctest::Approx(500));

  h.record(0, outcome_kind::timeout, 30'500, -1);
  CHECK(h.snapshot(0).latency_ms == doctest::Approx(500 + 0.25 * 30'000));
  CHECK(h.snapshot(0).samples == 8);
}

TEST_CASE("routing health: the breaker opens after open_consecutive failures in a row") {
  endpoint_health h(health_settings{.min_samples = 1000});  // no opening by rate
  ok_n(h, 0, 20);
  fail_n(h, 10, 4);
  CHECK(h.snapshot(10).breaker == breaker_state::closed);
  h.record(10, outcome_kind::ok, 100, 50);  // breaks the run
  fail_n(h, 10, 4, outcome_kind::timeout);
  CHECK(h.admit(10));
  h.record(10, outcome_kind::client_error, -1, -1);  // the caller's fault: a success here
  fail_n(h, 10, 4, outcome_kind::connect_error);
  CHECK(h.snapshot(10).breaker == breaker_state::closed);
  fail_n(h, 10, 1);
  const health_snapshot s = h.snapshot(10);
  CHECK(s.breaker == breaker_state::open);
  CHECK_FALSE(s.available);
  CHECK(s.score == 0.0);
  CHECK_FALSE(h.admit(10));
  CHECK_FALSE(h.admit(5'009));
}

TEST_CASE("routing health: the breaker opens on the window's failure rate, given min_samples") {
  endpoint_health h;  // 0.5 over at least 5 outcomes
  h.record(0, outcome_kind::server_error, -1, -1);
  h.record(0, outcome_kind::ok, 100, -1);
  h.record(0, outcome_kind::server_error, -1, -1);
  h.record(0, outcome_kind::ok, 100, -1);
  CHECK(h.snapshot(0).breaker == breaker_state::closed);        // 2 of 4: too few outcomes
  CHECK(h.snapshot(0).error_rate == doctest::Approx(2.0 / 5));  // damped to min_samples
  h.record(0, outcome_kind::ok, 100, -1);
  CHECK(h.snapshot(0).breaker == breaker_state::closed);  // 2 of 5
  h.record(0, outcome_kind::server_error, -1, -1);        // 3 of 6
  CHECK(h.snapshot(0).breaker == breaker_state::open);
  CHECK(h.snapshot(0).error_rate == doctest::Approx(0.5));
}

TEST_CASE("routing health: old outcomes leave the window") {
  endpoint_health h(health_settings{.window_ms = 10'000, .open_consecutive = 100});
  ok_n(h, 0, 6);
  fail_n(h, 0, 4);  // 4 of 10: stays closed
  CHECK(h.snapshot(0).error_rate == doctest::Approx(0.4));
  CHECK(h.snapshot(9'999).error_rate == doctest::Approx(0.4));
  CHECK(h.snapshot(10'000).error_rate == 0.0);  // its bucket [0, 1000) is out of the window
  ok_n(h, 5'000, 10);
  CHECK(h.snapshot(9'999).error_rate == doctest::Approx(4.0 / 20));
  CHECK(h.snapshot(10'000).error_rate == 0.0);

  // At 12 s the window holds the 10 oks of 5 s only: 10 failures make half of it.
  fail_n(h, 12'000, 9);
  CHECK(h.snapshot(12'000).breaker == breaker_state::closed);
  fail_n(h, 12'000, 1);
  CHECK(h.snapshot(12'000).breaker == breaker_state::open);
}

TEST_CASE("routing health: half-open lets probes through, a success closes and resets") {
  endpoint_health h(health_settings{.open_ms = 5'000, .half_open_probes = 2});
  fail_n(h, 1'000, 5);
  CHECK(h.snapshot(1'000).breaker == breaker_state::open);
  CHECK_FALSE(h.admit(5'999));
  CHECK(h.snapshot(6'000).breaker == breaker_state::half_open);
  CHECK(h.snapshot(6'000).available);
  CHECK(h.admit(6'000));
  CHECK(h.admit(6'000));
  CHECK_FALSE(h.admit(6'000));  // both probe slots taken
  CHECK_FALSE(h.snapshot(6'000).available);
  h.release_probe();  // one probe's client went away
  CHECK(h.snapshot(6'000).available);
  CHECK(h.admit(6'001));
  h.record(6'500, outcome_kind::ok, 100, 40);
  health_snapshot s = h.snapshot(6'500);
  CHECK(s.breaker == breaker_state::closed);
  CHECK(s.available);
  CHECK(s.error_rate == 0.0);  // the window starts again
  CHECK(h.admit(6'500));

  // Reset: the next opening is for open_ms again, not a doubled period.
  fail_n(h, 7'000, 5);
  CHECK(h.snapshot(7'000).breaker == breaker_state::open);
  CHECK(h.snapshot(11'999).breaker == breaker_state::open);
  CHECK(h.snapshot(12'000).breaker == breaker_state::half_open);
}

TEST_CASE("routing health: a failed probe re-opens for twice as long, at most 60 s") {
  endpoint_health h(health_settings{.open_ms = 5'000});
  fail_n(h, 0, 5);
  int64_t now = 0;
  for (const int64_t period : {5'000, 10'000, 20'000, 40'000, 60'000, 60'000}) {
    CHECK_FALSE(h.admit(now + period - 1));
    CHECK(h.admit(now + period));
    now += period;
    h.record(now, outcome_kind::timeout, 30'000, -1);
    CHECK(h.snapshot(now).breaker == breaker_state::open);
  }
  CHECK_FALSE(h.admit(now + 59'999));
  CHECK(h.admit(now + 60'000));
  h.record(now + 60'000, outcome_kind::client_error, -1, -1);  // a success for health
  CHECK(h.snapshot(now + 60'000).breaker == breaker_state::closed);
}

TEST_CASE("routing health: open_ms above 60 s still opens for open_ms") {
  endpoint_health h(health_settings{.open_ms = 90'000});
  fail_n(h, 0, 5);
  CHECK_FALSE(h.admit(89'999));
  CHECK(h.admit(90'000));
  h.record(90'000, outcome_kind::server_error, -1, -1);
  CHECK_FALSE(h.admit(179'999));
  CHECK(h.admit(180'000));
}

TEST_CASE("routing health: 429 holds the endpoint back until Retry-After, never opens") {
  endpoint_health h;
  ok_n(h, 0, 10);
  const double before = h.snapshot(0).score;
  h.record(1'000, outcome_kind::rate_limited, 5, 5, 3'000);
  health_snapshot s = h.snapshot(1'000);
  CHECK(s.retry_after_until_ms == 4'000);
  CHECK_FALSE(s.available);
  CHECK(s.score == 0.0);
  CHECK_FALSE(h.admit(3'999));
  CHECK(h.admit(4'000));
  s = h.snapshot(4'000);
  CHECK(s.available);
  CHECK(s.rate_limited_rate == doctest::Approx(1.0 / 11));
  CHECK(s.score > 0);
  CHECK(s.score < before);

  // No Retry-After: 1 s. A shorter one later never shortens the wait.
  h.record(5'000, outcome_kind::rate_limited, -1, -1);
  CHECK(h.snapshot(5'000).retry_after_until_ms == 6'000);
  h.record(5'000, outcome_kind::rate_limited, -1, -1, 10'000);
  h.record(5'500, outcome_kind::rate_limited, -1, -1, 100);
  CHECK(h.snapshot(5'500).retry_after_until_ms == 15'000);

  // However many, 429s alone never open the breaker.
  for (int i = 0; i < 200; ++i) h.record(6'000 + i, outcome_kind::rate_limited, -1, -1, 1);
  CHECK(h.snapshot(16'000).breaker == breaker_state::closed);
  CHECK(h.admit(16'000));
}

TEST_CASE("routing health: a 429 ends a half-open probe without deciding") {
  endpoint_health h(health_settings{.open_ms = 1'000});
  fail_n(h, 0, 5);
  CHECK(h.admit(1'000));
  CHECK_FALSE(h.admit(1'000));
  h.record(1'100, outcome_kind::rate_limited, -1, -1, 500);
  CHECK(h.snapshot(1'100).breaker == breaker_state::half_open);
  CHECK_FALSE(h.admit(1'599));  // Retry-After
  CHECK(h.admit(1'600));        // the slot was freed
}

TEST_CASE("routing health: the latency part is 0.5 at the target") {
  endpoint_health h(health_settings{.latency_target_ms = 1'000});
  ok_n(h, 0, 1, 1'000);
  CHECK(h.snapshot(0).score == doctest::Approx(0.5));
  endpoint_health g(health_settings{.latency_target_ms = 1'000});
  ok_n(g, 0, 1, 3'000);
  CHECK(g.snapshot(0).score == doctest::Approx(0.25));
}

TEST_CASE("routing health: more failures, 429s or latency never raise the score") {
  // `worse` sees what `base` sees, plus extra failures and 429s and slower samples. The breaker
  // never opens and Retry-After has passed at each snapshot: the property is the window's and
  // the EWMAs'.
  const health_settings settings{.open_error_rate = 2, .open_consecutive = UINT32_MAX};
  std::mt19937_64 rng(42);
  for (int round = 0; round < 300; ++round) {
    endpoint_health base(settings);
    endpoint_health worse(settings);
    const int n = 1 + static_cast<int>(rng() % 60);
    int64_t now = 0;
    for (int i = 0; i < n; ++i) {
      now += static_cast<int64_t>(rng() % 3'000);
      const auto k = static_cast<outcome_kind>(rng() % 6);
      const double latency = static_cast<double>(rng() % 5'000);
      const bool slower = (k == outcome_kind::ok || k == outcome_kind::timeout) && rng() % 4 == 0;
      base.record(now, k, latency, latency / 4, 1);
      worse.record(now, k, slower ? latency + 1'000 : latency, latency / 4, 1);
      switch (rng() % 6) {
        case 0:
          worse.record(now, outcome_kind::server_error, latency, latency, 1);
          break;
        case 1:
          worse.record(now, outcome_kind::rate_limited, latency, latency, 1);
          break;
        default:
          break;
      }
      const double b = base.snapshot(now + 1).score;
      const double w = worse.snapshot(now + 1).score;
      CHECK(b >= 0);
      CHECK(b <= 1);
      CHECK(w <= b + 1e-12);
    }
  }
}

TEST_CASE("routing health: out-of-range settings fall back, clocks at the edges do not wrap") {
  health_settings bad;
  bad.ewma_alpha = std::nan("");
  bad.window_ms = 0;
  bad.min_samples = 0;
  bad.open_error_rate = -1;
  bad.open_consecutive = 0;
  bad.open_ms = 0;
  bad.half_open_probes = 0;
  bad.latency_target_ms = 0;
  endpoint_health h(bad);
  ok_n(h, 0, 1, 2'000);
  CHECK(h.snapshot(0).score == doctest::Approx(0.5));  // default target
  fail_n(h, 0, 5);
  CHECK(h.snapshot(0).breaker == breaker_state::open);  // default streak
  CHECK(h.admit(5'000));                                // default open_ms
  CHECK_FALSE(h.admit(5'000));                          // one probe

  endpoint_health late;
  const int64_t end = std::numeric_limits<int64_t>::max() - 10;
  late.record(end, outcome_kind::rate_limited, -1, -1, 60'000);
  CHECK(late.snapshot(end).retry_after_until_ms == std::numeric_limits<int64_t>::max());
  fail_n(late, end, 5);
  CHECK(late.snapshot(end).breaker == breaker_state::open);

  endpoint_health early;  // negative times and a clock that steps back
  early.record(-5'000, outcome_kind::server_error, -1, -1);
  early.record(-50'000, outcome_kind::server_error, -1, -1);
  CHECK(early.snapshot(-5'000).error_rate == doctest::Approx(2.0 / 5));
  CHECK(early.snapshot(-50'000).error_rate == doctest::Approx(2.0 / 5));
  CHECK(early.snapshot(40'000).error_rate == 0.0);

  endpoint_health first(health_settings{.window_ms = 10});  // 1 ms buckets at the clock's start
  const int64_t start = std::numeric_limits<int64_t>::min();
  first.record(start, outcome_kind::server_error, -1, -1);
  first.record(start + 1, outcome_kind::ok, 10, -1);
  CHECK(first.snapshot(start + 1).error_rate == doctest::Approx(1.0 / 5));
  CHECK(first.snapshot(0).error_rate == 0.0);
}
