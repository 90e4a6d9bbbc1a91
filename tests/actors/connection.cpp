// The connection actor against a recording io_port: what it dispatches, what it rejects, and
// that one actor serves request after request once each has settled.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "actors/cache_shard.hpp"
#include "actors/connection.hpp"
#include "actors/dedup_table.hpp"
#include "tests/support/actor_system.hpp"

namespace {

/// Records what the actor hands to the I/O world; waits with a deadline.
class recording_port : public tc::actors::io_port {
 public:
  void dispatch(tc::upstream_plan&& plan) override {
    std::lock_guard<std::mutex> lock(mx_);
    plans_.push_back(std::move(plan));
    cv_.notify_all();
  }
  void reject(tc::reply_target to, tc::openai::api_error&& error,
              const tc::rate_headers& /*rate*/) override {
    std::lock_guard<std::mutex> lock(mx_);
    rejects_.emplace_back(to, std::move(error));
    cv_.notify_all();
  }
  void serve(tc::cached_reply&& reply) override {
    std::lock_guard<std::mutex> lock(mx_);
    served_.push_back(std::move(reply));
    cv_.notify_all();
  }
  void attach(tc::reply_target, caf::actor, tc::canonical::digest) override {}
  void follow(tc::follow_chunk&&) override {}
  void release(tc::reply_target to) override {
    std::lock_guard<std::mutex> lock(mx_);
    released_.push_back(to);
    cv_.notify_all();
  }
  void call(tc::actors::side_call&& c) override {
    std::lock_guard<std::mutex> lock(mx_);
    calls_.push_back(std::move(c));
    cv_.notify_all();
  }
  std::optional<tc::actors::side_call> side_call(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_.size() >= n; }))
      return std::nullopt;
    return calls_[n - 1];
  }
  std::optional<tc::reply_target> released(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return released_.size() >= n; }))
      return std::nullopt;
    return released_[n - 1];
  }
  std::optional<tc::cached_reply> served(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return served_.size() >= n; }))
      return std::nullopt;
    return served_[n - 1];
  }
  std::size_t plan_count() {
    std::lock_guard<std::mutex> lock(mx_);
    return plans_.size();
  }
  /// Waits until `n` plans arrived (at most 10 s).
  std::optional<tc::upstream_plan> plan(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return plans_.size() >= n; }))
      return std::nullopt;
    return plans_[n - 1];
  }
  std::optional<std::pair<tc::reply_target, tc::openai::api_error>> rejection(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return rejects_.size() >= n; }))
      return std::nullopt;
    return rejects_[n - 1];
  }

 private:
  std::mutex mx_;
  std::condition_variable cv_;
  std::vector<tc::upstream_plan> plans_;
  std::vector<tc::cached_reply> served_;
  std::vector<tc::reply_target> released_;
  std::vector<tc::actors::side_call> calls_;
  std::vector<std::pair<tc::reply_target, tc::openai::api_error>> rejects_;
};

using tc::test::quiet_config;

tc::openai::request chat_request(std::string model, bool stream = false) {
  tc::openai::request r;
  r.kind = tc::openai::endpoint::chat_completions;
  r.model = model;
  r.stream = stream;
  r.body = R"({"model":")" + model + R"(","messages":[{"role":"user","content":"hi"}]})";
  return r;
}

/// Usage records the connection actor sends to its ledger.
struct record_sink {
  std::mutex mx;
  std::condition_variable cv;
  std::vector<tc::billing::usage_record> records;
  std::vector<std::optional<tc::reply_target>> holds;  ///< per record: the held answer, if any

  std::optional<tc::billing::usage_record> record(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return records.size() >= n; }))
      return std::nullopt;
    return records[n - 1];
  }
};

caf::behavior fake_ledger(caf::event_based_actor*, std::shared_ptr<record_sink> sink) {
  return {
      [sink](tc::billing::usage_record& r) {
        std::lock_guard<std::mutex> lock(sink->mx);
        sink->records.push_back(std::move(r));
        sink->holds.emplace_back();
        sink->cv.notify_all();
      },
      [sink](tc::billing::usage_record& r, tc::reply_target held) {
        std::lock_guard<std::mutex> lock(sink->mx);
        sink->records.push_back(std::move(r));
        sink->holds.emplace_back(held);
        sink->cv.notify_all();
      },
  };
}

