// tc::sim::provider: POST .../v1/messages in Anthropic's Messages API format (the test double
// of the anthropic provider type): shape, usage, tools, prompt cache, errors.
#include <doctest/doctest.h>

#include <array>
#include <string>
#include <variant>
#include <vector>

#include "protocol/anthropic/error.hpp"
#include "protocol/anthropic/response.hpp"
#include "protocol/anthropic/stream.hpp"
#include "protocol/tokens.hpp"
#include "sim_support.hpp"

using namespace tc::sim;
using namespace tc::sim::test;

namespace {

const char* messages_path = "/v1/messages";

std::string message_body(std::string_view user, std::string_view extra = {},
                         uint32_t max_tokens = 1024) {
  std::string b = R"({"model":"claude-sim","max_tokens":)" + std::to_string(max_tokens) +
                  R"(,"messages":[{"role":"user","content":")";
  b += user;
  b += "\"}]";
  if (!extra.empty()) {
    b += ',';
    b += extra;
  }
  b += '}';
  return b;
}

std::string str(const rapidjson::Value& v) {
  return v.IsString() ? std::string(v.GetString(), v.GetStringLength()) : std::string();
}

/// The joined text blocks of a message answer.
std::string text_of(const rapidjson::Document& d) {
  std::string out;
  for (const auto& b : d["content"].GetArray()) {
    if (str(b["type"]) == "text") out += str(b["text"]);
  }
  return out;
}

template <class... R>
bool all_done(const R&... rs) {
  return (rs->done && ...);
}

}  // namespace

TEST_CASE("messages non-stream answer has Anthropic's shape and is deterministic") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, messages_path, message_body("hello"));
  auto b = post(p, messages_path, message_body("hello"));
  auto c = post(p, messages_path, message_body("hello there"));
  REQUIRE(f.run_until([&] { return all_done(a, b, c); }));
  CHECK(a->status == 200);
  CHECK(a->header("content-type") == "application/json");
  auto da = parse(a->body);
  REQUIRE_FALSE(da.HasParseError());
  CHECK(str(da["id"]).rfind("msg_tcsim_", 0) == 0);
  CHECK(str(da["type"]) == "message");
  CHECK(str(da["role"]) == "assistant");
  CHECK(str(da["model"]) == "claude-sim");
  CHECK(str(da["stop_reason"]) == "end_turn");
  CHECK(da["stop_sequence"].IsNull());
  REQUIRE(da["content"].Size() == 1);
  CHECK(str(da["content"][0]["type"]) == "text");
  const std::string text = text_of(da);
  const auto words = word_count(text);
  CHECK(words >= 8);  // default_max_tokens 16: length in [8, 16]
  CHECK(words <= 16);
  const auto& u = da["usage"];
  CHECK(u["input_tokens"].GetUint() == 4 + tc::estimate_tokens("hello"));
  CHECK(u["output_tokens"].GetUint() == words);
  CHECK(u["cache_read_input_tokens"].GetUint() == 0);
  CHECK(u["cache_creation_input_tokens"].GetUint() == 0);

  auto db = parse(b->body);
  auto dc = parse(c->body);
  CHECK(text_of(db) == text);
  CHECK(str(db["id"]) != str(da["id"]));
  CHECK(text_of(dc) != text);
  CHECK(a->result.status == 200);
  CHECK(a->result.bytes_received == a->body.size());
  CHECK_FALSE(a->callback_in_start);
  CHECK(p.stats().completed == 3);

  // The gateway's translator reads it.
  auto chat = tc::anthropic::to_chat_completion(a->body, "m", 1);
  REQUIRE(std::holds_alternative<std::string>(chat));
  auto dchat = parse(std::get<std::string>(chat));
  CHECK(str(dchat["choices"][0]["message"]["content"]) == text);
  CHECK(dchat["usage"]["completion_tokens"].GetUint() == words);
}

