// actors/published.hpp: each thread keeps the last value it read, and never serves it for a
// value set since, nor for another cell.
#include "actors/published.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <new>
#include <thread>
#include <vector>

using tc::actors::published;

namespace {

struct number {
  int n = 0;
};

std::shared_ptr<const number> make(int n) {
  return std::make_shared<const number>(number{n});
}

}  // namespace

TEST_CASE("published: a default cell holds a default value, and get sees each set") {
  published<number> cell;
  REQUIRE(cell.get() != nullptr);
  CHECK(cell.get()->n == 0);
  cell.set(make(1));
  CHECK(cell.get()->n == 1);
  cell.set(make(2));
  CHECK(cell.get()->n == 2);
  CHECK(cell.get()->n == 2);  // kept, still the current one
}

TEST_CASE("published: a set on another thread is seen by this thread's next get") {
  published<number> cell(make(1));
  CHECK(cell.get()->n == 1);  // this thread now keeps 1
  std::thread([&] { cell.set(make(2)); }).join();
  CHECK(cell.get()->n == 2);
}

TEST_CASE("published: one thread reading several cells gets each cell's own value") {
  published<number> a(make(1));
  published<number> b(make(2));
  for (int i = 0; i < 3; ++i) {
    CHECK(a.get()->n == 1);
    CHECK(b.get()->n == 2);
  }
  a.set(make(3));
  CHECK(b.get()->n == 2);
  CHECK(a.get()->n == 3);
}

TEST_CASE("published: a new cell where an old one was gets its own value, not the old one's") {
  alignas(published<number>) unsigned char storage[sizeof(published<number>)];
  auto* old_cell = new (storage) published<number>(make(1));
  CHECK(old_cell->get()->n == 1);  // kept by this thread
  old_cell->~published<number>();
  auto* new_cell = new (storage) published<number>(make(2));  // the same address
  CHECK(new_cell->get()->n == 2);
  new_cell->~published<number>();
}

TEST_CASE("published: readers racing a writer see values in order and end on the last") {
  constexpr int last = 2000;
  published<number> cell(make(0));
  std::atomic<bool> out_of_order{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      int seen = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (seen != last && std::chrono::steady_clock::now() < deadline) {
        const int n = cell.get()->n;
        if (n < seen) out_of_order = true;
        seen = n;
      }
      if (seen != last) out_of_order = true;  // never saw the last value
    });
  }
  for (int i = 1; i <= last; ++i) cell.set(make(i));
  for (auto& t : readers) t.join();
  CHECK_FALSE(out_of_order.load());
}
