// The ledger book over a real RocksDB store: idempotent appends (in one call, across calls and
// across a reopen), aggregates that survive a reopen, reports grouped and filtered, record
// exports by day, month-to-date spend, key escaping, refusal of bad input and of corrupt rows.
// The throughput measurement at the end is skipped by default (run with -ts="*throughput*" -nsk).
#include <doctest/doctest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "actors/ledger_book.hpp"
#include "actors/store.hpp"
#include "protocol/billing/usage.hpp"
#include "tests/support/process.hpp"

namespace {

using tc::actors::ledger_book;
using tc::actors::store;
using tc::billing::dimension;
using tc::billing::outcome;
using tc::billing::usage_query;
using tc::billing::usage_record;
using tc::billing::usage_report;
using family = store::family;
using code = store::status::code;

constexpr int64_t kMsPerDay = 86400000;

/// A fresh directory under /tmp (removed at scope exit) with the DB in its "db".
struct temp_dir : tc::test::temp_dir {
  std::string db() const { return path() + "/db"; }
};

std::unique_ptr<store> open_store(const std::string& path, bool fsync = false) {
  store::status st;
  auto db = store::open(path, fsync, st);
  INFO(st.message);
  REQUIRE(st.ok());
  REQUIRE(db != nullptr);
  return db;
}

int64_t day(const char* name) {
  int64_t d = 0;
  REQUIRE(tc::billing::parse_day(name, d));
  return d;
}

usage_record rec(std::string id, int64_t d, std::string tenant, std::string model, int64_t charged,
                 outcome o = outcome::ok) {
  usage_record r;
  r.request_id = std::move(id);
  r.ts_ms = d * kMsPerDay + 12 * 3600 * 1000;
  r.tenant = std::move(tenant);
  r.project = "web";
  r.key = "key_1";
  r.model = std::move(model);
  r.provider = "sim";
  r.endpoint = "chat";
  r.status = 200;
  r.result = o;
  r.prompt_tokens = 100;
  r.cached_tokens = 10;
  r.completion_tokens = 20;
  r.cost_micros = charged / 2;
  r.charged_micros = charged;
  r.saved_micros = o == outcome::cache_hit ? 7 : 0;
  return r;
}

usage_query query(int64_t from, int64_t to, std::vector<dimension> group_by = {}) {
  usage_query q;
  q.from_day = from;
  q.to_day = to;
  q.group_by = std::move(group_by);
  return q;
}

std::unique_ptr<ledger_book> open_book(store& db) {
  store::status st;
  auto book = std::make_unique<ledger_book>(db, st);
  INFO(st.message);
  REQUIRE(st.ok());
  return book;
}

size_t count_rows(const store& db, std::string_view prefix) {
  size_t n = 0;
  REQUIRE(db.scan(family::ledger, prefix, [&](std::string_view, std::string_view) {
              ++n;
              return true;
            }).ok());
  return n;
}

}  // namespace

TEST_CASE("ledger: append writes records, day index and aggregates, ids are idempotent") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d = day("2026-11-22");

  size_t added = 99;
  REQUIRE(book->append({}, &added).ok());
  CHECK(added == 0);

  std::vector<usage_record> batch = {rec("r1", d, "acme", "m1", 1000),
                                     rec("r2", d, "acme", "m1", 2000, outcome::cache_hit),
                                     rec("r1", d, "acme", "m1", 5000)};  // same id: ignored
  REQUIRE(book->append(batch, &added).ok());
  CHECK(added == 2);
  CHECK(book->appended() == 2);
  CHECK(count_rows(*db, "r/") == 2);
  CHECK(count_rows(*db, "s/") == 2);
  CHECK(count_rows(*db, "a/") == 1);

  std::string v;
  REQUIRE(db->get(family::ledger, "r/r1", v).ok());
  usage_record back;
  REQUIRE(tc::billing::decode(v, back));
  CHECK(back == batch[0]);  // the first occurrence won
  REQUIRE(db->get(family::ledger, "s/00020779/r2", v).ok());
  CHECK(v.empty());

  const usage_report before = book->report(query(d, d));
  REQUIRE(before.rows.size() == 1);
  CHECK(before.totals.requests == 2);
  CHECK(before.totals.charged_micros == 3000);
  CHECK(before.totals.cost_micros == 1500);
  CHECK(before.totals.cache_hits == 1);
  CHECK(before.totals.saved_micros == 7);
  CHECK(before.totals.prompt_tokens == 200);
  CHECK(before.rows[0].totals == before.totals);

  // A retry of settled requests adds nothing, alone or mixed with a new one.
  REQUIRE(book->append({batch[1], batch[0]}, &added).ok());
  CHECK(added == 0);
  CHECK(book->report(query(d, d)).totals == before.totals);
  REQUIRE(book->append({batch[1], rec("r3", d, "acme", "m1", 400)}, &added).ok());
  CHECK(added == 1);
  CHECK(book->appended() == 3);
  CHECK(book->report(query(d, d)).totals.charged_micros == 3400);
  REQUIRE(book->append({batch[0]}).ok());  // `added` is optional
  CHECK(book->appended() == 3);
}

