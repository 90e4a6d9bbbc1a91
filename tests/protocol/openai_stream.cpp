// protocol/openai/stream.cpp: stream assembly, stream synthesis and their round trip, the
// include_usage body surgery, and the usage-chunk test.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/openai/sse.hpp"
#include "protocol/openai/stream.hpp"

using namespace tc::openai;

namespace {

std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  return std::string(sb.GetString(), sb.GetSize());
}

/// Parses `text` into `doc`; a failed check if it is not JSON.
bool parse(rapidjson::Document& doc, const std::string& text) {
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    FAIL_CHECK("not JSON: " << text);
    return false;
  }
  return true;
}

/// Semantic JSON equality (member order ignored); `drop` names top-level members of `want`
/// not expected in `got`.
void check_json_eq(const std::string& got, const std::string& want,
                   std::vector<const char*> drop = {}) {
  rapidjson::Document g, w;
  if (!parse(g, got) || !parse(w, want)) return;
  for (const char* k : drop) w.RemoveMember(k);
  if (g != w) FAIL_CHECK("JSON differs\n got:  " << dump(g) << "\n want: " << dump(w));
}

/// The data payloads of an SSE text, read by the real splitter.
std::vector<std::string> events(const std::string& sse, std::size_t chunk = 0) {
  sse_splitter s;
  std::vector<std::string> out;
  auto on = [&out](const sse_splitter::event& e) {
    CHECK(e.name.empty());
    out.emplace_back(e.data);
  };
  if (chunk == 0) chunk = sse.size() + 1;
  for (std::size_t i = 0; i < sse.size(); i += chunk) {
    CHECK(s.feed(std::string_view(sse).substr(i, chunk), on));
  }
  CHECK(s.pending() == 0);
  return out;
}

/// Feeds every payload but a final [DONE]; returns the assembled JSON ("" if not complete).
std::string assemble(const std::vector<std::string>& payloads, bool expect_usage = true) {
  stream_assembler a;
  for (const std::string& p : payloads) {
    if (p == "[DONE]") continue;
    if (!a.feed(p)) {
      FAIL_CHECK("rejected chunk: " << p);
      return {};
    }
  }
  CHECK(a.complete() == expect_usage);
  CHECK_FALSE(a.failed());
  return a.result();
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Streams in the shapes node/sim/provider.cpp produces.
const std::string sim_head =
    "{\"id\":\"chatcmpl-sim-00ff\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"sim-default\",\"system_fingerprint\":\"tcsim-test-double\",\"choices\":[";

std::vector<std::string> sim_chat_stream() {
  const std::string tail = "],\"usage\":null}";
  return {
      sim_head +
          "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
          "\"logprobs\":null,\"finish_reason\":null}" +
          tail,
      sim_head +
          "{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":"
          "null}" +
          tail,
      sim_head +
          "{\"index\":0,\"delta\":{\"content\":\" world.\"},\"logprobs\":null,"
          "\"finish_reason\":null}" +
          tail,
      sim_head + "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}" + tail,
      sim_head + "],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}",
  };
}

const std::string sim_chat_body =
    "{\"id\":\"chatcmpl-sim-00ff\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"sim-default\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello world.\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11},"
    "\"system_fingerprint\":\"tcsim-test-double\"}";

std::vector<std::string> sim_tool_stream() {
  const std::string tail = "]}";
  auto args = [&](const char* piece) {
    return sim_head +
           "{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":" +
           piece + "}}]},\"logprobs\":null,\"finish_reason\":null}" + tail;
  };
  return {
      sim_head +
          "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{"
          "\"index\":0,\"id\":\"call_sim_1\",\"type\":\"function\",\"function\":{\"name\":"
          "\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,"
          "\"finish_reason\":null}" +
          tail,
      args("\"{\\\"ci\""),
      args("\"ty\\\":\""),
      args("\"\\\"Par\""),
      args("\"is\\\"}\""),
      sim_head + "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}" +
          tail,
      sim_head + "],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":4,\"total_tokens\":24}}",
  };
}

