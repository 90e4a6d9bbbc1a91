// Which upstream answers the cache may keep.
#include <doctest/doctest.h>

#include "protocol/openai/answer.hpp"

using tc::openai::answer_cacheable;

TEST_CASE("complete chat, completion and embedding answers are cacheable") {
  CHECK(answer_cacheable(
      R"({"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})"));
  CHECK(answer_cacheable(
      R"({"choices":[{"index":0,"message":{"tool_calls":[]},"finish_reason":"tool_calls"}]})"));
  CHECK(answer_cacheable(
      R"({"object":"text_completion","choices":[{"text":"x","finish_reason":"stop"}]})"));
  CHECK(answer_cacheable(R"({"object":"list","data":[{"embedding":[0.1]}]})"));
}

TEST_CASE("errors, truncated, filtered and malformed answers are never cacheable") {
  CHECK_FALSE(answer_cacheable(R"({"error":{"message":"x","type":"server_error"}})"));
  CHECK_FALSE(answer_cacheable(R"({"choices":[{"finish_reason":"length"}]})"));
  CHECK_FALSE(answer_cacheable(
      R"({"choices":[{"finish_reason":"stop"},{"finish_reason":"content_filter"}]})"));
  CHECK_FALSE(answer_cacheable(R"({"choices":[{"finish_reason":null}]})"));
  CHECK_FALSE(answer_cacheable(R"({"choices":[]})"));
  CHECK_FALSE(answer_cacheable(R"({"choices":[{"index":0}]})"));
  CHECK_FALSE(answer_cacheable(R"({"object":"list","data":[]})"));
  CHECK_FALSE(answer_cacheable("not json"));
  CHECK_FALSE(answer_cacheable(R"([1,2])"));
  CHECK_FALSE(answer_cacheable(R"({"choices":[{"finish_reason":"stop"}])"));  // truncated JSON
}
