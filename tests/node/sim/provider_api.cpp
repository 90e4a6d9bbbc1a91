// tc::sim::provider: the answers (OpenAI wire format, determinism, usage, tools, embeddings,
// validation). Timing and the batch model are in provider_timing.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "node/sim/content.hpp"
#include "protocol/tokens.hpp"
#include "sim_support.hpp"

using namespace tc::sim;
using namespace tc::sim::test;

namespace {

const char* chat_path = "/v1/chat/completions";

std::string chat_body(std::string_view user, std::string_view extra = {}) {
  std::string b = R"({"model":"sim-a","messages":[{"role":"user","content":")";
  b += user;
  b += "\"}]";
  if (!extra.empty()) {
    b += ',';
    b += extra;
  }
  b += '}';
  return b;
}

std::string content_of(const rapidjson::Document& d, unsigned choice = 0) {
  const auto& c = d["choices"][choice]["message"]["content"];
  return c.IsString() ? std::string(c.GetString()) : std::string();
}

struct stream_summary {
  std::size_t content_events = 0;
  std::size_t content_words = 0;
  std::string text;
  std::string finish_reason;
  bool role_first = false;
  bool done = false;
  int usage_chunks = 0;
  bool usage_last = false;
  bool any_usage_field_non_null = false;
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t total_tokens = 0;
  bool all_parse = true;
};

stream_summary summarize_chat_stream(const std::string& body) {
  stream_summary s;
  auto payloads = sse_payloads(body, &s.done);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    auto d = parse(payloads[i]);
    if (d.HasParseError() || !d.IsObject()) {
      s.all_parse = false;
      continue;
    }
    CHECK(std::string(d["object"].GetString()) == "chat.completion.chunk");
    CHECK(std::string(d["system_fingerprint"].GetString()) == "tcsim-test-double");
    if (d.HasMember("usage") && !d["usage"].IsNull()) {
      s.any_usage_field_non_null = true;
      if (d["choices"].IsArray() && d["choices"].Empty()) {
        ++s.usage_chunks;
        s.usage_last = i + 1 == payloads.size();
        s.prompt_tokens = d["usage"]["prompt_tokens"].GetUint64();
        s.completion_tokens = d["usage"]["completion_tokens"].GetUint64();
        s.total_tokens = d["usage"]["total_tokens"].GetUint64();
      }
    }
    if (!d["choices"].IsArray() || d["choices"].Empty()) continue;
    const auto& ch = d["choices"][0];
    const auto& delta = ch["delta"];
    if (i == 0) s.role_first = delta.HasMember("role") && delta["role"] == "assistant";
    if (delta.HasMember("content") && delta["content"].IsString() &&
        delta["content"].GetStringLength() > 0) {
      ++s.content_events;
      s.content_words += word_count(delta["content"].GetString());
      s.text += delta["content"].GetString();
    }
    if (ch["finish_reason"].IsString()) s.finish_reason = ch["finish_reason"].GetString();
  }
  return s;
}

}  // namespace

TEST_CASE("chat non-stream answer has the OpenAI shape and is deterministic") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("hello"));
  auto b = post(p, chat_path, chat_body("hello"));
  auto c = post(p, chat_path, chat_body("hello there"));
  REQUIRE(f.run_until([&] { return a->done && b->done && c->done; }));
  CHECK(a->status == 200);
  CHECK(a->header("content-type") == "application/json");
  auto da = parse(a->body);
  REQUIRE_FALSE(da.HasParseError());
  CHECK(std::string(da["object"].GetString()) == "chat.completion");
  CHECK(std::string(da["id"].GetString()).rfind("chatcmpl-sim-", 0) == 0);
  CHECK(da["created"].IsUint64());
  CHECK(std::string(da["model"].GetString()) == "sim-a");
  CHECK(std::string(da["system_fingerprint"].GetString()) == "tcsim-test-double");
  REQUIRE(da["choices"].Size() == 1);
  const auto& ch = da["choices"][0];
  CHECK(ch["index"].GetInt() == 0);
  CHECK(std::string(ch["message"]["role"].GetString()) == "assistant");
  CHECK(ch["logprobs"].IsNull());
  CHECK(std::string(ch["finish_reason"].GetString()) == "stop");
  std::string text = content_of(da);
  CHECK_FALSE(text.empty());
  auto words = word_count(text);
  CHECK(words >= 8);  // default_max_tokens 16: length in [8, 16]
  CHECK(words <= 16);
  CHECK(da["usage"]["completion_tokens"].GetUint64() == words);
  CHECK(da["usage"]["total_tokens"].GetUint64() ==
        da["usage"]["prompt_tokens"].GetUint64() + words);

  auto db = parse(b->body);
  auto dc = parse(c->body);
  CHECK(content_of(db) == text);
  CHECK(std::string(db["id"].GetString()) != std::string(da["id"].GetString()));
  CHECK(content_of(dc) != text);
  CHECK(a->result.status == 200);
  CHECK(a->result.why == tc::upstream::failure::none);
  CHECK(a->result.bytes_received == a->body.size());
  CHECK_FALSE(a->callback_in_start);
}