// Non-stream responses for the round trip.
const char* const responses[] = {
    // OpenAI-exact, with service_tier, a fingerprint and detailed usage.
    R"({"id":"chatcmpl-AbC123","object":"chat.completion","created":1727000000,)"
    R"("model":"gpt-4o-2024-08-06","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"The capital of France is Paris. It )"
    R"(has been the capital since 987 AD, and it is known for the Eiffel Tower, the )"
    R"(Louvre and its cafés.","refusal":null},"logprobs":null,)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":25,"completion_tokens":40,)"
    R"("total_tokens":65,"prompt_tokens_details":{"cached_tokens":0,)"
    R"("audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,)"
    R"("audio_tokens":0,"accepted_prediction_tokens":0,)"
    R"("rejected_prediction_tokens":0}},"service_tier":"default",)"
    R"("system_fingerprint":"fp_abc123"})",
    // n=2, different lengths and finish reasons.
    R"({"id":"chatcmpl-n2","object":"chat.completion","created":1727000001,)"
    R"("model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"One, two, three, four, five, six, seven, eight, nine, ten.",)"
    R"("refusal":null},"logprobs":null,"finish_reason":"stop"},{"index":1,)"
    R"("message":{"role":"assistant","content":"Uno","refusal":null},"logprobs":null,)"
    R"("finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":20,)"
    R"("total_tokens":32,"prompt_tokens_details":{"cached_tokens":8}},)"
    R"("system_fingerprint":"fp_n2"})",
    // Tool calls: content null, two calls.
    R"({"id":"chatcmpl-tools","object":"chat.completion","created":1727000002,)"
    R"("model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":null,"tool_calls":[{"id":"call_a1","type":"function",)"
    R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",)"
    R"(\"unit\":\"celsius\"}"}},{"id":"call_b2","type":"function",)"
    R"("function":{"name":"get_time","arguments":"{\"tz\":\"Europe/Paris\"}"}}],)"
    R"("refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],)"
    R"("usage":{"prompt_tokens":80,"completion_tokens":30,"total_tokens":110}})",
    // Unicode with 2-, 3- and 4-byte characters, and escapes.
    R"({"id":"chatcmpl-uni","object":"chat.completion","created":1727000003,)"
    R"("model":"qwen-max","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"héllo 世界！😀🎉 naïve 𝄞 «quote» \"q\" )"
    R"(back\\slash\nnew line\ttab \u0001 </script> ✓"},"logprobs":null,)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":30,)"
    R"("total_tokens":35}})",
    // Empty content.
    R"({"id":"chatcmpl-empty","object":"chat.completion","created":1727000004,)"
    R"("model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},)"
    R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,)"
    R"("completion_tokens":0,"total_tokens":5}})",
    // A refusal.
    R"({"id":"chatcmpl-ref","object":"chat.completion","created":1727000005,)"
    R"("model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":null,"refusal":"I'm sorry, I can't help with that."},)"
    R"("logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":15,)"
    R"("completion_tokens":9,"total_tokens":24}})",
    // Logprobs whose tokens spell the content: one token per chunk.
    R"({"id":"chatcmpl-lp","object":"chat.completion","created":1727000006,)"
    R"("model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"Hi there","refusal":null},"logprobs":{"content":[{"token":"Hi",)"
    R"("logprob":-0.0012,"bytes":[72,105],"top_logprobs":[{"token":"Hi",)"
    R"("logprob":-0.0012,"bytes":[72,105]},{"token":"Hello","logprob":-6.5,)"
    R"("bytes":[72,101,108,108,111]}]},{"token":" there","logprob":-0.25,"bytes":[32,)"
    R"(116,104,101,114,101],"top_logprobs":[]}],"refusal":null},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,)"
    R"("total_tokens":5}})",
    // Logprobs that do not spell the content: sent whole.
    R"({"id":"chatcmpl-lp2","object":"chat.completion","created":1727000007,)"
    R"("model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant",)"
    R"("content":"Hi there"},"logprobs":{"content":[{"token":"Hi","logprob":-1e-05,)"
    R"("bytes":null,"top_logprobs":[]}],"refusal":null},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
    // DeepSeek reasoning, with a provider's extra choice field.
    R"({"id":"ds-1","object":"chat.completion","created":1727000008,)"
    R"("model":"deepseek-reasoner","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"42.","reasoning_content":"The user )"
    R"(asks for the answer. 6 × 7 = 42."},"logprobs":null,"finish_reason":"stop",)"
    R"("stop_reason":null}],"usage":{"prompt_tokens":10,"completion_tokens":20,)"
    R"("total_tokens":30,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":10,)"
    R"("completion_tokens_details":{"reasoning_tokens":15}},)"
    R"("system_fingerprint":"fp_ds"})",
    // Text completion, n=2, with token logprobs on the first choice.
    R"({"id":"cmpl-abc","object":"text_completion","created":1727000009,)"
    R"("model":"gpt-3.5-turbo-instruct","choices":[{"text":" Paris is","index":0,)"
    R"("logprobs":{"tokens":[" Paris"," is"],"token_logprobs":[-0.1,-0.2],)"
    R"("top_logprobs":[{" Paris":-0.1},{" is":-0.2}],"text_offset":[10,16]},)"
    R"("finish_reason":"length"},{"text":" A city.","index":1,"logprobs":null,)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":5,)"
    R"("total_tokens":9}})",
};

