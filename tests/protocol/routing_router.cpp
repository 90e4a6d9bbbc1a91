// protocol/routing/router.cpp: policy names, what each policy puts first, the failover groups
// (weight 0, unavailable), residency under compliance_first, normalization, deterministic ties,
// and inputs out of range.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "protocol/routing/router.hpp"

using namespace tc::routing;

namespace {

candidate make(std::string endpoint, double price_in, double price_out, double latency_ms,
               uint32_t in_flight = 0, uint32_t max_concurrency = 0) {
  candidate c;
  c.endpoint = std::move(endpoint);
  c.price_in_per_m = price_in;
  c.price_out_per_m = price_out;
  c.health.latency_ms = latency_ms;
  c.health.score = 1 / (1 + latency_ms / 2'000);
  c.in_flight = in_flight;
  c.max_concurrency = max_concurrency;
  return c;
}

std::vector<std::string> names(const std::vector<candidate>& c, const std::vector<size_t>& order) {
  std::vector<std::string> out;
  for (size_t i : order) out.push_back(c[i].endpoint);
  return out;
}

std::vector<std::string> ranked(const std::vector<candidate>& c, policy p, const residency& r = {},
                                const weights& w = {}) {
  return names(c, rank(c, p, w, r, 1'000, 500));
}

using list = std::vector<std::string>;

}  // namespace

TEST_CASE("routing router: policy names") {
  for (policy p : {policy::cost_first, policy::performance_first, policy::compliance_first}) {
    policy parsed = policy::cost_first;
    CHECK(parse_policy(to_string(p), parsed));
    CHECK(parsed == p);
  }
  policy untouched = policy::performance_first;
  CHECK_FALSE(parse_policy("cost", untouched));
  CHECK_FALSE(parse_policy("", untouched));
  CHECK_FALSE(parse_policy("COST_FIRST", untouched));
  CHECK(untouched == policy::performance_first);
}

TEST_CASE("routing router: cost_first takes the cheap one, performance_first the fast one") {
  const std::vector<candidate> c = {
      make("deepseek/chat", 2, 8, 1'500),  // cheap, slow
      make("qwen/max", 20, 60, 300),       // dear, fast
      make("glm/4", 5, 15, 700),           // between
  };
  CHECK(ranked(c, policy::cost_first) == list{"deepseek/chat", "glm/4", "qwen/max"});
  CHECK(ranked(c, policy::performance_first) == list{"qwen/max", "glm/4", "deepseek/chat"});

  // The prices' currency scale does not matter: only ratios do.
  std::vector<candidate> scaled = c;
  for (candidate& e : scaled) {
    e.price_in_per_m *= 7.1;
    e.price_out_per_m *= 7.1;
  }
  CHECK(scores(scaled, policy::cost_first, {}, {}, 1'000, 500) ==
        scores(c, policy::cost_first, {}, {}, 1'000, 500));

  // The expected tokens weigh the two prices: output-heavy requests favour cheap output.
  const std::vector<candidate> io = {make("a/in-cheap", 1, 40, 500),
                                     make("b/out-cheap", 8, 8, 500)};
  CHECK(names(io, rank(io, policy::cost_first, {}, {}, 10'000, 10)) ==
        list{"a/in-cheap", "b/out-cheap"});
  CHECK(names(io, rank(io, policy::cost_first, {}, {}, 10, 10'000)) ==
        list{"b/out-cheap", "a/in-cheap"});
  // No estimate (or a broken one): the sum of the two prices, 41 against 16.
  CHECK(names(io, rank(io, policy::cost_first, {}, {}, 0, 0)) == list{"b/out-cheap", "a/in-cheap"});
  CHECK(names(io, rank(io, policy::cost_first, {}, {}, NAN, -1)) ==
        list{"b/out-cheap", "a/in-cheap"});
}

TEST_CASE("routing router: load and health part the otherwise equal") {
  std::vector<candidate> c = {make("a/m", 5, 5, 500, 8, 10), make("b/m", 5, 5, 500, 2, 10)};
  CHECK(ranked(c, policy::performance_first) == list{"b/m", "a/m"});
  c[1].in_flight = 9;
  CHECK(ranked(c, policy::performance_first) == list{"a/m", "b/m"});
  // An unlimited endpoint counts as the largest declared limit: 8 of 10 vs 3 of "10".
  c[1].max_concurrency = 0;
  c[1].in_flight = 3;
  CHECK(ranked(c, policy::performance_first) == list{"b/m", "a/m"});

  c = {make("a/m", 5, 5, 500), make("b/m", 5, 5, 500)};
  c[0].health.score = 0.4;  // errors lowered its health
  CHECK(ranked(c, policy::compliance_first) == list{"b/m", "a/m"});
}

TEST_CASE("routing router: unavailable candidates go last, in score order, never dropped") {
  std::vector<candidate> c;
  c.push_back(make("a/open", 1, 1, 100));  // best on price and latency, but its breaker is open
  c.push_back(make("b/ok", 10, 10, 900));
  c.push_back(make("c/full", 2, 2, 200, 4, 4));  // at max_concurrency
  c.push_back(make("d/limited", 3, 3, 300));     // in Retry-After
  c.push_back(make("e/ok", 5, 5, 500));
  c[0].health.breaker = breaker_state::open;
  c[0].health.available = false;
  c[0].health.score = 0;
  c[3].health.available = false;
  c[3].health.retry_after_until_ms = 99;
  // a/open's health part is 0, but it is still the cheapest and fastest: first of the rest.
  CHECK(ranked(c, policy::cost_first) == list{"e/ok", "b/ok", "a/open", "c/full", "d/limited"});
  CHECK(ranked(c, policy::performance_first).front() == "e/ok");

  // Everything degraded: all are still there, by score.
  for (candidate& e : c) e.health.available = false;
  CHECK(ranked(c, policy::cost_first) == list{"a/open", "c/full", "d/limited", "e/ok", "b/ok"});
}

TEST_CASE("routing router: weight 0 is a last resort, other weights scale the score") {
  std::vector<candidate> c = {make("a/backup", 1, 1, 100), make("b/main", 10, 10, 900),
                              make("c/down", 10, 10, 900)};
  c[0].weight = 0;
  c[2].health.available = false;
  CHECK(ranked(c, policy::cost_first) == list{"b/main", "a/backup", "c/down"});
  c[0].weight = 100;
  CHECK(ranked(c, policy::cost_first) == list{"a/backup", "b/main", "c/down"});

  // Weight 0 comes after every weighted candidate, even one that scores 0 too (price only, and
  // a free endpoint makes every priced one's price part 0).
  c = {make("a/backup", 5, 5, 100), make("b/free", 0, 0, 100), make("c/main", 5, 5, 100)};
  c[0].weight = 0;
  CHECK(names(c, rank(c, policy::cost_first, weights{0, 1, 0, 0}, {}, 100, 100)) ==
        list{"b/free", "c/main", "a/backup"});

  c = {make("a/m", 5, 5, 500), make("b/m", 5, 5, 500)};
  c[0].weight = 50;
  const std::vector<double> s = scores(c, policy::cost_first, {}, {}, 100, 100);
  CHECK(s[1] == doctest::Approx(1));
  CHECK(s[0] == doctest::Approx(0.5));
  CHECK(ranked(c, policy::cost_first) == list{"b/m", "a/m"});
}

TEST_CASE("routing router: compliance_first never offers a candidate outside residency") {
  std::vector<candidate> c = {make("us/gpt", 1, 1, 100), make("cn/qwen", 5, 5, 500),
                              make("cn/glm", 4, 4, 600), make("cn/kimi", 3, 3, 400)};
  c[0].region = "us-east";
  c[1].region = "cn-beijing";
  c[1].tags = {"filed", "pipl"};
  c[2].region = "cn-shanghai";
  c[2].tags = {"pipl"};
  c[3].region = "cn-beijing";
  c[3].tags = {"filed"};
  c[3].health.available = false;  // unavailable, yet resident: kept, last

  const residency cn{{"cn-beijing", "cn-shanghai"}, {"filed"}};
  CHECK(ranked(c, policy::compliance_first, cn) == list{"cn/qwen", "cn/kimi"});
  CHECK(ranked(c, policy::compliance_first, residency{{}, {"pipl"}}) == list{"cn/glm", "cn/qwen"});
  CHECK(ranked(c, policy::compliance_first, residency{{"eu-west"}, {}}).empty());
  CHECK(ranked(c, policy::compliance_first).size() == 4);  // no residency: nothing removed
  CHECK(ranked(c, policy::cost_first, cn).size() == 4);    // other policies ignore it
  CHECK(resident(c[1], cn));
  CHECK_FALSE(resident(c[2], cn));

  const std::vector<double> s = scores(c, policy::compliance_first, {}, cn, 1'000, 500);
  CHECK(s[0] == -1);
  CHECK(s[2] == -1);
  CHECK(s[1] > 0);
  // Normalized over the resident ones: the cheapest of those has price part 1, not 1/5.
  const std::vector<double> price_only =
      scores(c, policy::compliance_first, weights{0, 1, 0, 0}, cn, 1'000, 500);
  CHECK(price_only[3] == doctest::Approx(1));
  CHECK(price_only[1] == doctest::Approx(3.0 / 5));
}

TEST_CASE("routing router: ties go by endpoint id, whatever the input order") {
  std::vector<candidate> c = {make("m/c", 5, 5, 500), make("m/a", 5, 5, 500),
                              make("m/b", 5, 5, 500), make("m/d", 5, 5, 500)};
  c[3].health.available = false;
  std::mt19937_64 rng(5);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(c.begin(), c.end(), rng);
    for (policy p : {policy::cost_first, policy::performance_first, policy::compliance_first}) {
      CHECK(ranked(c, p) == list{"m/a", "m/b", "m/c", "m/d"});
    }
  }
}

TEST_CASE("routing router: every part and the total stay in [0,1], bad numbers do not break it") {
  std::mt19937_64 rng(9);
  const double odd[] = {NAN, INFINITY, -INFINITY, -5, 0, 1e308};
  for (int round = 0; round < 500; ++round) {
    std::vector<candidate> c(1 + rng() % 6);
    for (size_t i = 0; i < c.size(); ++i) {
      candidate& e = c[i];
      e.endpoint = "p/" + std::to_string(rng() % 4);
      e.price_in_per_m = rng() % 4 == 0 ? odd[rng() % 6] : static_cast<double>(rng() % 50);
      e.price_out_per_m = rng() % 4 == 0 ? odd[rng() % 6] : static_cast<double>(rng() % 50);
      e.health.latency_ms = rng() % 4 == 0 ? odd[rng() % 6] : static_cast<double>(rng() % 3'000);
      e.health.score = rng() % 4 == 0 ? odd[rng() % 6] : static_cast<double>(rng() % 100) / 100;
      e.health.available = rng() % 5 != 0;
      e.in_flight = static_cast<uint32_t>(rng() % 10);
      e.max_concurrency = static_cast<uint32_t>(rng() % 10);
      e.weight = static_cast<uint32_t>(rng() % 3) * 100;
    }
    const weights w{odd[rng() % 6], static_cast<double>(rng() % 3), odd[rng() % 6], 0.2};
    const double in = rng() % 3 == 0 ? odd[rng() % 6] : 1'000;
    const double out = rng() % 3 == 0 ? odd[rng() % 6] : 100;
    for (policy p : {policy::cost_first, policy::performance_first, policy::compliance_first}) {
      const std::vector<double> s = scores(c, p, w, {}, in, out);
      for (double v : s) {
        CHECK(v >= 0);
        CHECK(v <= 1);
      }
      std::vector<size_t> order = rank(c, p, w, {}, in, out);
      REQUIRE(order.size() == c.size());
      std::sort(order.begin(), order.end());
      for (size_t i = 0; i < order.size(); ++i) CHECK(order[i] == i);
    }
  }
  CHECK(rank({}, policy::cost_first, {}, {}, 1, 1).empty());
  CHECK(scores({}, policy::cost_first, {}, {}, 1, 1).empty());
}