TEST_CASE("the seed setting changes the text") {
  loop_fixture f;
  auto s = instant_settings();
  provider p1(&f.loop, s);
  s.seed = 7;
  provider p2(&f.loop, s);
  auto a = post(p1, chat_path, chat_body("same"));
  auto b = post(p2, chat_path, chat_body("same"));
  REQUIRE(f.run_until([&] { return a->done && b->done; }));
  CHECK(content_of(parse(a->body)) != content_of(parse(b->body)));
}

TEST_CASE("n > 1 gives different choices") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("hi", R"("n":3)"));
  REQUIRE(f.run_until([&] { return a->done; }));
  auto d = parse(a->body);
  REQUIRE(d["choices"].Size() == 3);
  std::set<std::string> texts;
  uint64_t words = 0;
  for (unsigned i = 0; i < 3; ++i) {
    CHECK(d["choices"][i]["index"].GetUint() == i);
    texts.insert(content_of(d, i));
    words += word_count(content_of(d, i));
  }
  CHECK(texts.size() == 3);
  CHECK(d["usage"]["completion_tokens"].GetUint64() == words);
}

TEST_CASE("prompt_tokens is 4 per message plus the estimate of each text content") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  std::string body =
      R"({"model":"m","messages":[{"role":"system","content":"You are terse."},)"
      R"({"role":"user","content":[{"type":"text","text":"Tell me a story"},)"
      R"({"type":"image_url","image_url":{"url":"http://x/y.png"}},{"type":"text","text":"about a dragon."}]},)"
      R"({"role":"assistant","content":null}]})";
  auto a = post(p, chat_path, body);
  REQUIRE(f.run_until([&] { return a->done; }));
  auto d = parse(a->body);
  REQUIRE_FALSE(d.HasParseError());
  uint64_t expected = 3 * 4 + tc::estimate_tokens("You are terse.") +
                      tc::estimate_tokens("Tell me a story") +
                      tc::estimate_tokens("about a dragon.");
  CHECK(d["usage"]["prompt_tokens"].GetUint64() == expected);
}

TEST_CASE("prefix cache: a repeated leading system prompt is reported as cached tokens") {
  loop_fixture f;
  auto settings = instant_settings();
  settings.prefix_cache_entries = 1;
  provider p(&f.loop, settings);
  auto call = [&](const std::string& system, const std::string& user) {
    std::string body = R"({"model":"m","messages":[)";
    if (!system.empty()) body += R"({"role":"system","content":")" + system + R"("},)";
    body += R"({"role":"user","content":")" + user + R"("}]})";
    auto r = post(p, chat_path, body);
    REQUIRE(f.run_until([&] { return r->done; }));
    auto d = parse(r->body);
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d["usage"].HasMember("prompt_tokens_details"));
    return d["usage"]["prompt_tokens_details"]["cached_tokens"].GetUint();
  };
  const uint32_t system_tokens = 4 + tc::estimate_tokens("You are a careful assistant.");
  CHECK(call("You are a careful assistant.", "first") == 0);  // seen now
  CHECK(call("You are a careful assistant.", "second") == system_tokens);
  CHECK(call("", "no system prompt") == 0);
  CHECK(call("Another prompt.", "x") == 0);  // one entry: it takes the place of the first
  CHECK(call("You are a careful assistant.", "third") == 0);
  CHECK(call("You are a careful assistant.", "fourth") == system_tokens);

  // Off (the default): no prompt_tokens_details at all.
  provider off(&f.loop, instant_settings());
  auto r = post(off, chat_path, chat_body("hello"));
  REQUIRE(f.run_until([&] { return r->done; }));
  CHECK_FALSE(parse(r->body)["usage"].HasMember("prompt_tokens_details"));
}