std::shared_ptr<tc::actors::pipeline> make_pipeline(recording_port& port) {
  auto p = std::make_shared<tc::actors::pipeline>();
  tc::actors::model_route chat;
  chat.provider = "deepseek";
  chat.upstream_model = "deepseek-chat";
  chat.base_url = "https://api.deepseek.com/v1";
  chat.connect_timeout_ms = 1;
  chat.first_byte_timeout_ms = 2;
  chat.total_timeout_ms = 3;
  chat.price_input_per_m = 2;
  chat.price_output_per_m = 8;
  p->models["chat"].endpoints.push_back(chat);
  tc::actors::model_route embed;
  embed.provider = "sim";
  embed.upstream_model = "sim-embed";
  embed.base_url = "sim://sim/v1";
  embed.embedding = true;
  embed.endpoint = 1;
  p->models["sim-embed"].endpoints.push_back(embed);
  p->ports.push_back(&port);
  return p;
}

/// One connection actor with a recording port and a recording ledger; both are ended however
/// the test ends.
struct connection_fixture {
  recording_port port;
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record_sink> ledger_sink = std::make_shared<record_sink>();
  caf::actor ledger = sys.spawn(fake_ledger, ledger_sink);
  caf::actor actor = sys.spawn(tc::actors::connection, with_ledger(make_pipeline(port), ledger));
  ~connection_fixture() {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
  }
  static std::shared_ptr<tc::actors::pipeline> with_ledger(std::shared_ptr<tc::actors::pipeline> p,
                                                           caf::actor l) {
    p->accounts.ledger = std::move(l);
    return p;
  }
};

}  // namespace

TEST_CASE_FIXTURE(connection_fixture,
                  "a known model is routed: URL, renamed model, timeouts and reply target") {
  caf::anon_send(actor, chat_request("chat", true), tc::reply_target{0, 41}, tc::request_meta{});
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->to.loop == 0);
  CHECK(plan->to.slot == 41);
  CHECK(plan->provider == "deepseek");
  CHECK(plan->model == "chat");
  CHECK(plan->url == "https://api.deepseek.com/v1/chat/completions");
  // A stream always asks for usage (it is billed by it); the client did not ask, so it is stripped.
  CHECK(plan->body.rfind(R"({"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}])",
                         0) == 0);
  CHECK(plan->body.find(R"("include_usage":true)") != std::string::npos);
  CHECK(plan->strip_usage);
  CHECK(plan->stream);
  CHECK(plan->connect_timeout_ms == 1);
  CHECK(plan->first_byte_timeout_ms == 2);
  CHECK(plan->total_timeout_ms == 3);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "an unknown model is rejected with 404 model_not_found, nothing is dispatched") {
  caf::anon_send(actor, chat_request("nope"), tc::reply_target{0, 7}, tc::request_meta{});
  auto rejected = port.rejection(1);
  REQUIRE(rejected);
  CHECK(rejected->first.slot == 7);
  CHECK(rejected->second.status == 404);
  CHECK(rejected->second.code == "model_not_found");
  CHECK(rejected->second.param == "model");
}

TEST_CASE_FIXTURE(connection_fixture,
                  "a chat request to an embedding model is a 400 naming the model") {
  caf::anon_send(actor, chat_request("sim-embed"), tc::reply_target{0, 8}, tc::request_meta{});
  auto rejected = port.rejection(1);
  REQUIRE(rejected);
  CHECK(rejected->second.status == 400);
  CHECK(rejected->second.param == "model");
  auto emb = chat_request("sim-embed");
  emb.kind = tc::openai::endpoint::embeddings;
  caf::anon_send(actor, std::move(emb), tc::reply_target{0, 9}, tc::request_meta{});
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->url == "sim://sim/v1/embeddings");
}

