// actors/batcher: requests are held until an endpoint has a slot and tokens, released in
// priority order, refused 503-style when the queue is full or they waited too long, and never
// sent to an endpoint whose breaker is open while another is healthy.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/batcher.hpp"
#include "actors/connection.hpp"
#include "protocol/messages.hpp"
#include "tests/support/actor_system.hpp"
#include "tests/support/call_recorder.hpp"

using namespace tc::actors;

namespace {

using tc::test::poll_until;
using tc::test::quiet_config;

/// The grants (and refusals) the batcher sent, in arrival order.
struct grant_log {
  std::mutex mx;
  std::vector<std::pair<uint64_t, tc::sched_grant>> got;
  size_t size() {
    std::lock_guard<std::mutex> lock(mx);
    return got.size();
  }
  std::vector<uint64_t> ids() {
    std::lock_guard<std::mutex> lock(mx);
    std::vector<uint64_t> out;
    for (const auto& [id, g] : got) out.push_back(id);
    return out;
  }
  tc::sched_grant of(uint64_t id) {
    std::lock_guard<std::mutex> lock(mx);
    for (const auto& [i, g] : got)
      if (i == id) return g;
    return {};
  }
};

/// Asks the batcher on behalf of requests and logs the answers (as connection actors would).
caf::behavior asker(caf::event_based_actor* self, caf::actor batcher,
                    std::shared_ptr<grant_log> log) {
  return {
      [=](tc::sched_ask& a) {
        const uint64_t id = a.id;
        self->request(batcher, caf::infinite, std::move(a)).then([=](tc::sched_grant& g) {
          std::lock_guard<std::mutex> lock(log->mx);
          log->got.emplace_back(id, std::move(g));
        });
      },
      [=](tc::sched_cancel& c) { self->send(batcher, c); },  // after the asks before it
  };
}

struct fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<grant_log> log = std::make_shared<grant_log>();
  caf::actor batcher;
  caf::actor client;

  explicit fixture(std::shared_ptr<batcher_config> c) {
    batcher = sys.spawn(tc::actors::batcher, std::shared_ptr<const batcher_config>(std::move(c)));
    client = sys.spawn(asker, batcher, log);
  }
  ~fixture() {
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(batcher, caf::exit_reason::user_shutdown);
  }
  void ask(uint64_t id, uint8_t priority, uint32_t tokens = 100, std::vector<uint16_t> order = {0},
           std::string tenant = "t") {
    tc::sched_ask a;
    a.id = id;
    a.priority = priority;
    a.tenant = std::move(tenant);
    a.tokens = tokens;
    a.order = std::move(order);
    caf::anon_send(client, std::move(a));
  }
  void done(uint64_t id, uint32_t used = 100) { caf::anon_send(batcher, tc::sched_done{id, used}); }
};

batcher_endpoint endpoint(uint32_t index, uint32_t max_concurrency, double tokens_per_s = 0) {
  batcher_endpoint e;
  e.endpoint = index;
  e.max_concurrency = max_concurrency;
  e.tokens_per_s = tokens_per_s;
  return e;
}

std::shared_ptr<batcher_config> one_endpoint(uint32_t max_concurrency, double tokens_per_s = 0) {
  auto c = std::make_shared<batcher_config>();
  c->batch.max_wait_us = 0;
  c->endpoints.push_back(endpoint(0, max_concurrency, tokens_per_s));
  return c;
}

}  // namespace

