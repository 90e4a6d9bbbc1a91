// protocol/scheduling/prompt_array: which completions merge, the merged body, the split of the
// answer and the usage shares (which must add up to what the upstream reported).
#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

#include "protocol/scheduling/prompt_array.hpp"

using namespace tc::scheduling;

namespace {

mergeable_prompt merge_of(const std::string& body) {
  mergeable_prompt m;
  REQUIRE(mergeable_completion(body, m));
  return m;
}

bool mergeable(const std::string& body) {
  mergeable_prompt m;
  return mergeable_completion(body, m);
}

}  // namespace

TEST_CASE("prompt_array: single-prompt non-stream completions merge, others do not") {
  CHECK(mergeable(R"({"model":"m","prompt":"hi"})"));
  CHECK(mergeable(R"({"model":"m","prompt":["hi"]})"));
  CHECK(mergeable(R"({"model":"m","prompt":"hi","n":1,"best_of":1,"stream":false})"));
  CHECK_FALSE(mergeable(R"({"model":"m","prompt":"hi","stream":true})"));
  CHECK_FALSE(mergeable(R"({"model":"m","prompt":"hi","n":2})"));
  CHECK_FALSE(mergeable(R"({"model":"m","prompt":"hi","best_of":3})"));
  CHECK_FALSE(mergeable(R"({"model":"m","prompt":["a","b"]})"));
  CHECK_FALSE(mergeable(R"({"model":"m","prompt":[1,2,3]})"));
  CHECK_FALSE(mergeable(R"({"model":"m"})"));
  CHECK_FALSE(mergeable(R"([1])"));
  CHECK_FALSE(mergeable("not json"));
}

TEST_CASE("prompt_array: the key ignores the prompt and user only") {
  const auto a = merge_of(R"({"model":"m","prompt":"one","temperature":0,"max_tokens":8})");
  const auto b =
      merge_of(R"({"max_tokens":8, "prompt":"two","user":"x","model":"m","temperature":0.0})");
  const auto c = merge_of(R"({"model":"m","prompt":"one","temperature":0,"max_tokens":8,"n":1})");
  CHECK(a.key == b.key);  // key order, whitespace, number format and user do not count
  CHECK(a.key == c.key);  // n = 1 is the default
  CHECK(a.key != merge_of(R"({"model":"m","prompt":"one","temperature":0.5,"max_tokens":8})").key);
  CHECK(a.key != merge_of(R"({"model":"m","prompt":"one","temperature":0,"max_tokens":9})").key);
  CHECK(a.key !=
        merge_of(R"({"model":"m","prompt":"one","temperature":0,"max_tokens":8,"seed":1})").key);
  CHECK(a.key != merge_of(R"({"model":"n","prompt":"one","temperature":0,"max_tokens":8})").key);
  CHECK(a.prompt == R"("one")");
  CHECK(merge_of(R"({"model":"m","prompt":["say \"hi\""]})").prompt == R"("say \"hi\"")");
}

TEST_CASE("prompt_array: the merged body lists the prompts and drops user") {
  CHECK(merged_body(R"({"model":"m","prompt":"a","user":"u1","max_tokens":4})",
                    {R"("a")", R"("b")"}) == R"({"model":"m","max_tokens":4,"prompt":["a","b"]})");
  CHECK(merged_body(R"({"prompt":"a"})", {R"("a")"}) == R"({"prompt":["a"]})");
  CHECK(merged_body("[]", {R"("a")"}).empty());
}

TEST_CASE("prompt_array: shares add up to the total, in proportion to the weights") {
  CHECK(share(10, {1, 3, 1}) == std::vector<uint32_t>{2, 6, 2});
  CHECK(share(0, {1, 2}) == std::vector<uint32_t>{0, 0});
  CHECK(share(5, {0, 0}) == std::vector<uint32_t>{3, 2});  // no weights: equal, ties first
  CHECK(share(7, {}).empty());
  for (uint32_t total : {1u, 2u, 99u, 1000u, 123457u}) {
    const std::vector<uint32_t> w = {5, 1, 0, 17, 3, 3};
    const auto parts = share(total, w);
    CHECK(std::accumulate(parts.begin(), parts.end(), uint64_t{0}) == total);
    CHECK(parts[2] <= 1);  // a zero weight gets at most a rounding remainder
  }
}

TEST_CASE("prompt_array: an answer splits into one text_completion per prompt") {
  const std::string answer =
      R"({"id":"cmpl-1","object":"text_completion","created":5,"model":"m","choices":[)"
      R"({"index":1,"text":" two","logprobs":null,"finish_reason":"stop"},)"
      R"({"index":0,"text":" one one one one","logprobs":null,"finish_reason":"length"}],)"
      R"("usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15,)"
      R"("prompt_tokens_details":{"cached_tokens":4}},"system_fingerprint":"fp"})";
  std::vector<split_part> parts;
  std::string error;
  REQUIRE(split_answer(answer, {2, 1}, parts, error));
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].body ==
        R"({"id":"cmpl-1-0","object":"text_completion","created":5,"model":"m","choices":[)"
        R"({"index":0,"text":" one one one one","logprobs":null,"finish_reason":"length"}],)"
        R"("usage":{"prompt_tokens":6,"completion_tokens":5,"total_tokens":11,)"
        R"("prompt_tokens_details":{"cached_tokens":3}},"system_fingerprint":"fp"})");
  CHECK(parts[1].usage.prompt_tokens == 3);
  CHECK(parts[1].usage.completion_tokens == 1);
  CHECK(parts[1].usage.cached_tokens == 1);
  CHECK(parts[0].usage.prompt_tokens + parts[1].usage.prompt_tokens == 9);
  CHECK(parts[0].usage.completion_tokens + parts[1].usage.completion_tokens == 6);
  CHECK(parts[1].usage_reported);

  // Without usage upstream, none is made up.
  REQUIRE(split_answer(R"({"choices":[{"index":0,"text":"a"}]})", {1}, parts, error));
  CHECK_FALSE(parts[0].usage_reported);
  CHECK(parts[0].body == R"({"choices":[{"index":0,"text":"a"}]})");
}

TEST_CASE("prompt_array: answers that do not match the prompts are refused") {
  std::vector<split_part> parts;
  std::string error;
  CHECK_FALSE(split_answer("oops", {1}, parts, error));
  CHECK_FALSE(split_answer(R"({"choices":[]})", {1}, parts, error));
  CHECK_FALSE(split_answer(R"({"choices":[{"index":0},{"index":0}]})", {1, 1}, parts, error));
  CHECK_FALSE(split_answer(R"({"choices":[{"index":0},{"index":2}]})", {1, 1}, parts, error));
  CHECK_FALSE(split_answer(R"({"choices":[{"text":"no index"}]})", {1}, parts, error));
  CHECK_FALSE(split_answer(R"({"choices":[1]})", {1}, parts, error));
  CHECK_FALSE(error.empty());
}
