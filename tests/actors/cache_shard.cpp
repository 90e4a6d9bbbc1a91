// The cache_shard actor: exact entries, template and semantic pointers, scopes (tenants) and
// model versions in the key, invalidation, and the byte bound; and the dedup_table actor.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <variant>

#include <caf/all.hpp>

#include "actors/cache_shard.hpp"
#include "actors/dedup_table.hpp"
#include "protocol/canonical/canonical.hpp"
#include "protocol/canonical/embed.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc;
using namespace tc::actors;

namespace {

using tc::test::quiet_config;

canonical::key key_for(std::string_view question, std::string_view scope,
                       std::string_view version = "1") {
  auto parsed = openai::parse_request(
      openai::endpoint::chat_completions,
      R"({"model":"m","temperature":0,"messages":[{"role":"user","content":")" +
          std::string(question) + R"("}]})");
  REQUIRE(std::holds_alternative<openai::request>(parsed));
  canonical::key k;
  std::string error;
  REQUIRE(canonical::make_key(std::get<openai::request>(parsed), scope, version, k, error));
  return k;
}

cache_entry entry_for(const canonical::key& k, std::string scope, std::string body) {
  cache_entry e;
  e.key = k.full_hash;
  e.ns = k.namespace_hash;
  e.scope = std::move(scope);
  e.model = "m";
  e.body = std::move(body);
  e.prompt_tokens = 3;
  e.completion_tokens = 4;
  e.ttl_s = 3600;
  return e;
}