TEST_CASE("messages: input_tokens count the system as a message, and every text block") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, messages_path,
                R"({"model":"m","max_tokens":50,"system":"Be brief.","messages":[)"
                R"({"role":"user","content":[{"type":"text","text":"one two"},)"
                R"({"type":"image","source":{"type":"url","url":"http://x/y.png"}}]},)"
                R"({"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f",)"
                R"("input":{"a":1}}]},)"
                R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"t1",)"
                R"("content":"result text"}]}]})");
  auto b = post(p, messages_path,
                R"({"model":"m","max_tokens":50,"system":[{"type":"text","text":"Be brief."},)"
                R"({"type":"text","text":"Be kind."}],"messages":[{"role":"user","content":)"
                R"([{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text",)"
                R"("text":"abc"}]}]}],"temperature":0.3,"top_k":5})");
  REQUIRE(f.run_until([&] { return all_done(a, b); }));
  REQUIRE(a->status == 200);
  REQUIRE(b->status == 200);
  using tc::estimate_tokens;
  CHECK(parse(a->body)["usage"]["input_tokens"].GetUint() ==
        4 + estimate_tokens("Be brief.") + 4 + estimate_tokens("one two") + 4 + 4 +
            estimate_tokens("result text"));
  CHECK(parse(b->body)["usage"]["input_tokens"].GetUint() == 4 + estimate_tokens("Be brief.") +
                                                                 estimate_tokens("Be kind.") + 4 +
                                                                 estimate_tokens("abc"));
}

TEST_CASE("messages: max_tokens caps the answer with stop_reason max_tokens") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, messages_path, message_body("cap me", {}, 3));
  REQUIRE(f.run_until([&] { return a->done; }));
  auto d = parse(a->body);
  CHECK(str(d["stop_reason"]) == "max_tokens");
  CHECK(word_count(text_of(d)) == 3);
  CHECK(d["usage"]["output_tokens"].GetUint() == 3);
  auto chat = tc::anthropic::to_chat_completion(a->body, "m", 1);
  REQUIRE(std::holds_alternative<std::string>(chat));
  CHECK(str(parse(std::get<std::string>(chat))["choices"][0]["finish_reason"]) == "length");
}

TEST_CASE("messages: tools give a tool_use block with an input object") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  const std::string tools =
      R"("tools":[{"name":"get_weather","description":"w","input_schema":{"type":"object",)"
      R"("properties":{"city":{"type":"string"},"unit":{"enum":["c","f"]}}}},)"
      R"({"name":"other","input_schema":{"type":"object","properties":{}}}])";
  auto a = post(p, messages_path, message_body("weather?", tools));
  auto forced =
      post(p, messages_path,
           message_body("weather?", tools + R"(,"tool_choice":{"type":"tool","name":"other"})"));
  auto none =
      post(p, messages_path, message_body("weather?", tools + R"(,"tool_choice":{"type":"none"})"));
  auto after = post(p, messages_path,
                    R"({"model":"m","max_tokens":9,"messages":[{"role":"user","content":"q"},)"
                    R"({"role":"assistant","content":[{"type":"tool_use","id":"toolu_1",)"
                    R"("name":"get_weather","input":{}}]},{"role":"user","content":[)"
                    R"({"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}],)" +
                        tools + "}");
  REQUIRE(f.run_until([&] { return all_done(a, forced, none, after); }));
  auto d = parse(a->body);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(str(d["stop_reason"]) == "tool_use");
  REQUIRE(d["content"].Size() == 1);
  const auto& block = d["content"][0];
  CHECK(str(block["type"]) == "tool_use");
  CHECK(str(block["id"]).rfind("toolu_tcsim_", 0) == 0);
  CHECK(str(block["name"]) == "get_weather");
  REQUIRE(block["input"].IsObject());
  CHECK(block["input"]["city"].IsString());
  CHECK(str(block["input"]["unit"]) == "c");
  CHECK(d["usage"]["output_tokens"].GetUint() > 0);

  CHECK(str(parse(forced->body)["content"][0]["name"]) == "other");
  CHECK(str(parse(none->body)["stop_reason"]) == "end_turn");
  CHECK(str(parse(after->body)["content"][0]["type"]) == "text");

  auto chat = tc::anthropic::to_chat_completion(a->body, "m", 1);
  REQUIRE(std::holds_alternative<std::string>(chat));
  auto dc = parse(std::get<std::string>(chat));
  CHECK(str(dc["choices"][0]["finish_reason"]) == "tool_calls");
  CHECK(str(dc["choices"][0]["message"]["tool_calls"][0]["function"]["name"]) == "get_weather");
}

