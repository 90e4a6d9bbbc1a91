// protocol/scheduling/bucket.cpp: refill and burst, reservations above the burst, settlement
// with debt and refund, wait_us agreeing with try_take, rate changes, bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "protocol/scheduling/bucket.hpp"

using tc::scheduling::token_bucket;

namespace {
constexpr int64_t s = 1'000'000;  // microseconds
}

TEST_CASE("bucket: rate 0 is unlimited") {
  token_bucket b(0, 0);
  CHECK(b.unlimited());
  for (int i = 0; i < 1'000; ++i) CHECK(b.try_take(1e9, 0));
  CHECK(b.wait_us(1e12, 0) == 0);
  b.settle(1, 1e12, 0);
  CHECK(b.try_take(1e9, 0));
  CHECK(token_bucket(-5, 10).unlimited());
  CHECK(token_bucket(std::nan(""), 10).unlimited());
  CHECK(token_bucket(std::numeric_limits<double>::infinity(), 10).unlimited());
}

TEST_CASE("bucket: starts full, refills at the rate up to the burst") {
  token_bucket b(100, 200);
  const int64_t t0 = 5 * s;
  CHECK(b.available(t0) == 200);
  CHECK(b.try_take(150, t0));
  CHECK_FALSE(b.try_take(100, t0));  // 50 left
  CHECK(b.available(t0) == doctest::Approx(50));
  CHECK(b.wait_us(100, t0) == s / 2);
  CHECK_FALSE(b.try_take(100, t0 + s / 2 - 1));
  CHECK(b.try_take(100, t0 + s / 2));
  CHECK(b.available(t0 + 3'600 * s) == 200);  // capped at the burst
  CHECK(b.try_take(200, t0 + 3'600 * s));
  CHECK_FALSE(b.try_take(1, t0 + 3'600 * s));
}

TEST_CASE("bucket: a reservation above the burst goes when full and leaves a debt") {
  token_bucket b(100, 200);
  CHECK(b.try_take(10, 0));
  CHECK_FALSE(b.try_take(500, 0));     // never fits: waits for a full bucket
  CHECK(b.wait_us(500, 0) == s / 10);  // 10 tokens to refill
  CHECK(b.try_take(500, s / 10));      // full: goes, 300 in debt
  CHECK(b.available(s / 10) == doctest::Approx(-300));
  CHECK(b.wait_us(1, s / 10) == 3'010'000);  // repay 300, then 1
  CHECK_FALSE(b.try_take(1, s / 10 + 3 * s));
  CHECK(b.try_take(1, s / 10 + 3'010'000));
}

TEST_CASE("bucket: settle charges or refunds the difference") {
  token_bucket b(1'000, 1'000);
  REQUIRE(b.try_take(400, 0));  // reserved by estimate
  b.settle(400, 1'000, 0);      // used 600 more than reserved: 0 left
  CHECK(b.available(0) == doctest::Approx(0));
  REQUIRE(b.try_take(0, 0));
  b.settle(0, 500, 0);  // a debt of 500
  CHECK(b.available(0) == doctest::Approx(-500));
  CHECK_FALSE(b.try_take(1, s / 2 - 1));  // repaid by the refill first
  CHECK(b.try_take(1, s / 2 + 2'000));    // 2 held, 1 left
  b.settle(300, 100, s / 2 + 2'000);      // used less: 200 back
  CHECK(b.available(s / 2 + 2'000) == doctest::Approx(201));
  b.give_back(5'000, s / 2 + 2'000);  // refunds never exceed the burst
  CHECK(b.available(s / 2 + 2'000) == doctest::Approx(1'000));
  // A bogus usage report: the debt is capped at one hour of refill.
  b.settle(0, 1e15, s);
  CHECK(b.available(s) == doctest::Approx(-1'000.0 * 3'600));
  CHECK(b.wait_us(1, s) < 3'601 * s);
}

TEST_CASE("bucket: time going backwards refills nothing") {
  token_bucket b(10, 10);
  CHECK(b.try_take(10, 100 * s));
  CHECK_FALSE(b.try_take(1, 50 * s));
  CHECK(b.available(50 * s) == doctest::Approx(0));
  CHECK(b.wait_us(1, 50 * s) == 50 * s + s / 10);  // the refill resumes from 100 s
  CHECK_FALSE(b.try_take(1, 100 * s + s / 10 - 1));
  CHECK(b.try_take(1, 100 * s + s / 10));
}

TEST_CASE("bucket: bad amounts count as zero, a bad burst is one second of rate") {
  token_bucket b(50, std::nan(""));
  CHECK(b.burst() == 50);
  CHECK(token_bucket(0.5, -1).burst() == 1);
  CHECK(b.try_take(std::nan(""), 0));
  CHECK(b.try_take(-100, 0));
  CHECK(b.available(0) == 50);
  b.settle(std::numeric_limits<double>::infinity(), -3, 0);
  CHECK(b.available(0) == 50);
  CHECK(b.wait_us(std::nan(""), 0) == 0);
  // A rate so small the wait would be years: capped at one day.
  token_bucket slow(1e-12, 1);
  CHECK(slow.try_take(1, 0));
  CHECK(slow.wait_us(1, 0) == 86'400 * s);
}

TEST_CASE("bucket: set_rate keeps what is held, up to the new burst") {
  token_bucket b(100, 100);
  REQUIRE(b.try_take(60, 0));
  b.set_rate(1'000, 1'000, s / 10);  // refilled 10 at the old rate first: 50
  CHECK(b.available(s / 10) == doctest::Approx(50));
  CHECK(b.available(s / 10 + s / 10) == doctest::Approx(150));
  b.set_rate(10, 20, s / 5);  // held 150 -> capped at 20
  CHECK(b.available(s / 5) == doctest::Approx(20));
  b.set_rate(0, 0, s);  // unlimited
  CHECK(b.try_take(1e9, s));
  b.set_rate(10, 30, 2 * s);  // from unlimited: full
  CHECK(b.available(2 * s) == 30);
  CHECK(b.try_take(30, 2 * s));
  CHECK_FALSE(b.try_take(1, 2 * s));
}

TEST_CASE("bucket: wait_us is exactly when try_take succeeds") {
  std::mt19937 rng(99);
  std::uniform_real_distribution<double> rate(0.1, 1e6), frac(0, 1);
  for (int i = 0; i < 20'000; ++i) {
    const double r = rate(rng), burst = r * (0.01 + 3 * frac(rng));
    token_bucket b(r, burst);
    const int64_t t0 = std::uniform_int_distribution<int64_t>(0, 1'000'000 * s)(rng);
    REQUIRE(b.try_take(burst * frac(rng), t0));
    const double n = burst * 1.5 * frac(rng);
    const int64_t w = b.wait_us(n, t0);
    CAPTURE(r);
    CAPTURE(burst);
    CAPTURE(n);
    CAPTURE(w);
    if (w > 0) {
      token_bucket early = b;
      CHECK_FALSE(early.try_take(n, t0 + w - 1));
    }
    CHECK(b.try_take(n, t0 + w));
  }
}
