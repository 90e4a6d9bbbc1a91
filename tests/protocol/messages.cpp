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
  plan.endpoint = 4;
  plan.endpoint_index = 1;
  plan.in_flight_taken = true;
  tc::upstream_attempt next;
  next.provider = "backup";
  next.endpoint = 5;
  next.index = 2;
  next.url = "http://127.0.0.1:1/v1/chat/completions";
  next.upstream_model = "backup-chat";
  next.connect_timeout_ms = 4;
  next.first_byte_timeout_ms = 5;
  next.total_timeout_ms = 6;
  plan.fallbacks.push_back(next);
  plan.prefetched = true;
  plan.prefetched_ns = 987;
  plan.merged = 3;
  round_trip(self, remote, next);
  round_trip(self, remote, tc::health_report{2, 12.5, 3.25, 1500});
  round_trip(
      self, remote,
      tc::health_reports{{tc::health_report{0, 8.5, -1, 0}, tc::health_report{3, -1, -1, 2000}}});
  round_trip(self, remote, plan);
  tc::sched_ask sask;
  sask.id = 77;
  sask.priority = 1;
  sask.tenant = "acme";
  sask.tokens = 4096;
  sask.order = {2, 0, 1};
  sask.merge_key = 0xfeedULL;
  sask.merge_body = R"({"model":"m","prompt":"p"})";
  sask.merge_prompt = R"("p")";
  sask.merge_weight = 9;
  round_trip(self, remote, sask);
  tc::sched_grant grant;
  grant.refused = tc::sched_queue_timeout;
  grant.retry_after_s = 7;
  grant.order = {1, 0};
  grant.waited_us = 123456;
  grant.batch = 5;
  grant.answer = R"({"choices":[]})";
  grant.upstream_us = 4321;
  grant.merged = 4;
  round_trip(self, remote, grant);
  round_trip(self, remote, tc::sched_done{77, 310});
  round_trip(self, remote, tc::sched_cancel{77});
  round_trip(self, remote, tc::embed_ask{"what is the capital of France?"});
  round_trip(self, remote, tc::embed_answer{{0.6f, -0.8f}, ""});
  round_trip(self, remote, tc::embed_answer{{}, "status_503"});

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
  out.endpoint_index = 2;
  out.attempts = 3;
  out.output_digest = std::string(32, '\x01');
  out.output_digest_algo = 2;
  round_trip(self, remote, out);

  round_trip(self, remote, tc::request_meta{"req_1", "req_2", true, true, 60, "sk-tc-secret", 3});

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
  cr.body_digest = std::string(32, '\x02');
  cr.body_digest_algo = 1;
  round_trip(self, remote, cr);

  const tc::canonical::digest d{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  round_trip(self, remote, d);
  round_trip(self, remote, tc::cache_hit{true, 2, 0.97f, d, "body", 1, 2, 3, "digest", 1});
  round_trip(self, remote, tc::cache_probe{d, d, {0.5f, -0.25f}, "guard", 0.9f});
  round_trip(self, remote,
             tc::cache_entry{d, d, "tenant:a", "m", "body", 1, 2, 3, 4, 5, "digest", 2});
  round_trip(self, remote, tc::cache_link{d, d, d, {1.0f}, "g", "tenant:a", "m", 6, 7});
  round_trip(self, remote, tc::cache_filter{"tenant:a", "m", d});
  round_trip(self, remote, tc::cache_stats{1, 2, 3, 4, 5, 6, 7});
  round_trip(self, remote, tc::dedup_attach{d, caf::actor_cast<caf::actor>(self)});
  round_trip(self, remote, tc::dedup_result{d, 200, "answer", 1, 2});
  round_trip(self, remote, tc::dedup_events{d, {"a", "b"}, true, true, "err"});
  round_trip(self, remote, tc::follow_chunk{{1, 2}, {"x"}, true, true, false, "e"});
  round_trip(self, remote, tc::side_answer{7, 200, R"({"verdict":"allow"})", ""});

  // Issue 4: accounts, quotas, usage.
  round_trip(self, remote, tc::rate_headers{100, 99, 1500, 1000, 900, 20});
  tc::accounts::limits lim{10, 20, 30, 4, 50, 1.5, 30.25, true};
  round_trip(self, remote, lim);
  tc::accounts::tenant t;
  t.id = "acme";
  t.name = "Acme";
  t.currency = "USD";
  t.price_factor = 0.9;
  t.cache_scope = "shared1";
  t.priority = 1;
  t.limit = lim;
  t.model_limits["gpt-4*"] = lim;
  t.disabled = true;
  t.created_at = 1763769600;
  round_trip(self, remote, t);
  round_trip(self, remote, tc::accounts::project{"acme", "web", "Web", lim, 17});
  tc::accounts::api_key k;
  k.id = "key_0123456789abcdef";
  k.tenant = "acme";
  k.project = "web";
  k.environment = "dev";
  k.name = "ci";
  k.prefix = "sk-tc-AbCdEf";
  k.hash = std::string(64, 'a');
  k.created_at = 1;
  k.expires_at = 2;
  k.revoked_at = 3;
  k.replaced_by = "key_x";
  k.grace_until = 4;
  k.allowed_models = {"sim-*", "gpt-?"};
  k.allowed_endpoints = {"chat"};
  k.priority = 0;
  k.limit = lim;
  round_trip(self, remote, k);
  tc::accounts::admin_token at{"adm_1", "ops", tc::accounts::role::operator_, "tc-adm-x", "h",
                               5,       6};
  round_trip(self, remote, at);
  tc::accounts::price pr{"sim", "Qwen/Qwen2.5", 2.0, 0.5, 8.0, "USD"};
  round_trip(self, remote, pr);
  tc::billing::usage_record rec;
  rec.request_id = "req_1";
  rec.ts_ms = 1763769600123;
  rec.tenant = "acme";
  rec.project = "web";
  rec.key = "key_1";
  rec.model = "sim-chat";
  rec.provider = "sim";
  rec.endpoint = "chat";
  rec.status = 200;
  rec.result = tc::billing::outcome::client_gone;
  rec.prompt_tokens = 10;
  rec.cached_tokens = 4;
  rec.completion_tokens = 20;
  rec.estimated = true;
  rec.cost_micros = 1250;
  rec.cost_currency = "USD";
  rec.charged_micros = 9000;
  rec.charged_currency = "CNY";
  rec.saved_micros = 7;
  rec.client_request_id = "client-1";
  round_trip(self, remote, rec);
  tc::audit::audit_record ar;
  ar.seq = 9;
  ar.node = "node-1";
  ar.request_id = "req_1";
  ar.tenant = "acme";
  ar.status = 200;
  ar.input_verdicts = {{"keywords", "block", "violence", 12}};
  ar.output_verdicts = {{"pii", "mask", "pii.phone", 3}};
  ar.input_digest = std::string(32, '\x01');
  ar.text_encrypted = true;
  ar.input_text = std::string("\0sealed", 7);
  ar.prev_hash = std::string(32, '\0');
  ar.hash = std::string(32, '\xff');
  round_trip(self, remote, ar);
  tc::accounts_op op;
  op.op = tc::accounts_op::rotate_key;
  op.tenant = t;
  op.key = k;
  op.admin = at;
  op.price = pr;
  op.split.group = "chat";
  op.split.weights = {{"sim-a", 90}, {"sim-b", 10}};
  op.split.updated_at = 1763769600;
  round_trip(self, remote, op.split);
  op.id = "key_1";
  op.grace_s = 3600;
  round_trip(self, remote, op);
  round_trip(self, remote, tc::accounts_result{409, "exists", "id", "{}", "sk-tc-s"});
  tc::quota_ask ask;
  ask.scopes = {{"t:acme", lim}, {"k:key_1", tc::accounts::limits{}}};
  ask.tokens = 300;
  ask.cost_micros = 42;
  round_trip(self, remote, ask);
  round_trip(self, remote,
             tc::quota_verdict{false, 7, 429, "rate_limit_exceeded", "slow down", 3, true, 100, 0,
                               1500, 1000, 10, 20});
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