TEST_CASE("max_tokens and max_completion_tokens cap the answer with finish_reason length") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("x", R"("max_tokens":3)"));
  auto b = post(p, chat_path, chat_body("x", R"("max_completion_tokens":2,"max_tokens":9)"));
  auto c = post(p, chat_path, chat_body("x", R"("max_tokens":1000)"));
  REQUIRE(f.run_until([&] { return a->done && b->done && c->done; }));
  auto da = parse(a->body);
  CHECK(std::string(da["choices"][0]["finish_reason"].GetString()) == "length");
  CHECK(word_count(content_of(da)) == 3);
  CHECK(da["usage"]["completion_tokens"].GetUint64() == 3);
  auto db = parse(b->body);
  CHECK(word_count(content_of(db)) == 2);
  CHECK(std::string(db["choices"][0]["finish_reason"].GetString()) == "length");
  auto dc = parse(c->body);
  CHECK(std::string(dc["choices"][0]["finish_reason"].GetString()) == "stop");
}

TEST_CASE("stream: role first - one token per content event - usage only when asked - DONE") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  auto plain = post(p, chat_path, chat_body("story", R"("stream":true)"));
  auto with_usage = post(
      p, chat_path, chat_body("story", R"("stream":true,"stream_options":{"include_usage":true})"));
  auto capped =
      post(p, chat_path,
           chat_body("story",
                     R"("stream":true,"max_tokens":4,"stream_options":{"include_usage":true})"));
  REQUIRE(f.run_until([&] { return plain->done && with_usage->done && capped->done; }));

  CHECK(plain->status == 200);
  CHECK(plain->header("content-type").rfind("text/event-stream", 0) == 0);
  auto s1 = summarize_chat_stream(plain->body);
  CHECK(s1.all_parse);
  CHECK(s1.done);
  CHECK(s1.role_first);
  CHECK(s1.usage_chunks == 0);
  CHECK_FALSE(s1.any_usage_field_non_null);
  CHECK(s1.finish_reason == "stop");
  CHECK(s1.content_events == s1.content_words);

  auto s2 = summarize_chat_stream(with_usage->body);
  CHECK(s2.all_parse);
  CHECK(s2.done);
  CHECK(s2.usage_chunks == 1);
  CHECK(s2.usage_last);
  CHECK(s2.completion_tokens == s2.content_events);
  CHECK(s2.completion_tokens == s2.content_words);
  CHECK(s2.prompt_tokens == 4 + tc::estimate_tokens("story"));
  CHECK(s2.total_tokens == s2.prompt_tokens + s2.completion_tokens);
  CHECK(s2.completion_tokens >= 8);

  auto s3 = summarize_chat_stream(capped->body);
  CHECK(s3.finish_reason == "length");
  CHECK(s3.completion_tokens == 4);
  CHECK(s3.content_events == 4);
  CHECK(with_usage->result.bytes_received == with_usage->body.size());
  CHECK(with_usage->result.first_byte_ns > 0);

  auto st = p.stats();
  CHECK(st.tokens_generated == s1.content_events + s2.completion_tokens + 4);
  CHECK(st.completed == 3);
  CHECK(p.in_flight() == 0);
}

TEST_CASE("stream text equals the non-stream text of the same seed") {
  // The stream and non-stream paths render the same token function; check a stream's text
  // is well formed: capitalised start, words separated by single spaces, full stop at the end.
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("q", R"("stream":true)"));
  REQUIRE(f.run_until([&] { return a->done; }));
  auto s = summarize_chat_stream(a->body);
  REQUIRE_FALSE(s.text.empty());
  CHECK(std::isupper(static_cast<unsigned char>(s.text[0])));
  CHECK(s.text.back() == '.');
  CHECK(s.text.find("  ") == std::string::npos);
}