TEST_CASE("ledger: append writes a caller's batch with the records, atomically") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d = day("2026-11-22");
  store::batch audit;
  audit.put(family::audit, "chain/1", "evidence 1");

  // A failed write stores neither the caller's rows nor the records, nor changes the totals.
  db->inject_write_faults(true);
  size_t added = 99;
  CHECK_FALSE(book->append({rec("r1", d, "acme", "m1", 1000)}, &added, &audit).ok());
  CHECK(added == 0);
  db->inject_write_faults(false);
  std::string v;
  CHECK(db->get(family::audit, "chain/1", v).not_found());
  CHECK(count_rows(*db, "r/") == 0);
  CHECK(book->report(query(d, d)).totals.requests == 0);

  REQUIRE(book->append({rec("r1", d, "acme", "m1", 1000)}, &added, &audit).ok());
  CHECK(added == 1);
  REQUIRE(db->get(family::audit, "chain/1", v).ok());
  CHECK(v == "evidence 1");
  CHECK(audit.count() == 1);  // left as it was
  CHECK(book->report(query(d, d)).totals.charged_micros == 1000);

  // Nothing new to record (a retry): the caller's rows are written all the same.
  store::batch more;
  more.put(family::audit, "chain/2", "evidence 2");
  REQUIRE(book->append({rec("r1", d, "acme", "m1", 1000)}, &added, &more).ok());
  CHECK(added == 0);
  CHECK(db->get(family::audit, "chain/2", v).ok());
  store::batch last;
  last.put(family::audit, "chain/3", "evidence 3");
  REQUIRE(book->append({}, &added, &last).ok());
  CHECK(db->get(family::audit, "chain/3", v).ok());
  CHECK(book->report(query(d, d)).totals.requests == 1);
}

TEST_CASE("ledger: aggregates and idempotency survive a close and reopen") {
  temp_dir dir;
  const int64_t d1 = day("2026-11-21"), d2 = day("2026-11-22");
  const std::vector<usage_record> batch = {rec("a", d1, "acme", "Qwen/Qwen2.5-7B", 100),
                                           rec("b", d2, "acme", "m2", 200),
                                           rec("c", d2, "beta", "m2", 300, outcome::dedup)};
  usage_report before;
  {
    auto db = open_store(dir.db(), true);
    auto book = open_book(*db);
    size_t added = 0;
    REQUIRE(book->append(batch, &added).ok());
    CHECK(added == 3);
    before = book->report(query(d1, d2, {dimension::day, dimension::tenant, dimension::model}));
    REQUIRE(before.rows.size() == 3);
  }
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  CHECK(book->appended() == 0);
  const usage_report after =
      book->report(query(d1, d2, {dimension::day, dimension::tenant, dimension::model}));
  REQUIRE(after.rows.size() == before.rows.size());
  for (size_t i = 0; i < after.rows.size(); ++i) {
    CHECK(after.rows[i].group == before.rows[i].group);
    CHECK(after.rows[i].totals == before.rows[i].totals);
  }
  CHECK(after.totals == before.totals);
  CHECK(after.rows[0].group == std::vector<std::string>{"2026-11-21", "acme", "Qwen/Qwen2.5-7B"});

  size_t added = 99;
  REQUIRE(book->append(batch, &added).ok());
  CHECK(added == 0);
  CHECK(book->report(query(d1, d2)).totals == before.totals);
  CHECK(count_rows(*db, "r/") == 3);
}

