// The audit_writer actor: chaining and group commit into the store, resuming after a restart,
// tampering found by verify, text modes, write faults and write-ahead release, retention with an
// anchor, export, search, and the audit message types across a real middleman connection.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include "actors/audit_writer.hpp"
#include "actors/ledger_book.hpp"
#include "actors/store.hpp"
#include "protocol/audit/record.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc;
using namespace tc::actors;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
constexpr int64_t kDayMs = 86'400'000;
const std::string kSm4Key = "0123456789abcdef";

using tc::test::quiet_config;

/// What the hooks saw (they run on the writer's thread).
struct hook_log {
  std::mutex mutex;
  size_t written = 0;
  size_t failures = 0;
  std::string last_error;
  size_t last_pending = 0;
  std::vector<reply_target> released;
  bool released_before_durable = false;  ///< a released target's record was not yet stored
};

/// Polls `done` until it holds or `deadline` passes (bounded: at most ~deadline/1ms rounds).
template <class F>
bool eventually(F done, std::chrono::milliseconds deadline = std::chrono::milliseconds(5000)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

audit::audit_record make_record(uint64_t i, int64_t ts_ms = 1'700'000'000'000,
                                std::string tenant = "acme") {
  audit::audit_record r;
  r.request_id = "req-" + std::to_string(i);
  r.ts_ms = ts_ms;
  r.tenant = std::move(tenant);
  r.project = "web";
  r.key_id = "key_1";
  r.model = "gpt-4o";
  r.provider = "sim";
  r.endpoint = "/v1/chat/completions";
  r.status = 200;
  r.prompt_tokens = 10 + static_cast<uint32_t>(i);
  r.completion_tokens = 20;
  r.cost_micros = 1234;
  r.cost_currency = "USD";
  r.latency_ms = 42;
  r.input_verdicts.push_back({"keywords", "allow", "", 12});
  r.output_verdicts.push_back({"pii", "mask", "phone", 30});
  r.input_text = "question number " + std::to_string(i);
  r.output_text = "answer number " + std::to_string(i);
  return r;
}

rapidjson::Document parse_json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  REQUIRE_MESSAGE(!d.HasParseError(), text);
  REQUIRE(d.IsObject());
  return d;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    REQUIRE(nl != std::string::npos);  // every line ends with a newline
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

struct writer_fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::shared_ptr<store> db;
  std::shared_ptr<audit_settings> settings = std::make_shared<audit_settings>();
  std::shared_ptr<hook_log> log = std::make_shared<hook_log>();
  /// The senders' count of messages no answer waits for (the writer counts it down).
  std::shared_ptr<std::atomic<int64_t>> behind = std::make_shared<std::atomic<int64_t>>(0);
  caf::actor writer;

  explicit writer_fixture(audit::hash_algo algo = audit::hash_algo::sha256,
                          bool release_on_failure = false,
                          std::shared_ptr<store> shared_db = nullptr)
      : release_on_failure_(release_on_failure) {
    settings->algo = algo;
    settings->node = "node-a";
    if (shared_db) {
      db = std::move(shared_db);
    } else {
      store::status st;
      db = store::open("", false, st);
      REQUIRE_MESSAGE(db != nullptr, st.message);
    }
  }
  ~writer_fixture() { stop(); }

  /// Spawns the writer with the current settings (again after stop(): a restart).
  void start() {
    auto hooks = std::make_shared<audit_hooks>();
    auto log_ptr = log;
    auto db_ptr = db;
    auto node = settings->node;
    hooks->on_written = [log_ptr](size_t n) {
      std::lock_guard<std::mutex> g(log_ptr->mutex);
      log_ptr->written += n;
    };
    hooks->on_write_failed = [log_ptr](const std::string& error, size_t pending) {
      std::lock_guard<std::mutex> g(log_ptr->mutex);
      ++log_ptr->failures;
      log_ptr->last_error = error;
      log_ptr->last_pending = pending;
    };
    // Targets carry the seq of their record in `slot`: check it is stored when released.
    hooks->on_durable = [log_ptr, db_ptr, node](const std::vector<reply_target>& held) {
      std::lock_guard<std::mutex> g(log_ptr->mutex);
      for (const reply_target& t : held) {
        std::string v;
        if (!db_ptr->get(store::family::audit, audit::record_key(node, t.slot), v).ok())
          log_ptr->released_before_durable = true;
        log_ptr->released.push_back(t);
      }
    };
    hooks->release_on_failure = release_on_failure_;
    hooks->records_behind = behind;
    writer =
        sys.spawn<caf::detached>(audit_writer, db, std::shared_ptr<const audit_settings>(settings),
                                 std::shared_ptr<const audit_hooks>(hooks), ledger_);
  }

  void stop() {
    if (!writer) return;
    self->send_exit(writer, caf::exit_reason::user_shutdown);
    self->wait_for(writer);
    writer = nullptr;
  }

  void append(audit::audit_record r) { self->send(writer, std::move(r)); }
  void append_held(audit::audit_record r, uint64_t slot) {
    self->send(writer, std::move(r), reply_target{1, slot});
  }

  bool sync() {
    bool out = false;
    self->request(writer, kTimeout, audit_sync_atom::value)
        .receive([&](bool b) { out = b; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }

  rapidjson::Document verify() {
    std::string out;
    self->request(writer, kTimeout, audit_verify_atom::value)
        .receive([&](const std::string& s) { out = s; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return parse_json(out);
  }

  std::string export_lines(int64_t from_ms, int64_t to_ms, const std::string& tenant,
                           uint64_t limit) {
    std::string out;
    self->request(writer, kTimeout, audit_export_atom::value, from_ms, to_ms, tenant, limit)
        .receive([&](const std::string& s) { out = s; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }

  std::string search(const std::string& request_id, const std::string& tenant, uint64_t limit) {
    std::string out;
    self->request(writer, kTimeout, audit_search_atom::value, request_id, tenant, limit)
        .receive([&](const std::string& s) { out = s; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }

  uint64_t prune(int64_t now_ms) {
    uint64_t out = 0;
    self->request(writer, kTimeout, audit_prune_atom::value, now_ms)
        .receive([&](uint64_t n) { out = n; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }

  std::string key(uint64_t seq) const { return audit::record_key(settings->node, seq); }

  bool has(uint64_t seq) const {
    std::string v;
    return db->get(store::family::audit, key(seq), v).ok();
  }

  audit::audit_record stored(uint64_t seq) const {
    std::string v;
    REQUIRE(db->get(store::family::audit, key(seq), v).ok());
    audit::audit_record r;
    REQUIRE(audit::decode(v, r));
    return r;
  }

  std::string raw(uint64_t seq) const {
    std::string v;
    REQUIRE(db->get(store::family::audit, key(seq), v).ok());
    return v;
  }

  /// Writes records 1..n (request ids req-1..req-n) and waits until they are stored.
  void fill(uint64_t n) {
    for (uint64_t i = 1; i <= n; ++i) append(make_record(i));
    REQUIRE(sync());
  }

  size_t released_count() {
    std::lock_guard<std::mutex> g(log->mutex);
    return log->released.size();
  }

 private:
  bool release_on_failure_;

 public:
  std::shared_ptr<const audit_ledger> ledger_;  ///< set before start(): usage records travel too
};

void check_ok(const rapidjson::Document& d, uint64_t checked, uint64_t first_seq = 1) {
  CHECK_MESSAGE(d["ok"].GetBool(), d["reason"].GetString());
  CHECK(d["checked"].GetUint64() == checked);
  CHECK(d["first_seq"].GetUint64() == first_seq);
  CHECK(d["last_seq"].GetUint64() == first_seq + checked - 1);
  CHECK(d["first_broken_seq"].GetUint64() == 0);
  CHECK(std::string(d["reason"].GetString()).empty());
}

void check_broken(const rapidjson::Document& d, uint64_t seq) {
  CHECK_FALSE(d["ok"].GetBool());
  CHECK(d["first_broken_seq"].GetUint64() == seq);
  CHECK_FALSE(std::string(d["reason"].GetString()).empty());
}

}  // namespace

TEST_CASE("store::last finds the last key with a prefix") {
  store::status st;
  auto db = store::open("", false, st);
  REQUIRE(db != nullptr);
  std::string key = "unchanged";
  std::string value;
  CHECK(db->last(store::family::audit, "a", key, value).not_found());
  CHECK(key == "unchanged");
  for (const char* k : {"a", "a\x01", "ab", "b", "c"})
    REQUIRE(db->put(store::family::audit, k, std::string("v-") + k).ok());
  REQUIRE(db->put(store::family::audit, std::string("a\xff\xff", 3), "ff").ok());
  REQUIRE(db->put(store::family::meta, "a\xff\xff\xff", "other family").ok());
  REQUIRE(db->last(store::family::audit, "a", key, value).ok());
  CHECK(key == std::string("a\xff\xff", 3));
  CHECK(value == "ff");
  REQUIRE(db->last(store::family::audit, std::string("a\xff", 2), key, value).ok());
  CHECK(key == std::string("a\xff\xff", 3));
  REQUIRE(db->last(store::family::audit, "ab", key, value).ok());
  CHECK(key == "ab");
  REQUIRE(db->last(store::family::audit, "b", key, value).ok());
  CHECK(value == "v-b");
  REQUIRE(db->last(store::family::audit, "", key, value).ok());
  CHECK(key == "c");
  CHECK(db->last(store::family::audit, "bb", key, value).not_found());
  CHECK(db->last(store::family::audit, "d", key, value).not_found());
  CHECK(db->last(store::family::meta, "a", key, value).ok());
  CHECK(value == "other family");
}

TEST_CASE("audit_writer: appends chain, sync writes them, verify walks the chain") {
  for (auto algo : {audit::hash_algo::sha256, audit::hash_algo::sm3}) {
    CAPTURE(audit::hash_algo_name(algo));
    writer_fixture f(algo);
    f.start();
    f.fill(50);
    auto d = f.verify();
    check_ok(d, 50);
    CHECK(std::string(d["node"].GetString()) == "node-a");
    CHECK(std::string(d["algo"].GetString()) == audit::hash_algo_name(algo));
    CHECK(d["head_seq"].GetUint64() == 50);

    // An independent chain over the same records gives the same hashes.
    audit::chain expected(algo);
    for (uint64_t seq = 1; seq <= 50; ++seq) {
      audit::audit_record r = make_record(seq);
      r.node = "node-a";
      r.input_digest = audit::digest(algo, r.input_text);
      r.output_digest = audit::digest(algo, r.output_text);
      r.input_text.clear();  // default text mode: none
      r.output_text.clear();
      expected.append(r);
      CHECK(f.stored(seq) == r);
    }
    std::lock_guard<std::mutex> g(f.log->mutex);
    CHECK(f.log->written == 50);
    CHECK(f.log->failures == 0);
    CHECK(f.log->released.empty());
  }
}

TEST_CASE("audit_writer: write-ahead targets are released once their record is stored") {
  writer_fixture f;
  f.start();
  f.append(make_record(1));
  f.append_held(make_record(2), 2);
  f.append(make_record(3));
  f.append_held(make_record(4), 4);
  REQUIRE(f.sync());
  REQUIRE(eventually([&] { return f.released_count() == 2; }));
  std::lock_guard<std::mutex> g(f.log->mutex);
  CHECK(f.log->released[0].slot == 2);
  CHECK(f.log->released[1].slot == 4);
  CHECK(f.log->released[0].loop == 1);
  CHECK_FALSE(f.log->released_before_durable);
}

namespace {

/// A request's usage record, as the connection actor makes it (same request id as make_record).
billing::usage_record make_usage(uint64_t i) {
  billing::usage_record u;
  u.request_id = "req-" + std::to_string(i);
  u.ts_ms = 1'700'000'000'000;
  u.tenant = "acme";
  u.project = "web";
  u.key = "key_1";
  u.model = "gpt-4o";
  u.provider = "sim";
  u.endpoint = "chat";
  u.status = 200;
  u.prompt_tokens = 10 + i;
  u.completion_tokens = 20;
  u.charged_micros = 1234;
  return u;
}

/// What the ledger's hooks heard from an audit writer carrying usage records.
struct ledger_log {
  std::mutex mutex;
  size_t written = 0;
  size_t failures = 0;
  size_t last_pending = 0;
};

std::shared_ptr<const audit_ledger> carried_ledger(store& db, std::shared_ptr<ledger_log> log) {
  store::status st;
  auto book = std::make_shared<ledger_book>(db, st);
  REQUIRE_MESSAGE(st.ok(), st.message);
  auto hooks = std::make_shared<ledger_hooks>();
  hooks->on_written = [log](size_t n) {
    std::lock_guard<std::mutex> g(log->mutex);
    log->written += n;
  };
  hooks->on_write_failed = [log](const std::string&, size_t pending) {
    std::lock_guard<std::mutex> g(log->mutex);
    ++log->failures;
    log->last_pending = pending;
  };
  return std::make_shared<const audit_ledger>(audit_ledger{std::move(book), std::move(hooks)});
}

size_t ledger_rows(const audit_ledger& l) {
  std::vector<billing::usage_record> out;
  REQUIRE(l.book->records(0, 999'999, "", 0, out).ok());
  return out.size();
}

}  // namespace

TEST_CASE("audit_writer: usage records sent with audit records are written in the same batch") {
  writer_fixture f;
  auto heard = std::make_shared<ledger_log>();
  f.ledger_ = carried_ledger(*f.db, heard);
  f.start();
  f.self->send(f.writer, make_record(1), make_usage(1));
  f.self->send(f.writer, make_record(2), make_usage(2), reply_target{1, 2});
  REQUIRE(f.sync());
  REQUIRE(eventually([&] { return f.released_count() == 1; }));  // one release per answer
  CHECK(ledger_rows(*f.ledger_) == 2);
  CHECK(f.ledger_->book->spent("acme", billing::day_of(1'700'000'000'000)).day_micros == 2468);

  // A failed write stores neither record and releases nothing; the retry stores both.
  f.db->inject_write_faults(true);
  f.self->send(f.writer, make_record(3), make_usage(3), reply_target{1, 3});
  CHECK_FALSE(f.sync());
  CHECK_FALSE(f.has(3));
  CHECK(ledger_rows(*f.ledger_) == 2);
  CHECK(f.released_count() == 1);
  {
    std::lock_guard<std::mutex> g(heard->mutex);
    CHECK(heard->failures >= 1);
    CHECK(heard->last_pending == 1);  // the ledger's health sees its own records pending
  }
  f.db->inject_write_faults(false);
  REQUIRE(eventually([&] { return f.released_count() == 2; }));
  CHECK(f.has(3));
  CHECK(ledger_rows(*f.ledger_) == 3);
  {
    std::lock_guard<std::mutex> g(heard->mutex);
    CHECK(heard->written == 3);
  }
  {
    std::lock_guard<std::mutex> g(f.log->mutex);
    CHECK_FALSE(f.log->released_before_durable);
    CHECK(f.log->written == 3);
  }
  check_ok(f.verify(), 3);
}

TEST_CASE("audit_writer: messages no answer waits for are counted down once written") {
  writer_fixture f;
  f.ledger_ = carried_ledger(*f.db, std::make_shared<ledger_log>());
  f.start();
  f.behind->store(3);  // as the senders counted the three unheld messages below
  f.db->inject_write_faults(true);
  f.append(make_record(1));
  f.append_held(make_record(2), 2);  // an answer waits for it: never counted
  f.self->send(f.writer, make_record(3), make_usage(3));
  f.append(make_record(4));
  CHECK_FALSE(f.sync());
  CHECK(f.behind->load() == 3);  // not written yet: still behind
  f.db->inject_write_faults(false);
  REQUIRE(eventually([&] { return f.released_count() == 1; }));
  CHECK(f.behind->load() == 0);
  CHECK(f.has(4));
}

TEST_CASE("audit_writer: a usage record without the ledger's book is kept, never dropped") {
  writer_fixture f;  // no ledger lent
  f.start();
  f.self->send(f.writer, make_record(1), make_usage(1), reply_target{1, 1});
  CHECK_FALSE(f.sync());  // still pending: retried, not written without its usage record
  CHECK_FALSE(f.has(1));
  CHECK(f.released_count() == 0);
  std::lock_guard<std::mutex> g(f.log->mutex);
  CHECK(f.log->last_error.find("ledger") != std::string::npos);
}

TEST_CASE("audit_writer: a restarted writer continues the stored chain") {
  writer_fixture f(audit::hash_algo::sm3);
  f.start();
  f.fill(10);
  const audit::audit_record tenth = f.stored(10);
  f.stop();

  f.start();
  for (uint64_t i = 11; i <= 15; ++i) f.append(make_record(i));
  REQUIRE(f.sync());
  CHECK_FALSE(f.has(16));
  const audit::audit_record eleventh = f.stored(11);
  CHECK(eleventh.seq == 11);
  CHECK(eleventh.request_id == "req-11");
  CHECK(eleventh.prev_hash == tenth.hash);
  CHECK(f.stored(10) == tenth);  // nothing was overwritten
  check_ok(f.verify(), 15);

  // A third start after an empty run still resumes at 16.
  f.stop();
  f.start();
  f.append(make_record(16));
  REQUIRE(f.sync());
  CHECK(f.stored(16).prev_hash == f.stored(15).hash);
  check_ok(f.verify(), 16);
}

TEST_CASE("audit_writer: verify names the first tampered record") {
  SUBCASE("a flipped byte") {
    writer_fixture f;
    f.start();
    f.fill(10);
    std::string v = f.raw(5);
    v[v.size() / 2] = static_cast<char>(v[v.size() / 2] ^ 0x01);
    REQUIRE(f.db->put(store::family::audit, f.key(5), v).ok());
    check_broken(f.verify(), 5);
  }
  SUBCASE("a flipped byte in the tenant (still decodes)") {
    writer_fixture f;
    f.start();
    f.fill(10);
    audit::audit_record r = f.stored(7);
    r.tenant = "acmf";
    REQUIRE(f.db->put(store::family::audit, f.key(7), audit::encode(r)).ok());
    auto d = f.verify();
    check_broken(d, 7);
    CHECK(d["checked"].GetUint64() == 6);
    CHECK(d["last_seq"].GetUint64() == 6);
  }
  SUBCASE("a record deleted in the middle") {
    writer_fixture f;
    f.start();
    f.fill(10);
    REQUIRE(f.db->del(store::family::audit, f.key(5)).ok());
    check_broken(f.verify(), 5);
  }
  SUBCASE("the newest record deleted") {
    writer_fixture f;
    f.start();
    f.fill(10);
    REQUIRE(f.db->del(store::family::audit, f.key(10)).ok());
    auto d = f.verify();
    check_broken(d, 10);
    CHECK(d["checked"].GetUint64() == 9);
    CHECK(std::string(d["reason"].GetString()).find("missing") != std::string::npos);
  }
  SUBCASE("the newest three records deleted") {
    writer_fixture f;
    f.start();
    f.fill(10);
    for (uint64_t seq = 8; seq <= 10; ++seq)
      REQUIRE(f.db->del(store::family::audit, f.key(seq)).ok());
    check_broken(f.verify(), 8);
  }
  SUBCASE("two values swapped") {
    writer_fixture f;
    f.start();
    f.fill(10);
    const std::string four = f.raw(4);
    const std::string six = f.raw(6);
    REQUIRE(f.db->put(store::family::audit, f.key(4), six).ok());
    REQUIRE(f.db->put(store::family::audit, f.key(6), four).ok());
    check_broken(f.verify(), 4);
  }
  SUBCASE("a record rewritten with a recomputed hash") {
    // The forger recomputes the record's own hash: the next record's prev_hash gives it away.
    writer_fixture f;
    f.start();
    f.fill(10);
    audit::audit_record r = f.stored(3);
    r.cost_micros = 1;
    audit::chain c(audit::hash_algo::sha256, 2, f.stored(2).hash);
    c.append(r);
    REQUIRE(f.db->put(store::family::audit, f.key(3), audit::encode(r)).ok());
    check_broken(f.verify(), 4);
  }
}

TEST_CASE("audit_writer: text modes") {
  const std::string input = "my phone is 555-0100";
  const std::string output = "noted \"555-0100\"\n";
  auto record = [&] {
    audit::audit_record r = make_record(1);
    r.input_text = input;
    r.output_text = output;
    return r;
  };

  SUBCASE("none keeps digests only") {
    writer_fixture f(audit::hash_algo::sm3);
    f.settings->text = audit_settings::text_mode::none;
    f.start();
    f.append(record());
    REQUIRE(f.sync());
    const audit::audit_record r = f.stored(1);
    CHECK(r.input_text.empty());
    CHECK(r.output_text.empty());
    CHECK_FALSE(r.text_encrypted);
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sm3, input));
    CHECK(r.output_digest == audit::digest(audit::hash_algo::sm3, output));
    CHECK(f.raw(1).find("555-0100") == std::string::npos);
    auto line = parse_json(lines_of(f.export_lines(0, 0, "", 0)).at(0));
    CHECK_FALSE(line.HasMember("input_text"));
    CHECK_FALSE(line.HasMember("output_text"));
    CHECK(std::string(line["input_digest"].GetString()) == audit::to_hex(r.input_digest));
  }
  SUBCASE("none: digests made by the sender are kept, the chain covers them") {
    writer_fixture f(audit::hash_algo::sm3);
    f.settings->text = audit_settings::text_mode::none;
    f.start();
    audit::audit_record sent = make_record(1);  // as step 13 sends it: digests, no text
    sent.input_digest = audit::digest(audit::hash_algo::sm3, input);
    sent.output_digest = audit::digest(audit::hash_algo::sm3, output);
    f.append(sent);
    REQUIRE(f.sync());
    const audit::audit_record r = f.stored(1);
    CHECK(r.input_text.empty());
    CHECK(r.output_text.empty());
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sm3, input));
    CHECK(r.output_digest == audit::digest(audit::hash_algo::sm3, output));
    check_ok(f.verify(), 1);
  }
  SUBCASE("a record with one digest gets the other from its text") {
    // A cached answer's digest comes made; the request's text could not be digested.
    writer_fixture f;
    f.settings->text = audit_settings::text_mode::none;
    f.start();
    audit::audit_record sent = record();
    sent.output_digest = std::string(32, '\x07');  // the sender's: kept as sent
    sent.output_text.clear();
    f.append(sent);
    sent = record();
    sent.input_digest = std::string(32, '\x08');
    sent.input_text.clear();
    f.append(sent);
    REQUIRE(f.sync());
    audit::audit_record r = f.stored(1);
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sha256, input));
    CHECK(r.output_digest == std::string(32, '\x07'));
    r = f.stored(2);
    CHECK(r.input_digest == std::string(32, '\x08'));
    CHECK(r.output_digest == audit::digest(audit::hash_algo::sha256, output));
    CHECK(r.input_text.empty());
    CHECK(r.output_text.empty());
    check_ok(f.verify(), 2);
  }
  SUBCASE("clear keeps the text") {
    writer_fixture f;
    f.settings->text = audit_settings::text_mode::clear;
    f.start();
    f.append(record());
    REQUIRE(f.sync());
    const audit::audit_record r = f.stored(1);
    CHECK(r.input_text == input);
    CHECK(r.output_text == output);
    CHECK_FALSE(r.text_encrypted);
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sha256, input));
    auto line = parse_json(lines_of(f.export_lines(0, 0, "", 0)).at(0));
    CHECK(std::string(line["output_text"].GetString()) == output);
    check_ok(f.verify(), 1);
  }
  SUBCASE("sealed stores ciphertext, export opens it") {
    writer_fixture f(audit::hash_algo::sm3);
    f.settings->text = audit_settings::text_mode::sealed;
    f.settings->sm4_key = kSm4Key;
    f.start();
    f.append(record());
    audit::audit_record no_output = make_record(2);
    no_output.input_text = input;
    no_output.output_text.clear();
    f.append(no_output);
    REQUIRE(f.sync());
    const audit::audit_record r = f.stored(1);
    CHECK(r.text_encrypted);
    CHECK(r.input_text != input);
    CHECK(r.input_text.find(input) == std::string::npos);
    CHECK(f.raw(1).find("555-0100") == std::string::npos);
    std::string plain;
    REQUIRE(audit::open(kSm4Key, r.input_text, plain));
    CHECK(plain == input);
    REQUIRE(audit::open(kSm4Key, r.output_text, plain));
    CHECK(plain == output);
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sm3, input));
    CHECK(r.output_digest == audit::digest(audit::hash_algo::sm3, output));
    CHECK(f.stored(2).output_text.empty());  // empty text is not sealed

    auto lines = lines_of(f.export_lines(0, 0, "", 0));
    REQUIRE(lines.size() == 2);
    auto line = parse_json(lines[0]);
    CHECK(line["text_encrypted"].GetBool());
    CHECK(line["text_readable"].GetBool());
    CHECK(std::string(line["input_text"].GetString()) == input);
    CHECK(std::string(line["output_text"].GetString()) == output);
    auto second = parse_json(lines[1]);
    CHECK(std::string(second["input_text"].GetString()) == input);
    CHECK(std::string(second["output_text"].GetString()).empty());
    check_ok(f.verify(), 2);
  }
  SUBCASE("sealed without a valid key keeps no text") {
    writer_fixture f;
    f.settings->text = audit_settings::text_mode::sealed;
    f.settings->sm4_key = "short";
    f.start();
    f.append(record());
    REQUIRE(f.sync());
    const audit::audit_record r = f.stored(1);
    CHECK(r.input_text.empty());
    CHECK(r.output_text.empty());
    CHECK(r.input_digest == audit::digest(audit::hash_algo::sha256, input));
  }
}

TEST_CASE("audit_writer: write faults lose nothing and change no hash") {
  // The same records through a healthy store and one that fails in the middle.
  writer_fixture healthy;
  healthy.settings->text = audit_settings::text_mode::clear;
  healthy.start();
  for (uint64_t i = 1; i <= 12; ++i) healthy.append(make_record(i));
  REQUIRE(healthy.sync());

  writer_fixture f;
  f.settings->text = audit_settings::text_mode::clear;
  f.start();
  for (uint64_t i = 1; i <= 4; ++i) f.append(make_record(i));
  REQUIRE(f.sync());

  f.db->inject_write_faults(true);
  for (uint64_t i = 5; i <= 8; ++i) f.append_held(make_record(i), i);
  CHECK_FALSE(f.sync());
  for (uint64_t i = 9; i <= 12; ++i) f.append(make_record(i));
  CHECK_FALSE(f.sync());
  CHECK_FALSE(f.has(5));
  {
    std::lock_guard<std::mutex> g(f.log->mutex);
    CHECK(f.log->failures >= 1);
    CHECK(f.log->last_pending == 8);
    CHECK(f.log->last_error.find("injected") != std::string::npos);
    CHECK(f.log->released.empty());  // fail closed: held until written
  }
  // The writer retries on its own every 100 ms: no sync needed once the store recovers.
  f.db->inject_write_faults(false);
  REQUIRE(eventually([&] { return f.released_count() == 4; }));
  REQUIRE(f.sync());
  {
    std::lock_guard<std::mutex> g(f.log->mutex);
    CHECK_FALSE(f.log->released_before_durable);
    CHECK(f.log->written == 12);
  }
  check_ok(f.verify(), 12);
  for (uint64_t seq = 1; seq <= 12; ++seq) {
    CAPTURE(seq);
    CHECK(f.stored(seq) == healthy.stored(seq));
  }
}

TEST_CASE("audit_writer: release_on_failure releases held answers while the store fails") {
  writer_fixture f(audit::hash_algo::sha256, /*release_on_failure=*/true);
  f.start();
  f.fill(2);
  f.db->inject_write_faults(true);
  f.append_held(make_record(3), 3);
  CHECK_FALSE(f.sync());
  CHECK(f.released_count() == 1);  // released by the failed flush
  f.append_held(make_record(4), 4);
  REQUIRE(eventually([&] { return f.released_count() == 2; }));  // at once: the store is failing
  CHECK_FALSE(f.has(3));
  CHECK_FALSE(f.has(4));
  {
    std::lock_guard<std::mutex> g(f.log->mutex);
    CHECK(f.log->released_before_durable);  // that is what fail-open means
  }
  f.db->inject_write_faults(false);
  REQUIRE(f.sync());
  CHECK(f.has(4));
  check_ok(f.verify(), 4);
}

TEST_CASE("audit_writer: prune keeps an anchor and the rest still verifies") {
  const int64_t now = 1'700'000'000'000;
  writer_fixture f;
  f.settings->retention_days = 1;
  f.start();
  for (uint64_t i = 1; i <= 5; ++i) f.append(make_record(i, now - 3 * kDayMs));
  for (uint64_t i = 6; i <= 10; ++i) f.append(make_record(i, now - kDayMs / 2));
  REQUIRE(f.sync());
  const std::string fifth_hash = f.stored(5).hash;

  CHECK(f.prune(now) == 5);
  CHECK_FALSE(f.has(5));
  CHECK(f.has(6));
  std::string anchor;
  REQUIRE(f.db->get(store::family::meta, audit_anchor_key("node-a"), anchor).ok());
  REQUIRE(anchor.size() == 40);
  CHECK(anchor.substr(8) == fifth_hash);
  check_ok(f.verify(), 5, 6);
  CHECK(f.prune(now) == 0);

  // After a restart the anchor is read back and new records continue the chain.
  f.stop();
  f.start();
  check_ok(f.verify(), 5, 6);
  f.append(make_record(11, now));
  REQUIRE(f.sync());
  check_ok(f.verify(), 6, 6);

  // Pruning everything leaves an anchor after the head; the chain still continues.
  CHECK(f.prune(now + 10 * kDayMs) == 6);
  check_ok(f.verify(), 0, 12);
  f.stop();
  f.start();
  f.append(make_record(12, now + 10 * kDayMs));
  REQUIRE(f.sync());
  CHECK(f.has(12));
  check_ok(f.verify(), 1, 12);

  // Deleting the anchor is noticed.
  REQUIRE(f.db->del(store::family::meta, audit_anchor_key("node-a")).ok());
  check_broken(f.verify(), 12);
}

TEST_CASE("audit_writer: prune never deletes a record that does not verify") {
  const int64_t now = 1'700'000'000'000;
  writer_fixture f;
  f.settings->retention_days = 7;
  f.start();
  for (uint64_t i = 1; i <= 6; ++i) f.append(make_record(i, now - 30 * kDayMs));
  REQUIRE(f.sync());
  audit::audit_record r = f.stored(3);
  r.tenant = "someone-else";
  REQUIRE(f.db->put(store::family::audit, f.key(3), audit::encode(r)).ok());
  CHECK(f.prune(now) == 2);
  CHECK(f.has(3));
  check_broken(f.verify(), 3);
}

TEST_CASE("audit_writer: retention 0 keeps everything") {
  writer_fixture f;
  f.start();
  for (uint64_t i = 1; i <= 3; ++i) f.append(make_record(i, 1));
  REQUIRE(f.sync());
  CHECK(f.prune(1'700'000'000'000) == 0);
  check_ok(f.verify(), 3);
}

TEST_CASE("audit_writer: export filters by time and tenant, search by request id") {
  writer_fixture f;
  f.settings->text = audit_settings::text_mode::clear;
  f.start();
  for (uint64_t i = 1; i <= 10; ++i)
    f.append(make_record(i, 1000 + static_cast<int64_t>(i), i % 2 == 0 ? "even" : "odd"));
  // Hostile bytes in fields: quotes, control characters, invalid UTF-8.
  audit::audit_record odd = make_record(11, 2000, "odd");
  odd.model = "m\"o\\d\ne\x01l";
  odd.input_text = std::string("bad \xff\xfe utf8 \xe4\xb8\xad ok", 19);
  f.append(odd);
  REQUIRE(f.sync());

  auto lines = lines_of(f.export_lines(1003, 1007, "", 0));
  REQUIRE(lines.size() == 4);
  for (size_t i = 0; i < lines.size(); ++i) {
    auto d = parse_json(lines[i]);
    CHECK(d["seq"].GetUint64() == 3 + i);
    CHECK(d["ts_ms"].GetInt64() == 1003 + static_cast<int64_t>(i));
  }

  lines = lines_of(f.export_lines(0, 0, "even", 0));
  REQUIRE(lines.size() == 5);
  for (const auto& l : lines) CHECK(std::string(parse_json(l)["tenant"].GetString()) == "even");
  CHECK(lines_of(f.export_lines(0, 0, "odd", 2)).size() == 2);
  CHECK(lines_of(f.export_lines(0, 0, "nobody", 0)).empty());
  CHECK(lines_of(f.export_lines(0, 0, "", 0)).size() == 11);

  // Every field of one line, and the chain links between lines.
  lines = lines_of(f.export_lines(0, 0, "", 0));
  auto d = parse_json(lines[3]);
  const audit::audit_record r = f.stored(4);
  CHECK(std::string(d["node"].GetString()) == "node-a");
  CHECK(std::string(d["request_id"].GetString()) == "req-4");
  CHECK(std::string(d["project"].GetString()) == "web");
  CHECK(std::string(d["key_id"].GetString()) == "key_1");
  CHECK(std::string(d["model"].GetString()) == "gpt-4o");
  CHECK(std::string(d["provider"].GetString()) == "sim");
  CHECK(std::string(d["endpoint"].GetString()) == "/v1/chat/completions");
  CHECK(d["status"].GetInt() == 200);
  CHECK(d["prompt_tokens"].GetUint() == 14);
  CHECK(d["completion_tokens"].GetUint() == 20);
  CHECK(std::string(d["cost"].GetString()) == "0.001234");
  CHECK(std::string(d["cost_currency"].GetString()) == "USD");
  CHECK(d["latency_ms"].GetUint() == 42);
  REQUIRE(d["input_verdicts"].IsArray());
  REQUIRE(d["input_verdicts"].Size() == 1);
  CHECK(std::string(d["input_verdicts"][0]["engine"].GetString()) == "keywords");
  CHECK(std::string(d["output_verdicts"][0]["category"].GetString()) == "phone");
  CHECK(d["output_verdicts"][0]["latency_us"].GetUint() == 30);
  CHECK(std::string(d["input_text"].GetString()) == "question number 4");
  CHECK(std::string(d["hash"].GetString()) == audit::to_hex(r.hash));
  CHECK(std::string(d["prev_hash"].GetString()) == audit::to_hex(r.prev_hash));
  CHECK(std::string(parse_json(lines[2])["hash"].GetString()) ==
        std::string(d["prev_hash"].GetString()));

  auto hostile = parse_json(lines[10]);
  CHECK(std::string(hostile["model"].GetString()) == "m\"o\\d\ne\x01l");
  CHECK(std::string(hostile["input_text"].GetString()) ==
        "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xe4\xb8\xad ok");

  lines = lines_of(f.search("req-7", "", 0));
  REQUIRE(lines.size() == 1);
  CHECK(parse_json(lines[0])["seq"].GetUint64() == 7);
  CHECK(lines_of(f.search("req-7", "odd", 0)).size() == 1);
  CHECK(lines_of(f.search("req-7", "even", 0)).empty());
  CHECK(lines_of(f.search("req-404", "", 0)).empty());
  f.append(make_record(7, 3000, "odd"));                  // a retried request id appears twice
  CHECK(lines_of(f.search("req-7", "", 0)).size() == 2);  // the search writes pending first
  CHECK(lines_of(f.search("req-7", "", 1)).size() == 1);

  // A value that no longer decodes is shown, not hidden.
  REQUIRE(f.db->put(store::family::audit, f.key(2), "garbage").ok());
  lines = lines_of(f.export_lines(0, 0, "even", 0));
  REQUIRE(lines.size() == 5);
  auto broken = parse_json(lines[0]);
  CHECK(broken["seq"].GetUint64() == 2);
  CHECK(broken.HasMember("error"));
}

TEST_CASE("audit_writer: audit messages cross a real middleman connection") {
  struct mm_config : quiet_config {
    mm_config() { load<caf::io::middleman>(); }
  };
  mm_config server_cfg;
  caf::actor_system server{server_cfg};
  store::status st;
  std::shared_ptr<store> db = store::open("", false, st);
  REQUIRE(db != nullptr);
  auto settings = std::make_shared<audit_settings>();
  settings->text = audit_settings::text_mode::clear;
  caf::actor writer = server.spawn<caf::detached>(
      audit_writer, db, std::shared_ptr<const audit_settings>(settings),
      std::shared_ptr<const audit_hooks>(), std::shared_ptr<const audit_ledger>());
  // Teardown in this order: the client system first, then unpublish, then stop the writer and
  // wait for it. With a published detached actor, CAF 0.17 otherwise hangs now and then in
  // ~actor_system (await_detached_threads: 5 runs in 30 measured).
  struct stop_writer {
    caf::actor_system& sys;
    caf::actor& a;
    uint16_t port = 0;
    ~stop_writer() {
      if (port != 0) sys.middleman().unpublish(a, port);
      caf::scoped_actor s{sys};
      s->send_exit(a, caf::exit_reason::user_shutdown);
      s->wait_for(a);
      a = nullptr;
    }
  } stop{server, writer};
  auto port = server.middleman().publish(writer, 0, "127.0.0.1");
  REQUIRE(port);
  stop.port = *port;

  audit::audit_record sent = make_record(1);
  sent.output_verdicts.push_back({"http", "block", "violence", 7});
  {
    mm_config client_cfg;
    caf::actor_system client{client_cfg};
    auto remote = client.middleman().remote_actor("127.0.0.1", *port);
    REQUIRE(remote);
    caf::scoped_actor self{client};
    self->send(*remote, sent, reply_target{3, 9});
    bool synced = false;
    self->request(*remote, kTimeout, audit_sync_atom::value)
        .receive([&](bool b) { synced = b; }, [&](const caf::error& e) { FAIL(client.render(e)); });
    REQUIRE(synced);
  }
  std::string v;
  REQUIRE(db->get(store::family::audit, audit::record_key("node-1", 1), v).ok());
  audit::audit_record got;
  REQUIRE(audit::decode(v, got));
  CHECK(got.request_id == sent.request_id);
  CHECK(got.output_verdicts == sent.output_verdicts);
  CHECK(got.input_verdicts == sent.input_verdicts);
  CHECK(got.input_text == sent.input_text);
  CHECK(got.cost_micros == sent.cost_micros);
  CHECK(got.ts_ms == sent.ts_ms);
}

TEST_CASE("audit_writer: append throughput, batches of 1,000") {
  using mode = audit_settings::text_mode;
  for (auto [algo, text] : {std::pair{audit::hash_algo::sha256, mode::clear},
                            std::pair{audit::hash_algo::sm3, mode::clear},
                            std::pair{audit::hash_algo::sha256, mode::none},
                            std::pair{audit::hash_algo::sm3, mode::none}}) {
    writer_fixture f(algo);
    f.settings->text = text;
    f.start();
    std::vector<audit::audit_record> records;
    for (uint64_t i = 1; i <= 1000; ++i) {
      audit::audit_record r = make_record(i);
      r.input_text.assign(600, 'q');
      r.output_text.assign(1200, 'a');
      records.push_back(std::move(r));
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& r : records) f.append(std::move(r));
    REQUIRE(f.sync());
    const auto t1 = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(t1 - t0).count();
    MESSAGE(audit::hash_algo_name(algo)
            << ": 1000 records (1.8 KB text, "
            << std::string(text == mode::clear ? "kept" : "digests only") << ") in " << s * 1e3
            << " ms = " << 1000 / s << " records/s");
    CHECK(f.has(1000));
    CHECK_FALSE(f.has(1001));
    const auto t2 = std::chrono::steady_clock::now();
    check_ok(f.verify(), 1000);
    MESSAGE("  verify 1000: "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t2).count() * 1e3
            << " ms");
  }
}