TEST_CASE_FIXTURE(connection_fixture,
                  "one actor serves request after request once each has settled") {
  for (uint64_t slot = 1; slot <= 5; ++slot) {
    caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, slot}, tc::request_meta{});
    auto plan = port.plan(slot);
    REQUIRE(plan);
    CHECK(plan->to.slot == slot);
    tc::request_outcome outcome;
    outcome.status = 200;
    caf::anon_send(actor, outcome);
  }
  caf::anon_send(actor, chat_request("nope"), tc::reply_target{0, 6}, tc::request_meta{});
  REQUIRE(port.rejection(1));
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 7}, tc::request_meta{});
  auto plan = port.plan(6);
  REQUIRE(plan);
  CHECK(plan->to.slot == 7);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "every settled request is one usage record, estimated when no usage came") {
  tc::request_meta meta;
  meta.request_id = "req_reported";
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 1}, meta);
  REQUIRE(port.plan(1));
  tc::request_outcome reported;
  reported.status = 200;
  reported.usage = {1000, 500, 1500, 0};
  reported.usage_reported = true;
  caf::anon_send(actor, reported);
  auto r = ledger_sink->record(1);
  REQUIRE(r);
  CHECK(r->request_id == "req_reported");
  CHECK(r->tenant == "anonymous");
  CHECK(r->provider == "deepseek");
  CHECK(r->result == tc::billing::outcome::ok);
  CHECK(r->prompt_tokens == 1000);
  CHECK(r->completion_tokens == 500);
  CHECK_FALSE(r->estimated);
  CHECK(r->cost_micros == 2 * 1000 + 8 * 500);  // per-1M prices x tokens = micro-units
  CHECK(r->charged_micros == r->cost_micros);

  // A stream cut by the client, with no usage: what was sent is estimated, never 0.
  meta.request_id = "req_cut";
  caf::anon_send(actor, chat_request("chat", true), tc::reply_target{0, 2}, meta);
  REQUIRE(port.plan(2));
  tc::request_outcome cut;
  cut.status = 499;
  cut.client_gone = true;
  cut.completion_estimate = 37;
  caf::anon_send(actor, cut);
  r = ledger_sink->record(2);
  REQUIRE(r);
  CHECK(r->request_id == "req_cut");
  CHECK(r->result == tc::billing::outcome::client_gone);
  CHECK(r->estimated);
  CHECK(r->completion_tokens == 37);
  CHECK(r->prompt_tokens > 0);
  CHECK(r->cost_micros > 0);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "a held answer's record goes to the ledger with the answer to release") {
  tc::request_meta meta;
  meta.request_id = "req_plain";
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 7}, meta);
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->write_ahead);  // a ledger is wired: the loop is asked to hold the last bytes
  tc::request_outcome held;
  held.status = 200;
  held.usage = {10, 5, 15, 0};
  held.usage_reported = true;
  held.held = true;
  caf::anon_send(actor, held);
  REQUIRE(ledger_sink->record(1));
  {
    std::lock_guard<std::mutex> lock(ledger_sink->mx);
    REQUIRE(ledger_sink->holds[0].has_value());
    CHECK(ledger_sink->holds[0]->slot == 7);
  }

  // Not held (an error the client already has): the record goes behind, nothing to release.
  meta.request_id = "req_error";
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 8}, meta);
  REQUIRE(port.plan(2));
  tc::request_outcome failed;
  failed.status = 502;
  caf::anon_send(actor, failed);
  REQUIRE(ledger_sink->record(2));
  std::lock_guard<std::mutex> lock(ledger_sink->mx);
  CHECK_FALSE(ledger_sink->holds[1].has_value());
}

TEST_CASE("without a ledger a held answer is released at once") {
  recording_port port;
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::actor actor = sys.spawn(tc::actors::connection, make_pipeline(port));
  tc::request_meta meta;
  meta.request_id = "req_no_ledger";
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 9}, meta);
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK_FALSE(plan->write_ahead);
  tc::request_outcome held;
  held.status = 200;
  held.held = true;
  caf::anon_send(actor, held);
  auto released = port.released(1);
  REQUIRE(released);
  CHECK(released->slot == 9);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
}