/// Checks the shape of every event of a synthesized stream and returns the payloads.
std::vector<std::string> check_stream_shape(const std::string& sse, bool include_usage, bool chat) {
  CHECK(sse.size() >= sse_done.size());
  CHECK(sse.substr(sse.size() - sse_done.size()) == sse_done);
  std::vector<std::string> payloads = events(sse);
  REQUIRE(payloads.size() >= 2);
  CHECK(payloads.back() == "[DONE]");
  for (std::size_t i = 0; i + 1 < payloads.size(); ++i) {
    rapidjson::Document d;
    if (!parse(d, payloads[i])) continue;
    REQUIRE(d.IsObject());
    CHECK(d["id"].IsString());
    CHECK(std::string(d["object"].GetString()) ==
          (chat ? "chat.completion.chunk" : "text_completion"));
    CHECK(d["created"].IsNumber());
    CHECK(d["model"].IsString());
    REQUIRE(d["choices"].IsArray());
    const bool usage_chunk = i + 2 == payloads.size() && include_usage;
    CHECK(is_usage_chunk(payloads[i]) == usage_chunk);
    if (usage_chunk) {
      CHECK(d["choices"].Empty());
      CHECK(d["usage"].IsObject());
      continue;
    }
    CHECK(d["choices"].Size() == 1);
    CHECK(d.HasMember("usage") == include_usage);
    if (include_usage) CHECK(d["usage"].IsNull());
    const rapidjson::Value& c = d["choices"][0];
    CHECK(c["index"].IsUint());
    CHECK(c.HasMember("logprobs"));
    CHECK(c.HasMember("finish_reason"));
    if (chat) {
      CHECK(c["delta"].IsObject());
      if (!c["finish_reason"].IsNull()) CHECK(c["delta"].ObjectEmpty());
    } else {
      CHECK(c["text"].IsString());
    }
  }
  return payloads;
}

}  // namespace

TEST_CASE("assembler: a sim chat stream gives the sim's non-stream body") {
  CHECK(assemble(sim_chat_stream()) == sim_chat_body);
}

TEST_CASE("assembler: a tool-call stream gives content null and the whole call") {
  const std::string got = assemble(sim_tool_stream());
  check_json_eq(got, R"({"id":"chatcmpl-sim-00ff","object":"chat.completion","created":1700000000,)"
                     R"("model":"sim-default","choices":[{"index":0,"message":{"role":"assistant",)"
                     R"("content":null,"tool_calls":[{"id":"call_sim_1","type":"function",)"
                     R"("function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}],)"
                     R"("refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],)"
                     R"("usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24},)"
                     R"("system_fingerprint":"tcsim-test-double"})");
}

TEST_CASE("assembler: content rule (null vs empty string)") {
  const std::string head =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[)";
  const std::string usage =
      head + R"(],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}})";
  auto content_of = [&](std::vector<std::string> deltas, const char* finish) {
    stream_assembler a;
    for (const std::string& d : deltas) {
      CHECK(a.feed(head + R"({"index":0,"delta":)" + d + R"(,"finish_reason":null}]})"));
    }
    CHECK(a.feed(head + R"({"index":0,"delta":{},"finish_reason":")" + finish + "\"}]}"));
    CHECK(a.feed(usage));
    REQUIRE(a.complete());
    rapidjson::Document d;
    const std::string r = a.result();
    REQUIRE(parse(d, r));
    return dump(d["choices"][0]["message"]["content"]);
  };
  // Only "" deltas and no tool call: the answer was empty.
  CHECK(content_of({R"({"role":"assistant","content":""})"}, "stop") == R"("")");
  // No content key at all, or only null: null.
  CHECK(content_of({R"({"role":"assistant"})"}, "stop") == "null");
  CHECK(content_of({R"({"role":"assistant","content":null})"}, "stop") == "null");
  // OpenAI's role chunk has "content":"" even when the answer is a tool call: null.
  CHECK(
      content_of({R"({"role":"assistant","content":""})",
                  R"({"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f",)"
                  R"("arguments":"{}"}}]})"},
                 "tool_calls") == "null");
  // The same for a refusal.
  CHECK(content_of({R"({"role":"assistant","content":""})", R"({"refusal":"No."})"}, "stop") ==
        "null");
  // Real content next to a tool call is kept.
  CHECK(
      content_of({R"({"role":"assistant","content":"Let me check."})",
                  R"({"tool_calls":[{"index":0,"id":"c","type":"function","function":{"name":"f",)"
                  R"("arguments":"{}"}}]})"},
                 "tool_calls") == R"("Let me check.")");
}

