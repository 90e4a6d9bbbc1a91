// protocol/anthropic/stream.cpp: whole Anthropic streams (text; text then a tool call in
// several input_json_delta pieces) split by the real SSE splitter, translated, and assembled by
// openai::stream_assembler; usage chunks; error events; malformed and hostile events.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/anthropic/stream.hpp"
#include "protocol/openai/sse.hpp"
#include "protocol/openai/stream.hpp"

using namespace tc::anthropic;
using status = stream_translator::status;

namespace {

std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

void check_json_eq(const std::string& got, const std::string& want) {
  rapidjson::Document g, w;
  g.Parse(got.data(), got.size());
  w.Parse(want.data(), want.size());
  REQUIRE_MESSAGE(!g.HasParseError(), "not JSON: " << got);
  REQUIRE_MESSAGE(!w.HasParseError(), "bad expectation: " << want);
  if (g != w) FAIL_CHECK("JSON differs\n got:  " << dump(g) << "\n want: " << dump(w));
}

/// Runs `sse` through the SSE splitter in pieces of `piece` bytes and the translator.
struct run_result {
  status final = status::more;
  std::vector<std::string> chunks;
  stream_translator translator;
};

run_result translate(const std::string& sse, bool include_usage, std::size_t piece = 7) {
  run_result r{status::more, {}, stream_translator("claude-sonnet", 1700000000, include_usage)};
  tc::openai::sse_splitter splitter;
  auto on = [&r](const tc::openai::sse_splitter::event& e) {
    r.final = r.translator.feed(e.name, e.data, r.chunks);
  };
  for (std::size_t i = 0; i < sse.size(); i += piece) {
    REQUIRE(splitter.feed(std::string_view(sse).substr(i, piece), on));
  }
  CHECK(splitter.pending() == 0);
  return r;
}

/// Every chunk parses; assembles them into the non-stream answer.
std::string assemble(const std::vector<std::string>& chunks) {
  tc::openai::stream_assembler a;
  for (const auto& c : chunks) {
    rapidjson::Document d;
    d.Parse(c.data(), c.size());
    REQUIRE_MESSAGE(!d.HasParseError(), "chunk is not JSON: " << c);
    REQUIRE(a.feed(c));
  }
  REQUIRE(a.complete());
  return a.result();
}

const std::string text_stream = R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":1000,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", caf\u00e9 \"world\"!\n"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

)";

const std::string tool_stream = R"(event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants weather."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let's check the weather for San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ncisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"o, CA\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":", \"unit\": \"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"renheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: content_block_start
data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{\"tz\": \"PST\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":3}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

)";

}  // namespace

TEST_CASE("anthropic stream: a text stream translates and assembles to the whole answer") {
  for (std::size_t piece : {1, 7, 4096}) {
    CAPTURE(piece);
    auto r = translate(text_stream, true, piece);
    CHECK(r.final == status::done);
    REQUIRE(r.chunks.size() == 5);  // role, 2 deltas, finish, usage
    check_json_eq(r.chunks[0], R"({"id":"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet",
        "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,
        "finish_reason":null}],"usage":null})");
    check_json_eq(r.chunks[3], R"({"id":"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet",
        "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],
        "usage":null})");
    check_json_eq(r.chunks[4], R"({"id":"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet",
        "choices":[],"usage":{"prompt_tokens":1025,"completion_tokens":15,"total_tokens":1040,
        "prompt_tokens_details":{"cached_tokens":1000}}})");
    CHECK(tc::openai::is_usage_chunk(r.chunks[4]));
    check_json_eq(assemble(r.chunks),
                  R"({"id":"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "object":"chat.completion","created":1700000000,"model":"claude-sonnet",
        "choices":[{"index":0,"message":{"role":"assistant",
          "content":"Hello, caf\u00e9 \"world\"!\n"},"logprobs":null,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":1025,"completion_tokens":15,"total_tokens":1040,
          "prompt_tokens_details":{"cached_tokens":1000}}})");
    const auto u = r.translator.usage();
    CHECK(u.prompt_tokens == 1025);
    CHECK(u.completion_tokens == 15);
    CHECK(u.total_tokens == 1040);
    CHECK(u.cached_tokens == 1000);
  }
}