TEST_CASE("ledger: report grouped by tenant and model over two days, filtered, sorted") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d1 = day("2026-11-21"), d2 = day("2026-11-22"), d3 = day("2026-11-23");
  std::vector<usage_record> rs = {
      rec("1", d1, "zeta", "m-b", 10),  rec("2", d1, "acme", "m-b", 20),
      rec("3", d1, "acme", "m-a", 40),  rec("4", d2, "acme", "m-a", 80, outcome::cache_hit),
      rec("5", d2, "zeta", "m-b", 160), rec("6", d3, "acme", "m-a", 320)};  // d3: outside
  rs[4].project = "api";
  rs[4].key = "key_2";
  REQUIRE(book->append(rs).ok());

  const usage_report rep = book->report(query(d1, d2, {dimension::tenant, dimension::model}));
  CHECK(rep.query.from_day == d1);
  REQUIRE(rep.rows.size() == 3);
  CHECK(rep.rows[0].group == std::vector<std::string>{"acme", "m-a"});
  CHECK(rep.rows[0].totals.requests == 2);
  CHECK(rep.rows[0].totals.charged_micros == 120);
  CHECK(rep.rows[0].totals.cache_hits == 1);
  CHECK(rep.rows[1].group == std::vector<std::string>{"acme", "m-b"});
  CHECK(rep.rows[1].totals.charged_micros == 20);
  CHECK(rep.rows[2].group == std::vector<std::string>{"zeta", "m-b"});
  CHECK(rep.rows[2].totals.requests == 2);
  CHECK(rep.rows[2].totals.charged_micros == 170);
  CHECK(rep.totals.requests == 5);
  CHECK(rep.totals.charged_micros == 310);
  CHECK(rep.totals.completion_tokens == 100);

  // The JSON shape carries the group object keyed by dimension name.
  const std::string json = tc::billing::to_json(rep);
  CHECK(json.find("\"group\":{\"tenant\":\"acme\",\"model\":\"m-a\"}") != std::string::npos);
  CHECK(json.find("\"from\":\"2026-11-21\",\"to\":\"2026-11-22\"") != std::string::npos);

  // By day: day names, in day order.
  const usage_report by_day = book->report(query(d1, d3, {dimension::day}));
  REQUIRE(by_day.rows.size() == 3);
  CHECK(by_day.rows[0].group[0] == "2026-11-21");
  CHECK(by_day.rows[0].totals.charged_micros == 70);
  CHECK(by_day.rows[2].group[0] == "2026-11-23");
  CHECK(by_day.totals.charged_micros == 630);

  // Filters.
  usage_query q = query(d1, d3, {dimension::model});
  q.tenant = "zeta";
  usage_report f = book->report(q);
  REQUIRE(f.rows.size() == 1);
  CHECK(f.rows[0].totals.charged_micros == 170);
  q.project = "api";
  f = book->report(q);
  CHECK(f.totals.charged_micros == 160);
  q.tenant.clear();
  q.project.clear();
  q.key = "key_2";
  CHECK(book->report(q).totals.charged_micros == 160);
  q.key = "nobody";
  f = book->report(q);
  CHECK(f.rows.empty());
  CHECK(f.totals.requests == 0);

  // No grouping: one row of totals, even when nothing matches.
  f = book->report(query(d2, d2));
  REQUIRE(f.rows.size() == 1);
  CHECK(f.rows[0].group.empty());
  CHECK(f.rows[0].totals.charged_micros == 240);
  f = book->report(query(d3 + 1, d3 + 5));
  REQUIRE(f.rows.size() == 1);
  CHECK(f.rows[0].totals.requests == 0);
  CHECK(book->report(query(d2, d1, {dimension::tenant})).rows.empty());  // from > to

  // A repeated dimension counts once.
  f = book->report(query(d1, d3, {dimension::provider, dimension::provider}));
  CHECK(f.query.group_by == std::vector<dimension>{dimension::provider});
  REQUIRE(f.rows.size() == 1);
  CHECK(f.rows[0].group == std::vector<std::string>{"sim"});
}

