// protocol/scheduling/context.cpp: the prompt count, reject, truncate_oldest, truncate_middle,
// turns kept whole (tool calls with their results), content strings and parts arrays, bytes
// outside `messages` kept exactly, and bodies that are not chat bodies.
#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "protocol/scheduling/context.hpp"
#include "protocol/tokens.hpp"

using namespace tc::scheduling;

namespace {

/// One token per byte, so the expected counts are easy to work out by hand.
struct byte_counter final : token_counter {
  uint32_t count(std::string_view t) const override { return static_cast<uint32_t>(t.size()); }
};
const byte_counter bytes;

std::string msg(std::string_view role, std::string_view content) {
  return R"({"role":")" + std::string(role) + R"(","content":")" + std::string(content) + "\"}";
}

std::string body_of(const std::vector<std::string>& messages,
                    std::string_view before = R"({"model":"m","messages":)",
                    std::string_view after = "}") {
  std::string b(before);
  b += '[';
  for (size_t i = 0; i < messages.size(); ++i) b += (i ? "," : "") + messages[i];
  b += ']';
  b += after;
  return b;
}

/// The roles and contents of the messages of a body, "role:content" each.
std::vector<std::string> summary(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  REQUIRE_FALSE(d.HasParseError());
  std::vector<std::string> out;
  for (const auto& m : d["messages"].GetArray()) {
    std::string s = m["role"].GetString();
    s += ':';
    if (m.HasMember("content") && m["content"].IsString()) s += m["content"].GetString();
    out.push_back(s);
  }
  return out;
}

// A conversation with a tool call in its second turn. Tokens by byte_counter: 3 priming +
// per message 4 + content bytes.
const std::vector<std::string> chat = {
    msg("system", "be brief"),           // 4 + 8 = 12
    msg("user", "first question"),       // 4 + 14 = 18
    msg("assistant", "first answer"),    // 4 + 12 = 16
    msg("user", "what is the weather"),  // 4 + 19 = 23
    R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",)"
    R"("function":{"name":"wx","arguments":"{}"}}]})",           // 4 + 2 + 2 = 8
    R"({"role":"tool","tool_call_id":"c1","content":"sunny"})",  // 4 + 2 + 5 = 11
    msg("assistant", "it is sunny"),                             // 4 + 11 = 15
    msg("user", "and tomorrow"),                                 // 4 + 12 = 16
};
constexpr uint32_t chat_tokens = 3 + 12 + 18 + 16 + 23 + 8 + 11 + 15 + 16;  // 122

}  // namespace

TEST_CASE("context: mode names round trip") {
  for (context_mode m :
       {context_mode::reject, context_mode::truncate_oldest, context_mode::truncate_middle}) {
    context_mode back =
        m == context_mode::reject ? context_mode::truncate_oldest : context_mode::reject;
    REQUIRE(parse_context_mode(to_string(m), back));
    CHECK(back == m);
  }
  context_mode m = context_mode::reject;
  CHECK_FALSE(parse_context_mode("truncate", m));
  CHECK(m == context_mode::reject);
}