TEST_CASE("answers wait for their records once the writers are max_records_behind behind") {
  recording_port port;
  quiet_config cfg;
  caf::actor_system sys{cfg};
  auto sink = std::make_shared<record_sink>();
  caf::actor ledger = sys.spawn(fake_ledger, sink);  // never counts down: the backlog only grows
  auto p = make_pipeline(port);
  p->accounts.ledger = ledger;
  p->accounts.write_ahead = false;  // as with the store in memory
  p->accounts.max_records_behind = 2;
  const auto behind = p->accounts.records_behind;
  caf::actor actor = sys.spawn(tc::actors::connection, p);
  tc::request_outcome answered;
  answered.status = 200;
  for (uint32_t slot = 1; slot <= 2; ++slot) {
    caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, slot}, tc::request_meta{});
    auto plan = port.plan(slot);
    REQUIRE(plan);
    CHECK_FALSE(plan->write_ahead);  // under the bound: nothing waits
    caf::anon_send(actor, answered);
    REQUIRE(sink->record(slot));
    CHECK(behind->load() == slot);  // counted until the ledger has written it
  }
  // At the bound the next answer waits for its record (back-pressure), and that record, which
  // an answer waits for, is not counted.
  caf::anon_send(actor, chat_request("chat"), tc::reply_target{0, 3}, tc::request_meta{});
  auto plan = port.plan(3);
  REQUIRE(plan);
  CHECK(plan->write_ahead);
  CHECK(plan->acks == 1);
  tc::request_outcome held = answered;
  held.held = true;
  caf::anon_send(actor, held);
  REQUIRE(sink->record(3));
  {
    std::lock_guard<std::mutex> lock(sink->mx);
    REQUIRE(sink->holds[2].has_value());
    CHECK(sink->holds[2]->slot == 3);
    CHECK_FALSE(sink->holds[0].has_value());
  }
  CHECK(behind->load() == 2);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(connection_fixture,
                  "an idle connection actor ends on the pool's user_shutdown exit") {
  caf::scoped_actor self{sys};
  self->monitor(actor);
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  bool down = false;
  self->receive([&](const caf::down_msg& d) { down = d.source == actor.address(); },
                caf::after(std::chrono::seconds(10)) >> [] {});
  CHECK(down);
}

namespace {

/// Audit records the connection actor sends.
struct audit_sink {
  std::mutex mx;
  std::condition_variable cv;
  std::vector<tc::audit::audit_record> records;
  std::vector<std::optional<tc::reply_target>> holds;

  std::optional<tc::audit::audit_record> record(std::size_t n) {
    std::unique_lock<std::mutex> lock(mx);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return records.size() >= n; }))
      return std::nullopt;
    return records[n - 1];
  }
};

caf::behavior fake_audit(caf::event_based_actor*, std::shared_ptr<audit_sink> sink) {
  return {
      [sink](tc::audit::audit_record& r) {
        std::lock_guard<std::mutex> lock(sink->mx);
        sink->records.push_back(std::move(r));
        sink->holds.emplace_back();
        sink->cv.notify_all();
      },
      [sink](tc::audit::audit_record& r, tc::reply_target held) {
        std::lock_guard<std::mutex> lock(sink->mx);
        sink->records.push_back(std::move(r));
        sink->holds.emplace_back(held);
        sink->cv.notify_all();
      },
  };
}

/// Rules with a pii engine that masks phones and blocks e-mails (no lexicon files needed).
std::shared_ptr<const tc::actors::moderation_rules> pii_rules() {
  tc::config::moderation_settings m;
  m.enabled = true;
  tc::config::moderation_engine_settings e;
  e.name = "pii";
  e.type = "pii";
  e.kinds = {"phone", "email"};
  e.actions = {"phone=mask", "email=block"};
  m.engines.push_back(e);
  std::string error;
  auto rules = tc::actors::compile_rules(m, error);
  REQUIRE_MESSAGE(rules, error);
  return rules;
}