TEST_CASE("anthropic stream: thinking skipped, text, and two tool calls in pieces") {
  auto r = translate(tool_stream, true);
  CHECK(r.final == status::done);
  // role, text, tool 0 start, 6 non-empty pieces, tool 1 start, 1 piece, finish, usage.
  CHECK(r.chunks.size() == 13);
  check_json_eq(r.chunks[2], R"({"id":"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
      "object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet",
      "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,
        "id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function",
        "function":{"name":"get_weather","arguments":""}}]},"logprobs":null,
        "finish_reason":null}],"usage":null})");
  check_json_eq(r.chunks[3], R"({"id":"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
      "object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet",
      "choices":[{"index":0,"delta":{"tool_calls":[{"index":0,
        "function":{"arguments":"{\"location\":"}}]},"logprobs":null,"finish_reason":null}],
      "usage":null})");
  check_json_eq(assemble(r.chunks), R"({"id":"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U",
      "object":"chat.completion","created":1700000000,"model":"claude-sonnet",
      "choices":[{"index":0,"message":{"role":"assistant",
        "content":"Okay, let's check the weather for San Francisco, CA:",
        "tool_calls":[
          {"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function",
           "function":{"name":"get_weather",
             "arguments":"{\"location\": \"San Francisco, CA\", \"unit\": \"fahrenheit\"}"}},
          {"id":"toolu_02","type":"function",
           "function":{"name":"get_time","arguments":"{\"tz\": \"PST\"}"}}]},
        "logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,
        "prompt_tokens_details":{"cached_tokens":0}}})");
}

TEST_CASE("anthropic stream: without include_usage no usage chunk and no usage field") {
  auto r = translate(text_stream, false);
  CHECK(r.final == status::done);
  REQUIRE(r.chunks.size() == 4);
  for (const auto& c : r.chunks) {
    CHECK(c.find("\"usage\"") == std::string::npos);
    CHECK_FALSE(tc::openai::is_usage_chunk(c));
  }
  // The usage is still known to the caller (billing).
  CHECK(r.translator.usage().completion_tokens == 15);
  CHECK(r.translator.usage().prompt_tokens == 1025);
}

TEST_CASE("anthropic stream: finish reasons, and message_stop without message_delta") {
  const std::string start =
      R"({"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}})";
  for (auto [stop, want] : {std::pair{"max_tokens", "length"},
                            {"refusal", "content_filter"},
                            {"stop_sequence", "stop"},
                            {"tool_use", "tool_calls"}}) {
    stream_translator t("m", 1, false);
    std::vector<std::string> out;
    CHECK(t.feed("message_start", start, out) == status::more);
    CHECK(t.feed("message_delta",
                 std::string(R"({"type":"message_delta","delta":{"stop_reason":")") + stop +
                     R"("},"usage":{"output_tokens":4}})",
                 out) == status::more);
    CHECK(t.feed("message_stop", R"({"type":"message_stop"})", out) == status::done);
    REQUIRE(out.size() == 2);
    CHECK(out[1].find(std::string("\"finish_reason\":\"") + want + '"') != std::string::npos);
  }
  stream_translator t("m", 1, false);
  std::vector<std::string> out;
  t.feed("", start, out);  // no event name: the data's type is enough
  CHECK(t.feed("", R"({"type":"message_stop"})", out) == status::done);
  REQUIRE(out.size() == 2);
  CHECK(out[1].find(R"("finish_reason":"stop")") != std::string::npos);
  // After done: nothing more.
  CHECK(t.feed("message_start", start, out) == status::done);
  CHECK(out.size() == 2);
}

