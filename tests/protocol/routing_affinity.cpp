// protocol/routing/affinity.cpp: the load bound under a hot prefix with in-flight counts rising
// and falling, stickiness at low load, ~1/n keys moving when a replica joins, and edge cases.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "protocol/routing/affinity.hpp"

using namespace tc::routing;

namespace {

const std::vector<std::string> four = {"vllm-a:8000", "vllm-b:8000", "vllm-c:8000", "vllm-d:8000"};

/// The replica a key gets on an idle set: the owner of the arc its point falls on.
size_t home(const affinity_ring& ring, uint64_t key) {
  return ring.pick(key, {}, 1.25);
}

struct request {
  size_t replica;
  int64_t ends;
};

struct run {
  size_t over_bound = 0;  ///< placements that left their replica above ceil(1.25 * mean)
  size_t at_home = 0;     ///< placements on the key's idle-set replica
  uint32_t highest = 0;   ///< the largest in-flight count a replica reached
};

/// Simulates 20,000 requests arriving one per tick, each in flight for 1..2*mean_ticks ticks.
/// `hot_percent` of them share one key (a system prompt), the rest draw from 1,000 keys. Every
/// placement is checked against ceil(1.25 * mean), the mean including the request placed.
run simulate(const affinity_ring& ring, double c, uint64_t mean_ticks, uint64_t hot_percent) {
  const size_t n = ring.ids().size();
  std::mt19937_64 rng(7);
  std::vector<uint32_t> loads(n);
  std::vector<request> in_flight;
  run out;
  for (int64_t tick = 0; tick < 20'000; ++tick) {
    // Departures first: the in-flight counts fall as well as rise.
    for (size_t i = 0; i < in_flight.size();) {
      if (in_flight[i].ends <= tick) {
        --loads[in_flight[i].replica];
        in_flight[i] = in_flight.back();
        in_flight.pop_back();
      } else {
        ++i;
      }
    }
    const uint64_t key = rng() % 100 < hot_percent ? 0xC0FFEE : 1'000 + rng() % 1'000;
    const size_t r = ring.pick(key, loads, c);
    if (r == home(ring, key)) ++out.at_home;
    REQUIRE(r < n);
    ++loads[r];
    uint64_t total = 0;
    for (uint32_t l : loads) total += l;
    const double bound = std::ceil(1.25 * static_cast<double>(total) / static_cast<double>(n));
    if (loads[r] > bound) ++out.over_bound;
    out.highest = std::max(out.highest, loads[r]);
    in_flight.push_back({r, tick + 1 + static_cast<int64_t>(rng() % (2 * mean_ticks))});
  }
  return out;
}

}  // namespace