/// A connection actor with moderation rules, a ledger and an audit writer (both recording).
struct compliance_fixture {
  compliance_fixture() = default;
  explicit compliance_fixture(bool keeps) : keeps_text(keeps) {}
  bool keeps_text = true;  ///< the writer keeps texts (audit.text clear or sealed)
  recording_port port;
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<record_sink> ledger_sink = std::make_shared<record_sink>();
  std::shared_ptr<audit_sink> audits = std::make_shared<audit_sink>();
  caf::actor ledger = sys.spawn(fake_ledger, ledger_sink);
  caf::actor audit = sys.spawn(fake_audit, audits);
  caf::actor actor = sys.spawn(tc::actors::connection, make());
  ~compliance_fixture() {
    for (auto* a : {&actor, &ledger, &audit})
      caf::anon_send_exit(*a, caf::exit_reason::user_shutdown);
  }
  std::shared_ptr<tc::actors::pipeline> make() {
    auto p = make_pipeline(port);
    p->accounts.ledger = ledger;
    p->compliance.audit = audit;
    p->compliance.audit_write_ahead = true;
    p->compliance.audit_keeps_text = keeps_text;
    p->compliance.moderation->set(pii_rules());
    p->models["chat"].endpoints.front().filing_id = "BJ-1";
    return p;
  }
  static tc::openai::request with_content(std::string content) {
    auto r = chat_request("chat");
    r.body = R"({"model":"chat","messages":[{"role":"user","content":")" + content + R"("}]})";
    return r;
  }
};

}  // namespace

TEST_CASE_FIXTURE(compliance_fixture,
                  "step 4: blocked input is 400 content_filter, nothing dispatched, audited") {
  tc::request_meta meta;
  meta.request_id = "req-blocked";
  caf::anon_send(actor, with_content("write to me at a@b.example"), tc::reply_target{0, 3}, meta);
  auto rejected = port.rejection(1);
  REQUIRE(rejected);
  CHECK(rejected->second.status == 400);
  CHECK(rejected->second.code == "content_filter");
  CHECK(rejected->second.message.find("pii.email") != std::string::npos);
  auto rec = audits->record(1);
  REQUIRE(rec);
  CHECK(rec->request_id == "req-blocked");
  CHECK(rec->status == 400);
  REQUIRE(rec->input_verdicts.size() == 1);
  CHECK(rec->input_verdicts[0].engine == "pii");
  CHECK(rec->input_verdicts[0].verdict == "block");
  CHECK(rec->input_text.find("a@b.example") != std::string::npos);  // what the client sent
  // Nothing went upstream: the next request's plan is the first.
  caf::anon_send(actor, with_content("hello"), tc::reply_target{0, 5}, meta);
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->to.slot == 5);
}

TEST_CASE_FIXTURE(compliance_fixture,
                  "step 4: a masked phone goes upstream masked, the answer waits for two records") {
  tc::request_meta meta;
  meta.request_id = "req-mask";
  caf::anon_send(actor, with_content("call 13800138000 now"), tc::reply_target{0, 4}, meta);
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->body.find("13800138000") == std::string::npos);
  CHECK(plan->body.find("***********") != std::string::npos);
  CHECK(plan->filing_id == "BJ-1");
  CHECK(plan->keep_output);
  CHECK(plan->write_ahead);
  CHECK(plan->acks == 2);
  tc::request_outcome outcome;
  outcome.status = 200;
  outcome.held = true;
  outcome.output_text = "the answer";
  outcome.output_verdicts.push_back({"pii", "allow", "", 3});
  caf::anon_send(actor, outcome);
  auto rec = audits->record(1);
  REQUIRE(rec);
  CHECK(rec->status == 200);
  CHECK(rec->provider == "deepseek");
  CHECK(rec->output_text == "the answer");
  CHECK(rec->output_verdicts.size() == 1);
  CHECK(rec->input_verdicts.size() == 1);
  CHECK(rec->input_verdicts[0].verdict == "mask");
  REQUIRE(ledger_sink->record(1));
  std::lock_guard<std::mutex> a(audits->mx);
  std::lock_guard<std::mutex> l(ledger_sink->mx);
  REQUIRE(audits->holds[0].has_value());
  REQUIRE(ledger_sink->holds[0].has_value());
  CHECK(audits->holds[0]->slot == 4);
  CHECK(ledger_sink->holds[0]->slot == 4);
}