TEST_CASE("messages: request problems are 400s in Anthropic's error shape") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  const char* bodies[] = {
      "not json",
      R"({"max_tokens":5,"messages":[{"role":"user","content":"x"}]})",  // no model
      R"({"model":"m","messages":[{"role":"user","content":"x"}]})",     // no max_tokens
      R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":"5","messages":[{"role":"user","content":"x"}]})",
      R"({"model":7,"max_tokens":5,"messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":5})",
      R"({"model":"m","max_tokens":5,"messages":[]})",
      R"({"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]})",
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user"}]})",
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"bogus"}]}]})",
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]})",
      R"({"model":"m","max_tokens":5,"system":[{"type":"image"}],)"
      R"("messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":5,"system":5,"messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":5,"tools":[{"input_schema":{}}],)"
      R"("messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":5,"tools":[{"name":"a"}],"tool_choice":{"type":"tool",)"
      R"("name":"b"},"messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","max_tokens":5,"stream":"yes","messages":[{"role":"user","content":"x"}]})",
  };
  for (const char* body : bodies) {
    CAPTURE(body);
    auto r = post(p, messages_path, body);
    REQUIRE(f.run_until([&] { return r->done; }));
    CHECK(r->status == 400);
    auto d = parse(r->body);
    REQUIRE_FALSE(d.HasParseError());
    CHECK(str(d["type"]) == "error");
    CHECK(str(d["error"]["type"]) == "invalid_request_error");
    CHECK_FALSE(str(d["error"]["message"]).empty());
    auto e = tc::anthropic::to_openai_error(r->status, r->body);
    CHECK(e.status == 400);
    CHECK(e.message == str(d["error"]["message"]));
  }
  auto missing =
      post(p, messages_path, R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  REQUIRE(f.run_until([&] { return missing->done; }));
  CHECK(str(parse(missing->body)["error"]["message"]).find("max_tokens") != std::string::npos);
  auto get = start_call(p, "GET", messages_path, "");
  REQUIRE(f.run_until([&] { return get->done; }));
  CHECK(get->status == 405);
  CHECK(str(parse(get->body)["type"]) == "error");
}

TEST_CASE("messages: error_rate and outages answer in Anthropic's error shape") {
  loop_fixture f;
  auto s = fast_settings();
  s.error_rate = 1.0;
  s.error_status = 429;
  provider p(&f.loop, s);
  auto a = post(p, messages_path, message_body("x"));
  REQUIRE(f.run_until([&] { return a->done; }));
  CHECK(a->status == 429);
  CHECK(a->header("retry-after") == "1");
  auto d = parse(a->body);
  CHECK(str(d["type"]) == "error");
  CHECK(str(d["error"]["type"]) == "rate_limit_error");
  auto e = tc::anthropic::to_openai_error(a->status, a->body, 1);
  CHECK(e.status == 429);
  CHECK(e.code == "rate_limit_exceeded");

  s.error_status = 500;
  p.update(s);
  auto b = post(p, messages_path, message_body("x"));
  REQUIRE(f.run_until([&] { return b->done; }));
  CHECK(b->status == 500);
  CHECK(str(parse(b->body)["error"]["type"]) == "api_error");
  CHECK(tc::anthropic::to_openai_error(b->status, b->body).status == 502);

  s.error_rate = 0;
  s.ttft_ms = 500;  // a normal answer would take at least this
  s.outages.push_back({0, 3600});
  p.update(s);
  auto c = post(p, messages_path, message_body("x"));
  REQUIRE(f.run_until([&] { return c->done; }, 2000));
  CHECK(c->status == 529);
  CHECK(c->header("retry-after") == "1");
  CHECK((c->done_ns - c->start_ns) < 200'000'000ull);
  CHECK(str(parse(c->body)["error"]["type"]) == "overloaded_error");
  auto oe = tc::anthropic::to_openai_error(c->status, c->body, 1);
  CHECK(oe.status == 503);
  CHECK(p.stats().errors == 3);
  CHECK(p.stats().tokens_generated == 0);
}

