// The quota book's promises: rolling request and token windows (exact counts, rolling, retry and
// reset times), burst pay-back, concurrency, all-or-nothing reservation across scopes, hard and
// soft budgets with day and month rollover and alerts, sweeping, and a cross-check of the
// windows against a naive model that remembers every request.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "actors/quota_book.hpp"

namespace {

using tc::accounts::limits;
using tc::actors::budget_alert;
using tc::actors::quota_ask;
using tc::actors::quota_book;
using tc::actors::quota_scope;
using tc::actors::quota_verdict;

/// 2023-11-14T22:14:00Z: a whole minute, so second and minute buckets start here.
constexpr int64_t t0 = 1'700'000'040'000;
constexpr int64_t sec = 1000;
constexpr int64_t minute = 60 * sec;
constexpr int64_t hour = 60 * minute;

int64_t utc_ms(int y, unsigned m, unsigned d, int h = 0, int mi = 0, int s = 0) {
  using namespace std::chrono;
  sys_days day{year{y} / month{m} / d};
  return (day.time_since_epoch().count() * 86400 + h * 3600 + mi * 60 + s) * 1000;
}

int64_t day_of(int64_t ms) {
  return ms / (24 * hour);
}

limits lim_rpm(uint64_t rpm, uint32_t burst = 0) {
  limits l;
  l.rpm = rpm;
  l.burst_pct = burst;
  return l;
}

limits lim_tpm(uint64_t tpm, uint32_t burst = 0) {
  limits l;
  l.tpm = tpm;
  l.burst_pct = burst;
  return l;
}

limits lim_budget(double daily, double monthly, bool soft = false) {
  limits l;
  l.daily_budget = daily;
  l.monthly_budget = monthly;
  l.soft_budget = soft;
  return l;
}

quota_ask ask_of(std::vector<quota_scope> scopes, uint64_t tokens = 0, int64_t cost = 0) {
  quota_ask a;
  a.scopes = std::move(scopes);
  a.tokens = tokens;
  a.cost_micros = cost;
  return a;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("rpm N admits exactly N of M requests within one second, tickets count from 1") {
  quota_book book;
  const quota_ask a = ask_of({{"k:key_x", lim_rpm(100)}});
  int granted = 0;
  uint64_t last_ticket = 0;
  for (int i = 0; i < 250; ++i) {
    quota_verdict v = book.reserve(a, t0 + i * 4);
    if (v.granted) {
      ++granted;
      CHECK(i < 100);  // the first 100 get in, no later one
      CHECK(v.ticket == last_ticket + 1);
      last_ticket = v.ticket;
      CHECK(v.status == 0);
    } else {
      CHECK(v.status == 429);
      CHECK(v.code == "rate_limit_exceeded");
      CHECK(v.message ==
            "Rate limit reached for requests per minute on key key_x: limit 100, used 100.");
      CHECK(v.retry_after_s == 60);  // the first second's bucket leaves at t0 + 60 s
      CHECK(v.remaining_requests == 0);
      CHECK(v.limit_requests == 100);
    }
  }
  CHECK(granted == 100);
  CHECK(last_ticket == 100);
  CHECK(book.reservations() == 100);
  CHECK(book.scopes() == 1);
}

TEST_CASE(
    "the request window rolls: slots free 60 s after their second, reset and retry say when") {
  quota_book book;
  const quota_ask a = ask_of({{"k:a", lim_rpm(10)}});
  const int64_t t = t0 + 250;
  for (int i = 0; i < 5; ++i) {
    quota_verdict v = book.reserve(a, t);
    REQUIRE(v.granted);
    CHECK(v.limit_requests == 10);
    CHECK(v.remaining_requests == uint64_t(9 - i));
    CHECK(v.reset_requests_ms == 59'750);  // t0's second leaves at t0 + 60 s
  }
  for (int i = 0; i < 5; ++i) {
    quota_verdict v = book.reserve(a, t + 10 * sec);
    REQUIRE(v.granted);
    CHECK(v.reset_requests_ms == 49'750);  // still the oldest bucket, 10 s later
  }
  quota_verdict d = book.reserve(a, t + 20 * sec);
  CHECK_FALSE(d.granted);
  CHECK(d.retry_after_s == 40);  // 39.75 s, rounded up
  CHECK(d.reset_requests_ms == 39'750);
  CHECK(d.remaining_requests == 0);

  CHECK_FALSE(book.reserve(a, t0 + 59'999).granted);  // t0's bucket still counts
  for (int i = 0; i < 5; ++i) {
    quota_verdict v = book.reserve(a, t0 + 60 * sec);
    REQUIRE(v.granted);
    CHECK(v.reset_requests_ms == 10'000);  // now the oldest is t0 + 10 s's bucket
  }
  quota_verdict d2 = book.reserve(a, t0 + 60 * sec);
  CHECK_FALSE(d2.granted);
  CHECK(d2.retry_after_s == 10);

  // Two buckets must leave to admit one more when the limit shrinks to 4 (used 10 -> needs 7
  // gone: t0 + 10 s's 5 and t0 + 60 s's 5: the latter leaves at t0 + 120 s).
  quota_verdict d3 = book.reserve(ask_of({{"k:a", lim_rpm(4)}}), t0 + 61 * sec);
  CHECK_FALSE(d3.granted);
  CHECK(d3.retry_after_s == 59);
}

TEST_CASE("rpd counts per rolling day in hour buckets") {
  quota_book book;
  limits l;
  l.rpd = 3;
  const quota_ask a = ask_of({{"k:a", l}});
  const int64_t t = utc_ms(2024, 1, 1, 10);  // a whole hour
  CHECK(book.reserve(a, t + 30 * minute).granted);
  CHECK(book.reserve(a, t + 2 * hour).granted);
  CHECK(book.reserve(a, t + 5 * hour).granted);
  quota_verdict d = book.reserve(a, t + 6 * hour);
  CHECK_FALSE(d.granted);
  CHECK(contains(d.message, "requests per day on key a: limit 3, used 3"));
  CHECK(d.retry_after_s == 18 * 3600);  // the first hour bucket leaves 24 h after it started
  CHECK_FALSE(book.reserve(a, t + 24 * hour - 1).granted);
  CHECK(book.reserve(a, t + 24 * hour).granted);
}

TEST_CASE("tpm: an estimate settled to a smaller actual frees tokens, in its own bucket") {
  quota_book book;
  const quota_ask big = ask_of({{"k:a", lim_tpm(1000)}}, 800);
  quota_verdict v1 = book.reserve(big, t0);
  REQUIRE(v1.granted);
  CHECK(v1.limit_tokens == 1000);
  CHECK(v1.remaining_tokens == 200);
  CHECK(v1.reset_tokens_ms == 60'000);
  CHECK(v1.limit_requests == 0);  // no rpm anywhere: no request headers

  const quota_ask mid = ask_of({{"k:a", lim_tpm(1000)}}, 300);
  quota_verdict d = book.reserve(mid, t0 + sec);
  CHECK_FALSE(d.granted);
  CHECK(d.code == "rate_limit_exceeded");
  CHECK(d.message ==
        "Rate limit reached for tokens per minute on key a: limit 1000, used 800, requested 300.");
  CHECK(d.retry_after_s == 59);
  CHECK(d.remaining_tokens == 200);  // a denial reports the window as it is

  CHECK(book.settle(v1.ticket, 100, 0, t0 + 30 * sec).empty());
  quota_verdict v2 = book.reserve(mid, t0 + 30 * sec);
  REQUIRE(v2.granted);
  CHECK(v2.remaining_tokens == 600);

  // The 100 actual tokens stayed in t0's bucket (not the settle's): they leave at t0 + 60 s.
  const quota_ask rest = ask_of({{"k:a", lim_tpm(1000)}}, 650);
  CHECK_FALSE(book.reserve(rest, t0 + 59 * sec).granted);
  quota_verdict v3 = book.reserve(rest, t0 + 60 * sec);
  CHECK(v3.granted);
  CHECK(v3.remaining_tokens == 50);

  // Settling after the bucket left counts nothing anywhere.
  CHECK(book.settle(v2.ticket, 5000, 0, t0 + 95 * sec).empty());
  CHECK(book.reserve(ask_of({{"k:a", lim_tpm(1000)}}, 1000), t0 + 120 * sec).granted);
}

TEST_CASE("tpm: a request larger than the whole minute is refused as such") {
  quota_book book;
  quota_verdict d = book.reserve(ask_of({{"t:acme", lim_tpm(1000)}}, 1001), t0);
  CHECK_FALSE(d.granted);
  CHECK(d.status == 429);
  CHECK(d.retry_after_s == 60);
  CHECK(contains(d.message, "too large"));
  CHECK(contains(d.message, "tenant acme"));
  CHECK(contains(d.message, "limit 1000"));
  CHECK(book.scopes() == 0);  // a denial creates nothing
  CHECK(book.reserve(ask_of({{"t:acme", lim_tpm(1000)}}, 1000), t0).granted);
}

TEST_CASE("concurrency is released by settle, once") {
  quota_book book;
  limits l;
  l.max_concurrent = 2;
  const quota_ask a = ask_of({{"k:a", l}});
  quota_verdict v1 = book.reserve(a, t0);
  quota_verdict v2 = book.reserve(a, t0);
  REQUIRE(v1.granted);
  REQUIRE(v2.granted);
  quota_verdict d = book.reserve(a, t0);
  CHECK_FALSE(d.granted);
  CHECK(d.code == "rate_limit_exceeded");
  CHECK(d.retry_after_s == 1);
  CHECK(d.message == "Concurrency limit reached on key a: limit 2 requests in flight.");

  book.settle(v1.ticket, 0, 0, t0 + 5);
  quota_verdict v3 = book.reserve(a, t0 + 5);
  REQUIRE(v3.granted);
  book.settle(v1.ticket, 0, 0, t0 + 6);  // settled twice: ignored
  CHECK_FALSE(book.reserve(a, t0 + 6).granted);
  CHECK(book.reservations() == 2);
}

TEST_CASE("all or nothing: a denial in one scope reserves nothing in the others") {
  quota_book book;
  limits tenant = lim_budget(1.0, 0);
  tenant.rpm = 100;
  tenant.max_concurrent = 2;
  const quota_scope t{"t:acme", tenant};
  const quota_scope k{"k:key_a", lim_rpm(1)};

  REQUIRE(book.reserve(ask_of({t, k}, 0, 600'000), t0).granted);
  quota_verdict d = book.reserve(ask_of({t, k}, 0, 400'000), t0 + 1);  // the tenant admits it
  CHECK_FALSE(d.granted);
  CHECK(contains(d.message, "key key_a: limit 1, used 1"));

  // Had the denied request counted in the tenant: 2 in flight (denied), 1.4 of 1.0 held
  // (denied), 2 requests in the window (remaining 97).
  quota_verdict v = book.reserve(ask_of({t}, 0, 400'000), t0 + 2);
  CHECK(v.granted);
  CHECK(v.remaining_requests == 98);
  CHECK(book.reservations() == 2);

  // A fresh scope in front of a denying one is not even created.
  const size_t before = book.scopes();
  CHECK_FALSE(book.reserve(ask_of({{"t:fresh", limits{}}, k}), t0 + 3).granted);
  CHECK(book.scopes() == before);
}

TEST_CASE("checks run in order and the retry covers every failed check") {
  quota_book book;
  limits l;
  l.max_concurrent = 1;
  l.rpm = 1;
  const quota_ask a = ask_of({{"k:a", l}});
  REQUIRE(book.reserve(a, t0).granted);
  quota_verdict d = book.reserve(a, t0 + 500);
  CHECK_FALSE(d.granted);
  CHECK(contains(d.message, "Concurrency"));  // concurrency is checked before rpm
  CHECK(d.retry_after_s == 60);               // but the rpm slot frees only at t0 + 60 s

  // Rate before budget: the code follows the first failure.
  limits both = lim_budget(0.000001, 0);
  both.rpm = 1;
  quota_book b2;
  REQUIRE(b2.reserve(ask_of({{"k:b", both}}), t0).granted);
  quota_verdict d2 = b2.reserve(ask_of({{"k:b", both}}, 0, 2), t0);
  CHECK(d2.code == "rate_limit_exceeded");
}

TEST_CASE("the same scope twice in one ask counts once") {
  quota_book book;
  limits l = lim_rpm(2);
  l.max_concurrent = 1;
  REQUIRE(book.reserve(ask_of({{"k:a", l}, {"k:a", l}}), t0).granted);
  CHECK(book.scopes() == 1);
  quota_verdict v = book.reserve(ask_of({{"k:a", lim_rpm(2)}}), t0);
  CHECK(v.granted);  // the window held 1, not 2
  CHECK(v.remaining_requests == 0);
}

TEST_CASE("hard budget: spent + held + this request may reach the budget, not pass it") {
  quota_book book;
  const int64_t t = utc_ms(2024, 3, 10, 22, 0, 0) + 500;
  const quota_ask a = ask_of({{"t:acme", lim_budget(1.0, 0)}}, 0, 400'000);
  quota_verdict v1 = book.reserve(a, t);
  quota_verdict v2 = book.reserve(a, t);
  REQUIRE(v1.granted);
  REQUIRE(v2.granted);
  CHECK_FALSE(v2.budget_warning);
  quota_verdict d = book.reserve(a, t);
  CHECK_FALSE(d.granted);
  CHECK(d.status == 429);
  CHECK(d.code == "insufficient_quota");
  CHECK(d.message ==
        "Daily budget exceeded on tenant acme: budget 1.00, spent 0.00, reserved 0.80, this "
        "request 0.40.");
  CHECK(d.retry_after_s == 7200);  // 1:59:59.5 to midnight UTC, rounded up

  book.settle(v1.ticket, 0, 300'000, t + 1);
  book.settle(v2.ticket, 0, 300'000, t + 1);
  quota_verdict v3 = book.reserve(a, t + 2);  // 0.6 spent + 0.4 = 1.0 exactly
  CHECK(v3.granted);
  CHECK_FALSE(v3.budget_warning);
  CHECK_FALSE(book.reserve(ask_of({{"t:acme", lim_budget(1.0, 0)}}, 0, 1), t + 3).granted);
  // A budget of zero is no budget.
  CHECK(book.reserve(ask_of({{"t:acme", limits{}}}, 0, 50'000'000), t + 3).granted);
}

TEST_CASE("soft budget: warns over 100%, refuses over 120%") {
  quota_book book;
  const int64_t t = utc_ms(2024, 3, 10, 12);
  const quota_scope s{"p:acme/web", lim_budget(1.0, 0, true)};
  quota_verdict v = book.reserve(ask_of({s}, 0, 900'000), t);
  REQUIRE(v.granted);
  CHECK_FALSE(v.budget_warning);
  book.settle(v.ticket, 0, 900'000, t);
  v = book.reserve(ask_of({s}, 0, 200'000), t);  // 1.1
  REQUIRE(v.granted);
  CHECK(v.budget_warning);
  book.settle(v.ticket, 0, 200'000, t);
  v = book.reserve(ask_of({s}, 0, 100'000), t);  // 1.2: still allowed
  REQUIRE(v.granted);
  CHECK(v.budget_warning);
  book.settle(v.ticket, 0, 100'000, t);
  quota_verdict d = book.reserve(ask_of({s}, 0, 1), t);
  CHECK_FALSE(d.granted);
  CHECK(d.code == "insufficient_quota");
  CHECK(contains(d.message, "120%"));
  CHECK(contains(d.message, "project acme/web"));
}

TEST_CASE("daily spend rolls over at UTC midnight, monthly at the first of the month") {
  quota_book book;
  {
    const quota_scope s{"k:a", lim_budget(1.0, 0)};
    const int64_t t = utc_ms(2024, 3, 10, 23, 59, 59);
    quota_verdict v = book.reserve(ask_of({s}, 0, 1'000'000), t);
    REQUIRE(v.granted);
    book.settle(v.ticket, 0, 1'000'000, t);
    quota_verdict d = book.reserve(ask_of({s}, 0, 1), t + 500);
    CHECK_FALSE(d.granted);
    CHECK(d.retry_after_s == 1);
    CHECK(book.reserve(ask_of({s}, 0, 1'000'000), utc_ms(2024, 3, 11)).granted);
  }
  {
    // Month 2.0 over days of 1.5: the days roll, the month accumulates until February.
    const quota_scope s{"k:b", lim_budget(1.5, 2.0)};
    quota_verdict v = book.reserve(ask_of({s}, 0, 1'000'000), utc_ms(2024, 3, 30, 10));
    REQUIRE(v.granted);
    book.settle(v.ticket, 0, 1'000'000, utc_ms(2024, 3, 30, 10));
    v = book.reserve(ask_of({s}, 0, 1'000'000), utc_ms(2024, 3, 31));
    REQUIRE(v.granted);
    book.settle(v.ticket, 0, 1'000'000, utc_ms(2024, 3, 31));
    quota_verdict d = book.reserve(ask_of({s}, 0, 1), utc_ms(2024, 3, 31, 12));
    CHECK_FALSE(d.granted);
    CHECK(d.code == "insufficient_quota");
    CHECK(contains(d.message, "Monthly budget"));
    CHECK(d.retry_after_s == 12 * 3600);
    CHECK_FALSE(book.reserve(ask_of({s}, 0, 1), utc_ms(2024, 3, 31, 23, 59, 59)).granted);
    CHECK(book.reserve(ask_of({s}, 0, 1'500'000), utc_ms(2024, 4, 1)).granted);
  }
}

TEST_CASE("a month denial waits for the next month, across a leap February") {
  quota_book book;
  const quota_scope s{"t:x", lim_budget(0, 1.0)};
  book.add_spend("t:x", day_of(utc_ms(2024, 2, 3)), 0, 1'000'000);
  quota_verdict d = book.reserve(ask_of({s}, 0, 1), utc_ms(2024, 2, 28, 12));
  CHECK_FALSE(d.granted);
  CHECK(d.retry_after_s == (36 * 3600));  // Feb 29 exists in 2024
}

TEST_CASE("add_spend seeds the day and month, older periods are ignored") {
  quota_book book;
  const int64_t t = utc_ms(2024, 5, 20, 9);
  const int64_t d = day_of(t);
  book.add_spend("t:acme", d, 900'000, 4'000'000);
  book.add_spend("t:acme", d - 1, 900'000, 0);  // yesterday's day figure: ignored
  CHECK(book.scopes() == 1);
  CHECK(book.reserve(ask_of({{"t:acme", lim_budget(1.0, 0)}}, 0, 100'000), t).granted);
  CHECK_FALSE(book.reserve(ask_of({{"t:acme", lim_budget(1.0, 0)}}, 0, 1), t).granted);
  // The month figure: 4.0 seeded + 0.1 held.
  CHECK(book.reserve(ask_of({{"t:acme", lim_budget(0, 5.0)}}, 0, 900'000), t).granted);
  CHECK_FALSE(book.reserve(ask_of({{"t:acme", lim_budget(0, 5.0)}}, 0, 1), t).granted);
  // Seeding the day adds to what is there.
  quota_book b2;
  b2.add_spend("k:z", d, 300'000, 300'000);
  b2.add_spend("k:z", d, 300'000, 300'000);
  CHECK(b2.reserve(ask_of({{"k:z", lim_budget(1.0, 0)}}, 0, 400'000), t).granted);
  CHECK_FALSE(b2.reserve(ask_of({{"k:z", lim_budget(1.0, 0)}}, 0, 1), t).granted);
}

TEST_CASE("budget alerts: 50, 80 and 100 percent, once each per period") {
  quota_book book;
  const quota_scope s{"t:acme", lim_budget(1.0, 10.0, true)};
  auto spend = [&](int64_t micros, int64_t at) {
    quota_verdict v = book.reserve(ask_of({s}, 0, 0), at);
    REQUIRE(v.granted);
    return book.settle(v.ticket, 0, micros, at);
  };
  const int64_t t = utc_ms(2024, 6, 3, 8);
  std::vector<budget_alert> a = spend(500'000, t);
  REQUIRE(a.size() == 1);
  CHECK(a[0].scope == "t:acme");
  CHECK(a[0].period == "day");
  CHECK(a[0].percent == 50);
  CHECK(a[0].spent_micros == 500'000);
  CHECK(a[0].budget_micros == 1'000'000);
  CHECK(spend(100'000, t).empty());
  a = spend(250'000, t);
  REQUIRE(a.size() == 1);
  CHECK(a[0].percent == 80);
  a = spend(200'000, t);
  REQUIRE(a.size() == 1);
  CHECK(a[0].percent == 100);
  CHECK(a[0].spent_micros == 1'050'000);
  CHECK(spend(100'000, t).empty());  // still over 100%: said once
  CHECK(spend(0, t).empty());

  // The next day starts over; one settle crossing two thresholds reports both.
  a = spend(900'000, t + 24 * hour);
  REQUIRE(a.size() == 2);
  CHECK(a[0].percent == 50);
  CHECK(a[1].percent == 80);

  // Month: 2.05 so far; 5.0 crosses 50% of the month too (and 100% of the day).
  a = spend(3'000'000, t + 24 * hour);
  REQUIRE(a.size() == 2);
  CHECK(a[0].period == "day");
  CHECK(a[0].percent == 100);
  CHECK(a[1].period == "month");
  CHECK(a[1].percent == 50);
  CHECK(a[1].spent_micros == 5'050'000);
  // A new month reports the month again from 50%.
  a = spend(6'000'000, utc_ms(2024, 7, 1, 1));
  bool month50 = false;
  for (const budget_alert& x : a) month50 |= x.period == "month" && x.percent == 50;
  CHECK(month50);
  CHECK(a.size() == 4);  // day 50, 80, 100 and month 50
}

TEST_CASE("burst_pct allows a burst minute, the 10-minute pay-back caps the sustained rate") {
  quota_book book;
  const quota_ask a = ask_of({{"k:a", lim_rpm(100, 50)}});
  std::vector<int> per_minute;
  for (int m = 0; m < 30; ++m) {
    int granted = 0;
    for (int i = 0; i < 200; ++i) {  // 200 attempts within the first second of each minute
      quota_verdict v = book.reserve(a, t0 + m * minute + i * 4);
      if (v.granted) {
        ++granted;
        if (m == 0 && i == 0) {
          CHECK(v.limit_requests == 150);
          CHECK(v.remaining_requests == 149);
        }
      } else if (m == 7 && i == 0) {
        CHECK(contains(v.message, "10 minutes"));
        CHECK(v.retry_after_s == 3 * 60);  // minute 0 leaves the 10 minutes at minute 10
      }
    }
    per_minute.push_back(granted);
  }
  const std::vector<int> block = {150, 150, 150, 150, 150, 150, 100, 0, 0, 0};
  for (int m = 0; m < 30; ++m) CHECK(per_minute[m] == block[m % 10]);
  for (int m = 0; m + 10 <= 30; ++m) {
    int sum = 0;
    for (int j = m; j < m + 10; ++j) sum += per_minute[j];
    CHECK(sum <= 1000);
  }

  // Without burst_pct a rolling minute holds exactly the limit.
  quota_book plain;
  int granted = 0;
  for (int i = 0; i < 200; ++i)
    granted += plain.reserve(ask_of({{"k:a", lim_rpm(100)}}), t0 + i).granted;
  CHECK(granted == 100);

  // Tokens: tpm 1000 at 100% burst -> 2000 in a minute, never one request over 2000.
  quota_book toks;
  CHECK(toks.reserve(ask_of({{"k:a", lim_tpm(1000, 100)}}, 1500), t0).granted);
  CHECK_FALSE(toks.reserve(ask_of({{"k:a", lim_tpm(1000, 100)}}, 600), t0).granted);
  CHECK(toks.reserve(ask_of({{"k:a", lim_tpm(1000, 100)}}, 500), t0).granted);
  quota_verdict big = toks.reserve(ask_of({{"k:a", lim_tpm(1000, 100)}}, 2001), t0 + 2 * minute);
  CHECK_FALSE(big.granted);
  CHECK(contains(big.message, "too large"));
}

TEST_CASE("sweep drops stale reservations, frees their concurrency and cost, then idle scopes") {
  quota_book book;
  limits l = lim_budget(1.0, 0);
  l.max_concurrent = 1;
  const quota_ask a = ask_of({{"k:a", l}}, 10, 600'000);
  quota_verdict v1 = book.reserve(a, t0);
  REQUIRE(v1.granted);
  CHECK_FALSE(book.reserve(a, t0 + 1).granted);
  book.sweep(t0 + 5000, 5000);  // exactly max_age: kept
  CHECK(book.reservations() == 1);
  book.sweep(t0 + 5001, 5000);
  CHECK(book.reservations() == 0);
  quota_verdict v2 = book.reserve(a, t0 + 5001);  // slot and held cost are free again
  REQUIRE(v2.granted);
  CHECK(book.settle(v1.ticket, 10, 600'000, t0 + 5002).empty());  // swept: ignored
  CHECK_FALSE(book.reserve(a, t0 + 5003).granted);                // v2 still holds the slot
  book.settle(v2.ticket, 10, 0, t0 + 5004);
  CHECK(book.scopes() == 1);

  book.sweep(t0 + 23 * hour, 5000);  // the day window still counts
  CHECK(book.scopes() == 1);
  book.sweep(t0 + 25 * hour, 5000);
  CHECK(book.scopes() == 0);

  // Spend keeps a scope until its month is over.
  const int64_t t = utc_ms(2024, 6, 10);
  book.add_spend("t:s", day_of(t), 5, 5);
  book.sweep(t, 1000);
  CHECK(book.scopes() == 1);
  book.sweep(utc_ms(2024, 6, 30, 23), 1000);
  CHECK(book.scopes() == 1);
  book.sweep(utc_ms(2024, 7, 1), 1000);
  CHECK(book.scopes() == 0);
}

TEST_CASE("x-ratelimit values come from the tightest scope") {
  quota_book book;
  limits tenant = lim_rpm(100);
  tenant.tpm = 10'000;
  const quota_scope t{"t:acme", tenant};
  const quota_scope k1{"k:one", lim_rpm(10)};
  const quota_scope k2{"k:two", limits{}};
  const quota_scope m{"m:acme/gpt-4*", limits{}};

  quota_verdict v = book.reserve(ask_of({t, k1, m}, 500), t0 + 100);
  REQUIRE(v.granted);
  CHECK(v.limit_requests == 10);
  CHECK(v.remaining_requests == 9);
  CHECK(v.reset_requests_ms == 59'900);
  CHECK(v.limit_tokens == 10'000);
  CHECK(v.remaining_tokens == 9'500);
  CHECK(v.reset_tokens_ms == 59'900);

  // 94 more through another key: now the tenant is tighter than key one.
  for (int i = 0; i < 94; ++i) REQUIRE(book.reserve(ask_of({t, k2}, 0), t0 + 2 * sec).granted);
  v = book.reserve(ask_of({t, k1}, 0), t0 + 3 * sec);
  REQUIRE(v.granted);
  CHECK(v.limit_requests == 100);
  CHECK(v.remaining_requests == 4);
  CHECK(v.reset_requests_ms == 57'000);

  // No scope with rpm or tpm: no values.
  v = book.reserve(ask_of({k2, m}, 0), t0 + 3 * sec);
  REQUIRE(v.granted);
  CHECK(v.limit_requests == 0);
  CHECK(v.remaining_requests == 0);
  CHECK(v.reset_requests_ms == 0);
  CHECK(v.limit_tokens == 0);

  // An ask with no scopes at all is granted and settles.
  v = book.reserve(quota_ask{}, t0 + 3 * sec);
  REQUIRE(v.granted);
  CHECK(book.settle(v.ticket, 0, 0, t0 + 3 * sec).empty());
}

TEST_CASE("time never runs backwards inside a book") {
  quota_book book;
  const quota_ask a = ask_of({{"k:a", lim_rpm(1)}});
  REQUIRE(book.reserve(a, t0 + 30 * sec).granted);
  quota_verdict d = book.reserve(a, t0);  // an earlier clock counts as t0 + 30 s
  CHECK_FALSE(d.granted);
  CHECK(d.retry_after_s == 60);
  CHECK_FALSE(book.reserve(a, t0 + 89 * sec).granted);
  CHECK(book.reserve(a, t0 + 90 * sec).granted);
}

TEST_CASE("odd values: huge token counts, negative costs, unusable budgets") {
  quota_book book;
  // Unlimited scopes still count, saturating instead of wrapping.
  CHECK(book.reserve(ask_of({{"k:a", limits{}}}, UINT64_MAX), t0).granted);
  CHECK(book.reserve(ask_of({{"k:a", limits{}}}, UINT64_MAX), t0).granted);
  quota_verdict d = book.reserve(ask_of({{"k:a", lim_tpm(1000)}}, 1), t0);
  CHECK_FALSE(d.granted);
  CHECK(d.remaining_tokens == 0);
  // A negative estimate holds nothing; a negative actual spends nothing.
  quota_verdict v = book.reserve(ask_of({{"t:b", lim_budget(1.0, 0)}}, 0, -5'000'000), t0);
  REQUIRE(v.granted);
  CHECK(book.settle(v.ticket, 0, -5'000'000, t0).empty());
  CHECK(book.reserve(ask_of({{"t:b", lim_budget(1.0, 0)}}, 0, 1'000'000), t0).granted);
  // NaN, negative and infinite budgets: treated as none / as very large.
  CHECK(book.reserve(ask_of({{"t:c", lim_budget(std::nan(""), -1.0)}}, 0, 1'000'000), t0).granted);
  CHECK(book.reserve(ask_of({{"t:c", lim_budget(HUGE_VAL, 0)}}, 0, 1'000'000), t0).granted);
  // Huge limits do not overflow the burst arithmetic.
  CHECK(book.reserve(ask_of({{"t:d", lim_rpm(UINT64_MAX, 4'000'000'000u)}}), t0).granted);
}

TEST_CASE("windows match a naive model that remembers every request") {
  // Two keys of one tenant; the model keeps every granted request and counts by bucket.
  struct req {
    int64_t second;
    uint64_t tokens;
    bool key_a;
    bool open;
    uint64_t ticket;
  };
  limits tl = lim_rpm(12);
  tl.tpm = 3000;
  tl.max_concurrent = 5;
  limits al = lim_rpm(7);
  al.tpm = 1200;
  al.max_concurrent = 3;
  limits bl = lim_rpm(9);
  const quota_scope t{"t:x", tl}, ka{"k:a", al}, kb{"k:b", bl};

  quota_book book;
  std::vector<req> model;
  std::mt19937_64 rng(12345);
  int64_t now = t0;
  int granted = 0, denied = 0;
  for (int step = 0; step < 20000; ++step) {
    now += static_cast<int64_t>(rng() % 2500);
    const int64_t cur = now / 1000;
    if (rng() % 10 < 7) {
      const bool key_a = rng() % 2 == 0;
      const uint64_t tokens = rng() % 400;
      uint64_t t_req = 0, t_tok = 0, t_open = 0, k_req = 0, k_tok = 0, k_open = 0;
      for (const req& r : model) {
        const bool live = r.second > cur - 60;
        const bool mine = r.key_a == key_a;
        if (live) {
          ++t_req;
          t_tok += r.tokens;
          if (mine) {
            ++k_req;
            k_tok += r.tokens;
          }
        }
        if (r.open) {
          ++t_open;
          if (mine) ++k_open;
        }
      }
      bool admit = t_open < 5 && t_req + 1 <= 12 && t_tok + tokens <= 3000;
      if (key_a)
        admit = admit && k_open < 3 && k_req + 1 <= 7 && k_tok + tokens <= 1200;
      else
        admit = admit && k_req + 1 <= 9;
      quota_verdict v = book.reserve(ask_of({t, key_a ? ka : kb}, tokens), now);
      REQUIRE(v.granted == admit);
      if (admit) {
        ++granted;
        const uint64_t rem_t = 12 - (t_req + 1), rem_k = (key_a ? 7 : 9) - (k_req + 1);
        CHECK(v.remaining_requests == std::min(rem_t, rem_k));
        const uint64_t tok_t = 3000 - (t_tok + tokens), tok_k = 1200 - (k_tok + tokens);
        CHECK(v.remaining_tokens == (key_a ? std::min(tok_t, tok_k) : tok_t));
        model.push_back({cur, tokens, key_a, true, v.ticket});
      } else {
        ++denied;
        CHECK(v.retry_after_s >= 1);
      }
    } else {
      std::vector<size_t> open;
      for (size_t i = 0; i < model.size(); ++i)
        if (model[i].open) open.push_back(i);
      if (open.empty()) continue;
      req& r = model[open[rng() % open.size()]];
      const uint64_t actual = rng() % 400;
      book.settle(r.ticket, actual, 0, now);
      r.open = false;
      r.tokens = actual;  // whether or not its bucket is live, the window sees the actual
    }
    if (model.size() > 500) {
      std::vector<req> keep;
      for (const req& r : model)
        if (r.open || r.second > cur - 60) keep.push_back(r);
      model.swap(keep);
    }
  }
  CHECK(granted > 1000);  // the run exercised both outcomes
  CHECK(denied > 1000);
}

TEST_CASE("benchmark: reserve + settle with three scopes" * doctest::skip()) {
  quota_book book;
  limits tl;
  tl.rpm = 1'000'000'000;
  tl.tpm = 1'000'000'000'000;
  tl.max_concurrent = 1'000'000;
  tl.daily_budget = 1e6;
  tl.monthly_budget = 1e7;
  limits pl = tl;
  limits kl = tl;
  kl.burst_pct = 20;
  const quota_ask a =
      ask_of({{"t:acme", tl}, {"p:acme/web", pl}, {"k:key_0123456789abcdef", kl}}, 700, 1500);
  constexpr int n = 1'000'000;
  int64_t now = t0;
  uint64_t sink = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    now += 1;
    quota_verdict v = book.reserve(a, now);
    sink += v.remaining_requests;
    sink += book.settle(v.ticket, 650, 1400, now).size();
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("quota_book: %.0f ns per reserve+settle (3 scopes, %d pairs, sink %llu)\n",
              static_cast<double>(ns) / n, n, static_cast<unsigned long long>(sink));
  CHECK(book.reservations() == 0);
}