namespace {

/// The same, with an audit writer that keeps no text (audit.text = "none", the default).
struct digest_only_fixture : compliance_fixture {
  digest_only_fixture() : compliance_fixture(false) {}
};

}  // namespace

TEST_CASE_FIXTURE(digest_only_fixture,
                  "step 13: a writer keeping no text gets digests of what was sent and answered") {
  tc::request_meta meta;
  meta.request_id = "req-digest";
  auto sent = with_content("call 13800138000 now");
  const std::string as_sent = sent.body;  // before masking changes what goes upstream
  caf::anon_send(actor, std::move(sent), tc::reply_target{0, 4}, meta);
  auto plan = port.plan(1);
  REQUIRE(plan);
  CHECK(plan->body != as_sent);  // masked upstream; the record is of what the client sent
  tc::request_outcome outcome;
  outcome.status = 200;
  outcome.held = true;
  outcome.output_text = "the answer";
  caf::anon_send(actor, outcome);
  auto rec = audits->record(1);
  REQUIRE(rec);
  CHECK(rec->input_text.empty());
  CHECK(rec->output_text.empty());
  CHECK(rec->input_digest == tc::audit::digest(tc::audit::hash_algo::sha256, as_sent));
  CHECK(rec->output_digest == tc::audit::digest(tc::audit::hash_algo::sha256, "the answer"));

  // A refusal: its input digested, its output empty.
  meta.request_id = "req-refused";
  auto blocked = with_content("write to me at a@b.example");
  const std::string blocked_body = blocked.body;
  caf::anon_send(actor, std::move(blocked), tc::reply_target{0, 5}, meta);
  rec = audits->record(2);
  REQUIRE(rec);
  CHECK(rec->status == 400);
  CHECK(rec->input_text.empty());
  CHECK(rec->input_digest == tc::audit::digest(tc::audit::hash_algo::sha256, blocked_body));
  CHECK(rec->output_digest == tc::audit::digest(tc::audit::hash_algo::sha256, ""));

  // A cached answer served as stored brings the digest made when it was stored: it is the
  // record's, with no text sent. One made by another algorithm is not: the text is digested.
  const std::string stored_digest(32, '\x5a');
  for (const uint8_t algo : {static_cast<uint8_t>(tc::audit::hash_algo::sha256),
                             static_cast<uint8_t>(tc::audit::hash_algo::sm3)}) {
    CAPTURE(algo);
    const bool ours = algo == static_cast<uint8_t>(tc::audit::hash_algo::sha256);
    const uint64_t seq = ours ? 3 : 4;
    meta.request_id = ours ? "req-stored" : "req-other-algo";
    caf::anon_send(actor, with_content("hello again"), tc::reply_target{0, 6}, meta);
    REQUIRE(port.plan(seq - 1));
    tc::request_outcome served;
    served.status = 200;
    served.held = true;
    served.output_text = ours ? "" : "as served";
    served.output_digest = stored_digest;
    served.output_digest_algo = algo;
    caf::anon_send(actor, served);
    rec = audits->record(seq);
    REQUIRE(rec);
    CHECK(rec->output_text.empty());
    CHECK(rec->output_digest ==
          (ours ? stored_digest : tc::audit::digest(tc::audit::hash_algo::sha256, "as served")));
  }
}