TEST_CASE("batcher: holds requests beyond max_concurrency and releases one per finished call") {
  fixture f(one_endpoint(2));
  f.ask(1, 2);
  f.ask(2, 2);
  f.ask(3, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a wrong grant would show now
  CHECK(f.log->size() == 2);
  CHECK(f.log->ids() == std::vector<uint64_t>{1, 2});
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  const tc::sched_grant g = f.log->of(3);
  CHECK(g.refused == tc::sched_granted);
  CHECK(g.order == std::vector<uint16_t>{0});
  CHECK(g.waited_us >= 20'000);
}

TEST_CASE("batcher: P0 is released before queued P3/P4s, and they still go when P0 is done") {
  fixture f(one_endpoint(1));
  f.ask(1, 4);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  f.ask(2, 4);
  f.ask(3, 4);
  f.ask(4, 0);
  f.ask(5, 3);
  // The asks are in the batcher's mailbox before the done (one sender, FIFO), so all four
  // queue before a slot frees.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->ids().back() == 4);  // P0 first
  // P1-P4 share by weighted round-robin (not strictly): the P3 and both P4s all go, and the
  // P4s in their order.
  f.done(4);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  f.done(f.log->ids().back());
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  f.done(f.log->ids().back());
  REQUIRE(poll_until([&] { return f.log->size() == 5; }));
  const std::vector<uint64_t> ids = f.log->ids();
  const auto at = [&](uint64_t id) { return std::find(ids.begin(), ids.end(), id) - ids.begin(); };
  CHECK(at(5) < 5);
  CHECK(at(2) < at(3));
}

TEST_CASE("batcher: reserved slots are P0's: a P0 request goes at once under a flood") {
  auto c = one_endpoint(3);
  c->endpoints[0].p0_reserved = 1;
  fixture f(c);
  for (uint64_t id = 1; id <= 4; ++id) f.ask(id, 4);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));  // 2 of 3 slots: the third is P0's
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(f.log->size() == 2);
  f.ask(10, 0);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->ids().back() == 10);
  CHECK(f.log->of(10).waited_us < 20'000);
  f.done(1);  // a freed shared slot goes to the flood again
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  CHECK(f.log->ids().back() == 3);
}

TEST_CASE("batcher: a cancelled request leaves the queue, a granted one is not touched") {
  fixture f(one_endpoint(1));
  f.ask(1, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  f.ask(2, 2);
  f.ask(3, 2);
  caf::anon_send(f.client, tc::sched_cancel{2});
  caf::anon_send(f.client, tc::sched_cancel{1});  // granted: its sched_done settles it
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->ids().back() == 2);
  CHECK(f.log->of(2).refused == tc::sched_cancelled);
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->ids().back() == 3);  // 2 is gone: 3 is next
  CHECK(f.log->of(3).refused == tc::sched_granted);
}

TEST_CASE("batcher: a full queue sheds its newest lowest-priority request for a higher one") {
  auto c = one_endpoint(1);
  c->queue.max_depth = 2;
  fixture f(c);
  f.ask(1, 4);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  f.ask(2, 4);
  f.ask(3, 4);
  f.ask(4, 0);  // full: 3 (the newest P4) is refused, 4 takes its place
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->ids().back() == 3);
  CHECK(f.log->of(3).refused == tc::sched_queue_full);
  f.ask(5, 4);  // full, nothing below P4: the newcomer is refused
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->of(5).refused == tc::sched_queue_full);
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  CHECK(f.log->ids().back() == 4);
  CHECK(f.log->of(4).refused == tc::sched_granted);
}

TEST_CASE("batcher: a full queue is refused at once with a Retry-After") {
  auto c = one_endpoint(1);
  c->queue.max_depth = 2;
  fixture f(c);
  f.ask(1, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  f.ask(2, 2);
  f.ask(3, 2);
  f.ask(4, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  const tc::sched_grant g = f.log->of(4);
  CHECK(g.refused == tc::sched_queue_full);
  CHECK(g.retry_after_s >= 1);
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->ids().back() == 2);
}

TEST_CASE("batcher: a request held past the queue timeout is refused queue_timeout") {
  auto c = one_endpoint(1);
  c->queue.timeout_ms = 100;
  fixture f(c);
  f.ask(1, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  const auto asked = std::chrono::steady_clock::now();
  f.ask(2, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(std::chrono::steady_clock::now() - asked >= std::chrono::milliseconds(100));
  const tc::sched_grant g = f.log->of(2);
  CHECK(g.refused == tc::sched_queue_timeout);
  CHECK(g.retry_after_s >= 1);
  f.done(1);  // the slot was never given to the refused request
  f.ask(3, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->of(3).refused == tc::sched_granted);
}

TEST_CASE("batcher: the token bucket shapes dispatch to the endpoint's tokens per second") {
  fixture f(one_endpoint(0, 1000));  // 1000 tokens/s, burst 1000, no concurrency cap
  const auto start = std::chrono::steady_clock::now();
  f.ask(1, 2, 600);
  f.ask(2, 2, 600);  // balance 400 > 0: goes, into debt (-200)
  f.ask(3, 2, 600);  // waits for the balance to be positive again: ~200 ms
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= std::chrono::milliseconds(150));
  CHECK(f.log->of(3).waited_us >= 150'000);
  // Settling below the reservation gives tokens back: the next one need not wait 600 ms.
  f.done(1, 10);
  f.done(2, 10);
  f.done(3, 10);
  const auto before = std::chrono::steady_clock::now();
  f.ask(4, 2, 600);
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::milliseconds(400));
}

namespace {

/// Endpoint 0 (4 slots) has its breaker open, endpoint 1 (1 slot) is healthy.
std::shared_ptr<batcher_config> first_open() {
  auto c = std::make_shared<batcher_config>();
  c->batch.max_wait_us = 0;
  c->endpoints.push_back(endpoint(0, 4));
  c->endpoints.push_back(endpoint(1, 1));
  c->board = std::make_shared<routing_board>(2);
  tc::routing::health_snapshot open;
  open.breaker = tc::routing::breaker_state::open;
  open.available = false;
  c->board->live[0].health.store(std::make_shared<const tc::routing::health_snapshot>(open));
  return c;
}

}  // namespace

TEST_CASE("batcher: an endpoint whose breaker is open gets nothing while another is healthy") {
  fixture f(first_open());
  f.ask(1, 2, 100, {0, 1});
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  CHECK(f.log->of(1).order == std::vector<uint16_t>{1, 0});  // granted at 1, 0 as failover
  f.ask(2, 2, 100, {0, 1});  // 1 is full: waits, rather than going to the open one
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.log->size() == 1);
  f.done(1);
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->of(2).order.front() == 1);
}

