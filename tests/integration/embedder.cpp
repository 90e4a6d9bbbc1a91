// The openai embedder of the semantic tier (issue 3), through a real tcnode whose embedder is a
// real tcsim's /v1/embeddings.
//
// What the sim's embeddings can show: tcsim's vector of a text is pseudo-random per text (the
// same text always gives the same vector, two different texts are nearly orthogonal), so a
// paraphrase is never similar. The honest semantic hit is the same query text under another
// exact key: the user content as a string, then as a list with one text part (different
// messages JSON, so a different full hash; the same query text, namespace and guard). The
// template tier is turned off, or it would answer that case first.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// [cache] with the openai embedder on provider `provider` (sending model sim-embed).
std::string embedder_toml(std::string_view provider, std::string_view extra = {}) {
  std::string s = "[cache]\ntemplate_tier = false\nembedder = \"openai\"\n";
  s += "embedder_provider = \"" + std::string(provider) + "\"\n";
  s += "embedder_model = \"sim-embed\"\n";
  s += extra;
  if (!s.empty() && s.back() != '\n') s += '\n';
  return s;
}

/// A deterministic chat request whose user content is a list with one text part.
std::string parts_body(std::string_view text) {
  return R"({"model":"sim-chat","temperature":0,"messages":[{"role":"user","content":[)"
         R"({"type":"text","text":")" +
         std::string(text) + R"("}]}]})";
}

response ask(const node_process& node, std::string_view content) {
  return post_json(node.data_port(), "/v1/chat/completions",
                   chat_body("sim-chat", content, "\"temperature\":0"));
}

double metric(const node_process& node, std::string_view name, std::string_view labels = {}) {
  response r = get(node.admin_port(), "/metrics", 3000ms);
  if (r.status != 200) return -1;
  return metric_sum(r.body, name, labels).value_or(-1);
}

}  // namespace

TEST_CASE("openai embedder: the same question under another exact key hits the semantic tier") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(
      node.start(server_toml() + embedder_toml("up") + openai_provider_toml(sim.port())),
      node.error());
  const std::string question = "What is the boiling point of water at sea level?";
  REQUIRE(ask(node, question).header("x-tc-cache") == "miss");
  // The answer and its semantic pointer are stored after the answer went out.
  REQUIRE(eventually([&] { return metric(node, "tc_cache_semantic_entries") == 1; }, 5s));
  response again = post_json(node.data_port(), "/v1/chat/completions", parts_body(question));
  CHECK(again.status == 200);
  // The same text has the same vector: sim=0.99 or 1.00 (hnswlib's float arithmetic).
  CHECK(again.header("x-tc-cache").rfind("hit-semantic;sim=", 0) == 0);
  CHECK(again.header("x-tc-cache") >= "hit-semantic;sim=0.99");
  // Another question is far from it: a miss.
  CHECK(ask(node, "How tall is the tallest mountain on Earth?").header("x-tc-cache") == "miss");
  CHECK(metric(node, "tc_embedder_calls_total", "outcome=\"ok\"") >= 2);
  CHECK(metric(node, "tc_embedder_calls_total", "outcome=\"transport\"") == 0);
  CHECK(node.stop().code == 0);
}

TEST_CASE("openai embedder: concurrent misses share embedding calls") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + embedder_toml("up", "embedder_batch_wait_ms = 50") +
                             openai_provider_toml(sim.port())),
                  node.error());
  constexpr int n = 16;
  std::vector<response> rs(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      rs[static_cast<size_t>(i)] =
          ask(node, "Distinct question number " + std::to_string(i) + " about rivers?");
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : rs) {
    CHECK(r.status == 200);
    CHECK(r.header("x-tc-cache") == "miss");
  }
  const double calls = metric(node, "tc_embedder_calls_total", "outcome=\"ok\"");
  INFO("embedding calls for ", n, " misses: ", calls);
  CHECK(calls >= 1);
  CHECK(calls < n);
  CHECK(metric(node, "tc_embedder_texts_total") == n);
  CHECK(node.stop().code == 0);
}

TEST_CASE("openai embedder: with its provider down, requests still answer (a miss, then exact)") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), sim.error());
  uint16_t dead_port = 0;  // nothing listens there: every embedding call fails at once
  {
    int fd = listen_loopback(dead_port);
    REQUIRE(fd >= 0);
    ::close(fd);
  }
  const std::string dead =
      "[[providers]]\nname = \"emb\"\ntype = \"openai\"\nbase_url = "
      "\"http://127.0.0.1:" +
      std::to_string(dead_port) +
      "/v1\"\n[[providers.models]]\nname = \"emb-embed\"\nkind = "
      "\"embedding\"\n";
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + embedder_toml("emb", "embedder_batch_wait_ms = 0") +
                             openai_provider_toml(sim.port()) + dead),
                  node.error());
  const std::string question = "Which planet has the most moons?";
  response first = ask(node, question);
  CHECK(first.status == 200);
  CHECK(first.header("x-tc-cache") == "miss");
  // Its answer is stored, without a semantic pointer (there was no embedding) ...
  REQUIRE(eventually([&] { return metric(node, "tc_cache_entries") >= 1; }, 5s));
  CHECK(metric(node, "tc_cache_semantic_entries") == 0);
  // ... so the other form of the question is a miss.
  response parts = post_json(node.data_port(), "/v1/chat/completions", parts_body(question));
  CHECK(parts.status == 200);
  CHECK(parts.header("x-tc-cache") == "miss");
  // The exact tier does not need the embedder.
  response repeat;
  REQUIRE(eventually(
      [&] {
        repeat = ask(node, question);
        return repeat.header("x-tc-cache") == "hit-exact";
      },
      5s));
  CHECK(metric(node, "tc_embedder_calls_total", "outcome=\"transport\"") >= 2);
  CHECK(metric(node, "tc_embedder_calls_total", "outcome=\"ok\"") == 0);
  CHECK(node.stop().code == 0);
}
