// protocol/anthropic/request.cpp: OpenAI chat body -> Messages API body, each mapping, the
// refusals, cache_control placement and hostile input.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/anthropic/request.hpp"

using namespace tc::anthropic;
using tc::openai::api_error;

namespace {

std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

/// Semantic JSON equality (member order ignored).
void check_json_eq(const std::string& got, const std::string& want) {
  rapidjson::Document g, w;
  g.Parse(got.data(), got.size());
  w.Parse(want.data(), want.size());
  REQUIRE_MESSAGE(!g.HasParseError(), "not JSON: " << got);
  REQUIRE_MESSAGE(!w.HasParseError(), "bad expectation: " << want);
  if (g != w) FAIL_CHECK("JSON differs\n got:  " << dump(g) << "\n want: " << dump(w));
}

messages_request ok(const std::string& body, request_options o = {}) {
  auto r = to_messages_request(body, "claude-sonnet-4-5", o);
  if (auto* e = std::get_if<api_error>(&r)) {
    FAIL("unexpected error: " << e->message << " (param " << e->param << ")");
  }
  return std::get<messages_request>(std::move(r));
}

api_error err(const std::string& body, request_options o = {}) {
  auto r = to_messages_request(body, "claude-sonnet-4-5", o);
  REQUIRE_MESSAGE(std::holds_alternative<api_error>(r), "expected an error for " << body);
  return std::get<api_error>(std::move(r));
}

}  // namespace

TEST_CASE("anthropic request: a plain chat with a system prompt and defaults") {
  const auto r = ok(R"({"model":"gpt-4o","messages":[
      {"role":"system","content":"You are terse."},
      {"role":"user","content":"Hello"}]})");
  CHECK_FALSE(r.stream);
  CHECK_FALSE(r.include_usage);
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "system":[{"type":"text","text":"You are terse."}],
      "messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]})");
}

TEST_CASE("anthropic request: sampling parameters, stop, stream, user") {
  request_options o;
  o.max_tokens_default = 1000;
  const auto r = ok(R"({"model":"m","messages":[{"role":"user","content":"Hi"}],
      "max_tokens":50,"max_completion_tokens":300,"temperature":0.25,"top_p":0.9,
      "stop":["\n\nHuman:","END",""],"stream":true,"stream_options":{"include_usage":true},
      "user":"user-42","seed":7,"presence_penalty":0,"frequency_penalty":0.5,"store":false,
      "metadata":{"a":"b"},"n":1,"logprobs":false,"response_format":{"type":"text"},
      "logit_bias":{},"service_tier":"auto"})",
                    o);
  CHECK(r.stream);
  CHECK(r.include_usage);
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":300,
      "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],
      "stop_sequences":["\n\nHuman:","END"],"temperature":0.25,"top_p":0.9,"stream":true,
      "metadata":{"user_id":"user-42"}})");
}

TEST_CASE("anthropic request: max_tokens default, stop as a string, temperature clamped") {
  request_options o;
  o.max_tokens_default = 1234;
  const auto r = ok(R"({"model":"m","messages":[{"role":"user","content":"Hi"}],
      "stop":"###","temperature":1.7,"max_tokens":null,"stream":false})",
                    o);
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":1234,
      "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],
      "stop_sequences":["###"],"temperature":1})");
  const auto r2 = ok(R"({"messages":[{"role":"user","content":"Hi"}],"max_tokens":77})");
  check_json_eq(r2.body, R"({"model":"claude-sonnet-4-5","max_tokens":77,
      "messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]})");
}

TEST_CASE(
    "anthropic request: developer and array system content, and a late system message folds "
    "into the user turn") {
  const auto r = ok(R"({"model":"m","messages":[
      {"role":"developer","content":[{"type":"text","text":"Rule one."},
                                     {"type":"text","text":"Rule two."}]},
      {"role":"system","content":"Rule three."},
      {"role":"user","content":"Q1"},
      {"role":"assistant","content":"A1"},
      {"role":"system","content":"Now answer in French."},
      {"role":"user","content":"Q2"}]})");
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "system":[{"type":"text","text":"Rule one."},{"type":"text","text":"Rule two."},
                {"type":"text","text":"Rule three."}],
      "messages":[
        {"role":"user","content":[{"type":"text","text":"Q1"}]},
        {"role":"assistant","content":[{"type":"text","text":"A1"}]},
        {"role":"user","content":[{"type":"text","text":"Now answer in French."},
                                  {"type":"text","text":"Q2"}]}]})");
}