namespace {

const char* weather_tools = R"("tools":[{"type":"function","function":{"name":"get_weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string"},"days":{"type":"integer"},
  "unit":{"type":"string","enum":["celsius","fahrenheit"]},"precise":{"type":"boolean"},
  "lat":{"type":"number"},"tags":{"type":"array","items":{"type":"string"}},
  "opts":{"type":"object"},"where":{"type":"object","properties":{"zip":{"type":"string"}}}},
  "required":["city"]}}},
  {"type":"function","function":{"name":"other_tool","parameters":{"type":"object",
  "properties":{"q":{"type":"string"}}}}}])";

void check_weather_args(std::string_view args) {
  auto a = parse(args);
  REQUIRE_FALSE(a.HasParseError());
  REQUIRE(a.IsObject());
  CHECK(a["city"].IsString());
  CHECK(a["days"].IsInt64());
  CHECK(std::string(a["unit"].GetString()) == "celsius");
  CHECK(a["precise"].IsTrue());
  CHECK(a["lat"].IsNumber());
  CHECK(a["tags"].IsArray());
  CHECK(a["opts"].IsObject());
  CHECK(a["where"]["zip"].IsString());
}

}  // namespace

TEST_CASE("tool calls: non-stream") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("weather?", weather_tools));
  auto b =
      post(p, chat_path,
           chat_body("weather?",
                     std::string(weather_tools) +
                         R"(,"tool_choice":{"type":"function","function":{"name":"other_tool"}})"));
  auto none = post(p, chat_path,
                   chat_body("weather?", std::string(weather_tools) + R"(,"tool_choice":"none")"));
  std::string after_tool =
      std::string(R"({"model":"m","messages":[{"role":"user","content":"w?"},)") +
      R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)" +
      R"("function":{"name":"get_weather","arguments":"{}"}}]},)" +
      R"({"role":"tool","tool_call_id":"call_1","content":"sunny"}],)" + weather_tools + "}";
  auto cont = post(p, chat_path, after_tool);
  auto bad =
      post(p, chat_path,
           chat_body("w", std::string(weather_tools) +
                              R"(,"tool_choice":{"type":"function","function":{"name":"nope"}})"));
  REQUIRE(f.run_until([&] { return a->done && b->done && none->done && cont->done && bad->done; }));

  auto d = parse(a->body);
  REQUIRE_FALSE(d.HasParseError());
  const auto& ch = d["choices"][0];
  CHECK(std::string(ch["finish_reason"].GetString()) == "tool_calls");
  CHECK(ch["message"]["content"].IsNull());
  const auto& call = ch["message"]["tool_calls"][0];
  CHECK(std::string(call["id"].GetString()).rfind("call_sim_", 0) == 0);
  CHECK(std::string(call["type"].GetString()) == "function");
  CHECK(std::string(call["function"]["name"].GetString()) == "get_weather");
  check_weather_args(call["function"]["arguments"].GetString());
  CHECK(d["usage"]["completion_tokens"].GetUint64() > 0);

  auto db = parse(b->body);
  const auto& call_b = db["choices"][0]["message"]["tool_calls"][0];
  CHECK(std::string(call_b["function"]["name"].GetString()) == "other_tool");
  auto args_b = parse(call_b["function"]["arguments"].GetString());
  CHECK(args_b["q"].IsString());

  auto dn = parse(none->body);
  CHECK(std::string(dn["choices"][0]["finish_reason"].GetString()) == "stop");
  CHECK_FALSE(content_of(dn).empty());
  auto dc = parse(cont->body);
  CHECK(std::string(dc["choices"][0]["finish_reason"].GetString()) == "stop");
  CHECK(bad->status == 400);
}

