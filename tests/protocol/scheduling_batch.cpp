// protocol/scheduling/batch.cpp: strategy names, the time/size/adaptive/priority windows, the
// arrival-rate estimate, and the batch key's grouping.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_set>

#include "protocol/scheduling/batch.hpp"

using namespace tc::scheduling;

namespace {

batch_settings with(strategy s, uint32_t max_wait = 5'000, uint32_t max_batch = 32,
                    uint32_t latency_target = 20'000) {
  return batch_settings{s, max_wait, max_batch, latency_target};
}

/// Feeds `count` arrivals `gap_us` apart from `t`; returns the time of the last.
int64_t feed(batch_window& w, int64_t t, int64_t gap_us, int count) {
  for (int i = 0; i < count; ++i) {
    w.arrived(t);
    if (i + 1 < count) t += gap_us;
  }
  return t;
}

}  // namespace

TEST_CASE("batch: strategy names round trip") {
  for (strategy s : {strategy::time, strategy::size, strategy::adaptive, strategy::priority}) {
    strategy back = s == strategy::time ? strategy::size : strategy::time;
    REQUIRE(parse_strategy(to_string(s), back));
    CHECK(back == s);
  }
  strategy s = strategy::size;
  CHECK_FALSE(parse_strategy("Adaptive", s));
  CHECK_FALSE(parse_strategy("", s));
  CHECK(s == strategy::size);
}