TEST_CASE("context: the prompt count, and reject") {
  const std::string b = body_of(chat);
  auto r = protect_context(b, chat_tokens, 0, context_mode::reject, bytes);
  CHECK(r.fits);
  CHECK_FALSE(r.changed);
  CHECK(r.body.empty());
  CHECK(r.prompt_tokens == chat_tokens);
  r = protect_context(b, chat_tokens + 100, 100, context_mode::reject, bytes);
  CHECK(r.fits);
  r = protect_context(b, chat_tokens + 100, 101, context_mode::reject, bytes);
  CHECK_FALSE(r.fits);
  CHECK_FALSE(r.changed);
  CHECK(r.prompt_tokens == chat_tokens);
  CHECK(r.dropped_messages == 0);
  // A reservation above the window never fits, whatever the mode.
  r = protect_context(b, 1'000, UINT32_MAX, context_mode::truncate_oldest, bytes);
  CHECK_FALSE(r.fits);
}

TEST_CASE("context: the default counter is tc::estimate_tokens plus the overheads") {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  CHECK(default_counter().count(text) == tc::estimate_tokens(text));
  CHECK(default_counter().per_message() == 4);
  CHECK(default_counter().reply_priming() == 3);
  const std::string b = body_of({msg("user", text)});
  const auto r = protect_context(b, 100'000, 0, context_mode::reject);
  CHECK(r.prompt_tokens == 3 + 4 + tc::estimate_tokens(text));
}

TEST_CASE("context: truncate_oldest drops the oldest turns, system messages stay") {
  const std::string b = body_of(chat);
  // 122 - 34 (first turn) = 88 fits a budget of 100.
  auto r = protect_context(b, 100, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  REQUIRE(r.changed);
  CHECK(r.dropped_messages == 2);
  CHECK(r.prompt_tokens == chat_tokens - 34);
  CHECK(summary(r.body) == std::vector<std::string>{"system:be brief", "user:what is the weather",
                                                    "assistant:", "tool:sunny",
                                                    "assistant:it is sunny", "user:and tomorrow"});
  CHECK(r.body == body_of({chat[0], chat[3], chat[4], chat[5], chat[6], chat[7]}));
  // The count of the rewritten body is what prompt_tokens said.
  CHECK(protect_context(r.body, 1'000, 0, context_mode::reject, bytes).prompt_tokens ==
        r.prompt_tokens);
  // One token less: the second turn goes too, its tool call with its result.
  r = protect_context(b, chat_tokens - 34 - 1, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.dropped_messages == 6);
  CHECK(r.body == body_of({chat[0], chat[7]}));
  CHECK(r.prompt_tokens == 3 + 12 + 16);
  // Dropping message by message would stop between the tool call and its result here.
  r = protect_context(b, 60, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.body == body_of({chat[0], chat[7]}));
}

TEST_CASE("context: the last user message and what follows it are never dropped") {
  // The last turn is in progress: a tool call after the last user message.
  std::vector<std::string> c = {chat[0], chat[1], chat[2], chat[7], chat[4], chat[5]};
  const std::string b = body_of(c);
  const uint32_t minimum = 3 + 12 + 16 + 8 + 11;
  auto r = protect_context(b, minimum, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.body == body_of({chat[0], chat[7], chat[4], chat[5]}));
  r = protect_context(b, minimum - 1, 0, context_mode::truncate_oldest, bytes);
  CHECK_FALSE(r.fits);
  CHECK_FALSE(r.changed);
  CHECK(r.body.empty());
  CHECK(r.prompt_tokens == minimum + 34);  // the body as given
  // A single turn cannot be truncated at all.
  r = protect_context(body_of({chat[0], chat[7]}), 10, 0, context_mode::truncate_oldest, bytes);
  CHECK_FALSE(r.fits);
}

TEST_CASE("context: truncate_middle keeps the first turn and the newest ones") {
  std::vector<std::string> c = {
      msg("system", "sys"),      msg("user", "task"),   msg("assistant", "ok"),
      msg("user", "step two"),   msg("assistant", "2"), msg("developer", "dev"),
      msg("user", "step three"), msg("assistant", "3"), msg("user", "last")};
  // Tokens: sys 7, task 8, ok 6, step two 12, 2 5, dev 7, step three 14, 3 5, last 8.
  const std::string b = body_of(c);
  const uint32_t total = 3 + 7 + 8 + 6 + 12 + 5 + 7 + 14 + 5 + 8;  // 75
  auto r = protect_context(b, total, 0, context_mode::truncate_middle, bytes);
  CHECK(r.fits);
  CHECK_FALSE(r.changed);
  r = protect_context(b, total - 1, 0, context_mode::truncate_middle, bytes);
  REQUIRE(r.fits);
  CHECK(r.dropped_messages == 2);
  CHECK(r.body == body_of({c[0], c[1], c[2], c[5], c[6], c[7], c[8]}));
  r = protect_context(b, total - 17 - 19, 0, context_mode::truncate_middle, bytes);
  REQUIRE(r.fits);
  CHECK(r.dropped_messages == 4);
  CHECK(r.body == body_of({c[0], c[1], c[2], c[5], c[8]}));  // the developer message stays
  r = protect_context(b, total - 17 - 19 - 1, 0, context_mode::truncate_middle, bytes);
  CHECK_FALSE(r.fits);
  // truncate_oldest would have dropped the first turn instead.
  r = protect_context(b, total - 1, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.body == body_of({c[0], c[3], c[4], c[5], c[6], c[7], c[8]}));
}

TEST_CASE("context: messages before the first user message are a turn of their own") {
  std::vector<std::string> c = {msg("assistant", "hello, how can I help"), msg("user", "hi"),
                                msg("assistant", "yes"), msg("user", "bye")};
  auto r = protect_context(body_of(c), 3 + 6 + 7 + 7 + 6, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.body == body_of({c[1], c[2], c[3]}));
}

TEST_CASE("context: content parts, names, tool calls and tools are counted") {
  const std::string parts =
      R"({"role":"user","content":[{"type":"text","text":"abc"},)"
      R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},)"
      R"({"type":"text","text":"de"}],"name":"bob"})";
  auto r = protect_context(body_of({parts}), 100'000, 0, context_mode::reject, bytes);
  CHECK(r.prompt_tokens == 3 + 4 + 3 + 85 + 2 + 3 + 1);
  const std::string legacy =
      R"({"role":"assistant","content":null,"function_call":{"name":"f","arguments":"xy"}})";
  r = protect_context(body_of({legacy}), 100'000, 0, context_mode::reject, bytes);
  CHECK(r.prompt_tokens == 3 + 4 + 1 + 2);
  const std::string tools = R"([{"type":"function","function":{"name":"wx"}}])";
  r = protect_context(body_of({msg("user", "q")}, R"({"tools":)" + tools + R"(,"messages":)"),
                      100'000, 0, context_mode::reject, bytes);
  CHECK(r.prompt_tokens == 3 + tools.size() + 4 + 1);

  // A parts message is dropped whole like any other.
  std::vector<std::string> c = {parts, msg("assistant", "x"), msg("user", "y")};
  r = protect_context(body_of(c), 30, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  CHECK(r.body == body_of({c[2]}));
}

TEST_CASE("context: bytes outside the dropped messages are kept as they were") {
  const std::string before =
      "{ \"model\" : \"m\",\n  \"temperature\": 0.70, \"x_vendor\": {\"n\": 1e2, \"s\": "
      "\"\\u00e9\\n\"},\n  \"messages\" :  ";
  const std::string after = " ,\n \"top_p\":1.0, \"x_vendor\": [null] }\n";
  // Odd spacing inside the messages array: the kept messages' own bytes are kept.
  const std::string m0 = "{ \"role\" : \"system\", \"content\": \"s\" , \"x\": 1.50 }";
  const std::string m1 = msg("user", "old question");
  const std::string m2 = "{\"role\":\"user\",\"content\":\"new \\\"question\\\"\"}";
  const std::string b = before + "[ " + m0 + " ,\n  " + m1 + " ,\t" + m2 + "\n ]" + after;
  auto r = protect_context(b, 3 + 5 + 16 + 10, 0, context_mode::truncate_oldest, bytes);
  REQUIRE(r.fits);
  REQUIRE(r.changed);
  CHECK(r.body == before + "[" + m0 + "," + m2 + "]" + after);
}

TEST_CASE("context: a body that is not a chat body does not fit") {
  for (std::string b : {std::string("not json"), std::string("[1,2]"), std::string("{}"),
                        std::string(R"({"messages":"hi"})"), std::string(R"({"messages":[1]})"),
                        std::string(R"({"messages":[[]]})"),
                        body_of({msg("user", "a")}, R"({"messages":[],"messages":)"),
                        std::string("{\"messages\":[]}\0x", 17), std::string()}) {
    CAPTURE(b);
    const auto r = protect_context(b, 100'000, 0, context_mode::truncate_oldest, bytes);
    CHECK_FALSE(r.fits);
    CHECK_FALSE(r.changed);
  }
  // An escaped key is the same key; an empty messages array is just the priming.
  auto r = protect_context(R"({"messag\u0065s":[]})", 3, 0, context_mode::reject, bytes);
  CHECK(r.fits);
  CHECK(r.prompt_tokens == 3);
  // Deep nesting elsewhere in the body is not a crash (iterative parse).
  std::string deep = R"({"x":)" + std::string(100'000, '[') + std::string(100'000, ']') +
                     R"(,"messages":[)" + msg("user", "q") + "]}";
  r = protect_context(deep, 100, 0, context_mode::reject, bytes);
  CHECK(r.fits);
  CHECK(r.prompt_tokens == 3 + 4 + 1);
}
