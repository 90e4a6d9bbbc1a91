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