TEST_CASE("ledger: records by day range, tenant filter, limit, across fetch chunks") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d1 = day("2026-10-31"), d2 = day("2026-11-01"), d3 = day("2026-11-02");
  std::vector<usage_record> rs;
  for (int i = 0; i < 600; ++i) {  // > 2 chunks of 256
    char id[16];
    std::snprintf(id, sizeof id, "id-%04d", i);
    rs.push_back(rec(id, i % 2 == 0 ? d2 : d1, i % 3 == 0 ? "acme" : "beta", "m", i));
  }
  rs.push_back(rec("zz/with/slash", d3, "acme", "m", 1));
  rs.push_back(rec("later", d3 + 1, "acme", "m", 1));
  REQUIRE(book->append(rs).ok());

  std::vector<usage_record> out = {rec("stale", d1, "x", "m", 0)};
  REQUIRE(book->records(d2, d3, "", 0, out).ok());
  REQUIRE(out.size() == 301);
  CHECK(out[0].request_id == "id-0000");
  CHECK(out[299].request_id == "id-0598");
  CHECK(out[300].request_id == "zz/with/slash");
  CHECK(out[300] == rs[600]);
  for (size_t i = 1; i + 1 < out.size(); ++i) REQUIRE(out[i - 1].request_id < out[i].request_id);

  REQUIRE(book->records(d1, d3 + 1, "acme", 0, out).ok());
  CHECK(out.size() == 200 + 2);
  for (const auto& r : out) CHECK(r.tenant == "acme");
  // Day order first: d1 (odd ids) before d2 (even ids).
  CHECK(out[0].request_id == "id-0003");
  CHECK(out.back().request_id == "later");

  REQUIRE(book->records(d1, d3, "acme", 5, out).ok());
  REQUIRE(out.size() == 5);
  CHECK(out[4].request_id == "id-0027");
  REQUIRE(book->records(d1, d3, "", 300, out).ok());
  CHECK(out.size() == 300);
  CHECK(out.back().request_id == "id-0599");
  REQUIRE(book->records(d1, d3, "", 1, out).ok());
  CHECK(out.size() == 1);
  REQUIRE(book->records(d1, d3, "nobody", 10, out).ok());
  CHECK(out.empty());
  REQUIRE(book->records(d3, d1, "", 0, out).ok());
  CHECK(out.empty());
  REQUIRE(book->records(-100, 99999999, "", 0, out).ok());  // out-of-range bounds are clamped
  CHECK(out.size() == 602);
  REQUIRE(book->records(-100, -1, "", 0, out).ok());
  CHECK(out.empty());
}

TEST_CASE("ledger: spend for the day and the month to date") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t oct31 = day("2026-10-31"), nov1 = day("2026-11-01"), nov22 = day("2026-11-22"),
                nov23 = day("2026-11-23"), dec1 = day("2026-12-01");
  REQUIRE(book->append({rec("1", oct31, "acme", "m", 1), rec("2", nov1, "acme", "m", 10),
                        rec("3", nov1, "acme", "m2", 20), rec("4", nov22, "acme", "m", 100),
                        rec("5", nov22, "beta", "m", 1000), rec("6", nov23, "acme", "m", 10000),
                        rec("7", nov1, "beta", "m", -3)})
              .ok());
  auto s = book->spent("acme", nov22);
  CHECK(s.day_micros == 100);
  CHECK(s.month_micros == 130);
  s = book->spent("acme", nov1);
  CHECK(s.day_micros == 30);
  CHECK(s.month_micros == 30);
  s = book->spent("acme", oct31);
  CHECK(s.day_micros == 1);
  CHECK(s.month_micros == 1);
  s = book->spent("acme", dec1);
  CHECK(s.day_micros == 0);
  CHECK(s.month_micros == 0);
  s = book->spent("nobody", nov22);
  CHECK(s.month_micros == 0);
  s = book->spent("acme", -5);
  CHECK(s.month_micros == 0);

  auto all = book->spent_all(nov22);
  REQUIRE(all.size() == 2);
  CHECK(all["acme"].day_micros == 100);
  CHECK(all["acme"].month_micros == 130);
  CHECK(all["beta"].day_micros == 1000);
  CHECK(all["beta"].month_micros == 997);
  all = book->spent_all(nov23);
  CHECK(all["acme"].day_micros == 10000);
  CHECK(all["beta"].day_micros == 0);
  CHECK(all["beta"].month_micros == 997);
  CHECK(book->spent_all(dec1).empty());

  // By quota scope: tenant, project and key, each with its tenant (the shard that owns it).
  std::map<std::string, ledger_book::scope_spend> scopes;
  for (auto& sc : book->spent_by_scope(nov22)) scopes[sc.scope] = sc;
  REQUIRE(scopes.count("t:acme") == 1);
  CHECK(scopes["t:acme"].amount.day_micros == 100);
  CHECK(scopes["t:acme"].amount.month_micros == 130);
  CHECK(scopes["p:acme/web"].tenant == "acme");
  CHECK(scopes["p:acme/web"].amount.month_micros == 130);
  CHECK(scopes["p:beta/web"].amount.day_micros == 1000);
  // Both tenants' records use key_1 in this fixture: the key scope sums them.
  CHECK(scopes["k:key_1"].amount.month_micros == 130 + 997);
  CHECK(scopes.size() == 5);
  CHECK(book->spent_by_scope(dec1).empty());

  // Leap-year February: the month starts on the 1st, wherever the day is.
  REQUIRE(book->append({rec("f1", day("2028-01-31"), "acme", "m", 1),
                        rec("f2", day("2028-02-01"), "acme", "m", 2),
                        rec("f3", day("2028-02-29"), "acme", "m", 4)})
              .ok());
  s = book->spent("acme", day("2028-02-29"));
  CHECK(s.day_micros == 4);
  CHECK(s.month_micros == 6);
}

