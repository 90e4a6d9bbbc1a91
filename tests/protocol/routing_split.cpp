// protocol/routing/split.cpp: shares converge to the weights, zero weights, determinism, and that
// changing the weights moves only the keys it has to.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/routing/split.hpp"

using tc::routing::pick_sticky;

namespace {

constexpr size_t keys = 100'000;

std::string key(size_t i) {
  return "user-" + std::to_string(i);
}

std::vector<size_t> assign(const std::vector<uint32_t>& weights) {
  std::vector<size_t> out(keys);
  for (size_t i = 0; i < keys; ++i) out[i] = pick_sticky(key(i), weights);
  return out;
}

}  // namespace

TEST_CASE("routing split: shares converge to the weights within 1 point over 100k keys") {
  for (const std::vector<uint32_t>& weights : std::vector<std::vector<uint32_t>>{
           {95, 5}, {1, 1}, {50, 30, 20}, {1, 0, 3, 0, 6}, {7}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}}) {
    uint64_t sum = 0;
    for (uint32_t w : weights) sum += w;
    std::vector<size_t> count(weights.size());
    for (size_t v : assign(weights)) {
      REQUIRE(v < weights.size());
      ++count[v];
    }
    for (size_t i = 0; i < weights.size(); ++i) {
      INFO("weights[", i, "] = ", weights[i], " of ", sum);
      const double share = static_cast<double>(count[i]) / keys;
      CHECK(std::abs(share - static_cast<double>(weights[i]) / sum) < 0.01);
      if (weights[i] == 0) CHECK(count[i] == 0);
    }
  }
}

TEST_CASE("routing split: the same key always gets the same variant, zero weights are skipped") {
  const std::vector<uint32_t> weights = {10, 20, 70};
  for (size_t i = 0; i < 1'000; ++i)
    CHECK(pick_sticky(key(i), weights) == pick_sticky(key(i), weights));
  CHECK(pick_sticky("", weights) < 3);
  CHECK(pick_sticky("anyone", {}) == 0);
  CHECK(pick_sticky("anyone", {0, 0, 0}) == 0);
  for (size_t i = 0; i < 1'000; ++i) {
    CHECK(pick_sticky(key(i), {0, 0, 5}) == 2);
    CHECK(pick_sticky(key(i), {0, 1, 0, 0}) == 1);
  }
  // Huge weights do not overflow: both variants still get keys.
  std::vector<size_t> count(2);
  for (size_t i = 0; i < 1'000; ++i) ++count[pick_sticky(key(i), {UINT32_MAX, UINT32_MAX})];
  CHECK(count[0] > 400);
  CHECK(count[1] > 400);
}

TEST_CASE("routing split: a canary that grows keeps its keys and takes only what it needs") {
  // Two variants: a ramp from 10 % to 50 % moves exactly the 40 % it must, all to the canary.
  std::vector<size_t> before = assign({90, 10});
  std::vector<size_t> after = assign({50, 50});
  size_t moved = 0;
  for (size_t i = 0; i < keys; ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    CHECK(before[i] == 0);
    CHECK(after[i] == 1);
  }
  CHECK(static_cast<double>(moved) / keys == doctest::Approx(0.40).epsilon(0.03));

  // One weight of three grows (5 of 100 -> 35 of 130): the others lose keys only to it.
  before = assign({90, 5, 5});
  after = assign({90, 35, 5});
  moved = 0;
  for (size_t i = 0; i < keys; ++i) {
    if (before[i] == after[i]) continue;
    ++moved;
    CHECK(before[i] != 1);
    CHECK(after[i] == 1);
  }
  CHECK(static_cast<double>(moved) / keys == doctest::Approx(35.0 / 130 - 0.05).epsilon(0.05));

  // Weight moved from one variant to another in one step: the grown one keeps its keys, and a
  // key leaves the unchanged one only for the grown one.
  after = assign({60, 35, 5});
  for (size_t i = 0; i < keys; ++i) {
    if (before[i] == 1) CHECK(after[i] == 1);
    if (before[i] == 2 && after[i] != 2) CHECK(after[i] == 1);
  }
}

TEST_CASE("routing split: a variant that shrinks or is switched off loses only its own keys") {
  const std::vector<size_t> before = assign({25, 25, 25, 25});
  const std::vector<size_t> shrunk = assign({25, 5, 25, 25});
  const std::vector<size_t> off = assign({25, 0, 25, 25});
  size_t moved = 0;
  for (size_t i = 0; i < keys; ++i) {
    if (before[i] != shrunk[i]) {
      ++moved;
      CHECK(before[i] == 1);
    }
    if (before[i] != off[i]) CHECK(before[i] == 1);
    CHECK(off[i] != 1);
    if (shrunk[i] == 1) CHECK(off[i] != shrunk[i]);
  }
  // Variant 1 went from 1/4 to 5/80 of the keys: 3/16 of all keys moved.
  CHECK(static_cast<double>(moved) / keys == doctest::Approx(3.0 / 16).epsilon(0.05));
}
