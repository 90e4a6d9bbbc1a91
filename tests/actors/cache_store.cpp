// The cache shard's entry table: bounds, GDSF eviction order (checked against a naive model),
// TTL, invalidation, replacement, ids, and that on_remove fires exactly once per record leaving.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/cache_store.hpp"

namespace {

using tc::actors::cache_record;
using tc::actors::cache_store;
using tc::actors::removal;
using tc::canonical::digest;

digest key_of(uint64_t i) {
  return digest{i * 0x9e3779b97f4a7c15ULL + 1, i};
}

cache_record make(uint64_t k, std::size_t body_bytes, uint64_t cost = 0, uint64_t expires = 0) {
  cache_record r;
  r.key = key_of(k);
  r.ns = key_of(1000000 + k % 3);
  r.scope = "tenant-a";
  r.model = "gpt-x";
  r.body.assign(body_bytes, 'b');
  r.cost_micros = cost;
  r.expires_ms = expires;
  return r;
}

/// Records every on_remove call.
struct recorder {
  struct entry {
    uint64_t id;
    removal why;
    std::string body;
  };
  std::vector<entry> calls;

  cache_store::on_remove callback() {
    return [this](const cache_record& r, removal why) { calls.push_back({r.id, why, r.body}); };
  }
  std::size_t count(removal why) const {
    std::size_t n = 0;
    for (const auto& c : calls) n += c.why == why;
    return n;
  }
  bool removed(uint64_t id) const {
    for (const auto& c : calls)
      if (c.id == id) return true;
    return false;
  }
};

constexpr std::size_t kLots = std::size_t{1} << 40;

}  // namespace

TEST_CASE("bounds on entries hold after many puts of random sizes") {
  recorder rec;
  cache_store store({.max_entries = 300, .max_bytes = kLots}, rec.callback());
  std::mt19937_64 rng(42);
  for (uint64_t i = 0; i < 20000; ++i) {
    REQUIRE(store.put(make(rng() % 1000000, rng() % 5000, rng() % 1000), i) != 0);
    REQUIRE(store.entries() <= 300);
  }
  CHECK(store.entries() == 300);
  CHECK(store.evictions() > 19000);
  CHECK(store.evictions() == rec.count(removal::evicted));
}

TEST_CASE("bounds on bytes hold after many puts of random sizes, and bytes() is exact") {
  recorder rec;
  const std::size_t max_bytes = 200000;
  std::unordered_map<uint64_t, std::size_t> live;  // id -> charge
  cache_store store({.max_entries = 100000, .max_bytes = max_bytes},
                    [&](const cache_record& r, removal why) {
                      REQUIRE(live.erase(r.id) == 1);
                      rec.calls.push_back({r.id, why, {}});
                    });
  std::mt19937_64 rng(7);
  for (uint64_t i = 0; i < 20000; ++i) {
    cache_record r = make(rng() % 1000000, rng() % 20000, rng() % 1000);
    const std::size_t charge = cache_store::charge(r);
    const uint64_t id = store.put(std::move(r), i);
    REQUIRE(id != 0);
    live[id] = charge;
    REQUIRE(store.bytes() <= max_bytes);
  }
  std::size_t sum = 0;
  for (const auto& [id, charge] : live) sum += charge;
  CHECK(store.bytes() == sum);
  CHECK(store.entries() == live.size());
  CHECK(store.bytes() > max_bytes / 2);
  CHECK(rec.count(removal::evicted) > 15000);
  CHECK(rec.count(removal::evicted) + rec.count(removal::replaced) == rec.calls.size());
}

TEST_CASE("charge counts body, extra, scope, model and a fixed overhead") {
  cache_record r = make(1, 1000);
  r.extra = std::string(200, 'x');
  cache_record empty;
  const std::size_t overhead = cache_store::charge(empty);
  CHECK(overhead >= 160);
  CHECK(cache_store::charge(r) == overhead + 1000 + 200 + r.scope.size() + r.model.size());
}

TEST_CASE("a frequently hit entry survives a flood of one-shot entries") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  const uint64_t hot = store.put(make(0, 500), 0);
  for (int i = 0; i < 20; ++i) REQUIRE(store.get(key_of(0), 1) != nullptr);
  for (uint64_t i = 1; i <= 1000; ++i) store.put(make(i, 500), 2 + i);  // 10 generations
  CHECK_FALSE(rec.removed(hot));
  CHECK(store.get(key_of(0), 2000) != nullptr);
  CHECK(store.evictions() == 1000 - 99);
}