namespace {

/// A cache shard whose first exact lookup misses, but marks the key stored at the dedup table
/// just before answering: the leader of an identical request stored its answer and closed its
/// entry between this request's lookup and its join. The second lookup (the recheck) finds the
/// answer when `found_again`.
struct scripted_shard_state {
  int gets = 0;
};

/// The key the scripted shard was asked for.
struct seen_key {
  std::mutex mx;
  tc::canonical::digest key;
};

tc::actors::cache_shard_actor::behavior_type scripted_shard(
    tc::actors::cache_shard_actor::stateful_pointer<scripted_shard_state> self, caf::actor table,
    bool found_again, std::shared_ptr<seen_key> seen) {
  using namespace tc::actors;
  return {
      [self, table, found_again, seen](cache_get_atom, const tc::canonical::digest& key) {
        tc::cache_hit hit;
        if (++self->state.gets == 1) {
          {
            std::lock_guard<std::mutex> lock(seen->mx);
            seen->key = key;
          }
          caf::anon_send(table, dedup_done_atom::value, tc::dedup_result{key, 200, "{}", 0, 0},
                         true);
          return hit;
        }
        hit.found = found_again;
        hit.tier = static_cast<uint8_t>(cache_tier::exact);
        hit.body = R"({"id":"stored","object":"chat.completion","choices":[]})";
        return hit;
      },
      [](cache_find_atom, const tc::cache_probe&) { return tc::cache_hit{}; },
      [](cache_put_atom, const tc::cache_entry&) {},
      [](cache_store_atom, const tc::cache_entry&) { return true; },
      [](cache_link_atom, const tc::cache_link&) {},
      [](cache_drop_atom, const tc::cache_filter&) { return uint64_t{0}; },
      [](cache_stats_atom) { return tc::cache_stats{}; },
      [](cache_sweep_atom) {},
  };
}

/// A connection actor with one scripted cache shard and a real dedup table; chat is cacheable.
struct recheck_fixture {
  recording_port port;
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::actor table = sys.spawn(tc::actors::dedup_table, uint32_t{0});
  std::shared_ptr<seen_key> seen = std::make_shared<seen_key>();
  caf::actor actor;
  explicit recheck_fixture(bool found_again) {
    auto p = make_pipeline(port);
    p->models["chat"].endpoints[0].cache_nondeterministic = true;
    p->cache.enabled = true;
    p->cache.shards.push_back(sys.spawn(scripted_shard, table, found_again, seen));
    p->cache.dedup_tables.push_back(table);
    actor = sys.spawn(tc::actors::connection, p);
  }
  ~recheck_fixture() {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(table, caf::exit_reason::user_shutdown);
  }
  /// What the table makes of one more identical request.
  tc::actors::dedup_role join() {
    tc::canonical::digest key;
    {
      std::lock_guard<std::mutex> lock(seen->mx);
      key = seen->key;
    }
    caf::scoped_actor self{sys};
    auto role = tc::actors::dedup_role::follower;
    self->request(table, std::chrono::seconds(5), tc::actors::dedup_join_atom::value, key,
                  caf::actor_cast<caf::actor>(self), false)
        .receive([&](uint8_t r) { role = static_cast<tc::actors::dedup_role>(r); },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return role;
  }
};

}  // namespace

TEST_CASE("a request made leader just after an identical answer was stored looks again") {
  SUBCASE("the answer is there: it is served, no upstream call, and the entry is closed") {
    recheck_fixture f(true);
    caf::anon_send(f.actor, chat_request("chat"), tc::reply_target{0, 3}, tc::request_meta{});
    auto served = f.port.served(1);
    REQUIRE(served);
    CHECK(served->cache_header == "hit-exact");
    CHECK(served->body.find("stored") != std::string::npos);
    CHECK(f.port.plan_count() == 0);
    // The entry it led for that moment is closed (the next identical request is not made to
    // wait on it), and the key is still known as stored.
    CHECK(f.join() == tc::actors::dedup_role::recheck);
  }
  SUBCASE("the answer is gone (evicted): the request leads and calls the upstream") {
    recheck_fixture f(false);
    caf::anon_send(f.actor, chat_request("chat"), tc::reply_target{0, 4}, tc::request_meta{});
    auto plan = f.port.plan(1);
    REQUIRE(plan);
    CHECK(plan->dedup_leader);
    CHECK(f.join() == tc::actors::dedup_role::follower);  // it leads the entry now
  }
}