TEST_CASE("tool calls: stream deltas carry id and name - then argument fragments") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  auto a =
      post(p, chat_path,
           chat_body("weather?", std::string(weather_tools) +
                                     R"(,"stream":true,"stream_options":{"include_usage":true})"));
  REQUIRE(f.run_until([&] { return a->done; }));
  bool done = false;
  auto payloads = sse_payloads(a->body, &done);
  CHECK(done);
  REQUIRE(payloads.size() >= 4);
  auto first = parse(payloads[0]);
  const auto& d0 = first["choices"][0]["delta"];
  CHECK(std::string(d0["role"].GetString()) == "assistant");
  const auto& tc0 = d0["tool_calls"][0];
  CHECK(tc0["index"].GetInt() == 0);
  CHECK(std::string(tc0["id"].GetString()).rfind("call_sim_", 0) == 0);
  CHECK(std::string(tc0["type"].GetString()) == "function");
  CHECK(std::string(tc0["function"]["name"].GetString()) == "get_weather");
  CHECK(std::string(tc0["function"]["arguments"].GetString()).empty());
  std::string args;
  std::string finish;
  std::size_t fragments = 0;
  uint64_t completion_tokens = 0;
  for (std::size_t i = 1; i < payloads.size(); ++i) {
    auto d = parse(payloads[i]);
    REQUIRE_FALSE(d.HasParseError());
    if (d["choices"].Empty()) {
      completion_tokens = d["usage"]["completion_tokens"].GetUint64();
      continue;
    }
    const auto& ch = d["choices"][0];
    if (ch["finish_reason"].IsString()) finish = ch["finish_reason"].GetString();
    if (ch["delta"].HasMember("tool_calls")) {
      const auto& t = ch["delta"]["tool_calls"][0];
      CHECK(t["index"].GetInt() == 0);
      CHECK_FALSE(t.HasMember("id"));
      args += t["function"]["arguments"].GetString();
      ++fragments;
    }
  }
  CHECK(finish == "tool_calls");
  CHECK(fragments > 1);
  CHECK(completion_tokens == fragments);
  check_weather_args(args);
}

TEST_CASE("completions: string or array prompt - text_completion objects") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, "/v1/completions", R"({"model":"base","prompt":["one","two"]})");
  auto b = post(p, "/v1/completions", R"({"model":"base","prompt":"one","max_tokens":2})");
  auto s = post(
      p, "/v1/completions",
      R"({"model":"base","prompt":"one","stream":true,"stream_options":{"include_usage":true}})");
  auto t = post(p, "/v1/completions", R"({"model":"base","prompt":[1,2,3,4,5]})");
  REQUIRE(f.run_until([&] { return a->done && b->done && s->done && t->done; }));
  auto da = parse(a->body);
  REQUIRE_FALSE(da.HasParseError());
  CHECK(std::string(da["object"].GetString()) == "text_completion");
  CHECK(std::string(da["id"].GetString()).rfind("cmpl-sim-", 0) == 0);
  REQUIRE(da["choices"].Size() == 2);
  CHECK(da["choices"][0]["index"].GetInt() == 0);
  CHECK(da["choices"][1]["index"].GetInt() == 1);
  CHECK(da["choices"][0]["logprobs"].IsNull());
  std::string t0 = da["choices"][0]["text"].GetString();
  std::string t1 = da["choices"][1]["text"].GetString();
  CHECK(t0 != t1);
  CHECK(da["usage"]["prompt_tokens"].GetUint64() ==
        tc::estimate_tokens("one") + tc::estimate_tokens("two"));
  CHECK(da["usage"]["completion_tokens"].GetUint64() == word_count(t0) + word_count(t1));
  auto db = parse(b->body);
  CHECK(std::string(db["choices"][0]["finish_reason"].GetString()) == "length");
  auto dt = parse(t->body);
  CHECK(dt["usage"]["prompt_tokens"].GetUint64() == 5);

  bool done = false;
  auto payloads = sse_payloads(s->body, &done);
  CHECK(done);
  std::size_t text_events = 0;
  uint64_t completion = 0;
  for (const auto& pl : payloads) {
    auto d = parse(pl);
    REQUIRE_FALSE(d.HasParseError());
    CHECK(std::string(d["object"].GetString()) == "text_completion");
    if (d["choices"].Empty()) {
      completion = d["usage"]["completion_tokens"].GetUint64();
    } else if (d["choices"][0]["text"].GetStringLength() > 0) {
      ++text_events;
    }
  }
  CHECK(completion == text_events);
  CHECK(completion > 0);
}

