// protocol/anthropic/response.cpp and error.cpp: Messages API answers and errors -> OpenAI.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/anthropic/error.hpp"
#include "protocol/anthropic/response.hpp"

using namespace tc::anthropic;
using tc::openai::api_error;

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

std::string ok(const std::string& body) {
  auto r = to_chat_completion(body, "claude-sonnet", 1700000000);
  if (auto* e = std::get_if<api_error>(&r)) FAIL("unexpected error: " << e->message);
  return std::get<std::string>(std::move(r));
}

api_error err(const std::string& body) {
  auto r = to_chat_completion(body, "claude-sonnet", 1700000000);
  REQUIRE_MESSAGE(std::holds_alternative<api_error>(r), "expected an error for " << body);
  return std::get<api_error>(std::move(r));
}

}  // namespace

TEST_CASE("anthropic response: a text answer with cache usage") {
  const auto out = ok(R"({"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",
      "model":"claude-sonnet-4-5-20250929",
      "content":[{"type":"text","text":"Hello"},{"type":"text","text":", world!"}],
      "stop_reason":"end_turn","stop_sequence":null,
      "usage":{"input_tokens":12,"cache_creation_input_tokens":100,
               "cache_read_input_tokens":2048,"output_tokens":6}})");
  check_json_eq(out, R"({"id":"chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
      "object":"chat.completion","created":1700000000,"model":"claude-sonnet",
      "choices":[{"index":0,"message":{"role":"assistant","content":"Hello, world!",
        "refusal":null},"logprobs":null,"finish_reason":"stop"}],
      "usage":{"prompt_tokens":2160,"completion_tokens":6,"total_tokens":2166,
               "prompt_tokens_details":{"cached_tokens":2048}}})");
}

TEST_CASE("anthropic response: tool_use blocks become tool_calls") {
  const auto out = ok(R"({"id":"msg_1","type":"message","role":"assistant","model":"x",
      "content":[{"type":"thinking","thinking":"hmm","signature":"sig"},
        {"type":"tool_use","id":"toolu_01A","name":"get_weather",
         "input":{"location":"San Francisco, CA","unit":"celsius","days":[1,2]}},
        {"type":"tool_use","id":"toolu_01B","name":"now","input":{}}],
      "stop_reason":"tool_use","stop_sequence":null,
      "usage":{"input_tokens":400,"output_tokens":50}})");
  check_json_eq(out, R"({"id":"chatcmpl-msg_1","object":"chat.completion",
      "created":1700000000,"model":"claude-sonnet",
      "choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[
          {"id":"toolu_01A","type":"function","function":{"name":"get_weather",
           "arguments":"{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\",\"days\":[1,2]}"}},
          {"id":"toolu_01B","type":"function","function":{"name":"now","arguments":"{}"}}],
        "refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":400,"completion_tokens":50,"total_tokens":450,
               "prompt_tokens_details":{"cached_tokens":0}}})");

  // Text before a tool call stays as content.
  const auto mixed = ok(R"({"id":"m","type":"message","content":[
      {"type":"text","text":"Let me check."},
      {"type":"tool_use","id":"t","name":"f","input":{"a":1}}],"stop_reason":"tool_use"})");
  rapidjson::Document d;
  d.Parse(mixed.data(), mixed.size());
  REQUIRE(d.IsObject());
  CHECK(std::string(d["choices"][0]["message"]["content"].GetString()) == "Let me check.");
  CHECK(d["choices"][0]["message"]["tool_calls"].Size() == 1);
}

TEST_CASE("anthropic response: stop reasons") {
  CHECK(finish_reason("end_turn") == "stop");
  CHECK(finish_reason("stop_sequence") == "stop");
  CHECK(finish_reason("max_tokens") == "length");
  CHECK(finish_reason("tool_use") == "tool_calls");
  CHECK(finish_reason("refusal") == "content_filter");
  CHECK(finish_reason("pause_turn") == "stop");
  CHECK(finish_reason("") == "stop");
  for (auto [stop, want] : {std::pair{"\"max_tokens\"", "length"},
                            {"\"refusal\"", "content_filter"},
                            {"null", "stop"},
                            {"\"stop_sequence\"", "stop"}}) {
    const auto out =
        ok(std::string(R"({"id":"m","type":"message","content":[],"stop_reason":)") + stop + "}");
    rapidjson::Document d;
    d.Parse(out.data(), out.size());
    REQUIRE(d.IsObject());
    CHECK(std::string(d["choices"][0]["finish_reason"].GetString()) == want);
    CHECK(std::string(d["choices"][0]["message"]["content"].GetString()).empty());
    CHECK(d["usage"]["total_tokens"].GetUint() == 0);
  }
}

