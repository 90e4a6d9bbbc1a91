// protocol/memo.hpp: a result comes back only for exactly the input it was kept for.
#include <doctest/doctest.h>

#include <string>

#include "protocol/memo.hpp"

using tc::recent_results;

TEST_CASE("recent_results returns a result only for exactly its input") {
  recent_results<int, 2> memo;
  CHECK(memo.find(1, {"a", "b"}) == nullptr);
  memo.keep(1, {"a", "b"}, 10);
  REQUIRE(memo.find(1, {"a", "b"}) != nullptr);
  CHECK(*memo.find(1, {"a", "b"}) == 10);
  CHECK(memo.find(2, {"a", "b"}) == nullptr);
  CHECK(memo.find(1, {"a", "c"}) == nullptr);
  CHECK(memo.find(1, {"ab", ""}) == nullptr);  // the parts' boundary counts
  memo.keep(1, {"a", "b"}, 11);                // a newer result replaces the old
  CHECK(*memo.find(1, {"a", "b"}) == 11);
}

TEST_CASE("recent_results: inputs sharing a slot never answer for each other") {
  // More inputs than slots, differing only in the tag, then only in one part: many share a
  // slot, and each lookup finds its own result or none.
  recent_results<int, 1> by_tag;
  for (int t = 0; t < 300; ++t) by_tag.keep(static_cast<uint64_t>(t), {"same bytes"}, t);
  int found = 0;
  for (int t = 0; t < 300; ++t) {
    const int* v = by_tag.find(static_cast<uint64_t>(t), {"same bytes"});
    if (v == nullptr) continue;
    ++found;
    CHECK(*v == t);
  }
  CHECK(found > 0);
  CHECK(found <= static_cast<int>(decltype(by_tag)::k_slots));

  recent_results<int, 2> by_part;
  for (int i = 0; i < 300; ++i) by_part.keep(7, {"body", std::to_string(i)}, i);
  found = 0;
  for (int i = 0; i < 300; ++i) {
    const int* v = by_part.find(7, {"body", std::to_string(i)});
    if (v == nullptr) continue;
    ++found;
    CHECK(*v == i);
  }
  CHECK(found > 0);
  REQUIRE(by_part.find(7, {"body", "299"}) != nullptr);  // the last one kept is always there
}

TEST_CASE("recent_results keeps no input larger than its bound") {
  recent_results<int, 1> memo;
  const std::string big(decltype(memo)::k_max_bytes + 1, 'x');
  memo.keep(0, {big}, 1);
  CHECK(memo.find(0, {big}) == nullptr);
  const std::string fits(decltype(memo)::k_max_bytes, 'x');
  memo.keep(0, {fits}, 2);
  REQUIRE(memo.find(0, {fits}) != nullptr);
  CHECK(*memo.find(0, {fits}) == 2);
}