TEST_CASE("ledger: components with '/' and '%' are escaped and read back") {
  temp_dir dir;
  const int64_t d = day("2026-11-22");
  {
    auto db = open_store(dir.db());
    auto book = open_book(*db);
    usage_record a = rec("1", d, "a/b", "Qwen/Qwen2.5-7B", 1);
    usage_record b = rec("2", d, "a%2Fb", "Qwen/Qwen2.5-7B", 2);
    usage_record c = rec("3", d, "a", "b/Qwen/Qwen2.5-7B", 4);
    c.project = "";
    c.key = "%";
    c.provider = "/";
    REQUIRE(book->append({a, b, c}).ok());
    std::string v;
    CHECK(db->get(family::ledger, "a/00020779/a%2Fb/web/key_1/Qwen%2FQwen2.5-7B/sim", v).ok());
    CHECK(db->get(family::ledger, "a/00020779/a%252Fb/web/key_1/Qwen%2FQwen2.5-7B/sim", v).ok());
    CHECK(db->get(family::ledger, "a/00020779/a//%25/b%2FQwen%2FQwen2.5-7B/%2F", v).ok());
  }
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const usage_report rep =
      book->report(query(d, d,
                         {dimension::tenant, dimension::project, dimension::key, dimension::model,
                          dimension::provider}));
  REQUIRE(rep.rows.size() == 3);
  CHECK(rep.rows[0].group == std::vector<std::string>{"a", "", "%", "b/Qwen/Qwen2.5-7B", "/"});
  CHECK(rep.rows[0].totals.charged_micros == 4);
  CHECK(rep.rows[1].group ==
        std::vector<std::string>{"a%2Fb", "web", "key_1", "Qwen/Qwen2.5-7B", "sim"});
  CHECK(rep.rows[1].totals.charged_micros == 2);
  CHECK(rep.rows[2].group[0] == "a/b");
  CHECK(rep.rows[2].totals.charged_micros == 1);
}

