// Step 8 through the whole node (issue 6): requests beyond an endpoint's max_concurrency are
// held in the model's batcher and released in priority order (a P0 key's request overtakes
// queued P4 ones); a full queue and a wait past the timeout are answered 503 with Retry-After;
// a bad x-tc-priority is a 400; a queued request whose client leaves is dropped. The node keeps
// serving throughout.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// An in-process sim that serves one request at a time through the gateway: each answer of
/// `max_tokens` tokens takes about 5 ms + max_tokens / tokens_per_sec.
std::string one_slot_node(double tokens_per_sec, std::string_view scheduling) {
  std::string s = server_toml() + "[scheduling]\n" + std::string(scheduling);
  if (s.back() != '\n') s += '\n';
  s += "[[providers]]\nname = \"sim\"\ntype = \"sim\"\nmax_concurrency = 1\n";
  s += "[providers.sim]\nttft_ms = 5\ntokens_per_sec = " + std::to_string(tokens_per_sec) + "\n";
  s += "[[providers.models]]\nname = \"sim-chat\"\n";
  return s;
}

/// One request's answer and when it came, relative to the test's start.
struct finished {
  std::string who;
  response r;
  std::chrono::steady_clock::duration at{};
};

}  // namespace

TEST_CASE("scheduling: beyond max_concurrency requests wait, and a P0 key's goes first") {
  node_process node;
  REQUIRE_MESSAGE(node.start(one_slot_node(200, "")), node.error());
  create_tenant(node, R"({"id":"acme"})");
  const std::string p0 = create_key(node, "acme", R"("priority":0)");
  const std::string p4 = create_key(node, "acme", R"("priority":4)");
  const auto start = std::chrono::steady_clock::now();
  std::mutex mx;
  std::vector<finished> done;
  auto send = [&](std::string who, const std::string& key, int i) {
    response r = chat(node, key, "scheduling question " + std::to_string(i), R"("max_tokens":20)");
    std::lock_guard<std::mutex> lock(mx);
    done.push_back({std::move(who), std::move(r), std::chrono::steady_clock::now() - start});
  };
  std::vector<std::thread> threads;
  // One P4 request takes the only slot, four more P4s queue behind it ...
  for (int i = 0; i < 5; ++i) threads.emplace_back(send, "p4", p4, i);
  REQUIRE(eventually([&] { return node_metric(node, "tc_queue_depth").value_or(0) >= 4; }, 5000ms));
  // ... then a P0 request arrives: it is released as soon as the slot frees.
  threads.emplace_back(send, "p0", p0, 100);
  for (auto& t : threads) t.join();
  REQUIRE(done.size() == 6);
  for (const auto& f : done) {
    INFO(f.who, ": ", f.r.body, " node: ", node.log_tail());
    REQUIRE(f.r.status == 200);
  }
  const auto p0_at =
      std::find_if(done.begin(), done.end(), [](const finished& f) { return f.who == "p0"; })->at;
  const auto later = std::count_if(
      done.begin(), done.end(), [&](const finished& f) { return f.who == "p4" && f.at > p0_at; });
  CHECK(later >= 3);  // only the P4 in flight (and perhaps one released with it) came first
  // Queued requests say how long they waited; the header is whole milliseconds.
  int64_t most_ms = 0;
  for (const auto& f : done)
    most_ms = std::max<int64_t>(most_ms, std::stoll(f.r.header("x-tc-queue-ms")));
  CHECK(most_ms >= 100);
  CHECK(node_metric(node, "tc_dispatched_total").value_or(0) == 6);
  CHECK(node_metric(node, "tc_queue_depth").value_or(-1) == 0);
  CHECK(wait_node_idle(node, 5000ms).empty());
}