TEST_CASE("messages: the prompt cache counts only prefixes marked with cache_control") {
  loop_fixture f;
  auto settings = instant_settings();
  settings.prefix_cache_entries = 4;
  provider p(&f.loop, settings);
  const std::string sys_text = "You are a careful assistant with a long system prompt.";
  const uint32_t sys_tokens = 4 + tc::estimate_tokens(sys_text);
  auto usage_of = [&](const std::string& body) {
    auto r = post(p, messages_path, body);
    REQUIRE(f.run_until([&] { return r->done; }));
    REQUIRE(r->status == 200);
    auto d = parse(r->body);
    const auto& u = d["usage"];
    return std::array<uint32_t, 3>{u["input_tokens"].GetUint(),
                                   u["cache_creation_input_tokens"].GetUint(),
                                   u["cache_read_input_tokens"].GetUint()};
  };
  auto body = [&](bool marked, std::string_view user, std::string_view tools = {}) {
    std::string b =
        R"({"model":"m","max_tokens":20,"system":[{"type":"text","text":")" + sys_text + "\"";
    if (marked) b += R"(,"cache_control":{"type":"ephemeral"})";
    b += R"(}],"messages":[{"role":"user","content":")";
    b += user;
    b += "\"}]";
    if (!tools.empty()) {
      b += ',';
      b += tools;
    }
    return b + "}";
  };
  const uint32_t user_tokens = 4 + tc::estimate_tokens("question");

  // Unmarked: never cached, however often it comes.
  for (int i = 0; i < 3; ++i) {
    auto u = usage_of(body(false, "question"));
    CHECK(u[0] == sys_tokens + user_tokens);
    CHECK(u[1] == 0);
    CHECK(u[2] == 0);
  }
  // Marked: written first, read after; input_tokens counts only the rest.
  auto first = usage_of(body(true, "question"));
  CHECK(first[0] == user_tokens);
  CHECK(first[1] == sys_tokens);
  CHECK(first[2] == 0);
  auto second = usage_of(body(true, "question"));
  CHECK(second[0] == user_tokens);
  CHECK(second[1] == 0);
  CHECK(second[2] == sys_tokens);
  // Other tools make another prefix (tools come first in the cache order).
  const std::string tools = R"("tools":[{"name":"t","input_schema":{"type":"object"}}])";
  auto with_tools = usage_of(body(true, "question", tools));
  CHECK(with_tools[1] == sys_tokens);
  CHECK(with_tools[2] == 0);
  CHECK(usage_of(body(true, "question", tools))[2] == sys_tokens);

  // The translator reports the whole prompt, and the read part as cached_tokens.
  auto r = post(p, messages_path, body(true, "question"));
  REQUIRE(f.run_until([&] { return r->done; }));
  auto chat = tc::anthropic::to_chat_completion(r->body, "m", 1);
  REQUIRE(std::holds_alternative<std::string>(chat));
  auto dc = parse(std::get<std::string>(chat));
  CHECK(dc["usage"]["prompt_tokens"].GetUint() == sys_tokens + user_tokens);
  CHECK(dc["usage"]["prompt_tokens_details"]["cached_tokens"].GetUint() == sys_tokens);

  // The cache off: nothing cached even when marked.
  provider off(&f.loop, instant_settings());
  auto o1 = post(off, messages_path, body(true, "question"));
  auto o2 = post(off, messages_path, body(true, "question"));
  REQUIRE(f.run_until([&] { return all_done(o1, o2); }));
  CHECK(parse(o2->body)["usage"]["cache_read_input_tokens"].GetUint() == 0);
  CHECK(parse(o2->body)["usage"]["input_tokens"].GetUint() == sys_tokens + user_tokens);
}