TEST_CASE("batch: time releases when the oldest waited max_wait, or the batch is full") {
  batch_window w(with(strategy::time, 5'000, 4));
  feed(w, 0, 10, 50);  // the arrival rate plays no part
  CHECK(w.current_wait_us() == 5'000);
  int64_t next = 0;
  CHECK_FALSE(w.due(1'000, 3, 0, true, next));  // P0 plays no part either
  CHECK(next == 5'000);
  CHECK_FALSE(w.due(4'999, 3, 0, false, next));
  CHECK(next == 5'000);
  CHECK(w.due(5'000, 3, 0, false, next));
  CHECK(w.due(1'000, 4, 0, false, next));  // full
  CHECK_FALSE(w.due(1'000, 0, 0, false, next));
  CHECK(next == std::numeric_limits<int64_t>::max());
}

TEST_CASE("batch: size releases at max_batch, max_wait as a safety net") {
  batch_window w(with(strategy::size, 5'000, 8));
  int64_t next = 0;
  CHECK_FALSE(w.due(100, 7, 0, false, next));
  CHECK(next == 5'000);
  CHECK(w.due(100, 8, 0, false, next));
  CHECK(w.due(100, 9, 0, false, next));
  CHECK(w.due(5'000, 1, 0, false, next));
  batch_window one(with(strategy::size, 5'000, 0));  // 0 counts as 1
  CHECK(one.settings().max_batch == 1);
  CHECK(one.due(0, 1, 0, false, next));
}

TEST_CASE("batch: adaptive sends a request alone at once when traffic is light") {
  batch_window w(with(strategy::adaptive));
  int64_t next = 0;
  CHECK(w.current_wait_us() == 0);  // nothing seen yet
  w.arrived(1'000);
  CHECK(w.current_wait_us() == 0);  // one arrival: no rate yet
  CHECK(w.due(1'000, 1, 1'000, false, next));
  // One request every 10 ms: the next is not expected within the 5 ms bound.
  feed(w, 11'000, 10'000, 20);
  CHECK(w.current_wait_us() == 0);
}

TEST_CASE("batch: adaptive waits the time the rate predicts for a full batch, bounded") {
  batch_window w(with(strategy::adaptive, 5'000, 32, 20'000));
  // Every 100 us: 31 more arrive in 3.1 ms.
  const int64_t t = feed(w, 0, 100, 200);
  CHECK(w.current_wait_us() == 3'100);
  int64_t next = 0;
  CHECK_FALSE(w.due(t + 1'000, 10, t, false, next));
  CHECK(next == t + 3'100);
  CHECK(w.due(t + 3'100, 10, t, false, next));
  // Every 1 ms: a full batch would take 31 ms; the window stops at the bound.
  feed(w, t + 1'000, 1'000, 200);
  CHECK(w.current_wait_us() == 5'000);
  // A tighter latency target lowers the bound to a quarter of it.
  batch_window tight(with(strategy::adaptive, 5'000, 32, 8'000));
  feed(tight, 0, 1'000, 200);
  CHECK(tight.current_wait_us() == 2'000);
  // A larger max_batch takes longer to fill.
  batch_window big(with(strategy::adaptive, 50'000, 101, 1'000'000));
  feed(big, 0, 100, 200);
  CHECK(big.current_wait_us() == 10'000);
}

TEST_CASE("batch: adaptive follows changes of rate") {
  batch_window w(with(strategy::adaptive, 5'000, 32, 20'000));
  int64_t t = feed(w, 0, 100, 100);
  REQUIRE(w.current_wait_us() == 3'100);
  // A long silence: the request after it goes at once.
  t += 60'000'000;
  w.arrived(t);
  CHECK(w.current_wait_us() == 0);
  // A burst right after: batching resumes from the second request on.
  w.arrived(t + 50);
  CHECK(w.current_wait_us() > 0);
  t = feed(w, t + 100, 50, 100);
  CHECK(w.current_wait_us() == 1'550);
  // Traffic turning light again.
  feed(w, t + 20'000, 20'000, 30);
  CHECK(w.current_wait_us() == 0);
}

TEST_CASE("batch: priority is adaptive, and a waiting P0 releases at once") {
  batch_window p(with(strategy::priority));
  batch_window a(with(strategy::adaptive));
  const int64_t t = feed(p, 0, 100, 200);
  feed(a, 0, 100, 200);
  CHECK(p.current_wait_us() == a.current_wait_us());
  int64_t next = 0;
  CHECK_FALSE(p.due(t + 10, 3, t, false, next));
  CHECK(p.due(t + 10, 3, t, true, next));
  CHECK_FALSE(a.due(t + 10, 3, t, true, next));
}

TEST_CASE("batch: odd clocks and settings") {
  batch_window w(with(strategy::time, 5'000, 32));
  int64_t next = 0;
  // The oldest enqueued "after" now reads as no wait.
  CHECK_FALSE(w.due(1'000, 2, 9'000, false, next));
  CHECK(next == 6'000);
  // Arrivals going back in time count as a zero gap, not a negative one.
  batch_window a(with(strategy::adaptive));
  a.arrived(10'000);
  a.arrived(5'000);
  a.arrived(10'100);
  CHECK(a.current_wait_us() <= 5'000);
  // No window at all.
  batch_window zero(with(strategy::adaptive, 0, 32, 0));
  feed(zero, 0, 10, 100);
  CHECK(zero.current_wait_us() == 0);
  CHECK(zero.due(0, 1, 0, false, next));
}

TEST_CASE("batch key: model, power-of-two max_tokens bucket, sampling parameters") {
  const batch_key k = key_of("qwen-max", 1'000, 0.7, 0.9);
  CHECK(k.max_tokens_ceil == 1'024);
  CHECK(k.temperature_milli == 700);
  CHECK(k.top_p_milli == 900);
  CHECK(key_of("qwen-max", 1'024, 0.7, 0.9) == k);
  CHECK(key_of("qwen-max", 513, 0.7, 0.9) == k);
  CHECK_FALSE(key_of("qwen-max", 512, 0.7, 0.9) == k);
  CHECK_FALSE(key_of("qwen-max", 1'025, 0.7, 0.9) == k);
  CHECK_FALSE(key_of("qwen-plus", 1'000, 0.7, 0.9) == k);
  CHECK(key_of("qwen-max", 1'000, 0.70001, 0.9) == k);  // to 1/1000
  CHECK_FALSE(key_of("qwen-max", 1'000, 0.8, 0.9) == k);
  CHECK_FALSE(key_of("qwen-max", 1'000, 0.7, 1.0) == k);
  CHECK_FALSE(key_of("qwen-max", 1'000, 0.7, 0.9, 2) == k);
  CHECK(key_of("qwen-max", 1'000, 0.7, 0.9, 0) == k);  // n 0 counts as 1
  // Not set is its own value: the provider's default, not 0.
  const batch_key unset = key_of("m", 0, std::nullopt, std::nullopt);
  CHECK(unset.max_tokens_ceil == 0);
  CHECK(unset.temperature_milli == -1);
  CHECK_FALSE(key_of("m", 1, std::nullopt, std::nullopt) == unset);
  CHECK_FALSE(key_of("m", 0, 0.0, std::nullopt) == unset);
  CHECK(key_of("m", 0, std::nan(""), -1.0) == unset);
  CHECK(key_of("m", UINT32_MAX, 1e300, 0).max_tokens_ceil == uint64_t{1} << 32);
  CHECK(key_of("m", 1, 0, 0).max_tokens_ceil == 1);
  CHECK(key_of("m", 3, 0, 0).max_tokens_ceil == 4);

  std::unordered_set<batch_key, batch_key_hash> keys;
  keys.insert(k);
  keys.insert(key_of("qwen-max", 600, 0.7, 0.9));
  keys.insert(key_of("qwen-max", 2'000, 0.7, 0.9));
  keys.insert(unset);
  CHECK(keys.size() == 3);
  CHECK(batch_key_hash{}(k) == batch_key_hash{}(key_of("qwen-max", 1'024, 0.7, 0.9)));
}