TEST_CASE("old entries age out even if they were hit a few times long ago") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  const uint64_t warm = store.put(make(0, 500), 0);
  for (int i = 0; i < 5; ++i) REQUIRE(store.get(key_of(0), 1) != nullptr);
  uint64_t puts_survived = 0;
  for (uint64_t i = 1; i <= 100 * 100 && !rec.removed(warm); ++i) {
    store.put(make(i, 500), 2 + i);
    ++puts_survived;
  }
  REQUIRE(rec.removed(warm));
  CHECK(rec.count(removal::evicted) == rec.calls.size());
  CHECK(store.get(key_of(0), 20000) == nullptr);
  // Six times a one-shot's value: it outlives several generations, but not many.
  CHECK(puts_survived > 3 * 100);
  CHECK(puts_survived < 10 * 100);
}

TEST_CASE("a high-cost entry survives low-cost ones of equal size") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  const uint64_t costly = store.put(make(0, 800, 1000000), 0);
  const uint64_t cheap = store.put(make(1, 800, 0), 0);
  for (uint64_t i = 2; i < 5000; ++i) store.put(make(i, 800, 10), i);
  CHECK_FALSE(rec.removed(costly));
  CHECK(rec.removed(cheap));
  CHECK(store.get(key_of(0), 6000) != nullptr);
}

TEST_CASE("large cold entries leave before small cold ones") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  std::vector<uint64_t> large, small;
  for (uint64_t i = 0; i < 100; ++i) {
    (i % 2 ? large : small).push_back(store.put(make(i, i % 2 ? 10000 : 100), i));
  }
  for (uint64_t i = 100; i < 150; ++i) store.put(make(i, 100), i);
  for (uint64_t id : large) CHECK(rec.removed(id));
  for (uint64_t id : small) CHECK_FALSE(rec.removed(id));
}

TEST_CASE("eviction order matches a naive GDSF model over a random workload") {
  // The model scans for the minimum (priority, last touch); the store uses heaps. Values stay far
  // below the store's value cap and the clock far below its renormalisation point, so both compute
  // the same doubles.
  struct model_entry {
    double prio;
    uint64_t touched;
    uint64_t key;
    std::size_t charge;
    uint32_t hits;
    uint64_t cost;
  };
  const std::size_t max_entries = 64, max_bytes = 64 * 2000;
  std::map<uint64_t, model_entry> model;  // id -> entry
  std::map<uint64_t, uint64_t> model_by_key;
  std::size_t model_bytes = 0;
  double clock = 0;
  uint64_t touches = 0;
  std::vector<uint64_t> model_evicted, store_evicted;
  auto value = [](const model_entry& e) {
    return (1.0 + e.hits) * (1.0 + static_cast<double>(e.cost)) / static_cast<double>(e.charge);
  };
  auto model_remove = [&](uint64_t id) {
    model_bytes -= model[id].charge;
    model_by_key.erase(model[id].key);
    model.erase(id);
  };

  cache_store store({.max_entries = max_entries, .max_bytes = max_bytes},
                    [&](const cache_record& r, removal why) {
                      if (why == removal::evicted) store_evicted.push_back(r.id);
                    });
  std::mt19937_64 rng(2024);
  for (uint64_t step = 0; step < 20000; ++step) {
    const uint64_t k = rng() % 200;
    if (rng() % 3 == 0) {
      const cache_record* got = store.get(key_of(k), step);
      auto it = model_by_key.find(k);
      REQUIRE((got != nullptr) == (it != model_by_key.end()));
      if (got == nullptr) continue;
      model_entry& e = model[it->second];
      REQUIRE(got->id == it->second);
      ++e.hits;
      e.prio = clock + value(e);
      e.touched = ++touches;
      continue;
    }
    cache_record r = make(k, rng() % 1500, rng() % 1000);
    model_entry e{0, 0, k, cache_store::charge(r), 0, r.cost_micros};
    if (auto it = model_by_key.find(k); it != model_by_key.end()) model_remove(it->second);
    while (!model.empty() &&
           (model.size() + 1 > max_entries || model_bytes + e.charge > max_bytes)) {
      auto victim = model.begin();
      for (auto it = model.begin(); it != model.end(); ++it)
        if (std::pair(it->second.prio, it->second.touched) <
            std::pair(victim->second.prio, victim->second.touched))
          victim = it;
      clock = victim->second.prio;
      model_evicted.push_back(victim->first);
      model_remove(victim->first);
    }
    e.prio = clock + value(e);
    e.touched = ++touches;
    const uint64_t id = store.put(std::move(r), step);
    model[id] = e;
    model_by_key[k] = id;
    model_bytes += e.charge;
    REQUIRE(store.bytes() == model_bytes);
  }
  REQUIRE(model_evicted.size() > 5000);
  CHECK(store_evicted == model_evicted);
}