TEST_CASE("messages: non-stream answers follow the TTFT and token rate") {
  loop_fixture f;
  auto s = fast_settings();
  s.ttft_ms = 40;
  provider p(&f.loop, s);
  auto a = post(p, messages_path, message_body("timed"));
  f.run_for(20);
  CHECK_FALSE(a->done);
  REQUIRE(f.run_until([&] { return a->done; }));
  CHECK(a->status == 200);
  CHECK((a->done_ns - a->start_ns) >= 40'000'000ull);
  CHECK(p.stats().tokens_generated == parse(a->body)["usage"]["output_tokens"].GetUint());
}

namespace {

struct sse_event {
  std::string name;          ///< the event: line
  std::string data;          ///< the data: line
  bool well_formed = false;  ///< exactly an event: line and a data: line
};

std::vector<sse_event> sse_events(std::string_view body, bool* clean_end = nullptr) {
  std::vector<sse_event> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\n\n", pos);
    if (end == std::string_view::npos) {
      if (clean_end) *clean_end = false;
      return out;
    }
    std::string_view ev = body.substr(pos, end - pos);
    pos = end + 2;
    sse_event e;
    std::size_t nl = ev.find('\n');
    if (nl != std::string_view::npos && ev.starts_with("event: ") &&
        ev.substr(nl + 1).starts_with("data: ") &&
        ev.find('\n', nl + 1) == std::string_view::npos) {
      e.name = std::string(ev.substr(7, nl - 7));
      e.data = std::string(ev.substr(nl + 7));
      e.well_formed = true;
    }
    out.push_back(std::move(e));
  }
  if (clean_end) *clean_end = true;
  return out;
}

/// What the gateway's translator makes of a stream: the content, tool arguments, finish.
struct translated {
  std::string text;
  std::string tool_name;
  std::string arguments;
  std::string finish_reason;
  tc::anthropic::stream_translator::status state = tc::anthropic::stream_translator::status::more;
  tc::openai::usage usage;
};

translated translate(std::string_view body) {
  translated t;
  tc::anthropic::stream_translator tr("m", 1, true);
  std::vector<std::string> chunks;
  for (const auto& e : sse_events(body)) t.state = tr.feed(e.name, e.data, chunks);
  for (const auto& c : chunks) {
    auto d = parse(c);
    if (d.HasParseError() || !d["choices"].IsArray() || d["choices"].Empty()) continue;
    const auto& ch = d["choices"][0];
    if (ch["finish_reason"].IsString()) t.finish_reason = str(ch["finish_reason"]);
    const auto& delta = ch["delta"];
    if (delta.HasMember("content")) t.text += str(delta["content"]);
    if (delta.HasMember("tool_calls")) {
      const auto& fn = delta["tool_calls"][0]["function"];
      if (fn.HasMember("name")) t.tool_name = str(fn["name"]);
      t.arguments += str(fn["arguments"]);
    }
  }
  t.usage = tr.usage();
  return t;
}

}  // namespace

TEST_CASE("messages stream: Anthropic's events in order, each with event and data lines") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  auto a = post(p, messages_path, message_body("stream me", R"("stream":true)"));
  REQUIRE(f.run_until([&] { return a->done; }));
  CHECK(a->status == 200);
  CHECK(a->header("content-type").rfind("text/event-stream", 0) == 0);
  bool clean = false;
  auto events = sse_events(a->body, &clean);
  CHECK(clean);
  REQUIRE(events.size() >= 7);
  std::size_t deltas = 0;
  std::string text;
  for (const auto& e : events) {
    CAPTURE(e.data);
    REQUIRE(e.well_formed);
    auto d = parse(e.data);
    REQUIRE_FALSE(d.HasParseError());
    CHECK(str(d["type"]) == e.name);
    if (e.name == "content_block_delta") {
      ++deltas;
      CHECK(d["index"].GetUint() == 0);
      CHECK(str(d["delta"]["type"]) == "text_delta");
      text += str(d["delta"]["text"]);
    }
  }
  CHECK(events[0].name == "message_start");
  CHECK(events[1].name == "ping");
  CHECK(events[2].name == "content_block_start");
  CHECK(events[events.size() - 3].name == "content_block_stop");
  CHECK(events[events.size() - 2].name == "message_delta");
  CHECK(events.back().name == "message_stop");
  CHECK(deltas == events.size() - 6);  // one delta per token, nothing else between
  CHECK(a->body.find("[DONE]") == std::string::npos);

  auto start = parse(events[0].data);
  const auto& msg = start["message"];
  CHECK(str(msg["id"]).rfind("msg_tcsim_", 0) == 0);
  CHECK(str(msg["model"]) == "claude-sim");
  CHECK(msg["content"].IsArray());
  CHECK(msg["content"].Empty());
  CHECK(msg["stop_reason"].IsNull());
  CHECK(msg["usage"]["input_tokens"].GetUint() == 4 + tc::estimate_tokens("stream me"));
  auto block = parse(events[2].data);
  CHECK(str(block["content_block"]["type"]) == "text");
  auto end = parse(events[events.size() - 2].data);
  CHECK(str(end["delta"]["stop_reason"]) == "end_turn");
  CHECK(end["usage"]["output_tokens"].GetUint() == deltas);
  CHECK(word_count(text) == deltas);
  CHECK(p.stats().tokens_generated == deltas);
  CHECK(a->result.first_byte_ns > 0);
}