TEST_CASE("assembler: OpenAI chunks with usage:null, obfuscation, service_tier, details") {
  const std::string h =
      R"({"id":"chatcmpl-R","object":"chat.completion.chunk","created":1727,)"
      R"("model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_1",)"
      R"("choices":[)";
  const std::vector<std::string> chunks = {
      h + R"({"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,)"
          R"("finish_reason":null}],"usage":null,"obfuscation":"abc"})",
      h + R"({"index":0,"delta":{"content":"Bonjour"},"logprobs":null,"finish_reason":null}],)"
          R"("usage":null,"obfuscation":"x"})",
      h + R"({"index":0,"delta":{"content":" à tous"},"logprobs":null,"finish_reason":null}],)"
          R"("usage":null})",
      h + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})",
      h + R"(],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,)"
          R"("prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},)"
          R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
          R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"yz"})",
  };
  stream_assembler a;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    CHECK(a.feed(chunks[i]));
    CHECK(a.complete() == (i + 1 == chunks.size()));
  }
  CHECK_FALSE(a.filtered_or_truncated());
  check_json_eq(
      a.result(),
      R"({"id":"chatcmpl-R","object":"chat.completion","created":1727,)"
      R"("model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant",)"
      R"("content":"Bonjour à tous","refusal":null},"logprobs":null,)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,)"
      R"("total_tokens":13,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},)"
      R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
      R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},)"
      R"("service_tier":"default","system_fingerprint":"fp_1"})");
}

TEST_CASE("assembler: interleaved choices, out of order, and interleaved tool calls") {
  const std::string h =
      R"({"id":"i","object":"chat.completion.chunk","created":2,"model":"m","choices":[)";
  const std::vector<std::string> chunks = {
      h + R"({"index":1,"delta":{"role":"assistant","content":"B"},"finish_reason":null}]})",
      h + R"({"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":1,)"
          R"("id":"c2","type":"function","function":{"name":"g","arguments":""}}]},)"
          R"("finish_reason":null}]})",
      h + R"({"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function",)"
          R"("function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}]})",
      h + R"({"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}},)"
          R"({"index":0,"function":{"arguments":":1}"}}]},"finish_reason":null}]})",
      h + R"({"index":1,"delta":{"content":"b"},"finish_reason":"length"},{"index":0,"delta":{},)"
          R"("finish_reason":"tool_calls"}]})",
  };
  stream_assembler a;
  for (const auto& c : chunks) CHECK(a.feed(c));
  CHECK_FALSE(a.complete());  // no usage yet
  CHECK(a.filtered_or_truncated());
  CHECK(a.feed(h + R"(],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})"));
  CHECK(a.complete());
  check_json_eq(
      a.result(),
      R"({"id":"i","object":"chat.completion","created":2,"model":"m","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1",)"
      R"("type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"c2",)"
      R"("type":"function","function":{"name":"g","arguments":"{}"}}]},"logprobs":null,)"
      R"("finish_reason":"tool_calls"},{"index":1,"message":{"role":"assistant",)"
      R"("content":"Bb"},"logprobs":null,"finish_reason":"length"}],)"
      R"("usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})");
  // Choices come out by index.
  const std::string r = a.result();
  CHECK(r.find("\"index\":0") < r.find("\"index\":1"));
}

TEST_CASE("assembler: logprobs content arrays are concatenated") {
  const std::string h =
      R"({"id":"l","object":"chat.completion.chunk","created":3,"model":"m","choices":[)";
  stream_assembler a;
  CHECK(a.feed(h +
               R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":{"content":[],)"
               R"("refusal":null},"finish_reason":null}]})"));
  CHECK(a.feed(h + R"({"index":0,"delta":{"content":"A"},"logprobs":{"content":[{"token":"A",)"
                   R"("logprob":-0.5,"bytes":[65],"top_logprobs":[]}],"refusal":null},)"
                   R"("finish_reason":null}]})"));
  CHECK(a.feed(h + R"({"index":0,"delta":{"content":"B"},"logprobs":{"content":[{"token":"B",)"
                   R"("logprob":-1.25,"bytes":[66],"top_logprobs":[{"token":"B","logprob":-1.25,)"
                   R"("bytes":[66]}]}],"refusal":null},"finish_reason":null}]})"));
  CHECK(a.feed(h + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})"));
  CHECK(a.feed(h + R"(],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})"));
  REQUIRE(a.complete());
  rapidjson::Document d;
  const std::string r = a.result();
  REQUIRE(parse(d, r));
  CHECK(dump(d["choices"][0]["logprobs"]) ==
        R"({"content":[{"token":"A","logprob":-0.5,"bytes":[65],"top_logprobs":[]},)"
        R"({"token":"B","logprob":-1.25,"bytes":[66],"top_logprobs":[{"token":"B",)"
        R"("logprob":-1.25,"bytes":[66]}]}],"refusal":null})");
}