TEST_CASE("ordering survives clock renormalisation under extreme costs") {
  // Every value is capped, so records leave oldest first; the clock passes the renormalisation
  // point several times. A record refreshed by hits stays.
  std::vector<uint64_t> evicted;
  cache_store store({.max_entries = 64, .max_bytes = kLots},
                    [&](const cache_record& r, removal) { evicted.push_back(r.id); });
  const uint64_t max_cost = std::numeric_limits<uint64_t>::max();
  const uint64_t hot = store.put(make(0, 100, max_cost), 0);
  for (uint64_t i = 1; i <= 200000; ++i) {
    store.put(make(i, 100, max_cost), i);
    if (i % 16 == 0) REQUIRE(store.get(key_of(0), i) != nullptr);
  }
  REQUIRE(evicted.size() == 200000 - 63);
  bool ordered = true;
  for (std::size_t i = 1; i < evicted.size(); ++i) ordered = ordered && evicted[i - 1] < evicted[i];
  CHECK(ordered);
  CHECK(std::find(evicted.begin(), evicted.end(), hot) == evicted.end());
  // A free record is still worth less than any costly one after the renormalisations, even the
  // ones put long before it (refreshed here so that none is due at the current clock).
  for (uint64_t i = 200000 - 62; i <= 200000; ++i) REQUIRE(store.get(key_of(i), 200001));
  REQUIRE(store.get(key_of(0), 200001));
  REQUIRE(store.remove_if([](const cache_record& r) { return r.key == key_of(200000); }) == 1);
  const uint64_t free_one = store.put(make(999999, 100, 0), 200002);
  store.put(make(1000000, 100, max_cost), 200003);
  CHECK(evicted.back() == free_one);
  CHECK(store.get(key_of(200000 - 62), 200004) != nullptr);
}

TEST_CASE("a record past its TTL is gone on get and get_by_id, reported as expired") {
  recorder rec;
  cache_store store({.max_entries = 10, .max_bytes = kLots}, rec.callback());
  const uint64_t a = store.put(make(1, 100, 0, 1000), 0);
  const uint64_t b = store.put(make(2, 100, 0, 1000), 0);
  const uint64_t forever = store.put(make(3, 100, 0, 0), 0);
  REQUIRE(store.get(key_of(1), 999) != nullptr);
  REQUIRE(store.get_by_id(b, 999) != nullptr);
  CHECK(rec.calls.empty());

  CHECK(store.get(key_of(1), 1000) == nullptr);
  REQUIRE(rec.calls.size() == 1);
  CHECK(rec.calls[0].id == a);
  CHECK(rec.calls[0].why == removal::expired);
  CHECK(store.get(key_of(1), 1000) == nullptr);
  CHECK(rec.calls.size() == 1);

  CHECK(store.get_by_id(b, 5000) == nullptr);
  REQUIRE(rec.calls.size() == 2);
  CHECK(rec.calls[1].id == b);
  CHECK(rec.calls[1].why == removal::expired);
  CHECK(store.get(key_of(2), 5000) == nullptr);

  CHECK(store.get_by_id(forever, 1ULL << 60) != nullptr);
  CHECK(store.entries() == 1);
  CHECK(store.bytes() == cache_store::charge(make(3, 100)));
  CHECK(store.expire(1ULL << 60, 100) == 0);
}

TEST_CASE("get_live counts a hit but leaves an expired record to its owner, with no callback") {
  recorder rec;
  cache_store store({.max_entries = 10, .max_bytes = kLots}, rec.callback());
  store.put(make(1, 100, 0, 1000), 0);
  const cache_record* live = store.get_live(key_of(1), 999);
  REQUIRE(live != nullptr);
  CHECK(live->hits == 1);
  CHECK(store.get_live(key_of(2), 999) == nullptr);
  CHECK(store.get_live(key_of(1), 1000) == nullptr);  // expired: not served...
  CHECK(rec.calls.empty());                           // ...and not removed by the reader
  CHECK(store.entries() == 1);
  CHECK(store.expire(1000, 10) == 1);  // the owner's sweep removes it
  REQUIRE(rec.calls.size() == 1);
  CHECK(rec.calls[0].why == removal::expired);
}