TEST_CASE("batcher: with every endpoint open, requests still go (and fail fast upstream)") {
  auto c = std::make_shared<batcher_config>();
  c->batch.max_wait_us = 0;
  c->endpoints.push_back(endpoint(0, 4));
  c->board = std::make_shared<routing_board>(1);
  tc::routing::health_snapshot open;
  open.breaker = tc::routing::breaker_state::open;
  c->board->live[0].health.store(std::make_shared<const tc::routing::health_snapshot>(open));
  fixture f(c);
  f.ask(1, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  CHECK(f.log->of(1).refused == tc::sched_granted);
}

TEST_CASE("batcher: a time window holds requests to release them together") {
  auto c = one_endpoint(0);
  c->batch.s = tc::scheduling::strategy::time;
  c->batch.max_wait_us = 60'000;
  c->batch.max_batch = 3;
  fixture f(c);
  f.ask(1, 2);
  f.ask(2, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(f.log->size() == 0);  // held for the window
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->of(1).batch == 2);
  CHECK(f.log->of(1).waited_us >= 50'000);
  // max_batch queued releases at once.
  f.ask(3, 2);
  f.ask(4, 2);
  f.ask(5, 2);
  REQUIRE(poll_until([&] { return f.log->size() == 5; }));
  CHECK(f.log->of(5).batch == 3);
  CHECK(f.log->of(3).waited_us < 50'000);
}

// -- direct grants (batcher_gate) ---------------------------------------------------------------

TEST_CASE("batcher_gate: direct grants take free slots and leave P0's reserve to P0") {
  auto c = one_endpoint(3);
  c->endpoints[0].p0_reserved = 1;
  auto gate = make_gate(*c);
  CHECK(gate->try_direct({0}, 2) == 0);
  CHECK(gate->try_direct({0}, 4) == 0);
  CHECK(gate->try_direct({0}, 2) == -1);  // the last slot is P0's
  CHECK(gate->try_direct({0}, 0) == 0);
  CHECK(gate->try_direct({0}, 0) == -1);  // full
  CHECK(gate->direct_grants() == 3);
  CHECK_FALSE(gate->give_back(0, true));  // nothing held: nobody to tell
  CHECK(gate->try_direct({0}, 3) == -1);  // the freed slot was the reserve
  CHECK(gate->try_direct({0}, 0) == 0);
  CHECK_FALSE(gate->give_back(0, false));
  CHECK(gate->try_direct({0}, 1) == 0);
  CHECK(gate->try_direct({0, 7}, 1) == -1);  // an index outside the model is skipped
}

TEST_CASE(
    "batcher_gate: a window, a token bucket or an open breaker sends requests to the batcher") {
  auto windowed = one_endpoint(4);
  windowed->batch.max_wait_us = 1'000;
  CHECK(make_gate(*windowed)->try_direct({0}, 2) == -1);
  CHECK(make_gate(*one_endpoint(4, 100.0))->try_direct({0}, 2) == -1);
  auto gate = make_gate(*first_open());
  CHECK(gate->try_direct({0, 1}, 2) == 1);   // the open one is passed over
  CHECK(gate->try_direct({0, 1}, 2) == -1);  // the healthy one is full: the batcher decides
  CHECK(gate->try_direct({0}, 2) == -1);     // none healthy: the batcher decides
}

TEST_CASE("batcher: a request held behind direct grants goes when a direct slot is given back") {
  auto c = one_endpoint(1);
  c->gate = make_gate(*c);
  auto gate = c->gate;
  fixture f(c);
  REQUIRE(gate->try_direct({0}, 2) == 0);
  f.ask(1, 2);  // the slot is taken: held
  REQUIRE(poll_until([&] { return gate->held() == 1; }));
  CHECK(gate->try_direct({0}, 0) == -1);  // a request is held: no direct grant, even for P0
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(f.log->size() == 0);
  // Giving the slot back says the batcher must hear of it (its 100 ms expiry tick would find
  // the slot too, late).
  REQUIRE(gate->give_back(0, false));
  caf::anon_send(f.batcher, sched_freed_atom::value);
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  CHECK(f.log->of(1).refused == tc::sched_granted);
  REQUIRE(poll_until([&] { return gate->held() == 0; }));
  CHECK(gate->try_direct({0}, 2) == -1);  // the batcher's grant holds the slot
  f.done(1);
  REQUIRE(poll_until([&] { return gate->has_slot(0, 2); }));
  CHECK(gate->try_direct({0}, 2) == 0);
}

TEST_CASE("batcher: no request is left waiting with a slot free, however give-back and ask race") {
  auto c = one_endpoint(1);
  c->gate = make_gate(*c);
  auto gate = c->gate;
  fixture f(c);
  // Each round: a direct grant holds the only slot while a request asks, and the slot is given
  // back at once (mostly before the batcher has the ask), after a yield, or once the batcher
  // holds the request (then the give-back must say so). Told or not, it must be granted.
  for (uint64_t id = 1; id <= 300; ++id) {
    REQUIRE(gate->try_direct({0}, 2) == 0);
    f.ask(id, 2);
    if (id % 3 == 1) std::this_thread::yield();
    if (id % 3 == 2) REQUIRE(poll_until([&] { return gate->held() == 1; }));
    const bool tell = gate->give_back(0, false);
    if (id % 3 == 2) REQUIRE(tell);
    if (tell) caf::anon_send(f.batcher, sched_freed_atom::value);
    REQUIRE(poll_until([&] { return f.log->size() == id; }));
    REQUIRE(f.log->of(id).refused == tc::sched_granted);
    f.done(id);
    REQUIRE(poll_until([&] { return gate->held() == 0 && gate->has_slot(0, 2); }));
  }
  CHECK(gate->direct_grants() == 300);
}

// -- prompt_array ------------------------------------------------------------------------------

namespace {

using tc::test::call_recorder;

/// One endpoint that takes prompt arrays; a size window of `batch` requests.
std::shared_ptr<batcher_config> array_endpoint(call_recorder& port, uint32_t batch) {
  auto c = std::make_shared<batcher_config>();
  c->batch.s = tc::scheduling::strategy::size;
  c->batch.max_wait_us = 5'000'000;
  c->batch.max_batch = batch;
  batcher_endpoint e = endpoint(0, 16);
  e.prompt_array = true;
  e.provider = "vllm";
  e.url = "http://127.0.0.1:1/v1/completions";
  e.upstream_model = "served-name";
  e.timeout_ms = 1000;
  c->endpoints.push_back(std::move(e));
  c->ports.push_back(&port);
  return c;
}

/// A completions request with `prompt`, mergeable with others of the same `key`.
tc::sched_ask array_ask(uint64_t id, uint64_t key, const std::string& prompt, uint32_t weight) {
  tc::sched_ask a;
  a.id = id;
  a.priority = 2;
  a.tenant = "t";
  a.tokens = 50;
  a.order = {0};
  a.merge_key = key;
  a.merge_body = R"({"model":"m","prompt":)" + prompt + R"(,"max_tokens":8,"user":"u)" +
                 std::to_string(id) + R"("})";
  a.merge_prompt = prompt;
  a.merge_weight = weight;
  return a;
}

}  // namespace