TEST_CASE("messages stream: translated, it says what the non-stream answer says") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  const std::string tools =
      R"("tools":[{"name":"lookup","input_schema":{"type":"object","properties":)"
      R"({"query":{"type":"string"},"limit":{"type":"integer"},"exact":{"type":"boolean"}}}}])";
  const std::string system = R"("system":"Answer in English.")";
  auto plain = post(p, messages_path, message_body("same question", system));
  auto plain_s =
      post(p, messages_path, message_body("same question", system + R"(,"stream":true)"));
  auto capped = post(p, messages_path, message_body("capped", {}, 4));
  auto capped_s = post(p, messages_path, message_body("capped", R"("stream":true)", 4));
  auto tool = post(p, messages_path, message_body("use a tool", tools));
  auto tool_s = post(p, messages_path, message_body("use a tool", tools + R"(,"stream":true)"));
  REQUIRE(f.run_until([&] { return all_done(plain, plain_s, capped, capped_s, tool, tool_s); }));

  using status = tc::anthropic::stream_translator::status;
  auto d = parse(plain->body);
  auto t = translate(plain_s->body);
  CHECK(t.state == status::done);
  CHECK_FALSE(t.text.empty());
  CHECK(t.text == text_of(d));
  CHECK(t.finish_reason == "stop");
  CHECK(t.usage.prompt_tokens == d["usage"]["input_tokens"].GetUint());
  CHECK(t.usage.completion_tokens == d["usage"]["output_tokens"].GetUint());

  auto dc = parse(capped->body);
  auto tc_ = translate(capped_s->body);
  CHECK(tc_.state == status::done);
  CHECK(tc_.text == text_of(dc));
  CHECK(word_count(tc_.text) == 4);
  CHECK(tc_.finish_reason == "length");
  CHECK(tc_.usage.completion_tokens == 4);

  auto dt = parse(tool->body);
  auto tt = translate(tool_s->body);
  CHECK(tt.state == status::done);
  CHECK(tt.finish_reason == "tool_calls");
  CHECK(tt.tool_name == "lookup");
  CHECK(tt.text.empty());
  auto args = parse(tt.arguments);
  REQUIRE_FALSE(args.HasParseError());
  CHECK(args == dt["content"][0]["input"]);
  CHECK(args["query"].IsString());
  CHECK(args["exact"].IsTrue());
  // The arguments came in several input_json_delta pieces.
  std::size_t pieces = 0;
  for (const auto& e : sse_events(tool_s->body)) {
    if (e.name != "content_block_delta") continue;
    ++pieces;
    CHECK(str(parse(e.data)["delta"]["type"]) == "input_json_delta");
  }
  CHECK(pieces > 1);
  CHECK(pieces == dt["usage"]["output_tokens"].GetUint());
  auto start = parse(sse_events(tool_s->body)[2].data);
  CHECK(str(start["content_block"]["type"]) == "tool_use");
  CHECK(str(start["content_block"]["id"]).rfind("toolu_tcsim_", 0) == 0);
  CHECK(start["content_block"]["input"].IsObject());
}

