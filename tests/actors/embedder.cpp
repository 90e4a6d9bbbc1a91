// actors/embedder: asks are gathered into one /v1/embeddings call (by size, by wait, and while
// the call slots are taken), identical texts go once, vectors are matched by index and
// normalised, any failure answers the whole batch with an error, and the waiting asks are
// bounded. The I/O loop is a fake port the test answers by hand.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/connection.hpp"
#include "actors/embedder.hpp"
#include "protocol/messages.hpp"
#include "tests/support/actor_system.hpp"
#include "tests/support/call_recorder.hpp"

using namespace tc::actors;

namespace {

using tc::test::poll_until;
using tc::test::quiet_config;

using tc::test::call_recorder;

/// What the embedder reported.
struct metrics_log final : embedder_metrics {
  std::mutex mx;
  std::vector<std::pair<embed_outcome, size_t>> calls;
  std::vector<embed_refusal> refusals;
  size_t last_pending = 0;
  void call(embed_outcome o, size_t texts, double) override {
    std::lock_guard<std::mutex> lock(mx);
    calls.emplace_back(o, texts);
  }
  void refused(embed_refusal why) override {
    std::lock_guard<std::mutex> lock(mx);
    refusals.push_back(why);
  }
  void pending(size_t n) override {
    std::lock_guard<std::mutex> lock(mx);
    last_pending = n;
  }
};

/// The answers the embedder sent, by ask id.
struct answer_log {
  std::mutex mx;
  std::map<uint64_t, tc::embed_answer> got;
  size_t size() {
    std::lock_guard<std::mutex> lock(mx);
    return got.size();
  }
  tc::embed_answer of(uint64_t id) {
    std::lock_guard<std::mutex> lock(mx);
    auto it = got.find(id);
    return it == got.end() ? tc::embed_answer{{}, "<no answer>"} : it->second;
  }
};

/// Asks the embedder on behalf of requests and logs the answers (as connection actors would).
caf::behavior asker(caf::event_based_actor* self, caf::actor embedder,
                    std::shared_ptr<answer_log> log) {
  return {
      [=](uint64_t id, std::string& text) {
        self->request(embedder, caf::infinite, tc::embed_ask{std::move(text)})
            .then([=](tc::embed_answer& a) {
              std::lock_guard<std::mutex> lock(log->mx);
              log->got.emplace(id, std::move(a));
            });
      },
  };
}

constexpr uint32_t dim = 4;

struct fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  call_recorder port;
  std::shared_ptr<metrics_log> metrics = std::make_shared<metrics_log>();
  std::shared_ptr<answer_log> log = std::make_shared<answer_log>();
  caf::actor embedder;
  caf::actor client;

  /// `tune` adjusts the config before the actor starts.
  template <class Tune>
  explicit fixture(Tune&& tune) {
    auto c = std::make_shared<embedder_config>();
    c->provider = "emb";
    c->url = "http://127.0.0.1:1/v1/embeddings";
    c->model = "text-embed";
    c->dimension = dim;
    c->batch_max = 64;
    c->batch_wait_ms = 10'000;  // tests that batch by size never see the timer
    c->timeout_ms = 10'000;
    c->ports.push_back(&port);
    c->metrics = metrics;
    tune(*c);
    embedder = sys.spawn(tc::actors::embedder, std::shared_ptr<const embedder_config>(c));
    client = sys.spawn(asker, embedder, log);
  }
  ~fixture() {
    caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(embedder, caf::exit_reason::user_shutdown);
  }
  void ask(uint64_t id, std::string text) { caf::anon_send(client, id, std::move(text)); }
  /// Answers call `i` with `status` and `body` (or a transport failure).
  void answer(size_t i, int status, std::string body, std::string failure = {}) {
    const side_call c = port.at(i);
    caf::anon_send(c.reply_to, tc::side_answer{c.id, status, std::move(body), std::move(failure)});
  }
};

/// An embeddings answer: item k is {"index": order[k], "embedding": vectors[k]}.
std::string answer_body(const std::vector<uint32_t>& order,
                        const std::vector<std::vector<float>>& vectors) {
  std::string s = R"({"object":"list","data":[)";
  for (size_t k = 0; k < order.size(); ++k) {
    if (k != 0) s += ',';
    s += R"({"object":"embedding","index":)" + std::to_string(order[k]) + R"(,"embedding":[)";
    for (size_t j = 0; j < vectors[k].size(); ++j) {
      if (j != 0) s += ',';
      s += std::to_string(vectors[k][j]);
    }
    s += "]}";
  }
  s += R"(],"model":"text-embed","usage":{"prompt_tokens":3,"total_tokens":3}})";
  return s;
}

/// The vector of input i in the tests' answers: (i+1, 0, 0, 0) before normalising.
std::vector<float> raw(uint32_t i) {
  return {static_cast<float>(i + 1), 0, 0, 0};
}

