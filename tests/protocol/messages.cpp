// Every message type of protocol/messages.hpp crosses a real CAF middleman connection and
// comes back equal. CAF 0.17 compiles and connects with an unregistered type and fails only at
// send time, so this is the test that catches a type missing from add_message_types().
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "protocol/messages.hpp"

namespace {

struct system_config : caf::actor_system_config {
  system_config() {
    tc::add_message_types(*this);
    load<caf::io::middleman>();
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
  }
};

/// Answers every message with itself. Class-based: CAF 0.17 spawning a function actor with no
/// arguments dereferences a null argument tuple (UBSan reports it).
class echo : public caf::event_based_actor {
 public:
  using caf::event_based_actor::event_based_actor;
  caf::behavior make_behavior() override {
    set_default_handler(caf::reflect);
    return {[](caf::ok_atom) {}};  // a non-empty behavior keeps the actor alive
  }
};

/// Stops the echo actor however the test ends, so the actor system can shut down.
struct stop_on_exit {
  caf::actor actor;
  ~stop_on_exit() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }
};

/// Two actor systems joined by a real middleman connection: an echo actor published by one,
/// reached from the other.
struct middleman_pair {
  system_config server_cfg;
  caf::actor_system server{server_cfg};
  caf::actor echo_actor = server.spawn<echo>();
  stop_on_exit stop{echo_actor};
  system_config client_cfg;
  caf::actor_system client{client_cfg};
  caf::actor remote;

  middleman_pair() {
    auto published = server.middleman().publish(echo_actor, 0, "127.0.0.1");
    REQUIRE(published);
    auto proxy = client.middleman().remote_actor("127.0.0.1", *published);
    REQUIRE(proxy);
    remote = *proxy;
  }
};

/// Sends `value` to the remote echo actor and checks it comes back with the same content.
template <class T>
void round_trip(caf::scoped_actor& self, const caf::actor& remote, const T& value) {
  const std::string expected = caf::deep_to_string(value);
  bool answered = false;
  self->request(remote, std::chrono::seconds(10), value)
      .receive(
          [&](const T& back) {
            answered = true;
            CHECK(caf::deep_to_string(back) == expected);
          },
          [&](const caf::error& err) {
            FAIL("round trip failed: " << self->system().render(err));
          });
  CHECK(answered);
}

}  // namespace

TEST_CASE("every message type crosses a middleman connection unchanged") {
  middleman_pair mm;
  caf::scoped_actor self{mm.client};
  const caf::actor& remote = mm.remote;

  tc::openai::request req;
  req.kind = tc::openai::endpoint::embeddings;
  req.model = "sim-chat";
  req.stream = true;
  req.include_usage = true;
  req.max_tokens = 77;
  req.temperature = 0.25;
  req.seed = -42;
  req.n = 3;
  req.has_tools = true;
  req.message_count = 4;
  req.input_chars = 1234;
  req.user = "u-1";
  req.body = R"({"model":"sim-chat","messages":[{"role":"user","content":"你好"}]})";
  round_trip(self, remote, req);

  tc::openai::request plain;  // optionals absent
  plain.model = "m";
  round_trip(self, remote, plain);

  tc::openai::api_error err;
  err.status = 429;
  err.type = "rate_limit_exceeded";
  err.code = "rate_limit_exceeded";
  err.param = "model";
  err.message = "slow down \"now\"";
  err.retry_after_s = 7;
  round_trip(self, remote, err);

  tc::openai::usage u{10, 20, 30, 5};
  round_trip(self, remote, u);

  round_trip(self, remote, tc::reply_target{3, 99});

  tc::upstream_plan plan;
  plan.to = {1, 2};
  plan.provider = "sim";
  plan.model = "sim-chat";
  plan.url = "sim://sim/v1/chat/completions";
  plan.body = "{}";
  plan.stream = true;
  plan.connect_timeout_ms = 1;
  plan.first_byte_timeout_ms = 2;
  plan.total_timeout_ms = 3;
  round_trip(self, remote, plan);

  tc::request_outcome out;
  out.status = 200;
  out.usage = u;
  out.usage_reported = true;
  out.client_gone = true;
  out.stream_cut = true;
  out.upstream_failure = "io";
  out.upstream_ns = 1;
  out.ttft_ns = 2;
  out.total_ns = 3;
  out.answer = R"({"choices":[]})";
  out.answer_cacheable = true;
  out.error_body = "{}";
  round_trip(self, remote, out);

  round_trip(self, remote, tc::request_meta{"req_1", true, true, 60});

  tc::cached_reply cr;
  cr.to = {0, 5};
  cr.status = 502;
  cr.model = "sim-chat";
  cr.body = "{}";
  cr.stream = true;
  cr.include_usage = true;
  cr.cache_header = "hit-semantic;sim=0.97";
  cr.tier = "semantic";
  cr.prompt_tokens = 1;
  cr.completion_tokens = 2;
  cr.saved_cost_micros = 3;
  cr.cache_lookup_ns = 4;
  round_trip(self, remote, cr);

  const tc::canonical::digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  round_trip(self, remote, d);
  round_trip(self, remote, tc::cache_hit{true, 2, 0.97f, d, "body", 1, 2, 3});
  round_trip(self, remote, tc::cache_probe{d, d, {0.5f, -0.25f}, "guard", 0.9f});
  round_trip(self, remote, tc::cache_entry{d, d, "tenant:a", "m", "body", 1, 2, 3, 4, 5});
  round_trip(self, remote, tc::cache_link{d, d, d, {1.0f}, "g", "tenant:a", "m", 6, 7});
  round_trip(self, remote, tc::cache_filter{"tenant:a", "m", d});
  round_trip(self, remote, tc::cache_stats{1, 2, 3, 4, 5, 6, 7});
  round_trip(self, remote, tc::dedup_attach{d, caf::actor_cast<caf::actor>(self)});
  round_trip(self, remote, tc::dedup_result{d, 200, "answer", 1, 2});
  round_trip(self, remote, tc::dedup_events{d, {"a", "b"}, true, true, "err"});
  round_trip(self, remote, tc::follow_chunk{{1, 2}, {"x"}, true, true, false, "e"});
}

TEST_CASE("optional fields of a request survive the wire as absent or present") {
  middleman_pair mm;
  caf::scoped_actor self{mm.client};
  tc::openai::request req;
  req.temperature = 1.5;
  self->request(mm.remote, std::chrono::seconds(10), req)
      .receive(
          [&](const tc::openai::request& back) {
            REQUIRE(back.temperature.has_value());
            CHECK(*back.temperature == doctest::Approx(1.5));
            CHECK_FALSE(back.seed.has_value());
          },
          [&](const caf::error& e) { FAIL(mm.client.render(e)); });
}