namespace {

std::vector<float> decode_embedding(const rapidjson::Value& v) {
  std::vector<float> out;
  if (v.IsArray()) {
    for (const auto& x : v.GetArray()) out.push_back(static_cast<float>(x.GetDouble()));
  } else if (v.IsString()) {
    std::string bytes;
    REQUIRE(base64_decode(v.GetString(), bytes));
    REQUIRE(bytes.size() % 4 == 0);
    for (std::size_t i = 0; i < bytes.size(); i += 4) {
      uint32_t bits = 0;
      for (int b = 0; b < 4; ++b)
        bits |= uint32_t{static_cast<unsigned char>(bytes[i + b])} << (8 * b);  // little-endian
      float fv;
      std::memcpy(&fv, &bits, 4);
      out.push_back(fv);
    }
  }
  return out;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += double{a[i]} * b[i];
  return s;
}

}  // namespace

TEST_CASE("embeddings: float and base64 give the same L2-normalised vector") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  const char* inputs =
      R"(["the cat sat on the mat","the cat sat on a mat","quarterly tax filing deadline"])";
  auto fl = post(p, "/v1/embeddings",
                 std::string(R"({"model":"emb","dimensions":64,"input":)") + inputs + "}");
  auto b64 =
      post(p, "/v1/embeddings",
           std::string(R"({"model":"emb","dimensions":64,"encoding_format":"base64","input":)") +
               inputs + "}");
  auto def = post(p, "/v1/embeddings", R"({"model":"emb","input":"hello"})");
  auto ints = post(p, "/v1/embeddings", R"({"model":"emb","input":[[1,2,3],[4,5]]})");
  auto bad = post(p, "/v1/embeddings", R"({"model":"emb","input":"x","encoding_format":"hex"})");
  REQUIRE(
      f.run_until([&] { return fl->done && b64->done && def->done && ints->done && bad->done; }));
  auto df = parse(fl->body);
  auto db = parse(b64->body);
  REQUIRE_FALSE(df.HasParseError());
  REQUIRE_FALSE(db.HasParseError());
  CHECK(std::string(df["object"].GetString()) == "list");
  CHECK(std::string(df["model"].GetString()) == "emb");
  REQUIRE(df["data"].Size() == 3);
  std::vector<std::vector<float>> vf;
  for (unsigned i = 0; i < 3; ++i) {
    const auto& item = df["data"][i];
    CHECK(std::string(item["object"].GetString()) == "embedding");
    CHECK(item["index"].GetUint() == i);
    auto a = decode_embedding(item["embedding"]);
    auto b = decode_embedding(db["data"][i]["embedding"]);
    REQUIRE(a.size() == 64);
    REQUIRE(b.size() == 64);
    for (std::size_t k = 0; k < 64; ++k) CHECK(a[k] == b[k]);  // exact float32 round trip
    CHECK(std::abs(dot(a, a) - 1.0) < 1e-5);
    vf.push_back(a);
  }
  CHECK(dot(vf[0], vf[1]) > dot(vf[0], vf[2]) + 0.2);  // shared words: closer
  uint64_t expected = tc::estimate_tokens("the cat sat on the mat") +
                      tc::estimate_tokens("the cat sat on a mat") +
                      tc::estimate_tokens("quarterly tax filing deadline");
  CHECK(df["usage"]["prompt_tokens"].GetUint64() == expected);
  CHECK(df["usage"]["total_tokens"].GetUint64() == expected);
  auto dd = parse(def->body);
  CHECK(dd["data"][0]["embedding"].Size() == 32);  // sim_settings.embedding_dim
  auto di = parse(ints->body);
  CHECK(di["data"].Size() == 2);
  CHECK(di["usage"]["prompt_tokens"].GetUint64() == 5);
  CHECK(bad->status == 400);
}