bool unit_along_x(const tc::embed_answer& a) {
  return a.error.empty() && a.embedding.size() == dim && std::fabs(a.embedding[0] - 1.0f) < 1e-6f;
}

}  // namespace

TEST_CASE("embedder: batch_max texts go as one call, answered by index and normalised") {
  fixture f([](embedder_config& c) { c.batch_max = 3; });
  f.ask(1, "one");
  f.ask(2, "two");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a wrong early call shows now
  CHECK(f.port.size() == 0);
  f.ask(3, "three");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  const side_call c = f.port.at(0);
  CHECK(c.provider == "emb");
  CHECK(c.url == "http://127.0.0.1:1/v1/embeddings");
  CHECK(c.method == "POST");
  CHECK(c.timeout_ms == 10'000);
  CHECK(c.body == R"({"model":"text-embed","input":["one","two","three"]})");
  // Out of order, and not unit length: matched by index, then normalised.
  f.answer(0, 200, answer_body({2, 0, 1}, {{0, 0, 3, 4}, {2, 0, 0, 0}, {0, -5, 0, 0}}));
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->of(1).embedding == std::vector<float>{1, 0, 0, 0});
  CHECK(f.log->of(2).embedding == std::vector<float>{0, -1, 0, 0});
  const auto three = f.log->of(3).embedding;
  REQUIRE(three.size() == dim);
  CHECK(three[2] == doctest::Approx(0.6));
  CHECK(three[3] == doctest::Approx(0.8));
  std::lock_guard<std::mutex> lock(f.metrics->mx);
  REQUIRE(f.metrics->calls.size() == 1);
  CHECK(f.metrics->calls[0].first == embed_outcome::ok);
  CHECK(f.metrics->calls[0].second == 3);
  CHECK(f.metrics->last_pending == 0);
}

TEST_CASE("embedder: a batch that is not full goes after batch_wait_ms") {
  fixture f([](embedder_config& c) { c.batch_wait_ms = 40; });
  const auto start = std::chrono::steady_clock::now();
  f.ask(1, "alpha");
  f.ask(2, "beta");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(40));
  CHECK(f.port.at(0).body == R"({"model":"text-embed","input":["alpha","beta"]})");
  f.answer(0, 200, answer_body({0, 1}, {raw(0), raw(1)}));
  REQUIRE(poll_until([&] { return f.log->size() == 2; }));
  CHECK(unit_along_x(f.log->of(1)));
  CHECK(unit_along_x(f.log->of(2)));
  // The next ask starts a new batch with its own wait.
  f.ask(3, "gamma");
  REQUIRE(poll_until([&] { return f.port.size() == 2; }));
  CHECK(f.port.at(1).body == R"({"model":"text-embed","input":["gamma"]})");
}

TEST_CASE("embedder: with no wait and the call slots taken, asks gather until a slot frees") {
  fixture f([](embedder_config& c) {
    c.batch_wait_ms = 0;
    c.max_calls = 1;
  });
  f.ask(1, "first");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  CHECK(f.port.at(0).body == R"({"model":"text-embed","input":["first"]})");
  f.ask(2, "second");
  f.ask(3, "third");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.port.size() == 1);  // the only slot is taken
  f.answer(0, 200, answer_body({0}, {raw(0)}));
  REQUIRE(poll_until([&] { return f.port.size() == 2; }));
  CHECK(f.port.at(1).body == R"({"model":"text-embed","input":["second","third"]})");
  f.answer(1, 200, answer_body({0, 1}, {raw(0), raw(1)}));
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  for (uint64_t id = 1; id <= 3; ++id) CHECK(unit_along_x(f.log->of(id)));
}

TEST_CASE("embedder: full batches wait for a slot in order, and the next one keeps gathering") {
  fixture f([](embedder_config& c) {
    c.batch_max = 2;
    c.max_calls = 1;
  });
  for (uint64_t id = 1; id <= 5; ++id) f.ask(id, "t" + std::to_string(id));
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  CHECK(f.port.at(0).body == R"({"model":"text-embed","input":["t1","t2"]})");
  f.answer(0, 200, answer_body({0, 1}, {raw(0), raw(1)}));
  REQUIRE(poll_until([&] { return f.port.size() == 2; }));
  CHECK(f.port.at(1).body == R"({"model":"text-embed","input":["t3","t4"]})");
  f.answer(1, 200, answer_body({0, 1}, {raw(0), raw(1)}));
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.port.size() == 2);  // t5 waits for batch_wait_ms (or a sixth text)
  f.ask(6, "t6");
  REQUIRE(poll_until([&] { return f.port.size() == 3; }));
  CHECK(f.port.at(2).body == R"({"model":"text-embed","input":["t5","t6"]})");
}