TEST_CASE("batcher: mergeable requests at a prompt_array endpoint go as one call, split back") {
  call_recorder port;
  fixture f(array_endpoint(port, 3));
  caf::anon_send(f.client, array_ask(1, 7, R"("one")", 1));
  caf::anon_send(f.client, array_ask(2, 7, R"("two two two")", 3));
  caf::anon_send(f.client, array_ask(3, 7, R"("three")", 1));
  REQUIRE(poll_until([&] { return port.size() == 1; }));
  const side_call c = port.at(0);
  CHECK(c.provider == "vllm");
  CHECK(c.url == "http://127.0.0.1:1/v1/completions");
  CHECK(c.body ==
        R"({"model":"served-name","max_tokens":8,"prompt":["one","two two two","three"]})");
  CHECK(f.log->size() == 0);  // the grants wait for the answer
  tc::side_answer a;
  a.id = c.id;
  a.status = 200;
  a.body = R"({"id":"cmpl-9","object":"text_completion","model":"served-name","choices":[)"
           R"({"index":1,"text":" b b b","finish_reason":"stop"},)"
           R"({"index":0,"text":" a","finish_reason":"stop"},)"
           R"({"index":2,"text":" c","finish_reason":"length"}],)"
           R"("usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}})";
  caf::anon_send(c.reply_to, std::move(a));
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  const tc::sched_grant g1 = f.log->of(1);
  const tc::sched_grant g2 = f.log->of(2);
  CHECK(g1.refused == tc::sched_granted);
  CHECK(g1.merged == 3);
  CHECK(g1.answer ==
        R"({"id":"cmpl-9-0","object":"text_completion","model":"served-name","choices":[)"
        R"({"index":0,"text":" a","finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}})");
  CHECK(g2.answer ==
        R"({"id":"cmpl-9-1","object":"text_completion","model":"served-name","choices":[)"
        R"({"index":0,"text":" b b b","finish_reason":"stop"}],)"
        R"("usage":{"prompt_tokens":6,"completion_tokens":3,"total_tokens":9}})");
  CHECK(f.log->of(3).answer.find(R"("finish_reason":"length")") != std::string::npos);
  // Each request still holds its own slot until its sched_done.
  f.done(1);
  f.done(2);
  f.done(3);
}