TEST_CASE("anthropic response: malformed and hostile bodies are 502s") {
  for (const char* body :
       {"", "not json", "[]", R"({"type":"message"})", R"({"type":"message","content":{}})",
        R"({"type":"completion","content":[]})", R"({"type":"message","content":[1]})",
        R"({"type":"message","content":[{"type":"text","text":5}]})",
        R"({"type":"message","content":[{"type":"tool_use","input":{}}]})"}) {
    CAPTURE(body);
    const auto e = err(body);
    CHECK(e.status == 502);
    CHECK(e.type == "upstream_error");
  }
  std::string deep = R"({"type":"message","content":[{"type":"tool_use","id":"t","name":"f",)"
                     R"("input":)" +
                     std::string(100000, '[') + std::string(100000, ']') + "}]}";
  CHECK(err(deep).status == 502);
  // An error body in a 200 is mapped like an error answer.
  const auto e = err(R"({"type":"error","error":{"type":"overloaded_error","message":"Busy"}})");
  CHECK(e.status == 503);
  CHECK(e.message == "Busy");
  // Wrong-typed usage counts are read as 0, not trusted.
  const auto out = ok(R"({"id":"m","type":"message","content":[],
      "usage":{"input_tokens":-5,"output_tokens":"7","cache_read_input_tokens":1e30}})");
  rapidjson::Document d;
  d.Parse(out.data(), out.size());
  REQUIRE(d.IsObject());
  CHECK(d["usage"]["prompt_tokens"].GetUint() == 0);
  CHECK(d["usage"]["completion_tokens"].GetUint() == 0);
}

TEST_CASE("anthropic error: each type maps onto the OpenAI table, keeping the message") {
  struct row {
    int status;
    const char* type;
    int want_status;
    const char* want_type;
    const char* want_code;
  };
  const row rows[] = {
      {400, "invalid_request_error", 400, "invalid_request_error", ""},
      {413, "invalid_request_error", 413, "invalid_request_error", "request_too_large"},
      {401, "authentication_error", 401, "authentication_error", "invalid_api_key"},
      {403, "permission_error", 403, "permission_error", "permission_denied"},
      {404, "not_found_error", 404, "invalid_request_error", "not_found"},
      {413, "request_too_large", 413, "invalid_request_error", "request_too_large"},
      {429, "rate_limit_error", 429, "rate_limit_error", "rate_limit_exceeded"},
      {529, "overloaded_error", 503, "service_unavailable", "service_unavailable"},
      {500, "api_error", 502, "upstream_error", "upstream_error"},
      {504, "timeout_error", 504, "timeout", "timeout"},
  };
  for (const auto& r : rows) {
    CAPTURE(r.type);
    const std::string body = std::string(R"({"type":"error","error":{"type":")") + r.type +
                             R"(","message":"Details for \"people\"."},"request_id":"req_1"})";
    const api_error e = to_openai_error(r.status, body);
    CHECK(e.status == r.want_status);
    CHECK(e.type == r.want_type);
    CHECK(e.code == r.want_code);
    CHECK(e.message == "Details for \"people\".");
  }
  CHECK(to_openai_error(429,
                        R"({"type":"error","error":{"type":"rate_limit_error",)"
                        R"("message":"slow down"}})",
                        30)
            .retry_after_s == 30);
  CHECK(to_openai_error(429, R"({"type":"error","error":{"type":"rate_limit_error"}})")
            .retry_after_s >= 1);
  CHECK(to_openai_error(529, R"({"type":"error","error":{"type":"overloaded_error"}})")
            .retry_after_s >= 1);
}

TEST_CASE("anthropic error: unknown types and non-error bodies map by status") {
  auto e =
      to_openai_error(418, R"({"type":"error","error":{"type":"teapot_error","message":"t"}})");
  CHECK(e.status == 418);
  CHECK(e.type == "invalid_request_error");
  CHECK(e.message == "t");
  e = to_openai_error(503, "<html>Service Unavailable</html>");
  CHECK(e.status == 503);
  CHECK(e.type == "service_unavailable");
  CHECK(e.message.find("503") != std::string::npos);
  e = to_openai_error(500, "");
  CHECK(e.status == 502);
  e = to_openai_error(401, "not json");
  CHECK(e.status == 401);
  e = to_openai_error(429, "[]");
  CHECK(e.status == 429);
  CHECK(e.retry_after_s >= 1);
  // A huge message is cut, at a UTF-8 boundary.
  std::string big = R"({"type":"error","error":{"type":"api_error","message":")";
  for (int i = 0; i < 5000; ++i) big += "\xC3\xA9";
  big += "\"}}";
  e = to_openai_error(500, big);
  CHECK(e.message.size() < 4200);
  CHECK((static_cast<unsigned char>(e.message[e.message.size() - 4]) & 0xC0) != 0xC0);
  // Deep nesting is not an error body.
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(to_openai_error(400, deep).status == 400);
}
