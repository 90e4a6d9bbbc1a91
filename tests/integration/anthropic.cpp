// The anthropic provider type through the whole node (DESIGN §6): a chat request goes to a
// Messages API endpoint (tcsim's /v1/messages, a test double) translated, and comes back as a
// chat.completion or a chat.completion.chunk stream; the prefix tier's cache_control marks
// make the upstream cache the system prompt (counted as cached tokens); what the Messages API
// cannot do is refused up front.
#include <doctest/doctest.h>

#include <string>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// tcnode whose model sim-chat is served by a tcsim through the Messages API.
struct anthropic_node {
  sim_process sim;
  node_process node;

  explicit anthropic_node(std::string_view provider_extra = {}) {
    REQUIRE_MESSAGE(
        sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000", "--prefix-cache-entries", "16"}),
        sim.error());
    std::string toml = server_toml() + "[cache]\nenabled = false\n";
    toml += "[[providers]]\nname = \"claude\"\ntype = \"anthropic\"\n";
    toml += "base_url = \"http://127.0.0.1:" + std::to_string(sim.port()) + "/v1\"\n";
    toml += provider_extra;
    toml += "[[providers.models]]\nname = \"sim-chat\"\nupstream_name = \"claude-test\"\n";
    REQUIRE_MESSAGE(node.start(toml), node.error());
  }

  response chat(const std::string& body) {
    return post_json(node.data_port(), "/v1/chat/completions", body);
  }
};

std::string with_system(std::string_view user, std::string_view extra = {}) {
  std::string b =
      R"({"model":"sim-chat","max_tokens":8,"messages":[)"
      R"({"role":"system","content":"You are the weather desk. Answer briefly and politely."},)"
      R"({"role":"user","content":")";
  b += user;
  b += "\"}]";
  if (!extra.empty()) {
    b += ',';
    b += extra;
  }
  b += '}';
  return b;
}

}  // namespace

TEST_CASE("anthropic: a chat request is answered as a chat.completion through the Messages API") {
  anthropic_node n;
  response r = n.chat(with_system("Will it rain?"));
  INFO(r.body, " node: ", n.node.log_tail());
  REQUIRE(r.status == 200);
  CHECK(r.header("x-tc-provider") == "claude");
  auto d = parse_json(r.body);
  REQUIRE(d.IsObject());
  CHECK(str_of(d, "object") == "chat.completion");
  CHECK(str_of(d, "model") == "sim-chat");  // the id the client sent, not the upstream's
  CHECK(str_of(d["choices"][0]["message"], "role") == "assistant");
  CHECK(!str_of(d["choices"][0]["message"], "content").empty());
  CHECK(str_of(d["choices"][0], "finish_reason") == "length");  // 8 tokens asked, sim gives more
  CHECK(d["usage"]["completion_tokens"].GetUint() == 8);
  CHECK(d["usage"]["prompt_tokens"].GetUint() > 0);
}

TEST_CASE("anthropic: the system prompt is marked for caching, and its repeats count as cached") {
  anthropic_node n;
  auto cached = [&](const std::string& user) {
    response r = n.chat(with_system(user));
    REQUIRE(r.status == 200);
    auto d = parse_json(r.body);
    REQUIRE(d.IsObject());
    return d["usage"]["prompt_tokens_details"]["cached_tokens"].GetUint();
  };
  CHECK(cached("first question") == 0);  // written to the upstream's cache
  const uint32_t second = cached("second question");
  CHECK(second > 0);
  CHECK(node_metric(n.node, "tc_upstream_tokens_total").value_or(0) > 0);
  auto m = get(n.node.admin_port(), "/metrics");
  CHECK(metric_sum(m.body, "tc_upstream_tokens_total", "kind=\"cached\"").value_or(0) == second);

  // Without the marks the upstream caches nothing.
  anthropic_node plain("cache_control = \"none\"\n");
  response a = plain.chat(with_system("first question"));
  response b = plain.chat(with_system("second question"));
  REQUIRE(b.status == 200);
  auto d = parse_json(b.body);
  CHECK(d["usage"]["prompt_tokens_details"]["cached_tokens"].GetUint() == 0);
}

TEST_CASE("anthropic: a stream comes back as chat.completion.chunk events ending in [DONE]") {
  anthropic_node n;
  response r = n.chat(
      with_system("Is it windy?", R"("stream":true,"stream_options":{"include_usage":true})"));
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").find("text/event-stream") == 0);
  CHECK(r.body.find("data: [DONE]") != std::string::npos);
  CHECK(r.body.find("event: error") == std::string::npos);
  std::string content;
  bool usage = false;
  for (const auto& c : sse_json_chunks(r.body)) {
    CHECK(str_of(c, "object") == "chat.completion.chunk");
    if (c.HasMember("usage") && c["usage"].IsObject()) usage = true;
    if (!c.HasMember("choices")) continue;
    for (const auto& ch : c["choices"].GetArray()) content += str_of(ch["delta"], "content");
  }
  CHECK(!content.empty());
  CHECK(usage);
  // The same question not streamed gives the same text (the sim is deterministic).
  response whole = n.chat(with_system("Is it windy?"));
  auto d = parse_json(whole.body);
  CHECK(str_of(d["choices"][0]["message"], "content") == content);
  // Without include_usage the usage chunk is not relayed (the node still reads it for billing).
  response quiet = n.chat(with_system("Is it sunny?", R"("stream":true)"));
  REQUIRE(quiet.status == 200);
  bool saw = false;
  for (const auto& c : sse_json_chunks(quiet.body))
    saw = saw || (c.HasMember("usage") && c["usage"].IsObject());
  CHECK_FALSE(saw);
}

TEST_CASE(
    "anthropic: tools come back as tool_calls, and what the Messages API cannot do is a 400") {
  anthropic_node n;
  response r = n.chat(with_system(
      "What is the weather in Paris?",
      R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":)"
      R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])"));
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto d = parse_json(r.body);
  REQUIRE(d.IsObject());
  CHECK(str_of(d["choices"][0], "finish_reason") == "tool_calls");
  const auto& call = d["choices"][0]["message"]["tool_calls"][0];
  CHECK(str_of(call["function"], "name") == "get_weather");
  CHECK(parse_json(str_of(call["function"], "arguments")).IsObject());

  response n2 = n.chat(with_system("two answers please", R"("n":2)"));
  CHECK(n2.status == 400);
  CHECK(error_of(n2.body).param == "n");
  response completions =
      post_json(n.node.data_port(), "/v1/completions", R"({"model":"sim-chat","prompt":"hello"})");
  CHECK(completions.status == 400);
  CHECK(error_of(completions.body).type == "invalid_request_error");
  CHECK(wait_node_idle(n.node, 5000ms).empty());
}