struct shard_fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::shared_ptr<shared_cache_store> table = std::make_shared<shared_cache_store>();
  cache_shard_actor shard;

  explicit shard_fixture(std::size_t max_bytes = 1 << 20, uint32_t budget_pct = 0,
                         uint64_t max_entries = 1000) {
    auto c = std::make_shared<cache_shard_config>();
    c->limits.max_entries = max_entries;
    c->limits.max_bytes = max_bytes;
    c->semantic.dimension = 64;
    c->semantic_budget_pct = budget_pct;
    shard = sys.spawn(cache_shard, c, table);
  }
  ~shard_fixture() { caf::anon_send_exit(shard, caf::exit_reason::user_shutdown); }

  cache_hit get(const canonical::digest& k) {
    cache_hit out;
    self->request(shard, std::chrono::seconds(5), cache_get_atom::value, k)
        .receive([&](const cache_hit& h) { out = h; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }
  cache_hit find(const cache_probe& p) {
    cache_hit out;
    self->request(shard, std::chrono::seconds(5), cache_find_atom::value, p)
        .receive([&](const cache_hit& h) { out = h; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }
  uint64_t drop(const cache_filter& f) {
    uint64_t out = 0;
    self->request(shard, std::chrono::seconds(5), cache_drop_atom::value, f)
        .receive([&](uint64_t n) { out = n; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }
  cache_stats stats() {
    cache_stats out;
    self->request(shard, std::chrono::seconds(5), cache_stats_atom::value)
        .receive([&](const cache_stats& s) { out = s; },
                 [&](const caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }
};

}  // namespace

TEST_CASE_FIXTURE(shard_fixture, "an answer is found under its key, never under another tenant's") {
  const auto a = key_for("What is the tallest mountain?", "tenant:a");
  const auto b = key_for("What is the tallest mountain?", "tenant:b");
  REQUIRE(a.full_hash != b.full_hash);
  self->send(shard, cache_put_atom::value, entry_for(a, "tenant:a", "answer for a"));
  const cache_hit hit = get(a.full_hash);  // mailbox order: the put is handled first
  REQUIRE(hit.found);
  CHECK(hit.body == "answer for a");
  CHECK(hit.prompt_tokens == 3);
  CHECK_FALSE(get(b.full_hash).found);
}

TEST_CASE_FIXTURE(shard_fixture, "bumping the model version changes the key, invalidation drops") {
  const auto v1 = key_for("Explain TCP.", "tenant:a", "1");
  const auto v2 = key_for("Explain TCP.", "tenant:a", "2");
  REQUIRE(v1.full_hash != v2.full_hash);
  self->send(shard, cache_put_atom::value, entry_for(v1, "tenant:a", "v1 answer"));
  CHECK(get(v1.full_hash).found);
  CHECK_FALSE(get(v2.full_hash).found);
  CHECK(drop(cache_filter{"tenant:b", "", {}}) == 0);
  CHECK(drop(cache_filter{"", "m", {}}) == 1);
  CHECK_FALSE(get(v1.full_hash).found);
}

TEST_CASE_FIXTURE(shard_fixture,
                  "invalidation by tenant takes its answers under any residency rule, no others") {
  const std::string ruled = "tenant:a|regions=7:cn-east";
  const auto plain = key_for("Explain UDP.", "tenant:a");
  const auto under_rule = key_for("Explain UDP.", ruled);
  const auto other = key_for("Explain UDP.", "tenant:ab");
  REQUIRE(plain.full_hash != under_rule.full_hash);
  self->send(shard, cache_put_atom::value, entry_for(plain, "tenant:a", "a"));
  self->send(shard, cache_put_atom::value, entry_for(under_rule, ruled, "a under its rule"));
  self->send(shard, cache_put_atom::value, entry_for(other, "tenant:ab", "ab"));
  CHECK(drop(cache_filter{"tenant:a", "", {}}) == 2);
  CHECK_FALSE(get(plain.full_hash).found);
  CHECK_FALSE(get(under_rule.full_hash).found);
  CHECK(get(other.full_hash).found);  // "tenant:ab" only begins like "tenant:a"
}

TEST_CASE("eviction keeps the shard under its byte bound") {
  shard_fixture f(64 * 1024);
  for (int i = 0; i < 200; ++i) {
    const auto k = key_for("Question number " + std::to_string(i), "tenant:a");
    f.self->send(f.shard, cache_put_atom::value, entry_for(k, "tenant:a", std::string(2000, 'x')));
  }
  const cache_stats st = f.stats();
  CHECK(st.bytes <= 64 * 1024);
  CHECK(st.evictions > 0);
  CHECK(st.entries < 200);
  // The newest answers are the ones kept.
  CHECK(f.get(key_for("Question number 199", "tenant:a").full_hash).found);
  CHECK_FALSE(f.get(key_for("Question number 0", "tenant:a").full_hash).found);
}

TEST_CASE_FIXTURE(shard_fixture, "template and semantic pointers lead to the exact key") {
  const auto k = key_for("What is the capital of France?", "tenant:a");
  const canonical::digest tkey = canonical::digest_of("template key");
  canonical::embed_options eo;
  eo.dimension = 64;
  cache_link l;
  l.ns = k.namespace_hash;
  l.exact_key = k.full_hash;
  l.template_key = tkey;
  l.embedding = canonical::embed("What is the capital of France?", eo);
  l.guard = "guard-france";
  l.scope = "tenant:a";
  l.model = "m";
  l.ttl_s = 60;
  self->send(shard, cache_link_atom::value, l);

  cache_probe by_template{k.namespace_hash, tkey, {}, "", 0.95f};
  cache_hit t = find(by_template);
  REQUIRE(t.found);
  CHECK(t.tier == static_cast<uint8_t>(cache_tier::template_));
  CHECK(t.exact_key == k.full_hash);

  cache_probe near{k.namespace_hash,
                   {},
                   canonical::embed("what is the capital of france", eo),
                   "guard-france",
                   0.8f};
  cache_hit s = find(near);
  REQUIRE(s.found);
  CHECK(s.tier == static_cast<uint8_t>(cache_tier::semantic));
  CHECK(s.similarity >= 0.8f);
  CHECK(s.exact_key == k.full_hash);

  // A different guard (another number, entity or a negation) never hits, however similar.
  near.guard = "guard-germany";
  CHECK_FALSE(find(near).found);
  // Another namespace (another tenant, model, system prompt or parameters) never hits.
  near.guard = "guard-france";
  near.ns = canonical::digest_of("another namespace");
  CHECK_FALSE(find(near).found);
  CHECK(stats().namespaces == 1);
  CHECK(drop(cache_filter{"", "", k.namespace_hash}) == 2);
  CHECK(stats().namespaces == 0);  // the empty index is freed with its last entry
}

TEST_CASE("semantic_budget: searches while time is left, inserts while half of it is") {
  const uint64_t s = 1'000'000'000;  // one second, in the budget's nanoseconds
  semantic_budget none(0, 0);
  none.spend(10 * s);
  CHECK(none.allow_search(1));
  CHECK(none.allow_insert(1));
  CHECK_FALSE(none.limited());

  semantic_budget b(10, 5 * s);  // 10% of a thread: a bucket of 100 ms, full at the start
  CHECK(b.limited());
  CHECK(b.allow_insert(5 * s));
  b.spend(60'000'000);  // 40 ms left: below half, searches only
  CHECK_FALSE(b.allow_insert(5 * s));
  CHECK(b.allow_search(5 * s));
  b.spend(50'000'000);  // 10 ms owed: nothing
  CHECK_FALSE(b.allow_search(5 * s));
  CHECK(b.allow_search(5 * s + s / 5));  // 200 ms later: 20 ms refilled, 10 ms left
  CHECK_FALSE(b.allow_insert(5 * s + s / 5));
  CHECK(b.allow_insert(7 * s));  // refilled to full, never beyond it:
  b.spend(60'000'000);
  CHECK_FALSE(b.allow_insert(7 * s));
  CHECK_FALSE(b.allow_insert(6 * s));  // a clock that goes back refills nothing
  CHECK(b.allow_insert(100 * s));

  semantic_budget owed(10, 0);  // owes 30 ms at 10%: searches again 300 ms later
  owed.spend(130'000'000);
  const uint64_t resume = owed.resume_at(0);
  CHECK(resume > 300'000'000);
  CHECK(resume <= 300'000'001);
  CHECK_FALSE(owed.allow_search(resume - 1));
  CHECK(owed.allow_search(resume));
  CHECK(owed.resume_at(resume + 5) == resume + 5);  // time left: now
}

namespace {

/// Sends links for distinct answers (random unit vectors) until `done` or `limit` of them.
template <class Done>
int link_until(shard_fixture& f, int limit, Done done) {
  canonical::embed_options eo;
  eo.dimension = 64;
  int sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (sent < limit && std::chrono::steady_clock::now() < deadline) {
    for (int j = 0; j < 500 && sent < limit; ++j, ++sent) {
      const std::string q =
          "Question " + std::to_string(sent) + " about topic " + std::to_string(sent * 7919 % 1009);
      cache_link l;
      l.ns = canonical::digest_of("one namespace");
      l.exact_key = canonical::digest_of(q);
      l.embedding = canonical::embed(q, eo);
      l.scope = "tenant:a";
      l.model = "m";
      l.ttl_s = 600;
      f.self->send(f.shard, cache_link_atom::value, l);
    }
    if (done(f.stats())) break;  // stats() answers after every link sent before it
  }
  return sent;
}

}  // namespace

TEST_CASE("a shard over its semantic budget leaves inserts, then searches, out") {
  shard_fixture f(64 << 20, 1, 200'000);  // 1% of a thread: 10 ms of HNSW work in the bucket
  const int sent =
      link_until(f, 100'000, [](const cache_stats& s) { return s.semantic_skipped_inserts > 0; });
  cache_stats st = f.stats();
  REQUIRE(st.semantic_skipped_inserts > 0);
  CHECK(st.semantic_entries + st.semantic_skipped_inserts == static_cast<uint64_t>(sent));
  CHECK(st.semantic_skipped_searches == 0);
  canonical::embed_options eo;
  eo.dimension = 64;
  cache_probe p{
      canonical::digest_of("one namespace"), {}, canonical::embed("Question 1", eo), "", 0.99f};
  for (int i = 0; i < 100'000 && f.stats().semantic_skipped_searches == 0; ++i) f.find(p);
  st = f.stats();
  CHECK(st.semantic_skipped_searches > 0);
  // The shard tells local connection actors until when to send it no semantic work.
  const uint64_t now =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count());
  CHECK(f.table->semantic_spent_until_ns.load() > now - 1'000'000'000);
  f.table->skipped_searches_early += 2;  // what connection actors left out is reported too
  CHECK(f.stats().semantic_skipped_searches == st.semantic_skipped_searches + 2);
  CHECK(st.semantic_entries + st.semantic_skipped_inserts == static_cast<uint64_t>(sent));
}

TEST_CASE("with no semantic budget every insert and search runs") {
  shard_fixture f(64 << 20, 0, 200'000);
  const int sent = link_until(f, 3000, [](const cache_stats&) { return false; });
  REQUIRE(sent == 3000);
  const cache_stats st = f.stats();
  CHECK(st.semantic_entries == 3000);
  CHECK(st.semantic_skipped_inserts == 0);
  CHECK(st.semantic_skipped_searches == 0);
}

TEST_CASE("dedup_table: the first is the leader, the rest follow and get its answer") {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto table = sys.spawn(dedup_table, uint32_t{0});
  const canonical::digest key = canonical::digest_of("request");
  caf::scoped_actor leader{sys}, follower{sys};
  auto join = [&](caf::scoped_actor& who, bool stream) {
    uint8_t role = 0;
    self->request(table, std::chrono::seconds(5), dedup_join_atom::value, key,
                  caf::actor_cast<caf::actor>(who), stream)
        .receive([&](uint8_t r) { role = r; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    return static_cast<dedup_role>(role);
  };
  CHECK(join(leader, false) == dedup_role::leader);
  CHECK(join(follower, true) == dedup_role::follower);
  // A streaming follower: the leader is asked to attach it.
  bool attached = false;
  leader->receive([&](const dedup_attach& a) { attached = a.key == key; },
                  caf::after(std::chrono::seconds(5)) >> [] {});
  CHECK(attached);
  self->send(table, dedup_done_atom::value, dedup_result{key, 200, "the answer", 1, 2});
  std::string got;
  follower->receive([&](const dedup_result& r) { got = r.body; },
                    caf::after(std::chrono::seconds(5)) >> [] {});
  CHECK(got == "the answer");
  // The entry is gone: the next identical request leads again.
  CHECK(join(follower, false) == dedup_role::leader);
  caf::anon_send_exit(table, caf::exit_reason::user_shutdown);
}

TEST_CASE("dedup_table: a key whose answer was stored as it closed is rechecked, within a bound") {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto table = sys.spawn(dedup_table, uint32_t{0});
  auto join = [&](const canonical::digest& key) {
    uint8_t role = 0;
    self->request(table, std::chrono::seconds(5), dedup_join_atom::value, key,
                  caf::actor_cast<caf::actor>(self), false)
        .receive([&](uint8_t r) { role = r; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    return static_cast<dedup_role>(role);
  };
  auto close = [&](const canonical::digest& key, bool stored) {
    self->send(table, dedup_done_atom::value, dedup_result{key, 200, "answer", 1, 2}, stored);
  };
  const canonical::digest stored = canonical::digest_of("stored");
  const canonical::digest not_stored = canonical::digest_of("not stored");
  CHECK(join(stored) == dedup_role::leader);
  CHECK(join(not_stored) == dedup_role::leader);
  close(stored, true);
  close(not_stored, false);  // a shard that did not answer: nothing to look for
  CHECK(join(stored) == dedup_role::recheck);
  CHECK(join(not_stored) == dedup_role::leader);
  // Bounded: after max_recent more stored keys the first is forgotten.
  close(stored, true);  // the recheck's entry
  for (std::size_t i = 0; i < dedup_table_state::max_recent; ++i) {
    const canonical::digest k = canonical::digest_of("other " + std::to_string(i));
    REQUIRE(join(k) == dedup_role::leader);
    close(k, true);
  }
  CHECK(join(stored) == dedup_role::leader);
  caf::anon_send_exit(table, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(shard_fixture, "a store is acknowledged once the answer can be found") {
  const auto k = key_for("How long is the Nile?", "tenant:a");
  bool acked = false;
  self->request(shard, std::chrono::seconds(5), cache_store_atom::value,
                entry_for(k, "tenant:a", "6,650 km"))
      .receive([&](bool stored) { acked = stored; },
               [&](const caf::error& e) { FAIL(sys.render(e)); });
  CHECK(acked);
  CHECK(get(k.full_hash).body == "6,650 km");
}