TEST_CASE("expire removes the earliest expired records, at most budget at a time") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  std::vector<uint64_t> soon;
  for (uint64_t i = 0; i < 10; ++i) soon.push_back(store.put(make(i, 50, 0, 109 - i), 0));
  for (uint64_t i = 10; i < 15; ++i) store.put(make(i, 50, 0, 0), 0);
  for (uint64_t i = 15; i < 18; ++i) store.put(make(i, 50, 0, 5000), 0);
  REQUIRE(store.entries() == 18);

  CHECK(store.expire(99, 100) == 0);
  CHECK(store.expire(200, 3) == 3);
  REQUIRE(rec.calls.size() == 3);
  // Earliest expiry first: the last ones put expire first.
  CHECK(rec.calls[0].id == soon[9]);
  CHECK(rec.calls[1].id == soon[8]);
  CHECK(rec.calls[2].id == soon[7]);
  CHECK(store.expire(200, 100) == 7);
  CHECK(store.expire(200, 100) == 0);
  CHECK(store.entries() == 8);
  CHECK(store.expire(5000, 2) == 2);
  CHECK(store.expire(5000, 0) == 0);
  CHECK(store.expire(5000, 2) == 1);
  CHECK(store.entries() == 5);
  CHECK(rec.count(removal::expired) == 13);
  CHECK(rec.calls.size() == 13);
}

TEST_CASE("remove_if invalidates by scope, model and namespace") {
  recorder rec;
  cache_store store({.max_entries = 100, .max_bytes = kLots}, rec.callback());
  for (uint64_t i = 0; i < 30; ++i) {
    cache_record r = make(i, 10);
    r.scope = i % 2 ? "tenant-a" : "tenant-b";
    r.model = i % 5 == 0 ? "gpt-y" : "gpt-x";
    r.ns = key_of(7000 + i % 3);
    store.put(std::move(r), 0);
  }
  CHECK(store.remove_if([](const cache_record& r) { return r.scope == "tenant-a"; }) == 15);
  CHECK(rec.calls.size() == 15);
  CHECK(rec.count(removal::invalidated) == 15);
  CHECK(store.entries() == 15);
  // Left: even i. Of those, i % 5 == 0: 0, 10, 20.
  CHECK(store.remove_if([](const cache_record& r) { return r.model == "gpt-y"; }) == 3);
  // Left: even i not divisible by 5; i % 3 == 0 among them: 6, 12, 18, 24.
  const digest ns = key_of(7000);
  CHECK(store.remove_if([&](const cache_record& r) { return r.ns == ns; }) == 4);
  CHECK(store.entries() == 8);
  CHECK(store.remove_if([](const cache_record&) { return false; }) == 0);
  for (uint64_t i = 0; i < 30; ++i) {
    const bool kept = i % 2 == 0 && i % 5 != 0 && i % 3 != 0;
    CHECK((store.get(key_of(i), 1) != nullptr) == kept);
  }
  CHECK(rec.calls.size() == 22);
  CHECK(store.bytes() == 8 * cache_store::charge(make(0, 10)));
}

TEST_CASE("putting the same key replaces the record and reports the old one as replaced") {
  recorder rec;
  cache_store store({.max_entries = 10, .max_bytes = kLots}, rec.callback());
  cache_record first = make(5, 100);
  first.body = "first";
  const uint64_t id1 = store.put(std::move(first), 10);
  cache_record second = make(5, 100);
  second.body = "second answer";
  const std::size_t second_charge = cache_store::charge(second);
  const uint64_t id2 = store.put(std::move(second), 20);
  REQUIRE(rec.calls.size() == 1);
  CHECK(rec.calls[0].id == id1);
  CHECK(rec.calls[0].why == removal::replaced);
  CHECK(rec.calls[0].body == "first");
  CHECK(id2 > id1);
  CHECK(store.entries() == 1);
  CHECK(store.bytes() == second_charge);
  const cache_record* got = store.get(key_of(5), 30);
  REQUIRE(got != nullptr);
  CHECK(got->body == "second answer");
  CHECK(got->id == id2);
  CHECK(got->stored_ms == 20);
  CHECK(store.get_by_id(id1, 30) == nullptr);
  CHECK(store.evictions() == 0);
}