TEST_CASE("scheduling: a full queue and a queue timeout answer 503 with Retry-After") {
  node_process node;
  REQUIRE_MESSAGE(node.start(one_slot_node(20, "max_queue_depth = 1\nqueue_timeout_ms = 300\n")),
                  node.error());
  // A takes the slot for about a second (20 tokens at 20 tokens/s).
  response a;
  std::thread first([&] { a = chat(node, "", "slow one", R"("max_tokens":20)"); });
  REQUIRE(eventually([&] { return node_metric(node, "tc_dispatched_total").value_or(0) >= 1; },
                     5000ms));
  // B waits in the queue (depth 1) ...
  response b;
  const auto b_sent = std::chrono::steady_clock::now();
  std::thread second([&] { b = chat(node, "", "waits", R"("max_tokens":5)"); });
  REQUIRE(eventually([&] { return node_metric(node, "tc_queue_depth").value_or(0) >= 1; }, 5000ms));
  // ... so C finds it full: refused at once.
  response c = chat(node, "", "no room", R"("max_tokens":5)");
  CHECK(c.status == 503);
  CHECK(error_of(c.body).code == "queue_full");
  CHECK(!c.header("retry-after").empty());
  second.join();
  // B gave up after the queue timeout, long before A's slot was free.
  const auto b_took = std::chrono::steady_clock::now() - b_sent;
  CHECK(b.status == 503);
  CHECK(error_of(b.body).code == "queue_timeout");
  CHECK(error_of(b.body).type == "service_unavailable");
  CHECK(std::stoi(b.header("retry-after")) >= 1);
  CHECK(b_took >= 250ms);
  first.join();
  CHECK(a.status == 200);
  // The refusals are counted, and the node serves the next request.
  CHECK(node_metric(node, "tc_queue_refused_total").value_or(0) == 2);
  response d = chat(node, "", "after", R"("max_tokens":2)");
  CHECK(d.status == 200);
  CHECK(wait_node_idle(node, 5000ms).empty());
}

TEST_CASE(
    "scheduling: x-tc-priority must be 0-4 or P0-P4, and with scheduling off requests go at once") {
  node_process node;
  REQUIRE_MESSAGE(node.start(one_slot_node(2000, "enabled = false\n")), node.error());
  response bad = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hello"),
                           {{"x-tc-priority", "urgent"}});
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "x-tc-priority");
  response ok = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hello"),
                          {{"x-tc-priority", "P3"}});
  CHECK(ok.status == 200);
  CHECK(ok.header("x-tc-queue-ms") == "0");
  // scheduling.enabled = false: no batcher, nothing counted.
  CHECK(node_metric(node, "tc_dispatched_total").value_or(0) == 0);
}

TEST_CASE("scheduling: a queued request whose client leaves is dropped from the queue at once") {
  node_process node;
  REQUIRE_MESSAGE(node.start(one_slot_node(20, "queue_timeout_ms = 60000\n")), node.error());
  // A takes the only slot for about a second.
  response a;
  std::thread first([&] { a = chat(node, "", "slow one", R"("max_tokens":20)"); });
  REQUIRE(eventually([&] { return node_metric(node, "tc_dispatched_total").value_or(0) >= 1; },
                     5000ms));
  // B queues behind it, then its client goes away.
  http_connection b;
  REQUIRE(b.connect(node.data_port()));
  REQUIRE(b.send_all(make_request("POST", "/v1/chat/completions",
                                  chat_body("sim-chat", "will leave", R"("max_tokens":5)"))));
  REQUIRE(eventually([&] { return node_metric(node, "tc_queue_depth").value_or(0) == 1; }, 5000ms));
  b.close();
  // It leaves the queue long before A's slot frees, and is never sent upstream.
  CHECK(eventually([&] { return node_metric(node, "tc_queue_depth").value_or(-1) == 0; }, 500ms,
                   10ms));
  first.join();
  CHECK(a.status == 200);
  CHECK(node_metric(node, "tc_dispatched_total").value_or(0) == 1);
  CHECK(wait_node_idle(node, 5000ms).empty());
}

namespace {

/// A node whose only upstream is a tcsim taking prompt arrays, with a size window of 4 for
/// sim-chat: four requests queued together are released together.
struct array_node {
  sim_process sim;
  node_process node;

  array_node() {
    REQUIRE_MESSAGE(sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), sim.error());
    std::string provider = openai_provider_toml(sim.port(), "batch_dispatch = \"prompt_array\"\n");
    const auto at = provider.find("name = \"sim-chat\"");
    REQUIRE(at != std::string::npos);
    provider.insert(provider.find('\n', at) + 1,
                    "batch_strategy = \"size\"\nbatch_max_size = 4\nbatch_max_wait_ms = 3000\n");
    REQUIRE_MESSAGE(node.start(server_toml() + provider), node.error());
  }