TEST_CASE("assembler: a text_completion stream") {
  const std::string h =
      R"({"id":"cmpl-sim-1","object":"text_completion","created":5,"model":"sim-default",)"
      R"("system_fingerprint":"tcsim-test-double","choices":[)";
  stream_assembler a;
  CHECK(a.feed(h +
               R"({"text":"Once","index":0,"logprobs":null,"finish_reason":null}],"usage":null})"));
  CHECK(a.feed(
      h + R"({"text":" upon","index":0,"logprobs":null,"finish_reason":null}],"usage":null})"));
  CHECK(
      a.feed(h + R"({"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":null})"));
  CHECK_FALSE(a.complete());
  CHECK(a.feed(h + R"(],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}})"));
  CHECK(a.complete());
  CHECK(a.result() ==
        R"({"id":"cmpl-sim-1","object":"text_completion","created":5,"model":"sim-default",)"
        R"("choices":[{"text":"Once upon","index":0,"logprobs":null,"finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4},)"
        R"("system_fingerprint":"tcsim-test-double"})");
}

TEST_CASE("assembler: bad chunks fail it for good") {
  const std::string ok = sim_chat_stream()[1];
  const char* bad[] = {
      "[DONE]",
      "[1,2]",
      "\"text\"",
      "null",
      "",
      "{\"id\":",
      "{\"a\":1} trailing",
      R"({"error":{"message":"overloaded","type":"server_error","param":null,"code":null}})",
      R"({"id":"x","choices":"no"})",
      R"({"id":"x","choices":[1]})",
      R"({"id":"x","choices":[{"index":-1,"delta":{}}]})",
      R"({"id":"x","choices":[{"index":0,"delta":{"content":5}}]})",
      R"({"id":"x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,)"
      R"("function":{"arguments":7}}]}}]})",
      R"({"id":"x","object":"chat.completion","choices":[]})",
      R"({"id":"x","choices":[],"usage":"lots"})",
  };
  for (const char* b : bad) {
    CAPTURE(b);
    stream_assembler a;
    CHECK(a.feed(ok));
    CHECK_FALSE(a.feed(b));
    CHECK(a.failed());
    CHECK_FALSE(a.feed(ok));  // stays failed
    CHECK_FALSE(a.complete());
    CHECK(a.result().empty());
  }
  // A chunk whose object contradicts the stream's.
  stream_assembler mixed;
  CHECK(mixed.feed(ok));
  CHECK_FALSE(mixed.feed(R"({"object":"text_completion","choices":[]})"));
  // Deep nesting is refused without recursion.
  std::string deep = R"({"id":"x","choices":[{"index":0,"delta":{"x":)";
  for (int i = 0; i < 100000; ++i) deep += '[';
  stream_assembler d;
  CHECK_FALSE(d.feed(deep));
  CHECK(d.failed());
  // An embedded NUL is not JSON.
  stream_assembler z;
  CHECK_FALSE(z.feed(std::string("{\"id\":\"a\0b\"}", 12)));
}

TEST_CASE("assembler: completion and filtering") {
  const std::string h =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[)";
  const std::string usage =
      h + R"(],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})";
  stream_assembler a;
  CHECK_FALSE(a.complete());
  CHECK(a.feed(usage));
  CHECK_FALSE(a.complete());  // no choice yet
  CHECK(a.feed(h + R"({"index":0,"delta":{"content":"x"},"finish_reason":"stop"},{"index":1,)"
                   R"("delta":{"content":"y"},"finish_reason":null}]})"));
  CHECK_FALSE(a.complete());  // choice 1 is open
  CHECK(a.feed(h + R"({"index":1,"delta":{},"finish_reason":"content_filter"}]})"));
  CHECK(a.complete());
  CHECK(a.filtered_or_truncated());

  stream_assembler b;
  CHECK(b.feed(h + R"({"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]})"));
  CHECK(b.feed(usage));
  CHECK(b.complete());
  CHECK_FALSE(b.filtered_or_truncated());

  // Moves carry the state; a moved-from assembler starts over.
  stream_assembler c(std::move(b));
  CHECK(c.complete());
  stream_assembler e;
  e = std::move(c);
  CHECK(e.complete());
  CHECK(e.result().find("\"content\":\"x\"") != std::string::npos);
  CHECK_FALSE(c.complete());  // NOLINT(bugprone-use-after-move): defined as empty
  CHECK(c.feed(usage));
}