TEST_CASE("embedder: identical texts in a batch are sent once and all get the vector") {
  fixture f([](embedder_config& c) { c.batch_max = 2; });
  f.ask(1, "same");
  f.ask(2, "same");
  f.ask(3, "same");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  CHECK(f.port.size() == 0);  // one distinct text: the batch is not full
  f.ask(4, "other");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  CHECK(f.port.at(0).body == R"({"model":"text-embed","input":["same","other"]})");
  f.answer(0, 200, answer_body({0, 1}, {{0, 2, 0, 0}, {0, 0, 0, 7}}));
  REQUIRE(poll_until([&] { return f.log->size() == 4; }));
  for (uint64_t id = 1; id <= 3; ++id)
    CHECK(f.log->of(id).embedding == std::vector<float>{0, 1, 0, 0});
  CHECK(f.log->of(4).embedding == std::vector<float>{0, 0, 0, 1});
}

TEST_CASE("embedder: any failure of a call answers every ask of its batch with an error") {
  struct failure_case {
    const char* name;
    int status;
    std::string body;
    std::string failure;
    std::string error;
    embed_outcome outcome;
  };
  const std::vector<failure_case> cases = {
      {"HTTP 503", 503, R"({"error":{"message":"busy"}})", "", "status_503", embed_outcome::status},
      {"connect", 0, "", "connect", "transport_connect", embed_outcome::transport},
      {"port timeout", 0, "", "total_timeout", "timeout", embed_outcome::timeout},
      {"not JSON", 200, "<html>", "", "bad_answer_bad_json", embed_outcome::bad_answer},
      {"one vector short", 200, answer_body({0}, {raw(0)}), "", "bad_answer_count",
       embed_outcome::bad_answer},
      {"an index twice", 200, answer_body({0, 0}, {raw(0), raw(0)}), "", "bad_answer_count",
       embed_outcome::bad_answer},
      {"wrong dimension", 200, answer_body({0, 1}, {raw(0), {1, 2, 3}}), "", "bad_answer_dimension",
       embed_outcome::bad_answer},
  };
  for (const auto& fc : cases) {
    CAPTURE(fc.name);
    fixture f([](embedder_config& c) { c.batch_max = 2; });
    f.ask(1, "a");
    f.ask(2, "b");
    REQUIRE(poll_until([&] { return f.port.size() == 1; }));
    f.answer(0, fc.status, fc.body, fc.failure);
    REQUIRE(poll_until([&] { return f.log->size() == 2; }));
    for (uint64_t id = 1; id <= 2; ++id) {
      CHECK(f.log->of(id).error == fc.error);
      CHECK(f.log->of(id).embedding.empty());
    }
    std::lock_guard<std::mutex> lock(f.metrics->mx);
    REQUIRE(f.metrics->calls.size() == 1);
    CHECK(f.metrics->calls[0].first == fc.outcome);
  }
}

TEST_CASE("embedder: a call the port never answers fails by the actor's own watchdog") {
  fixture f([](embedder_config& c) {
    c.batch_wait_ms = 0;
    c.timeout_ms = 20;
    c.max_calls = 1;
  });
  f.ask(1, "lost");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  REQUIRE(poll_until([&] { return f.log->size() == 1; }));
  CHECK(f.log->of(1).error == "timeout");
  f.answer(0, 200, answer_body({0}, {raw(0)}));  // too late: ignored
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(f.log->size() == 1);
  f.ask(2, "next");  // the slot is free again
  REQUIRE(poll_until([&] { return f.port.size() == 2; }));
}

TEST_CASE("embedder: waiting asks are bounded, and empty and overlong texts are refused at once") {
  fixture f([](embedder_config& c) {
    c.max_pending = 2;
    c.max_text_bytes = 8;
  });
  f.ask(1, "a");
  f.ask(2, "b");
  f.ask(3, "c");  // a third waiting ask: refused
  f.ask(4, "much too long");
  f.ask(5, "");
  REQUIRE(poll_until([&] { return f.log->size() == 3; }));
  CHECK(f.log->of(3).error == "overloaded");
  CHECK(f.log->of(4).error == "too_long");
  CHECK(f.log->of(5).error == "too_long");
  CHECK(f.port.size() == 0);  // the two waiting asks are still gathering
  {
    std::lock_guard<std::mutex> lock(f.metrics->mx);
    CHECK(f.metrics->refusals == std::vector<embed_refusal>{embed_refusal::overloaded,
                                                            embed_refusal::too_long,
                                                            embed_refusal::too_long});
    CHECK(f.metrics->last_pending == 2);
  }
}

TEST_CASE("embedder: dimensions is sent only when configured") {
  fixture f([](embedder_config& c) {
    c.batch_wait_ms = 0;
    c.send_dimensions = true;
  });
  f.ask(1, "x");
  REQUIRE(poll_until([&] { return f.port.size() == 1; }));
  CHECK(f.port.at(0).body == R"({"model":"text-embed","input":["x"],"dimensions":4})");
}