  /// Sends the four bodies at once; their answers, in order.
  std::vector<response> four(const std::vector<std::string>& bodies) {
    std::vector<response> out(bodies.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < bodies.size(); ++i)
      threads.emplace_back(
          [&, i] { out[i] = post_json(node.data_port(), "/v1/completions", bodies[i]); });
    for (auto& t : threads) t.join();
    return out;
  }
};

std::string completion(std::string_view prompt, std::string_view extra = "\"temperature\":0") {
  std::string b = R"({"model":"sim-chat","max_tokens":6,"prompt":")";
  b += prompt;
  b += "\"";
  if (!extra.empty()) {
    b += ',';
    b += extra;
  }
  b += '}';
  return b;
}

}  // namespace

TEST_CASE("scheduling: prompt_array merges completions into one upstream call and splits them") {
  array_node n;
  const double before = n.sim.metric("tcsim_requests_total").value_or(-1);
  const std::vector<response> got = n.four({completion("alpha one"), completion("beta two two"),
                                            completion("gamma"), completion("delta four")});
  CHECK(n.sim.metric("tcsim_requests_total").value_or(-1) == before + 1);  // one call for four
  std::vector<std::string> ids, texts;
  for (const response& r : got) {
    INFO(r.body, " node: ", n.node.log_tail());
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tc-batch") == "4");
    CHECK(r.header("x-tc-cache") == "miss");
    auto d = parse_json(r.body);
    REQUIRE(d.IsObject());
    CHECK(str_of(d, "object") == "text_completion");
    REQUIRE(d["choices"].Size() == 1);
    CHECK(d["choices"][0]["index"].GetInt() == 0);
    texts.push_back(str_of(d["choices"][0], "text"));
    CHECK(!texts.back().empty());
    ids.push_back(str_of(d, "id"));
    const auto& u = d["usage"];
    CHECK(u["total_tokens"].GetUint() ==
          u["prompt_tokens"].GetUint() + u["completion_tokens"].GetUint());
    CHECK(u["completion_tokens"].GetUint() >= 1);
  }
  std::sort(ids.begin(), ids.end());
  CHECK(std::unique(ids.begin(), ids.end()) == ids.end());  // each answer has an id of its own
  CHECK(node_metric(n.node, "tc_prompt_array_prompts_total").value_or(0) == 4);
  CHECK(node_metric(n.node, "tc_prompt_array_calls_total").value_or(0) == 1);
  CHECK(wait_node_idle(n.node, 5000ms).empty());
}

TEST_CASE("scheduling: prompt_array merges only requests sampled alike, and never streams") {
  array_node n;
  const double before = n.sim.metric("tcsim_requests_total").value_or(-1);
  // Two pairs that differ in temperature: two merged calls of two.
  const std::vector<response> got =
      n.four({completion("one"), completion("two", "\"temperature\":0.7"), completion("three"),
              completion("four", "\"temperature\":0.7")});
  for (const response& r : got) {
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tc-batch") == "2");
  }
  CHECK(n.sim.metric("tcsim_requests_total").value_or(-1) == before + 2);
  // A stream and an n=2 request go alone, next to two that merge.
  const std::vector<response> mixed =
      n.four({completion("five"), completion("six", "\"stream\":true"), completion("seven"),
              completion("eight", "\"n\":2")});
  for (const response& r : mixed) REQUIRE(r.status == 200);
  CHECK(mixed[0].header("x-tc-batch") == "2");
  CHECK(mixed[1].header("x-tc-batch").empty());
  CHECK(mixed[1].body.find("data: [DONE]") != std::string::npos);
  CHECK(mixed[3].header("x-tc-batch").empty());
  CHECK(parse_json(mixed[3].body)["choices"].Size() == 2);
  CHECK(n.sim.metric("tcsim_requests_total").value_or(-1) == before + 5);
  CHECK(wait_node_idle(n.node, 5000ms).empty());
}