TEST_CASE("validation errors are 400 with the OpenAI envelope") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  auto malformed = post(p, chat_path, R"({"model":"m","messages":[)");
  auto no_model = post(p, chat_path, R"({"messages":[{"role":"user","content":"x"}]})");
  auto no_messages = post(p, chat_path, R"({"model":"m"})");
  auto bad_n = post(p, chat_path, chat_body("x", R"("n":0)"));
  auto unknown = post(p, "/v1/nothing", "{}");
  auto wrong_method = start_call(p, "GET", chat_path, "");
  REQUIRE(f.run_until([&] {
    return malformed->done && no_model->done && no_messages->done && bad_n->done && unknown->done &&
           wrong_method->done;
  }));
  for (auto* r : {&malformed, &no_model, &no_messages, &bad_n}) {
    CHECK((*r)->status == 400);
    auto d = parse((*r)->body);
    REQUIRE_FALSE(d.HasParseError());
    const auto& e = d["error"];
    CHECK(e["message"].IsString());
    CHECK(std::string(e["type"].GetString()) == "invalid_request_error");
    CHECK(e.HasMember("param"));
    CHECK(e.HasMember("code"));
  }
  CHECK(std::string(parse(no_model->body)["error"]["param"].GetString()) == "model");
  CHECK(std::string(parse(no_messages->body)["error"]["param"].GetString()) == "messages");
  CHECK(unknown->status == 404);
  CHECK(wrong_method->status == 405);
  auto st = p.stats();
  CHECK(st.errors == 0);  // only injected faults count as errors
  CHECK(st.requests == 6);
  CHECK(st.completed == 6);
}

TEST_CASE("models lists sim-default and the models seen") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, R"({"model":"qwen-sim","messages":[{"role":"user","content":"x"}]})");
  REQUIRE(f.run_until([&] { return a->done; }));
  auto m = start_call(p, "GET", "/v1/models", "");
  REQUIRE(f.run_until([&] { return m->done; }));
  CHECK(m->status == 200);
  auto d = parse(m->body);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["object"].GetString()) == "list");
  std::set<std::string> ids;
  for (const auto& x : d["data"].GetArray()) {
    ids.insert(x["id"].GetString());
    CHECK(std::string(x["object"].GetString()) == "model");
    CHECK(std::string(x["owned_by"].GetString()) == "tcsim");
    CHECK(x["created"].IsUint64());
  }
  CHECK(ids == std::set<std::string>{"sim-default", "qwen-sim"});
}

TEST_CASE("error_rate 1.0 answers every call with error_status") {
  loop_fixture f;
  auto s = fast_settings();
  s.error_rate = 1.0;
  s.error_status = 429;
  provider p(&f.loop, s);
  std::vector<std::shared_ptr<record>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(post(p, chat_path, chat_body("x" + std::to_string(i))));
  REQUIRE(f.run_until([&] {
    for (auto& r : rs)
      if (!r->done) return false;
    return true;
  }));
  for (auto& r : rs) {
    CHECK(r->status == 429);
    CHECK(r->header("retry-after") == "1");
    auto d = parse(r->body);
    REQUIRE_FALSE(d.HasParseError());
    CHECK(std::string(d["error"]["type"].GetString()) == "rate_limit_exceeded");
  }
  CHECK(p.stats().errors == 10);
  CHECK(p.stats().tokens_generated == 0);

  s.error_rate = 0.5;
  s.error_status = 500;
  p.update(s);
  int errors = 0;
  rs.clear();
  for (int i = 0; i < 60; ++i) rs.push_back(post(p, chat_path, chat_body("same")));
  REQUIRE(f.run_until([&] {
    for (auto& r : rs)
      if (!r->done) return false;
    return true;
  }));
  for (auto& r : rs) {
    if (r->status == 500) {
      ++errors;
      CHECK(std::string(parse(r->body)["error"]["type"].GetString()) == "server_error");
    } else {
      CHECK(r->status == 200);
    }
  }
  CHECK(errors > 10);  // spread, not all or nothing, even for identical bodies
  CHECK(errors < 50);
}