TEST_CASE("messages stream: cache tokens in message_start") {
  loop_fixture f;
  auto s = instant_settings();
  s.prefix_cache_entries = 2;
  provider p(&f.loop, s);
  const std::string body =
      R"({"model":"m","max_tokens":8,"stream":true,"system":[{"type":"text","text":"Sys.",)"
      R"("cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"x"}]})";
  auto a = post(p, messages_path, body);
  REQUIRE(f.run_until([&] { return a->done; }));
  auto b = post(p, messages_path, body);
  REQUIRE(f.run_until([&] { return b->done; }));
  const uint32_t sys = 4 + tc::estimate_tokens("Sys.");
  auto da = parse(sse_events(a->body)[0].data);  // kept: the usage object lives in it
  const auto& ua = da["message"]["usage"];
  CHECK(ua["cache_creation_input_tokens"].GetUint() == sys);
  CHECK(ua["cache_read_input_tokens"].GetUint() == 0);
  auto ub = parse(sse_events(b->body)[0].data);
  CHECK(ub["message"]["usage"]["cache_read_input_tokens"].GetUint() == sys);
  CHECK(ub["message"]["usage"]["input_tokens"].GetUint() == 4 + tc::estimate_tokens("x"));
  auto t = translate(b->body);
  CHECK(t.usage.cached_tokens == sys);
  CHECK(t.usage.prompt_tokens == sys + 4 + tc::estimate_tokens("x"));
}

TEST_CASE("messages stream: cancel mid-stream stops callbacks and frees the slot") {
  loop_fixture f;
  auto s = fast_settings();
  s.tokens_per_sec = 200;
  s.default_max_tokens = 64;
  provider p(&f.loop, s);
  auto r = std::make_shared<record>();
  tc::upstream::call_id id = 0;
  auto h = recorder(r);
  auto inner = h.on_data;
  h.on_data = [&, inner](std::string_view d) {
    inner(d);
    if (r->data_calls == 3) p.cancel(id);
  };
  tc::upstream::call_request req;
  req.url = "http://sim/v1/messages";
  req.body = message_body("long", R"("stream":true)");
  id = p.start(std::move(req), std::move(h));
  REQUIRE(f.run_until([&] { return r->data_calls >= 3; }));
  f.run_for(50);
  CHECK(r->data_calls == 3);
  CHECK_FALSE(r->done);
  CHECK(r->body.find("message_stop") == std::string::npos);
  CHECK(p.in_flight() == 0);
  CHECK(p.stats().cancelled == 1);
  CHECK(p.stats().active_sequences == 0);
}

TEST_CASE("messages stream: pause holds delivery - resume sends the rest") {
  loop_fixture f;
  auto s = fast_settings();
  s.tokens_per_sec = 400;
  provider p(&f.loop, s);
  auto r = std::make_shared<record>();
  tc::upstream::call_id id = 0;
  auto h = recorder(r);
  auto inner = h.on_data;
  h.on_data = [&, inner](std::string_view d) {
    inner(d);
    if (r->data_calls == 1) p.pause(id);
  };
  tc::upstream::call_request req;
  req.url = "http://sim/v1/messages";
  req.body = message_body("pause", R"("stream":true)", 20);
  id = p.start(std::move(req), std::move(h));
  REQUIRE(f.run_until([&] { return r->data_calls > 0; }));
  f.run_for(100);  // at most 20 tokens at 400/s: generation ends while paused
  CHECK(r->data_calls == 1);
  CHECK_FALSE(r->done);
  CHECK(p.stats().active_sequences == 0);
  p.resume(id);
  REQUIRE(f.run_until([&] { return r->done; }));
  CHECK(r->data_calls == 2);
  bool clean = false;
  auto events = sse_events(r->body, &clean);
  CHECK(clean);
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().name == "message_stop");
  auto t = translate(r->body);
  CHECK(t.state == tc::anthropic::stream_translator::status::done);
  CHECK(word_count(t.text) == t.usage.completion_tokens);
}