TEST_CASE("synthesize: exact chunks of a short answer") {
  const std::string response =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"logprobs":null,)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,)"
      R"("total_tokens":2}})";
  const std::string h =
      R"(data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)"
      R"("choices":[)";
  CHECK(synthesize_stream(response, true) ==
        h +
            R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
            R"("finish_reason":null}],"usage":null})"
            "\n\n" +
            h +
            R"({"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],)"
            R"("usage":null})"
            "\n\n" +
            h +
            R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})"
            "\n\n" +
            h +
            R"(],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})"
            "\n\n"
            "data: [DONE]\n\n");
  CHECK(synthesize_stream(response, false) ==
        h +
            R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,)"
            R"("finish_reason":null}]})"
            "\n\n" +
            h +
            R"({"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]})"
            "\n\n" +
            h +
            R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]})"
            "\n\n"
            "data: [DONE]\n\n");
}

TEST_CASE("synthesize: the sim's body streams like the sim") {
  const std::string sse = synthesize_stream(sim_chat_body, true, 6);
  const auto payloads = check_stream_shape(sse, true, true);
  // Role chunk, "Hello ", "world.", finish, usage, [DONE].
  REQUIRE(payloads.size() == 6);
  CHECK(payloads[0].find(R"("delta":{"role":"assistant","content":"","refusal":null})") !=
        std::string::npos);
  CHECK(payloads[0].find(R"("system_fingerprint":"tcsim-test-double")") != std::string::npos);
  CHECK(payloads[1].find(R"("delta":{"content":"Hello "})") != std::string::npos);
  CHECK(payloads[2].find(R"("delta":{"content":"world."})") != std::string::npos);
  CHECK(assemble(payloads) == sim_chat_body);
}

TEST_CASE("synthesize: tool calls go one chunk per call") {
  const std::string sse = synthesize_stream(responses[2], false);
  const auto payloads = check_stream_shape(sse, false, true);
  REQUIRE(payloads.size() == 5);  // role, 2 calls, finish, [DONE]
  rapidjson::Document d;
  REQUIRE(parse(d, payloads[0]));
  CHECK(dump(d["choices"][0]["delta"]) == R"({"role":"assistant","content":null,"refusal":null})");
  REQUIRE(parse(d, payloads[2]));
  CHECK(dump(d["choices"][0]["delta"]) ==
        R"({"tool_calls":[{"index":1,"id":"call_b2","type":"function",)"
        R"("function":{"name":"get_time","arguments":"{\"tz\":\"Europe/Paris\"}"}}]})");
}

TEST_CASE("synthesize: pieces never split a UTF-8 sequence") {
  const std::string content = "a€😀b世界𝄞é";  // 1, 3, 4, 1, 3, 3, 4, 2 bytes
  const std::string response =
      R"({"id":"u","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":")" +
      content + R"("},"finish_reason":"stop"}]})";
  for (uint32_t piece = 0; piece <= 9; ++piece) {
    CAPTURE(piece);
    const auto payloads =
        check_stream_shape(synthesize_stream(response, false, piece), false, true);
    std::string joined;
    std::size_t pieces = 0;
    for (const std::string& p : payloads) {
      if (p == "[DONE]") continue;
      rapidjson::Document d;
      REQUIRE(parse(d, p));
      const rapidjson::Value& delta = d["choices"][0]["delta"];
      if (!delta.HasMember("content") || delta.HasMember("role")) continue;
      const std::string s(delta["content"].GetString(), delta["content"].GetStringLength());
      CHECK(valid_utf8(s));
      CHECK(!s.empty());
      CHECK((s.size() <= std::max<uint32_t>(piece, 1) || code_points(s) == 1));
      joined += s;
      ++pieces;
    }
    CHECK(joined == content);
    if (piece == 4) CHECK(pieces == 6);  // "a€" "😀" "b世" "界" "𝄞" "é"
  }
}