TEST_CASE("outage window answers 503 at once - update() ends it") {
  loop_fixture f;
  auto s = fast_settings();
  s.ttft_ms = 500;  // a normal answer would take at least this
  s.outages.push_back({0, 3600});
  provider p(&f.loop, s);
  auto a = post(p, chat_path, chat_body("x"));
  auto m = start_call(p, "GET", "/v1/models", "");
  REQUIRE(f.run_until([&] { return a->done && m->done; }, 2000));
  CHECK(a->status == 503);
  CHECK(m->status == 503);
  CHECK(a->header("retry-after") == "1");
  CHECK((a->done_ns - a->start_ns) < 200'000'000ull);
  CHECK(std::string(parse(a->body)["error"]["code"].GetString()) == "service_unavailable");
  CHECK(p.stats().errors == 2);
  s.outages.clear();
  s.ttft_ms = 1;
  p.update(s);
  CHECK(p.settings().outages.empty());
  auto b = post(p, chat_path, chat_body("x"));
  REQUIRE(f.run_until([&] { return b->done; }));
  CHECK(b->status == 200);
}

TEST_CASE("instant mode answers on the next loop iteration without timers") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("x"));
  auto b = post(p, chat_path, chat_body("x", R"("stream":true)"));
  auto e = post(p, "/v1/embeddings", R"({"model":"e","input":"x"})");
  CHECK_FALSE(a->done);  // never inside start()
  CHECK(p.in_flight() == 3);
  int active_timers = 0;
  uv_walk(
      &f.loop,
      [](uv_handle_t* h, void* arg) {
        if (h->type == UV_TIMER && uv_is_active(h)) ++*static_cast<int*>(arg);
      },
      &active_timers);
  CHECK(active_timers == 1);  // only the fixture's guard timer
  uv_run(&f.loop, UV_RUN_NOWAIT);
  CHECK(a->done);
  CHECK(b->done);
  CHECK(e->done);
  CHECK(p.in_flight() == 0);
  CHECK_FALSE(a->callback_in_start);
  bool done = false;
  sse_payloads(b->body, &done);
  CHECK(done);
  auto st = p.stats();
  CHECK(st.active_sequences == 0);
  CHECK(st.completed == 3);
}

TEST_CASE("cancel inside on_data stops the call without further callbacks") {
  loop_fixture f;
  provider p(&f.loop, fast_settings());
  auto r = std::make_shared<record>();
  tc::upstream::call_id id = 0;
  auto h = recorder(r);
  auto inner = h.on_data;
  h.on_data = [&, inner](std::string_view d) {
    inner(d);
    p.cancel(id);
  };
  tc::upstream::call_request req;
  req.url = "http://sim/v1/chat/completions";
  req.body = chat_body("x", R"("stream":true)");
  id = p.start(std::move(req), std::move(h));
  REQUIRE(f.run_until([&] { return r->data_calls > 0; }));
  f.run_for(30);
  CHECK(r->data_calls == 1);
  CHECK_FALSE(r->done);
  CHECK(p.in_flight() == 0);
  CHECK(p.stats().cancelled == 1);
  CHECK(p.stats().active_sequences == 0);
  p.cancel(id);  // unknown now: ignored
  p.cancel(12345);
  CHECK(p.stats().cancelled == 1);
}

TEST_CASE("metrics_text has every series with HELP and TYPE") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = post(p, chat_path, chat_body("x"));
  REQUIRE(f.run_until([&] { return a->done; }));
  std::string m = p.metrics_text();
  for (const char* name :
       {"tcsim_requests_total", "tcsim_completed_total", "tcsim_errors_total",
        "tcsim_cancelled_total", "tcsim_tokens_generated_total", "tcsim_active_sequences",
        "tcsim_waiting", "tcsim_gpu_utilisation", "tcsim_gpu_utilisation_recent"}) {
    CHECK(m.find(std::string("# HELP ") + name + " ") != std::string::npos);
    CHECK(m.find(std::string("# TYPE ") + name + " ") != std::string::npos);
    CHECK(m.find(std::string("\n") + name + " ") != std::string::npos);
  }
  CHECK(m.find("tcsim_requests_total 1\n") != std::string::npos);
  CHECK(m.find("tcsim_completed_total 1\n") != std::string::npos);
}