TEST_CASE("ledger: unusable records are refused, the others still written") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d = day("2026-11-22");
  REQUIRE(book->append({rec("ok", d, "acme", "m", 5)}).ok());

  usage_record no_id = rec("", d, "acme", "m", 700);
  usage_record early = rec("early", d, "acme", "m", 700);
  early.ts_ms = -1;
  usage_record late = rec("late", d, "acme", "m", 700);
  late.ts_ms = 253402300800000;  // 10000-01-01
  int n = 0;
  for (const usage_record& bad : {no_id, early, late}) {
    CAPTURE(n);
    size_t added = 99;
    const std::string id = "fine-" + std::to_string(n++);
    const auto st = book->append({rec(id, d, "acme", "m", 7), bad, bad}, &added);
    CHECK(st.value == code::invalid);
    CHECK(st.message.find("refused 2 record(s)") != std::string::npos);
    CHECK(added == 1);
    std::string v;
    CHECK(db->get(family::ledger, "r/" + id, v).ok());
    // Only refused records: nothing written, still invalid.
    CHECK(book->append({bad}, &added).value == code::invalid);
    CHECK(added == 0);
  }
  const auto totals = book->report(query(0, 3000000)).totals;
  CHECK(totals.requests == 4);
  CHECK(totals.charged_micros == 5 + 3 * 7);
  CHECK(count_rows(*db, "r/") == 4);
  CHECK(book->appended() == 4);
  late.ts_ms -= 1;  // 9999-12-31T23:59:59.999: still fine
  REQUIRE(book->append({late}).ok());
  CHECK(book->report(query(0, 3000000)).totals.requests == 5);
}

TEST_CASE("ledger: corrupt rows are reported, not trusted") {
  temp_dir dir;
  auto db = open_store(dir.db());
  const int64_t d = day("2026-11-22");
  {
    auto book = open_book(*db);
    REQUIRE(book->append({rec("x", d, "acme", "m", 5)}).ok());
  }
  SUBCASE("a malformed aggregate value") {
    REQUIRE(db->put(family::ledger, "a/00020779/t/p/k/m/p", "short").ok());
  }
  SUBCASE("an aggregate key with too few components") {
    REQUIRE(db->put(family::ledger, "a/00020779/t/p/k/m", std::string(65, '\1')).ok());
  }
  SUBCASE("an aggregate key with a bad escape") {
    REQUIRE(db->put(family::ledger, "a/00020779/t%2/p/k/m/p", std::string(65, '\1')).ok());
  }
  SUBCASE("an aggregate key with a bad day") {
    REQUIRE(db->put(family::ledger, "a/2026-11-/t/p/k/m/p", std::string(65, '\1')).ok());
  }
  store::status st;
  ledger_book book(*db, st);
  CHECK(st.value == code::corruption);
  CHECK_FALSE(st.message.empty());
  CHECK(book.report(query(0, 3000000)).totals.requests == 0);  // nothing half-loaded
}

TEST_CASE("ledger: records() reports a day index without its record") {
  temp_dir dir;
  auto db = open_store(dir.db());
  auto book = open_book(*db);
  const int64_t d = day("2026-11-22");
  REQUIRE(book->append({rec("x", d, "acme", "m", 5)}).ok());
  REQUIRE(db->put(family::ledger, "s/00020779/ghost", "").ok());
  std::vector<usage_record> out;
  auto st = book->records(d, d, "", 0, out);
  CHECK(st.value == code::corruption);
  REQUIRE(db->del(family::ledger, "s/00020779/ghost").ok());
  REQUIRE(db->put(family::ledger, "r/x", "garbage").ok());
  st = book->records(d, d, "", 0, out);
  CHECK(st.value == code::corruption);
}

TEST_CASE("ledger: append throughput" * doctest::skip()) {
  const auto run = [](bool fsync, size_t per_batch, size_t total) {
    temp_dir dir;
    auto db = open_store(dir.db(), fsync);
    auto book = open_book(*db);
    const int64_t d = day("2026-11-22");
    std::vector<usage_record> batch;
    size_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (n < total) {
      batch.clear();
      for (size_t i = 0; i < per_batch; ++i, ++n) {
        usage_record r = rec("req-" + std::to_string(n), d + static_cast<int64_t>(n % 3),
                             "tenant-" + std::to_string(n % 20), "model-" + std::to_string(n % 5),
                             static_cast<int64_t>(n));
        batch.push_back(std::move(r));
      }
      size_t added = 0;
      REQUIRE(book->append(batch, &added).ok());
      REQUIRE(added == per_batch);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("append fsync=%d batch=%zu: %zu records in %.3f s = %.0f records/s\n",
                fsync ? 1 : 0, per_batch, total, s, static_cast<double>(total) / s);
  };
  run(false, 1, 100000);
  run(false, 100, 100000);
  run(true, 1, 1000);
  run(true, 100, 20000);
}