TEST_CASE("routing affinity: a hot key cannot push a replica past ceil(1.25 * mean)") {
  const affinity_ring ring(four);
  for (const uint64_t mean_ticks : {2, 10, 40}) {
    INFO("mean request length ", mean_ticks, " ticks");
    const run r = simulate(ring, 1.25, mean_ticks, 80);
    CHECK(r.over_bound == 0);
    // About mean_ticks requests in flight, spread over 4: no replica near all of them.
    CHECK(r.highest <= std::ceil(1.25 * (2.0 * static_cast<double>(mean_ticks) + 40) / 4));
  }
  // The same traffic with no bound worth the name piles the hot key on one replica.
  const run unbounded = simulate(ring, 1e9, 40, 80);
  CHECK(unbounded.over_bound > 1'000);
  CHECK(unbounded.highest > 40);
}

TEST_CASE("routing affinity: the hot key's overflow spills, the rest of its requests stay home") {
  const affinity_ring ring(four);
  const uint64_t hot = 0xC0FFEE;
  const size_t own = home(ring, hot);
  std::vector<uint32_t> loads = {10, 10, 10, 10};
  loads[own] = 12;  // total 42 -> bound ceil(1.25 * 43 / 4) = 14: room at home
  CHECK(ring.pick(hot, loads, 1.25) == own);
  loads[own] = 13;
  CHECK(ring.pick(hot, loads, 1.25) == own);
  loads[own] = 14;  // total 44 -> bound ceil(1.25 * 45 / 4) = 15: still room
  CHECK(ring.pick(hot, loads, 1.25) == own);
  loads[own] = 15;  // total 45 -> bound ceil(1.25 * 46 / 4) = 15: full, spill
  const size_t spill = ring.pick(hot, loads, 1.25);
  CHECK(spill != own);
  CHECK(spill < 4);
  // The spill goes to the same next replica every time (the clockwise walk is deterministic).
  CHECK(ring.pick(hot, loads, 1.25) == spill);
  // c = 1: the bound is the smallest possible, ceil((total + 1) / n).
  CHECK(ring.pick(hot, {1, 1, 1, 1}, 1.0) == own);
  std::vector<uint32_t> one = {0, 0, 0, 0};
  one[own] = 1;
  CHECK(ring.pick(hot, one, 1.0) != own);
}

TEST_CASE("routing affinity: keys keep their replica while loads are low") {
  const affinity_ring ring(four);
  std::mt19937_64 rng(11);
  constexpr size_t keys = 10'000;
  // Idle, or every replica well under the bound (8..10 in flight each: the bound is at least
  // ceil(1.25 * 33 / 4) = 11): every key gets its own replica.
  std::vector<size_t> share(4);
  std::vector<uint32_t> loads(4);
  for (size_t i = 0; i < keys; ++i) {
    const uint64_t key = rng();
    const size_t own = home(ring, key);
    CHECK(ring.pick(key, {0, 0, 0, 0}, 1.25) == own);
    for (uint32_t& l : loads) l = 8 + static_cast<uint32_t>(rng() % 3);
    CHECK(ring.pick(key, loads, 1.25) == own);
    ++share[own];
  }
  for (size_t s : share) {
    CHECK(static_cast<double>(s) / keys == doctest::Approx(0.25).epsilon(0.25));
  }
  // Keys from a counter (not hashes) spread as well.
  share.assign(4, 0);
  for (uint64_t key = 0; key < keys; ++key) ++share[home(ring, key)];
  for (size_t s : share) {
    CHECK(static_cast<double>(s) / keys == doctest::Approx(0.25).epsilon(0.25));
  }
  // Uniform keys with requests rising and falling around 10 in flight per replica: most stay
  // home (17,755 of 20,000 here); a spill happens only when chance crowds a replica.
  const run uniform = simulate(ring, 1.25, 40, 0);
  CHECK(uniform.over_bound == 0);
  CHECK(uniform.at_home > 17'000);
}

TEST_CASE("routing affinity: a replica joining takes about 1/n of the keys, from everyone") {
  std::vector<std::string> five = four;
  five.push_back("vllm-e:8000");
  const affinity_ring before(four);
  const affinity_ring after(five);
  std::mt19937_64 rng(3);
  constexpr size_t keys = 20'000;
  size_t moved = 0;
  std::vector<size_t> moved_from(4);
  for (size_t i = 0; i < keys; ++i) {
    const uint64_t key = rng();
    const size_t a = home(before, key);
    const size_t b = home(after, key);
    if (a == b) continue;
    ++moved;
    ++moved_from[a];
    CHECK(b == 4);  // keys move only to the new replica
  }
  CHECK(static_cast<double>(moved) / keys == doctest::Approx(1.0 / 5).epsilon(0.25));
  for (size_t m : moved_from) CHECK(m > 0);

  // Removing it again returns every key to where it was; order of ids does not matter for
  // points, only for the indexes returned.
  std::vector<std::string> reversed(four.rbegin(), four.rend());
  const affinity_ring shuffled(reversed);
  for (size_t i = 0; i < 1'000; ++i) {
    const uint64_t key = rng();
    CHECK(reversed[home(shuffled, key)] == four[home(before, key)]);
  }
}

TEST_CASE("routing affinity: empty sets, short load vectors, odd c, pick_bounded") {
  const affinity_ring empty({});
  CHECK(empty.pick(1, {}, 1.25) == no_replica);
  CHECK(pick_bounded(1, {}, {}) == no_replica);

  const affinity_ring one({"only"});
  CHECK(one.pick(42, {1'000'000}, 1.25) == 0);
  CHECK(one.pick(42, {}, std::nan("")) == 0);

  const affinity_ring ring(four);
  size_t threes = 0;
  for (uint64_t key = 0; key < 200; ++key) {
    threes += ring.pick(key, {1, 1, 0, 0}, 1.0) == 3;
    CHECK(pick_bounded(key, four, {3, 0, 2}) == ring.pick(key, {3, 0, 2, 0}, 1.25));
    // c below 1 counts as 1: the bound still leaves room somewhere.
    CHECK(ring.pick(key, {5, 5, 5, 4}, 0.1) == 3);
    const size_t r = ring.pick(key, {1, 1, 0, 0}, 1.0);  // 2 or 3, by the walk
    CHECK((r == 2 || r == 3));
    CHECK(ring.pick(key, {1, 1, 0, 0}, 0.1) == r);
    CHECK(ring.pick(key, {1, 1, 0, 0}, std::nan("")) == r);
    CHECK(ring.pick(key, {UINT32_MAX, UINT32_MAX, UINT32_MAX, 0}, 1.25) == 3);
  }
  CHECK(threes > 50);
  // vnodes 0 is 1; a huge count is capped and still works.
  CHECK(affinity_ring(four, 0).pick(9, {}, 1.25) < 4);
  CHECK(affinity_ring(four, 1'000'000).pick(9, {}, 1.25) < 4);
}