TEST_CASE("get_by_id finds the record put, counts hits, and knows nothing else") {
  recorder rec;
  cache_store store({.max_entries = 10, .max_bytes = kLots}, rec.callback());
  const uint64_t a = store.put(make(1, 10), 100);
  const uint64_t b = store.put(make(2, 20), 200);
  const cache_record* ra = store.get_by_id(a, 300);
  REQUIRE(ra != nullptr);
  CHECK(ra->key == key_of(1));
  CHECK(ra->id == a);
  CHECK(ra->stored_ms == 100);
  CHECK(ra->hits == 1);
  CHECK(store.get(key_of(1), 300)->hits == 2);
  const cache_record* rb = store.get_by_id(b, 300);
  REQUIRE(rb != nullptr);
  CHECK(rb->key == key_of(2));
  CHECK(store.get_by_id(0, 300) == nullptr);
  CHECK(store.get_by_id(b + 1, 300) == nullptr);
  CHECK(store.get(key_of(3), 300) == nullptr);
  CHECK(rec.calls.empty());
}

TEST_CASE("a record larger than max_bytes is refused without touching the others") {
  recorder rec;
  const std::size_t max_bytes = 10000;
  cache_store store({.max_entries = 10, .max_bytes = max_bytes}, rec.callback());
  const uint64_t small = store.put(make(1, 100), 0);
  store.put(make(2, 100), 0);
  CHECK(store.put(make(1, max_bytes), 1) == 0);  // same key as `small`: it stays
  CHECK(store.put(make(3, max_bytes), 1) == 0);
  CHECK(rec.calls.empty());
  CHECK(store.entries() == 2);
  REQUIRE(store.get(key_of(1), 2) != nullptr);
  CHECK(store.get(key_of(1), 2)->id == small);

  // Exactly max_bytes fits, after everything else is evicted for it.
  const std::size_t fits = max_bytes - cache_store::charge(make(4, 0));
  const uint64_t big = store.put(make(4, fits), 3);
  CHECK(big != 0);
  CHECK(store.bytes() == max_bytes);
  CHECK(store.entries() == 1);
  CHECK(rec.count(removal::evicted) == 2);

  cache_store none({.max_entries = 0, .max_bytes = max_bytes}, rec.callback());
  CHECK(none.put(make(1, 10), 0) == 0);
  CHECK(none.entries() == 0);
}

TEST_CASE("ids are never reused, across replacement, eviction and expiry") {
  cache_store store({.max_entries = 20, .max_bytes = kLots}, nullptr);
  std::set<uint64_t> seen;
  uint64_t last = 0;
  std::mt19937_64 rng(99);
  for (uint64_t i = 0; i < 5000; ++i) {
    const uint64_t k = rng() % 40;
    const uint64_t id = store.put(make(k, rng() % 300, 0, rng() % 2 ? i + 5 : 0), i);
    REQUIRE(id > last);
    REQUIRE(seen.insert(id).second);
    last = id;
    const cache_record* got = store.get(key_of(k), i);
    REQUIRE(got != nullptr);
    CHECK(got->id == id);
    store.expire(i, 3);
  }
}

TEST_CASE("on_remove fires exactly once per record that leaves, and never at destruction") {
  std::set<uint64_t> live;
  std::size_t calls = 0, evicted = 0;
  std::mt19937_64 rng(31337);
  std::vector<uint64_t> ids;
  std::size_t final_entries = 0;
  {
    cache_store store({.max_entries = 150, .max_bytes = 150 * 1200},
                      [&](const cache_record& r, removal why) {
                        ++calls;
                        evicted += why == removal::evicted;
                        REQUIRE(live.erase(r.id) == 1);
                      });
    uint64_t now = 0;
    for (int step = 0; step < 30000; ++step) {
      now += rng() % 3;
      const uint64_t k = rng() % 400;
      switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {
          const uint64_t ttl = rng() % 2 ? 0 : now + 1 + rng() % 200;
          const uint64_t id = store.put(make(k, rng() % 1500, rng() % 100, ttl), now);
          REQUIRE(id != 0);
          live.insert(id);
          ids.push_back(id);
          break;
        }
        case 4:
        case 5:
          store.get(key_of(k), now);
          break;
        case 6:
        case 7:
          store.get_by_id(ids.empty() ? 1 : ids[rng() % ids.size()], now);
          break;
        case 8:
          store.expire(now, rng() % 8);
          break;
        default:
          if (rng() % 20 == 0) {
            const uint64_t mod = 2 + rng() % 5;
            store.remove_if([&](const cache_record& r) { return r.key.lo % mod == 0; });
          }
          break;
      }
      REQUIRE(store.entries() == live.size());
    }
    CHECK(store.evictions() == evicted);
    CHECK(evicted > 0);
    final_entries = store.entries();
    REQUIRE(final_entries > 0);
  }
  CHECK(live.size() == final_entries);  // destruction reported nothing
  CHECK(calls + final_entries == ids.size());
}