TEST_CASE("synthesize: round trip through the splitter and the assembler") {
  for (const char* r : responses) {
    const std::string response = r;
    rapidjson::Document in;
    REQUIRE(parse(in, response));
    const bool chat = std::string(in["object"].GetString()) == "chat.completion";
    for (uint32_t piece : {1u, 3u, 16u, 64u}) {
      for (bool include_usage : {true, false}) {
        CAPTURE(response);
        CAPTURE(piece);
        CAPTURE(include_usage);
        const std::string sse = synthesize_stream(response, include_usage, piece);
        REQUIRE(!sse.empty());
        check_stream_shape(sse, include_usage, chat);
        for (std::size_t chunking : {std::size_t{0}, std::size_t{7}}) {
          const std::string got = assemble(events(sse, chunking), include_usage);
          if (include_usage) {
            check_json_eq(got, response);
          } else {
            check_json_eq(got, response, {"usage"});
          }
        }
      }
    }
  }
}

TEST_CASE("synthesize: per-token logprobs and a long answer") {
  const auto lp = check_stream_shape(synthesize_stream(responses[6], false), false, true);
  REQUIRE(lp.size() == 5);  // role, "Hi", " there", finish, [DONE]
  rapidjson::Document d;
  REQUIRE(parse(d, lp[2]));
  CHECK(dump(d["choices"][0]["delta"]) == R"({"content":" there"})");
  CHECK(d["choices"][0]["logprobs"]["content"].Size() == 1);

  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
  const std::string response =
      R"({"id":"long","object":"chat.completion","created":9,"model":"m",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":")" +
      text +
      R"("},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,)"
      R"("completion_tokens":200,"total_tokens":201}})";
  const auto payloads = check_stream_shape(synthesize_stream(response, true, 64), true, true);
  CHECK(payloads.size() == 1 + (text.size() + 63) / 64 + 1 + 1 + 1);
  check_json_eq(assemble(payloads), response);
}

TEST_CASE("synthesize: not a response gives nothing") {
  const char* bad[] = {
      "",
      "[]",
      "null",
      "{\"id\":",
      R"({"error":{"message":"x","type":"server_error","param":null,"code":null}})",
      R"({"id":"x","object":"chat.completion"})",
      R"({"id":"x","object":"list","choices":[]})",
      R"({"id":"x","object":"chat.completion","choices":[1]})",
      R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":"hi"}]})",
      R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"content":5}}]})",
      R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"content":"a",)"
      R"("tool_calls":{}}}]})",
      R"({"id":"x","object":"text_completion","choices":[{"index":0,"text":7}]})",
  };
  for (const char* b : bad) {
    CAPTURE(b);
    CHECK(synthesize_stream(b, true).empty());
  }
  std::string deep =
      R"({"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"content":"a","x":)";
  for (int i = 0; i < 100000; ++i) deep += '{';
  CHECK(synthesize_stream(deep, true).empty());
}

TEST_CASE("synthesize: invalid UTF-8 in a stored answer still yields valid JSON") {
  const std::string response =
      "{\"id\":\"b\",\"object\":\"chat.completion\",\"created\":1,"
      "\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"content\":"
      "\"ok\xff\xc3(\\udc00!\"},\"finish_reason\":\"stop\"}]}";
  const std::string sse = synthesize_stream(response, false, 2);
  REQUIRE(!sse.empty());
  CHECK(valid_utf8(sse));
  for (const std::string& p : events(sse)) {
    if (p == "[DONE]") continue;
    rapidjson::Document d;
    d.Parse<rapidjson::kParseValidateEncodingFlag>(p.data(), p.size());
    CHECK_FALSE(d.HasParseError());
  }
}