TEST_CASE(
    "anthropic request: consecutive same-role messages merge, an empty assistant is dropped") {
  const auto r = ok(R"({"model":"m","messages":[
      {"role":"user","content":"one"},
      {"role":"user","content":[{"type":"text","text":"two"}]},
      {"role":"assistant","content":"three"},
      {"role":"assistant","content":""},
      {"role":"assistant","content":[{"type":"text","text":"four"},
                                     {"type":"refusal","refusal":"no"}]},
      {"role":"user","content":"five"}]})");
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "messages":[
        {"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
        {"role":"assistant","content":[{"type":"text","text":"three"},
            {"type":"text","text":"four"},{"type":"text","text":"no"}]},
        {"role":"user","content":[{"type":"text","text":"five"}]}]})");
}

TEST_CASE("anthropic request: image_url parts, data URLs and http URLs") {
  const auto r = ok(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"text","text":"What is in these?"},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},
      {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}}]}]})");
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "messages":[{"role":"user","content":[
        {"type":"text","text":"What is in these?"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
        {"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]})");

  auto e = err(R"({"messages":[{"role":"user","content":[
      {"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]})");
  CHECK(e.status == 400);
  CHECK(e.param == "messages[0].content[0].image_url.url");
  e = err(R"({"messages":[{"role":"user","content":[
      {"type":"image_url","image_url":{"url":"ftp://example.com/a.png"}}]}]})");
  CHECK(e.param == "messages[0].content[0].image_url.url");
  e = err(R"({"messages":[{"role":"user","content":[
      {"type":"input_audio","input_audio":{"data":"AAA","format":"wav"}}]}]})");
  CHECK(e.param == "messages[0].content[0].type");
  CHECK(e.message.find("Anthropic") != std::string::npos);
}

TEST_CASE("anthropic request: a tool round trip (tools, tool_calls, tool results)") {
  const auto r = ok(R"({"model":"gpt-4o","messages":[
      {"role":"user","content":"Weather in Paris and Rome?"},
      {"role":"assistant","content":null,"tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"get_weather",
          "arguments":"{\"city\":\"Paris\",\"unit\":\"c\"}"}},
        {"id":"call_2","type":"function","function":{"name":"get_weather",
          "arguments":" {\"city\": \"Rome\", \"days\": [1, 2.5, -3]}"}},
        {"id":"call_3","type":"function","function":{"name":"now","arguments":""}}]},
      {"role":"tool","tool_call_id":"call_1","content":"18C sunny"},
      {"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"21C"}]},
      {"role":"tool","tool_call_id":"call_3","content":""},
      {"role":"user","content":"Thanks. Which is warmer?"}],
    "tools":[
      {"type":"function","function":{"name":"get_weather","description":"Current weather",
        "parameters":{"type":"object","properties":{"city":{"type":"string"}},
                      "required":["city"]}}},
      {"type":"function","function":{"name":"now"}}],
    "tool_choice":"required","parallel_tool_calls":false})");
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "messages":[
        {"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
        {"role":"assistant","content":[
          {"type":"tool_use","id":"call_1","name":"get_weather",
           "input":{"city":"Paris","unit":"c"}},
          {"type":"tool_use","id":"call_2","name":"get_weather",
           "input":{"city":"Rome","days":[1,2.5,-3]}},
          {"type":"tool_use","id":"call_3","name":"now","input":{}}]},
        {"role":"user","content":[
          {"type":"tool_result","tool_use_id":"call_1","content":"18C sunny"},
          {"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"21C"}]},
          {"type":"tool_result","tool_use_id":"call_3"},
          {"type":"text","text":"Thanks. Which is warmer?"}]}],
      "tools":[
        {"name":"get_weather","description":"Current weather",
         "input_schema":{"type":"object","properties":{"city":{"type":"string"}},
                         "required":["city"]}},
        {"name":"now","input_schema":{"type":"object","properties":{}}}],
      "tool_choice":{"type":"any","disable_parallel_tool_use":true}})");
}

TEST_CASE("anthropic request: tool results come first in a merged user turn") {
  const auto r = ok(R"({"messages":[
      {"role":"assistant","content":"calling","tool_calls":[{"id":"t1","type":"function",
        "function":{"name":"f","arguments":"{}"}}]},
      {"role":"user","content":"meanwhile"},
      {"role":"tool","tool_call_id":"t1","content":"done"}]})");
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,"messages":[
      {"role":"assistant","content":[{"type":"text","text":"calling"},
        {"type":"tool_use","id":"t1","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"},
        {"type":"text","text":"meanwhile"}]}]})");
}