TEST_CASE("batcher: a merged call that fails sends each request on alone") {
  call_recorder port;
  fixture f(array_endpoint(port, 2));
  caf::anon_send(f.client, array_ask(1, 7, R"("x")", 1));
  caf::anon_send(f.client, array_ask(2, 7, R"("y")", 1));
  REQUIRE(poll_until([&] { return port.size() == 1; }));
  tc::side_answer a;
  a.id = port.at(0).id;
  a.status = 500;
  a.body = R"({"error":{"message":"boom"}})";
  caf::anon_send(port.at(0).reply_to, std::move(a));
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  for (uint64_t id : {1, 2}) {
    const tc::sched_grant g = f.log->of(id);
    CHECK(g.refused == tc::sched_granted);
    CHECK(g.answer.empty());
    CHECK(g.merged == 0);
    CHECK(g.order == std::vector<uint16_t>{0});
  }
}

TEST_CASE("batcher: an answer without one choice per prompt is not split") {
  call_recorder port;
  fixture f(array_endpoint(port, 2));
  caf::anon_send(f.client, array_ask(1, 7, R"("x")", 1));
  caf::anon_send(f.client, array_ask(2, 7, R"("y")", 1));
  REQUIRE(poll_until([&] { return port.size() == 1; }));
  tc::side_answer a;
  a.id = port.at(0).id;
  a.status = 200;
  a.body = R"({"choices":[{"index":0,"text":"only one"}]})";
  caf::anon_send(port.at(0).reply_to, std::move(a));
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(f.log->of(1).answer.empty());
  CHECK(f.log->of(2).answer.empty());
}

TEST_CASE("batcher: only requests with the same key merge, and only at prompt_array endpoints") {
  call_recorder port;
  fixture f(array_endpoint(port, 3));
  caf::anon_send(f.client, array_ask(1, 7, R"("a")", 1));
  caf::anon_send(f.client, array_ask(2, 8, R"("b")", 1));  // sampled differently
  caf::anon_send(f.client, array_ask(3, 7, R"("c")", 1));
  REQUIRE(poll_until([&] { return port.size() == 1 && f.log->size() == 1; }));
  CHECK(f.log->of(2).answer.empty());
  CHECK(f.log->of(2).merged == 0);
  CHECK(port.at(0).body.find(R"("prompt":["a","c"])") != std::string::npos);

  // The same requests at an endpoint that does not take prompt arrays: each alone.
  call_recorder none;
  auto c = array_endpoint(none, 2);
  c->endpoints[0].prompt_array = false;
  fixture g(c);
  caf::anon_send(g.client, array_ask(1, 7, R"("a")", 1));
  caf::anon_send(g.client, array_ask(2, 7, R"("b")", 1));
  REQUIRE(poll_until([&] { return g.log->size() == 2; }));
  CHECK(none.size() == 0);
}
