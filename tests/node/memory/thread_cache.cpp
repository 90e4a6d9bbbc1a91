// The thread-cache allocator behind tcnode's malloc, called directly (this binary keeps glibc's
// malloc): size classes, alignment, reuse, frees from another thread, thread exit, and a
// concurrent stress with every block's bytes checked.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "node/memory/thread_cache.hpp"

namespace mem = tc::memory;

namespace {

/// Fills a block with a pattern derived from its address and a tag; check() verifies it.
void stamp(void* p, std::size_t n, std::uint8_t tag) {
  auto* b = static_cast<std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = std::uint8_t(tag + i * 31);
}
bool intact(const void* p, std::size_t n, std::uint8_t tag) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != std::uint8_t(tag + i * 31)) return false;
  return true;
}

}  // namespace

TEST_CASE("size classes round up by at most 15 bytes to 1 KiB and 25 percent above") {
  CHECK(mem::class_size(0) == 16);
  CHECK(mem::class_size(1) == 16);
  CHECK(mem::class_size(16) == 16);
  CHECK(mem::class_size(17) == 32);
  CHECK(mem::class_size(1024) == 1024);
  CHECK(mem::class_size(1025) == 1280);
  CHECK(mem::class_size(1672) == 1792);
  CHECK(mem::class_size(4000) == 4096);
  CHECK(mem::class_size(2049) == 2560);
  CHECK(mem::class_size(mem::max_small) == mem::max_small);
  std::size_t previous = 0;
  for (std::size_t n = 0; n <= mem::max_small; ++n) {
    const std::size_t c = mem::class_size(n);
    REQUIRE(c >= n);
    REQUIRE(c % 16 == 0);
    REQUIRE(c >= previous);
    if (n <= 1024)
      REQUIRE(c - n < 16 + (n == 0 ? 1 : 0));
    else
      REQUIRE(c * 4 <= n * 5 + 4);
    previous = c;
  }
}

TEST_CASE("blocks are aligned, owned, as large as their class, and distinct") {
  REQUIRE(mem::enabled());
  std::vector<std::pair<void*, std::size_t>> blocks;
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const std::size_t n = rng() % 3 == 0 ? rng() % mem::max_small : rng() % 600;
    void* p = mem::allocate(n);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
    CHECK(mem::owns(p));
    CHECK(mem::usable_size(p) == mem::class_size(n));
    stamp(p, mem::usable_size(p), std::uint8_t(i));
    blocks.emplace_back(p, mem::usable_size(p));
  }
  for (std::size_t i = 0; i < blocks.size(); ++i)
    CHECK(intact(blocks[i].first, blocks[i].second, std::uint8_t(i)));
  for (auto& [p, n] : blocks) mem::deallocate(p);
}

TEST_CASE("what is not ours is told apart, and requests above max_small are refused") {
  REQUIRE(mem::enabled());
  void* system = std::malloc(64);  // glibc's, in this binary
  int on_stack = 0;
  CHECK_FALSE(mem::owns(system));
  CHECK_FALSE(mem::owns(&on_stack));
  CHECK_FALSE(mem::owns(nullptr));
  std::free(system);
  CHECK(mem::allocate(mem::max_small + 1) == nullptr);
}

TEST_CASE("a freed block is the next one its thread gets for that class") {
  void* p = mem::allocate(200);
  REQUIRE(p != nullptr);
  mem::deallocate(p);
  void* q = mem::allocate(193);  // same 208-byte class
  CHECK(q == p);
  mem::deallocate(q);
}

TEST_CASE("blocks freed on another thread are reused, so a producer and a consumer stay bounded") {
  // The gateway's shape: the I/O loop allocates what an actor frees. Memory must come back to
  // the producer through the central lists instead of growing with every round.
  constexpr int rounds = 200;
  constexpr int per_round = 500;
  std::size_t slabs_after_first = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<void*> made(per_round);
    std::thread producer([&] {
      for (auto& p : made) {
        p = mem::allocate(96);
        stamp(p, 96, std::uint8_t(round));
      }
    });
    producer.join();
    std::thread consumer([&] {
      for (void* p : made) {
        REQUIRE(intact(p, 96, std::uint8_t(round)));
        mem::deallocate(p);
      }
    });
    consumer.join();
    if (round == 0) slabs_after_first = mem::read_stats().slab_bytes;
  }
  // Without reuse, 200 rounds of 500 x 96 bytes would need 9.6 MB of new slabs.
  CHECK(mem::read_stats().slab_bytes <= slabs_after_first + (1u << 20));
  CHECK(mem::read_stats().central_transfers > 0);
}

TEST_CASE("a thread's cached blocks go to the central lists when it exits") {
  constexpr int blocks = 40;
  std::size_t central_held = 0;  // after the thread took its blocks, before it freed them
  std::thread t([&] {
    std::vector<void*> held;
    for (int i = 0; i < blocks; ++i) held.push_back(mem::allocate(4096));
    central_held = mem::read_stats().central_bytes;
    for (void* p : held) mem::deallocate(p);
  });
  t.join();
  // Whatever the thread still cached at exit joined what its frees had already given back.
  CHECK(mem::read_stats().central_bytes >= central_held + blocks * 4096);
}

TEST_CASE("threads allocating, handing over and freeing at once never share a live block") {
  // Set up first: while one thread sets the allocator up, the others get nullptr (their
  // fallback's turn, by contract), which this test would count as damage when it runs alone.
  REQUIRE(mem::enabled());
  constexpr int threads = 4;
  constexpr int ops = 20000;
  struct handed {
    void* p;
    std::size_t n;
    std::uint8_t tag;
  };
  std::mutex pool_lock;
  std::vector<handed> pool;
  std::atomic<int> damaged{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(unsigned(t + 1));
      std::vector<handed> mine;
      for (int i = 0; i < ops; ++i) {
        const unsigned what = rng() % 4;
        if (what < 2 || mine.empty()) {
          const std::size_t n = rng() % 4 == 0 ? 1 + rng() % mem::max_small : 1 + rng() % 300;
          void* p = mem::allocate(n);
          if (p == nullptr) {
            damaged.fetch_add(1);
            continue;
          }
          const auto tag = std::uint8_t(rng());
          stamp(p, n, tag);
          mine.push_back({p, n, tag});
        } else if (what == 2) {  // hand one to whichever thread takes it
          std::lock_guard g(pool_lock);
          pool.push_back(mine.back());
          mine.pop_back();
        } else {
          handed h = mine.back();
          mine.pop_back();
          {
            std::lock_guard g(pool_lock);
            if (!pool.empty()) {
              mine.push_back(h);
              h = pool.back();
              pool.pop_back();
            }
          }
          if (!intact(h.p, h.n, h.tag)) damaged.fetch_add(1);
          mem::deallocate(h.p);
        }
      }
      for (auto& h : mine) {
        if (!intact(h.p, h.n, h.tag)) damaged.fetch_add(1);
        mem::deallocate(h.p);
      }
    });
  }
  for (auto& w : workers) w.join();
  for (auto& h : pool) {
    if (!intact(h.p, h.n, h.tag)) damaged.fetch_add(1);
    mem::deallocate(h.p);
  }
  CHECK(damaged.load() == 0);
}