TEST_CASE("anthropic request: tool_choice forms") {
  const std::string base =
      R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function",)"
      R"("function":{"name":"f","parameters":{"type":"object"}}}])";
  auto choice = [&](const std::string& extra) {
    rapidjson::Document d;
    const auto r = ok(base + extra + "}");
    d.Parse(r.body.data(), r.body.size());
    REQUIRE(d.IsObject());
    if (!d.HasMember("tool_choice")) return std::string("absent");
    return dump(d["tool_choice"]);
  };
  CHECK(choice("") == "absent");
  CHECK(choice(R"(,"tool_choice":"auto")") == R"({"type":"auto"})");
  CHECK(choice(R"(,"tool_choice":"none")") == R"({"type":"none"})");
  CHECK(choice(R"(,"tool_choice":"required")") == R"({"type":"any"})");
  CHECK(choice(R"(,"tool_choice":{"type":"function","function":{"name":"f"}})") ==
        R"({"type":"tool","name":"f"})");
  CHECK(choice(R"(,"parallel_tool_calls":false)") ==
        R"({"type":"auto","disable_parallel_tool_use":true})");
  CHECK(choice(R"(,"parallel_tool_calls":true)") == "absent");
  CHECK(choice(R"(,"tool_choice":"none","parallel_tool_calls":false)") == R"({"type":"none"})");
  CHECK(choice(R"(,"tool_choice":{"type":"function","function":{"name":"f"}},)"
               R"("parallel_tool_calls":false)") ==
        R"({"type":"tool","name":"f","disable_parallel_tool_use":true})");
  // Without tools, tool_choice is not sent.
  const auto r = ok(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})");
  CHECK(r.body.find("tool_choice") == std::string::npos);

  auto e = err(base + R"(,"tool_choice":"sometimes"})");
  CHECK(e.param == "tool_choice");
  e = err(base + R"(,"tool_choice":{"type":"function"}})");
  CHECK(e.param == "tool_choice");
}

TEST_CASE(
    "anthropic request: cache_control system_and_tools marks the last system block and "
    "the last tool") {
  request_options o;
  o.cache_control = cache_control::system_and_tools;
  const auto r = ok(R"({"messages":[
      {"role":"system","content":"A long shared prefix."},
      {"role":"system","content":"Second part."},
      {"role":"user","content":"Q"}],
    "tools":[{"type":"function","function":{"name":"a"}},
             {"type":"function","function":{"name":"b"}}]})",
                    o);
  check_json_eq(r.body, R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "system":[{"type":"text","text":"A long shared prefix."},
                {"type":"text","text":"Second part.","cache_control":{"type":"ephemeral"}}],
      "messages":[{"role":"user","content":[{"type":"text","text":"Q"}]}],
      "tools":[{"name":"a","input_schema":{"type":"object","properties":{}}},
               {"name":"b","input_schema":{"type":"object","properties":{}},
                "cache_control":{"type":"ephemeral"}}]})");

  // No system, no tools: no breakpoint at all; an empty system message adds no system.
  const auto bare = ok(R"({"messages":[{"role":"system","content":""},
      {"role":"user","content":"Q"}]})",
                       o);
  CHECK(bare.body.find("cache_control") == std::string::npos);
  CHECK(bare.body.find("\"system\"") == std::string::npos);

  // Only tools: one breakpoint, on the tool.
  const auto tools_only = ok(R"({"messages":[{"role":"user","content":"Q"}],
      "tools":[{"type":"function","function":{"name":"a"}}]})",
                             o);
  CHECK(tools_only.body.find("cache_control") != std::string::npos);
  CHECK(tools_only.body.find("cache_control") == tools_only.body.rfind("cache_control"));

  // Mode none: never.
  const auto none = ok(R"({"messages":[{"role":"system","content":"S"},
      {"role":"user","content":"Q"}],"tools":[{"type":"function","function":{"name":"a"}}]})");
  CHECK(none.body.find("cache_control") == std::string::npos);
}

TEST_CASE("anthropic request: parameters Anthropic cannot honour are refused by name") {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  struct refusal {
    const char* extra;
    const char* param;
  };
  const refusal cases[] = {
      {R"("n":2)", "n"},
      {R"("logprobs":true)", "logprobs"},
      {R"("top_logprobs":3)", "top_logprobs"},
      {R"("response_format":{"type":"json_object"})", "response_format"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}})",
       "response_format"},
      {R"("logit_bias":{"50256":-100})", "logit_bias"},
      {R"("audio":{"voice":"alloy","format":"wav"})", "audio"},
      {R"("modalities":["text","audio"])", "modalities"},
      {R"("functions":[{"name":"f"}])", "functions"},
      {R"("function_call":"auto")", "function_call"},
      {R"("tools":[{"type":"web_search"}])", "tools[0].type"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.extra);
    const auto e = err("{" + msgs + "," + c.extra + "}");
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
    CHECK(e.message.find(c.param) != std::string::npos);
  }
  auto e = err(R"({"messages":[{"role":"function","name":"f","content":"x"}]})");
  CHECK(e.param == "messages[0].role");
  e = err(R"({"messages":[{"role":"assistant","content":"x","function_call":{"name":"f"}}]})");
  CHECK(e.param == "messages[0].function_call");
}