TEST_CASE("with_stream_usage: exact edits") {
  struct example {
    const char* in;
    const char* out;
  };
  const example cases[] = {
      {R"({"model":"m","stream":true})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})"},
      {R"({"model":"m","stream":true,"stream_options":{"include_usage":false}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})"},
      {R"({"stream_options":{"include_usage":null},"stream":true})",
       R"({"stream_options":{"include_usage":true},"stream":true})"},
      {R"({"stream_options":{},"stream":true})",
       R"({"stream_options":{"include_usage":true},"stream":true})"},
      {R"({"stream_options":{ },"stream":true})",
       R"({"stream_options":{"include_usage":true },"stream":true})"},
      {R"({"stream_options":{"x":[1,{"include_usage":false}]},"stream":true})",
       R"({"stream_options":{"x":[1,{"include_usage":false}],"include_usage":true},)"
       R"("stream":true})"},
      {R"({"stream_options":null,"stream":true})",
       R"({"stream_options":{"include_usage":true},"stream":true})"},
      {R"({})", R"({"stream_options":{"include_usage":true}})"},
      {"{ }", R"({"stream_options":{"include_usage":true} })"},
      // Whitespace everywhere is kept.
      {"{\n  \"model\": \"m\",\n  \"stream_options\" : { \"include_usage\" : false } ,\n"
       "  \"stream\": true\n}\n",
       "{\n  \"model\": \"m\",\n  \"stream_options\" : { \"include_usage\" : true } ,\n"
       "  \"stream\": true\n}\n"},
      {"{\"stream\": true }  ",
       "{\"stream\": true,\"stream_options\":{\"include_usage\":true} }  "},
      // The text "stream_options" inside strings and nested objects is not the field.
      {R"({"messages":[{"role":"user","content":"\"stream_options\":{\"include_usage\":false}")"
       R"(}],"metadata":{"stream_options":{"include_usage":false}},"stream":true})",
       R"({"messages":[{"role":"user","content":"\"stream_options\":{\"include_usage\":false})"
       R"("}],"metadata":{"stream_options":{"include_usage":false}},"stream":true,)"
       R"("stream_options":{"include_usage":true}})"},
      // An escaped key is still the field.
      {R"({"stream\u005foptions":{"include\u005Fusage":false}})",
       R"({"stream\u005foptions":{"include\u005Fusage":true}})"},
      // A key with an escaped quote or backslash before the value.
      {R"({"a\"b\\":"}{","stream":true})",
       R"({"a\"b\\":"}{","stream":true,"stream_options":{"include_usage":true}})"},
  };
  for (const example& c : cases) {
    CAPTURE(c.in);
    const std::string once = with_stream_usage(c.in);
    CHECK(once == c.out);
    CHECK(with_stream_usage(once) == once);  // idempotent
    rapidjson::Document got, orig;
    REQUIRE(parse(got, once));
    REQUIRE(parse(orig, c.in));
    rapidjson::Value* so = nullptr;
    for (auto& m : got.GetObject()) {
      if (std::string(m.name.GetString()) == "stream_options") so = &m.value;
    }
    REQUIRE(so != nullptr);
    REQUIRE(so->IsObject());
    CHECK((*so)["include_usage"].IsTrue());
    // Every other member is unchanged.
    got.RemoveMember("stream_options");
    orig.RemoveMember("stream_options");
    CHECK(got == orig);
  }
}

TEST_CASE("with_stream_usage: already set or unexpected bodies are returned unchanged") {
  const char* same[] = {
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
      R"({"stream_options":{"include_usage" : true}})",
      "",
      "   ",
      "[1,2]",
      "\"stream_options\"",
      "{\"a\":",
      "{\"a\":1",
      "{\"a\" 1}",
      "{\"a\":1} x",
      "{\"a\":1}}",
      R"({"stream_options":"yes"})",
      R"({"stream_options":[]})",
      R"({"stream_options":true})",
      R"({"stream_options":{"include_usage":true)",
  };
  for (const char* s : same) {
    CAPTURE(s);
    CHECK(with_stream_usage(s) == s);
  }
}

TEST_CASE("is_usage_chunk") {
  CHECK(is_usage_chunk(sim_chat_stream().back()));
  CHECK(is_usage_chunk(R"({"id":"x","choices": [ ],"usage": {"prompt_tokens":1}})"));
  CHECK(is_usage_chunk(R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m",)"
                       R"("service_tier":"default","system_fingerprint":"fp","choices":[],)"
                       R"("usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,)"
                       R"("prompt_tokens_details":{"cached_tokens":0}},"obfuscation":"q"})"));

  const auto chunks = sim_chat_stream();
  for (std::size_t i = 0; i + 1 < chunks.size(); ++i) CHECK_FALSE(is_usage_chunk(chunks[i]));
  // usage on a content chunk (continuous usage stats): not the usage-only chunk.
  CHECK_FALSE(is_usage_chunk(
      R"({"id":"x","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}})"));
  CHECK_FALSE(is_usage_chunk(R"({"id":"x","choices":[],"usage":null})"));
  CHECK_FALSE(is_usage_chunk(R"({"id":"x","usage":{"prompt_tokens":1}})"));
  // The key text inside a string, or nested, is not the field.
  CHECK_FALSE(is_usage_chunk(
      R"({"id":"x","choices":[{"index":0,"delta":{"content":"\"choices\":[],\"usage\":{}"}}],)"
      R"("usage":null})"));
  CHECK_FALSE(
      is_usage_chunk(R"({"id":"x","choices":[{"index":0}],"meta":{"choices":[],"usage":{}}})"));
  // Passes the pre-check but is not JSON.
  CHECK_FALSE(is_usage_chunk(R"({"choices":[],"usage":{)"));
  CHECK_FALSE(is_usage_chunk(""));
  CHECK_FALSE(is_usage_chunk("[DONE]"));
}