TEST_CASE("anthropic stream: an error event fails the stream with the upstream message") {
  stream_translator t("m", 1, true);
  std::vector<std::string> out;
  t.feed("message_start", R"({"type":"message_start","message":{"id":"m"}})", out);
  t.feed("content_block_start",
         R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}})",
         out);
  REQUIRE(out.size() == 2);
  CHECK(out[1].find(R"("content":"Hi")") != std::string::npos);
  CHECK(t.feed("error",
               R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
               out) == status::failed);
  CHECK(t.state() == status::failed);
  CHECK(t.error().status == 503);
  CHECK(t.error().message == "Overloaded");
  CHECK(out.size() == 2);
  CHECK(t.feed("message_stop", R"({"type":"message_stop"})", out) == status::failed);
  CHECK(out.size() == 2);

  // An error before anything else.
  stream_translator t2("m", 1, false);
  CHECK(t2.feed("error", R"({"type":"error","error":{"type":"api_error","message":"boom"}})",
                out) == status::failed);
  CHECK(t2.error().status == 502);
  CHECK(t2.error().message == "boom");
}

TEST_CASE("anthropic stream: malformed and hostile events fail cleanly or are ignored") {
  const std::string start = R"({"type":"message_start","message":{"id":"m"}})";
  auto fails = [&](std::string_view name, const std::string& data, bool started = true) {
    stream_translator t("m", 1, true);
    std::vector<std::string> out;
    if (started) REQUIRE(t.feed("message_start", start, out) == status::more);
    const status s = t.feed(name, data, out);
    if (s == status::failed) {
      CHECK(t.error().status == 502);
      CHECK_FALSE(t.error().message.empty());
    }
    return s == status::failed;
  };
  CHECK(fails("content_block_delta", "not json"));
  CHECK(fails("content_block_delta", ""));
  CHECK(fails("content_block_delta", "[1]"));
  CHECK(fails("content_block_delta", std::string(100000, '[') + std::string(100000, ']')));
  CHECK(
      fails("content_block_delta",
            R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})",
            false));  // before message_start
  CHECK(fails("message_start", start));
  CHECK(fails("content_block_start", R"({"type":"content_block_start","index":0})"));
  CHECK(fails(
      "content_block_start",
      R"({"type":"content_block_start","index":99999999999,"content_block":{"type":"text"}})"));
  CHECK(fails("content_block_start", R"({"type":"content_block_start","index":-1,)"
                                     R"("content_block":{"type":"text"}})"));
  CHECK(fails("content_block_start", R"({"type":"content_block_start","index":0,)"
                                     R"("content_block":{"type":"tool_use","input":{}}})"));
  CHECK(fails("content_block_delta", R"({"type":"content_block_delta","index":0,"delta":5})"));
  // Ignored, not failed: unknown events, pings, deltas of unknown kinds, input_json_delta for a
  // block that is not a client tool call, wrong-typed usage.
  CHECK_FALSE(fails("future_event", R"({"type":"future_event","x":1})"));
  CHECK_FALSE(fails("ping", R"({"type":"ping"})"));
  CHECK_FALSE(fails("ping", ""));
  CHECK_FALSE(fails("content_block_delta", R"({"type":"content_block_delta","index":0,)"
                                           R"("delta":{"type":"citations_delta"}})"));
  CHECK_FALSE(fails("content_block_delta", R"({"type":"content_block_delta","index":7,)"
                                           R"("delta":{"type":"input_json_delta",)"
                                           R"("partial_json":"{}"}})"));
  CHECK_FALSE(fails("message_delta", R"({"type":"message_delta","delta":null,"usage":"x"})"));

  // A server tool's streamed input is not sent to the client as a tool call.
  stream_translator t("m", 1, false);
  std::vector<std::string> out;
  t.feed("message_start", start, out);
  t.feed("content_block_start",
         R"({"type":"content_block_start","index":0,"content_block":)"
         R"({"type":"server_tool_use","id":"srvtoolu_1","name":"web_search"}})",
         out);
  t.feed("content_block_delta",
         R"({"type":"content_block_delta","index":0,"delta":)"
         R"({"type":"input_json_delta","partial_json":"{\"q\":1}"}})",
         out);
  CHECK(out.size() == 1);
  // Invalid UTF-8 in an event is refused by the parser, never relayed.
  CHECK(t.feed("content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
               "\"text\":\"\xC3\x28\"}}",
               out) == status::failed);
}