TEST_CASE("anthropic request: invalid tool-call arguments are an error naming the call") {
  const auto bad = [](const char* args) {
    return std::string(R"({"messages":[{"role":"user","content":"x"},{"role":"assistant",)"
                       R"("tool_calls":[{"id":"c1","type":"function","function":{"name":"f",)"
                       R"("arguments":)") +
           args + "}}]}]}";
  };
  for (const char* args : {R"("{\"city\": ")", R"("[1,2]")", R"("42")", R"("{} trailing")", "17"}) {
    CAPTURE(args);
    const auto e = err(bad(args));
    CHECK(e.status == 400);
    CHECK(e.param.starts_with("messages[1].tool_calls[0].function.arguments"));
  }
}

TEST_CASE("anthropic request: wrong types and missing fields") {
  struct bad {
    const char* body;
    const char* param;
  };
  const bad cases[] = {
      {R"({"model":"m"})", "messages"},
      {R"({"messages":{}})", "messages"},
      {R"({"messages":[]})", "messages"},
      {R"({"messages":[{"role":"system","content":"only system"}]})", "messages"},
      {R"({"messages":[1]})", "messages[0]"},
      {R"({"messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
      {R"({"messages":[{"role":"user","content":""}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":7}]})", "messages[0].content"},
      {R"({"messages":[{"role":"user","content":[{"type":"text"}]}]})",
       "messages[0].content[0].text"},
      {R"({"messages":[{"role":"system","content":[{"type":"image_url"}]},
           {"role":"user","content":"x"}]})",
       "messages[0].content[0].type"},
      {R"({"messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id"},
      {R"({"messages":[{"role":"assistant","tool_calls":[{"type":"function",
           "function":{"name":"f","arguments":"{}"}}]}]})",
       "messages[0].tool_calls[0].id"},
      {R"({"messages":[{"role":"assistant","tool_calls":"x"}]})", "messages[0].tool_calls"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":"5"})", "max_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"max_completion_tokens":1.5})",
       "max_completion_tokens"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"temperature":2.5})", "temperature"},
      {R"({"messages":[{"role":"user","content":"x"}],"top_p":-1})", "top_p"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop[0]"},
      {R"({"messages":[{"role":"user","content":"x"}],"stop":5})", "stop"},
      {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})",
       "stream_options.include_usage"},
      {R"({"messages":[{"role":"user","content":"x"}],"user":5})", "user"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":{}})", "tools"},
      {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})",
       "tools[0].function"},
      {R"({"messages":[{"role":"user","content":"x"}],
           "tools":[{"type":"function","function":{"name":""}}]})",
       "tools[0].function.name"},
      {R"({"messages":[{"role":"user","content":"x"}],
           "tools":[{"type":"function","function":{"name":"f","parameters":[]}}]})",
       "tools[0].function.parameters"},
      {R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    const auto e = err(c.body);
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
  }
}

TEST_CASE("anthropic request: hostile input gives errors, never crashes") {
  CHECK(err("").status == 400);
  CHECK(err("not json").status == 400);
  CHECK(err("[1,2,3]").status == 400);
  CHECK(err("\"string\"").status == 400);
  CHECK(err(R"({"messages":[{"role":"user","content":"x"}]} trailing)").status == 400);
  CHECK(err(std::string(R"({"messages":[{"role":"user","content":"x)") + '\0' + R"("}]})").status ==
        400);
  CHECK(err("{\"messages\":[{\"role\":\"user\",\"content\":\"\xC3\x28\"}]}").status == 400);
  // 100,000-deep nesting in a field the translator would otherwise drop.
  std::string deep = R"({"messages":[{"role":"user","content":"x"}],"extra":)";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}";
  const auto e = err(deep);
  CHECK(e.message.find("deeper") != std::string::npos);
  // Deep but bounded nesting inside tool-call arguments.
  std::string args = std::string(200, '[') + std::string(200, ']');
  std::string body = R"({"messages":[{"role":"assistant","tool_calls":[{"id":"c","type":)"
                     R"("function","function":{"name":"f","arguments":")" +
                     args + R"("}}]}]})";
  CHECK(err(body).param == "messages[0].tool_calls[0].function.arguments");
  // Non-ASCII text and control characters survive as valid JSON.
  const auto r =
      ok("{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xC3\xA9 \\u0001 \\\"q\\\" "
         "\xF0\x9F\x98\x80\"}]}");
  check_json_eq(r.body,
                "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,\"messages\":"
                "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                "\"caf\xC3\xA9 \\u0001 \\\"q\\\" \xF0\x9F\x98\x80\"}]}]}");
}
