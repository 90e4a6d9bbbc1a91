// protocol/scheduling/queue.cpp: P0 strictness, weighted token shares, tenant fairness, aging,
// starvation bounds, expire/remove, limits, and a randomized run against a plain model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "protocol/scheduling/queue.hpp"

using namespace tc::scheduling;

namespace {

constexpr int64_t ms = 1'000;  // microseconds

item mk(uint64_t id, int priority, std::string tenant, uint32_t cost = 100, int64_t enqueued_us = 0,
        int64_t deadline_us = 0) {
  return item{id, priority, std::move(tenant), cost, enqueued_us, deadline_us};
}

/// Token shares of P1..P4 over `pops` pops with every priority kept saturated.
std::array<double, priorities> saturated_shares(const queue_settings& s, int pops,
                                                const std::array<uint32_t, priorities>& cost_of) {
  priority_queue q(s);
  uint64_t id = 1;
  std::mt19937 rng(7);
  auto cost = [&](int p) {
    if (cost_of[p] != 0) return cost_of[p];
    return std::uniform_int_distribution<uint32_t>(50, 3'000)(rng);
  };
  for (int p = 1; p < priorities; ++p) {
    for (int i = 0; i < 50; ++i) REQUIRE(q.push(mk(id++, p, "t", cost(p))));
  }
  std::array<double, priorities> tokens{};
  double total = 0;
  for (int i = 0; i < pops; ++i) {
    auto it = q.pop(0);
    REQUIRE(it);
    tokens[it->priority] += it->cost;
    total += it->cost;
    REQUIRE(q.push(mk(id++, it->priority, "t", cost(it->priority))));  // stays saturated
  }
  for (double& t : tokens) t /= total;
  return tokens;
}

/// The pop at which the lone P4 item comes out, with P1 (and `other`) floods, after waiting.
int pop_index_of_p4(int other, int64_t waited_us) {
  queue_settings s;
  s.weights = {0, 64, 16, 16, 1};
  s.quantum_tokens = 100;
  s.aging_ms = 2'000;
  priority_queue q(s);
  const int64_t now = 1'000'000 * ms;
  uint64_t id = 1;
  for (int i = 0; i < 500; ++i) REQUIRE(q.push(mk(id++, 1, "a", 100, now)));
  if (other != 0) {
    for (int i = 0; i < 500; ++i) REQUIRE(q.push(mk(id++, other, "o", 100, now)));
  }
  REQUIRE(q.push(mk(99'999, 4, "z", 100, now - waited_us)));
  for (int i = 1; i <= 1'000; ++i) {
    auto it = q.pop(now);
    REQUIRE(it);
    if (it->id == 99'999) return i;
  }
  return -1;
}

}  // namespace

TEST_CASE("queue: an empty queue pops nothing") {
  priority_queue q;
  CHECK_FALSE(q.pop(0));
  CHECK(q.size() == 0);
  CHECK(q.expire(1'000'000'000).empty());
  CHECK_FALSE(q.remove(1));
  CHECK(q.oldest_wait_us(2, 5) == 0);
}

TEST_CASE("queue: P0 is strict and its tenants take turns") {
  priority_queue q;
  uint64_t id = 1;
  for (int p = 1; p < priorities; ++p) {
    for (int i = 0; i < 20; ++i) REQUIRE(q.push(mk(id++, p, "low", 100, 0)));
  }
  // P0 items pushed last, one tenant with many, another with few; and very old low items.
  for (int i = 0; i < 10; ++i) REQUIRE(q.push(mk(1'000 + i, 0, "big", 1'024, 0)));
  for (int i = 0; i < 3; ++i) REQUIRE(q.push(mk(2'000 + i, 0, "small", 1'024, 0)));
  CHECK(q.size(0) == 13);
  std::vector<std::string> tenants;
  for (int i = 0; i < 13; ++i) {
    auto it = q.pop(3'600'000 * ms);  // an hour later: everything else has aged a lot
    REQUIRE(it);
    CHECK(it->priority == 0);
    tenants.push_back(it->tenant);
  }
  // "small" is served within the first rounds, not after all of "big".
  const auto first_small = std::find(tenants.begin(), tenants.end(), "small") - tenants.begin();
  CHECK(first_small <= 2);
  CHECK(std::count(tenants.begin(), tenants.begin() + 6, "small") == 3);
  auto next = q.pop(3'600'000 * ms);
  REQUIRE(next);
  CHECK(next->priority != 0);
}

TEST_CASE("queue: P1..P4 token shares follow the weights under saturation") {
  queue_settings s;
  s.aging_ms = 0;
  SUBCASE("mixed costs") {
    const auto share = saturated_shares(s, 40'000, {0, 0, 0, 0, 0});
    const double weight[] = {0, 8, 4, 2, 1};
    for (int p = 1; p < priorities; ++p) {
      CAPTURE(p);
      CHECK(share[p] == doctest::Approx(weight[p] / 15.0).epsilon(0.10));
    }
  }
  SUBCASE("costs differ by priority: shares are in tokens, not items") {
    const auto share = saturated_shares(s, 20'000, {0, 100, 400, 1'600, 3'000});
    const double weight[] = {0, 8, 4, 2, 1};
    for (int p = 1; p < priorities; ++p) {
      CAPTURE(p);
      CHECK(share[p] == doctest::Approx(weight[p] / 15.0).epsilon(0.10));
    }
  }
  SUBCASE("other weights") {
    s.weights = {0, 1, 1, 3, 5};
    const auto share = saturated_shares(s, 40'000, {0, 0, 0, 0, 0});
    const double weight[] = {0, 1, 1, 3, 5};
    for (int p = 1; p < priorities; ++p) {
      CAPTURE(p);
      CHECK(share[p] == doctest::Approx(weight[p] / 10.0).epsilon(0.10));
    }
  }
}

TEST_CASE("queue: tenants of one priority share it equally in tokens") {
  priority_queue q;
  uint64_t id = 1;
  // "flood" pushed 3,000 items first; "few" and "large" arrive after it.
  for (int i = 0; i < 3'000; ++i) REQUIRE(q.push(mk(id++, 2, "flood", 200)));
  for (int i = 0; i < 300; ++i) REQUIRE(q.push(mk(id++, 2, "few", 200)));
  for (int i = 0; i < 100; ++i) REQUIRE(q.push(mk(id++, 2, "large", 2'000)));
  std::map<std::string, double> tokens;
  std::map<std::string, int> first_pop;
  for (int i = 1; i <= 600; ++i) {  // every tenant still has work throughout
    auto it = q.pop(0);
    REQUIRE(it);
    tokens[it->tenant] += it->cost;
    first_pop.try_emplace(it->tenant, i);
  }
  CHECK(q.size(2) > 0);
  CHECK(first_pop["few"] <= 12);
  CHECK(first_pop["large"] <= 13);
  const double third = (tokens["flood"] + tokens["few"] + tokens["large"]) / 3;
  for (const char* t : {"flood", "few", "large"}) {
    CAPTURE(t);
    CHECK(tokens[t] == doctest::Approx(third).epsilon(0.10));
  }
  // Within a tenant, items leave in push order.
  uint64_t last_few = 0;
  while (auto it = q.pop(0)) {
    if (it->tenant != "few") continue;
    CHECK(it->id > last_few);
    last_few = it->id;
  }
}

TEST_CASE("queue: aging serves a waiting item as one priority higher per aging_ms") {
  const int64_t step = 2'000 * ms;
  // Without aging the P4 item waits for P1's round (64 pops), then P2's (16 pops).
  CHECK(pop_index_of_p4(2, 0) == 81);
  CHECK(pop_index_of_p4(2, step - 1) == 81);
  // One step: counts as P3, served in P3's turn after P1's and P2's rounds.
  CHECK(pop_index_of_p4(2, step) == 81);
  CHECK(pop_index_of_p4(3, step) == 65);  // P3's turn comes before the P3 flood's next item
  CHECK(pop_index_of_p4(3, 0) == 81);
  // Two steps: counts as P2, served in P2's turn right after P1's round.
  CHECK(pop_index_of_p4(2, 2 * step) == 65);
  // Three steps and more: counts as P1, never higher.
  CHECK(pop_index_of_p4(2, 3 * step - 1) == 65);
  CHECK(pop_index_of_p4(2, 3 * step) == 1);
  CHECK(pop_index_of_p4(2, 100 * step) == 1);
}

TEST_CASE("queue: aged items never overtake P0") {
  priority_queue q;
  REQUIRE(q.push(mk(1, 4, "old", 100, 0)));
  REQUIRE(q.push(mk(2, 0, "vip", 100, 1'000'000 * ms)));
  auto it = q.pop(1'000'000 * ms);  // item 1 waited 500 aging steps
  REQUIRE(it);
  CHECK(it->id == 2);
  CHECK(q.pop(1'000'000 * ms)->id == 1);
}

TEST_CASE("queue: a never-ending P1 flood does not starve a P4 item") {
  // Two flooding tenants push 2 new P1 items per pop, forever (until the queue is full).
  auto pops_until_p4 = [](queue_settings s, int64_t us_per_pop) {
    priority_queue q(s);
    uint64_t id = 1;
    int64_t now = 0;
    for (int i = 0; i < 100; ++i) REQUIRE(q.push(mk(id++, 1, i % 2 ? "a" : "b", 500, now)));
    REQUIRE(q.push(mk(1'000'000, 4, "z", 500, now)));
    for (int i = 1; i <= 50'000; ++i) {
      q.push(mk(id++, 1, "a", 500, now));
      q.push(mk(id++, 1, "b", 500, now));
      auto it = q.pop(now);
      REQUIRE(it);
      if (it->id == 1'000'000) return i;
      now += us_per_pop;
    }
    return -1;
  };
  queue_settings s;
  // Default weights 8:1 and 1,024-token quanta: P1's round is 8,192 tokens, 17 items of 500.
  int n = pops_until_p4(s, 0);
  CAPTURE(n);
  CHECK(n > 0);
  CHECK(n <= 18);
  CHECK(pops_until_p4(s, 1 * ms) <= 18);
  // Extreme weights without aging: bounded by P1's round, 1,024 * 1,024 tokens.
  s.weights = {0, 1'024, 1, 1, 1};
  s.aging_ms = 0;
  n = pops_until_p4(s, 1 * ms);
  CAPTURE(n);
  CHECK(n > 0);
  CHECK(n <= 1'024 * 1'024 / 500 + 2);
  // Same weights with aging: once it has waited 3 * aging_ms it is served as P1, and P1's
  // tenants and its aged flow take turns.
  s.aging_ms = 100;
  n = pops_until_p4(s, 1 * ms);
  CAPTURE(n);
  CHECK(n >= 300);
  CHECK(n <= 310);
}

TEST_CASE("queue: expire removes timed-out items, earliest deadline first") {
  queue_settings s;
  s.timeout_ms = 1'000;
  priority_queue q(s);
  REQUIRE(q.push(mk(1, 2, "a", 100, 0)));              // default deadline 1,000 ms
  REQUIRE(q.push(mk(2, 2, "a", 100, 0, 500 * ms)));    // own deadline
  REQUIRE(q.push(mk(3, 0, "b", 100, 0, 5'000 * ms)));  // P0 expires too
  REQUIRE(q.push(mk(4, 4, "c", 100, 100 * ms)));       // default: 1,100 ms
  REQUIRE(q.push(mk(5, 3, "d", 100, 0, 700 * ms)));
  CHECK(q.remove(5));  // a removed item never comes back from expire
  CHECK(q.expire(499 * ms).empty());
  auto out = q.expire(500 * ms);
  REQUIRE(out.size() == 1);
  CHECK(out[0].id == 2);
  out = q.expire(1'100 * ms);
  REQUIRE(out.size() == 2);
  CHECK(out[0].id == 1);
  CHECK(out[0].deadline_us == 1'000 * ms);
  CHECK(out[1].id == 4);
  CHECK(q.size() == 1);
  CHECK(q.size(0) == 1);
  out = q.expire(INT64_MAX);
  REQUIRE(out.size() == 1);
  CHECK(out[0].id == 3);
  CHECK(q.size() == 0);
}

TEST_CASE("queue: remove takes an item out of every structure") {
  priority_queue q;
  for (uint64_t i = 1; i <= 6; ++i) REQUIRE(q.push(mk(i, 2, i <= 3 ? "a" : "b", 100, 0)));
  CHECK(q.remove(1));  // a tenant's head
  CHECK(q.remove(5));  // the middle of a FIFO
  CHECK_FALSE(q.remove(5));
  CHECK_FALSE(q.remove(42));
  CHECK(q.remove(6));
  CHECK(q.remove(4));  // tenant b is gone
  CHECK(q.size() == 2);
  CHECK(q.size(2) == 2);
  CHECK(q.pop(0)->id == 2);
  CHECK(q.pop(0)->id == 3);
  CHECK_FALSE(q.pop(0));
  // The id can be queued again once it has left.
  CHECK(q.push(mk(1, 1, "a", 100, 0)));
  CHECK(q.pop(0)->id == 1);
}

TEST_CASE("queue: remove_newest sheds the last pushed item of a priority") {
  queue_settings s;
  s.max_depth = 4;
  priority_queue q(s);
  REQUIRE(q.push(mk(1, 4, "a", 100, 0)));
  REQUIRE(q.push(mk(2, 4, "b", 100, 0)));
  REQUIRE(q.push(mk(3, 3, "a", 100, 0)));
  REQUIRE(q.push(mk(4, 4, "a", 100, 0)));
  CHECK_FALSE(q.push(mk(5, 0, "c", 100, 0)));  // full
  auto shed = q.remove_newest(4);
  REQUIRE(shed);
  CHECK(shed->id == 4);
  CHECK(q.size(4) == 2);
  CHECK(q.push(mk(5, 0, "c", 100, 0)));  // room for it now
  CHECK_FALSE(q.remove_newest(2));       // nothing at P2
  CHECK_FALSE(q.remove_newest(7));       // out of range
  CHECK(q.remove_newest(4)->id == 2);
  CHECK(q.remove_newest(4)->id == 1);
  CHECK_FALSE(q.remove_newest(4));
  CHECK(q.pop(0)->id == 5);
  CHECK(q.pop(0)->id == 3);
  CHECK(q.size() == 0);
}

TEST_CASE("queue: a full queue refuses, a duplicate id is refused") {
  queue_settings s;
  s.max_depth = 3;
  priority_queue q(s);
  CHECK(q.push(mk(1, 0, "a")));
  CHECK(q.push(mk(2, 4, "a")));
  CHECK_FALSE(q.push(mk(2, 3, "b")));  // same id
  CHECK(q.push(mk(3, 2, "b")));
  CHECK_FALSE(q.push(mk(4, 0, "c")));  // full, even for P0
  CHECK(q.size() == 3);
  REQUIRE(q.pop(0));
  CHECK(q.push(mk(4, 0, "c")));

  s.max_depth = 0;
  priority_queue none(s);
  CHECK_FALSE(none.push(mk(1, 0, "a")));
}

TEST_CASE("queue: out-of-range input is clamped") {
  queue_settings s;
  s.weights = {7, 0, 0, 99'999, 0};
  s.quantum_tokens = 0;
  priority_queue q(s);
  CHECK(q.settings().weights == std::array<uint32_t, priorities>{0, 1, 1, 1'024, 1});
  CHECK(q.settings().quantum_tokens == 1);
  REQUIRE(q.push(mk(1, -3, "a", 0)));
  REQUIRE(q.push(mk(2, 17, "a", 0)));
  CHECK(q.size(0) == 1);
  CHECK(q.size(4) == 1);
  CHECK(q.size(-1) == 0);
  CHECK(q.size(5) == 0);
  auto it = q.pop(0);
  REQUIRE(it);
  CHECK(it->priority == 0);
  CHECK(it->cost == 1);
  // A huge cost is fine: the round-robin skips the rounds that serve no one.
  REQUIRE(q.push(mk(3, 1, "b", UINT32_MAX)));
  REQUIRE(q.push(mk(4, 2, "c", UINT32_MAX)));
  CHECK(q.pop(0));
  CHECK(q.pop(0));
  CHECK(q.pop(0));
  CHECK(q.size() == 0);
}

TEST_CASE("queue: oldest_wait_us per priority") {
  priority_queue q;
  REQUIRE(q.push(mk(1, 3, "a", 100, 10 * ms)));
  REQUIRE(q.push(mk(2, 3, "b", 100, 20 * ms)));
  REQUIRE(q.push(mk(3, 1, "b", 100, 30 * ms)));
  CHECK(q.oldest_wait_us(3, 50 * ms) == 40 * ms);
  CHECK(q.oldest_wait_us(1, 50 * ms) == 20 * ms);
  CHECK(q.oldest_wait_us(1, 0) == 0);  // a clock before the push reads as no wait
  CHECK(q.oldest_wait_us(2, 50 * ms) == 0);
  CHECK(q.oldest_wait_us(9, 50 * ms) == 0);
  CHECK(q.remove(1));
  CHECK(q.oldest_wait_us(3, 50 * ms) == 30 * ms);
}

TEST_CASE("queue: random operations keep every item accounted for") {
  queue_settings s;
  s.max_depth = 300;
  s.aging_ms = 5;
  s.quantum_tokens = 64;
  priority_queue q(s);
  std::mt19937 rng(12345);
  std::map<uint64_t, item> model;  // what should be queued
  uint64_t next_id = 1;
  int64_t now = 0;
  const char* tenants[] = {"a", "b", "c", "d", "e", "f"};
  for (int step = 0; step < 200'000; ++step) {
    now += std::uniform_int_distribution<int64_t>(0, 300)(rng);
    const int op = std::uniform_int_distribution<int>(0, 99)(rng);
    if (op < 50) {
      item it = mk(next_id++,
                   std::uniform_int_distribution<int>(0, 9)(rng) == 0
                       ? 0
                       : std::uniform_int_distribution<int>(1, 4)(rng),
                   tenants[std::uniform_int_distribution<int>(0, 5)(rng)],
                   std::uniform_int_distribution<uint32_t>(1, 500)(rng), now,
                   now + std::uniform_int_distribution<int64_t>(1, 50'000)(rng));
      const bool full = model.size() >= s.max_depth;
      REQUIRE(q.push(it) == !full);
      if (!full) model.emplace(it.id, it);
    } else if (op < 85) {
      const bool p0 = q.size(0) > 0;
      auto it = q.pop(now);
      REQUIRE(it.has_value() == !model.empty());
      if (!it) continue;
      REQUIRE(model.count(it->id) == 1);
      CHECK((it->priority == 0) == p0);
      model.erase(it->id);
    } else if (op < 95) {
      if (model.empty()) continue;
      auto victim = model.begin();
      std::advance(victim, std::uniform_int_distribution<size_t>(0, model.size() - 1)(rng));
      REQUIRE(q.remove(victim->first));
      model.erase(victim);
    } else {
      std::set<uint64_t> due;
      for (const auto& [id, it] : model) {
        if (it.deadline_us <= now) due.insert(id);
      }
      std::set<uint64_t> got;
      int64_t last = INT64_MIN;
      for (const item& it : q.expire(now)) {
        got.insert(it.id);
        CHECK(it.deadline_us >= last);
        last = it.deadline_us;
      }
      REQUIRE(got == due);
      for (uint64_t id : due) model.erase(id);
    }
    REQUIRE(q.size() == model.size());
  }
  for (int p = 0; p < priorities; ++p) {
    size_t n = 0;
    for (const auto& [id, it] : model) n += it.priority == p;
    CHECK(q.size(p) == n);
  }
}
