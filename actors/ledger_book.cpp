// The ledger's rows in the store's ledger family, and the in-memory aggregates over them.
//
// Contract notes beyond the header:
// - Key components (tenant, project, key, model, provider) are escaped in a/ rows: '%' -> %25,
//   '/' -> %2F, so "Qwen/Qwen2.5-7B" stays one component. Request ids are written raw (r/ and
//   s/ rows have one variable part, after a fixed-width day).
// - Aggregate values, version 1: u8 version, then the eight usage_totals counters as 8-byte
//   little-endian integers in declaration order.
// - append() refuses records with an empty request id (it would merge unrelated requests) or a
//   time outside 1970-01-01..9999-12-31 UTC (8-digit day keys would not sort). It still writes
//   the other records, then answers invalid (naming the first refused one) with `added` counting
//   what was written: the caller must not retry an invalid answer, it can never succeed.
// - append() only changes memory after the batch is written: a failed write leaves the
//   aggregates as they are on disk. Of several records with one id in a call, the first wins.
// - records() replaces `out`; a missing or undecodable r/ row behind an s/ row is corruption.
// - report() drops repeated dimensions from group_by (the first stays), and the report's query
//   says so. With an empty group_by it has exactly one row (the totals), even when empty.
// - The constructor leaves no aggregates at all if any a/ row fails to parse (corruption).
#include "actors/ledger_book.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace tc::actors {

namespace {

using billing::usage_record;
using billing::usage_totals;
using family = store::family;
using code = store::status::code;

constexpr int64_t kMaxDay = 2932896;  // 9999-12-31
constexpr uint8_t kTotalsVersion = 1;
constexpr size_t kTotalsSize = 1 + 8 * 8;
constexpr size_t kFetchChunk = 256;  // r/ rows fetched per MultiGet by records()
constexpr std::string_view kAggPrefix = "a/";
constexpr size_t kDayKeyPrefix = 2 + 8 + 1;  // "s/" + 8 digits + "/"

std::string pad8(int64_t day) {
  std::string out(8, '0');
  for (int i = 7; i >= 0 && day > 0; --i, day /= 10) out[i] = static_cast<char>('0' + day % 10);
  return out;
}

bool parse8(std::string_view s, int64_t& day) {
  if (s.size() != 8) return false;
  day = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    day = day * 10 + (c - '0');
  }
  return true;
}

void append_escaped(std::string& out, std::string_view s) {
  for (char c : s) {
    if (c == '%') {
      out.append("%25");
    } else if (c == '/') {
      out.append("%2F");
    } else {
      out.push_back(c);
    }
  }
}

bool unescape(std::string_view s, std::string& out) {
  out.clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    const std::string_view esc = s.substr(i, 3);
    if (esc == "%25") {
      out.push_back('%');
    } else if (esc == "%2F") {
      out.push_back('/');
    } else {
      return false;
    }
    i += 2;
  }
  return true;
}

std::string record_key(std::string_view id) {
  std::string k;
  k.reserve(2 + id.size());
  k.append("r/").append(id);
  return k;
}

std::string day_key(int64_t day, std::string_view id) {
  std::string k;
  k.reserve(kDayKeyPrefix + id.size());
  k.append("s/").append(pad8(day)).push_back('/');
  k.append(id);
  return k;
}

bool valid_day(int64_t day) {
  return day >= 0 && day <= kMaxDay;
}

void add_sat(int64_t& a, int64_t b) {
  if (__builtin_add_overflow(a, b, &a))
    a = b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

std::string encode_totals(const usage_totals& t) {
  std::string out;
  out.reserve(kTotalsSize);
  out.push_back(static_cast<char>(kTotalsVersion));
  for (uint64_t v :
       {t.requests, t.prompt_tokens, t.cached_tokens, t.completion_tokens, t.cache_hits,
        static_cast<uint64_t>(t.cost_micros), static_cast<uint64_t>(t.charged_micros),
        static_cast<uint64_t>(t.saved_micros)}) {
    for (int i = 0; i < 8; ++i, v >>= 8) out.push_back(static_cast<char>(v & 0xff));
  }
  return out;
}

bool decode_totals(std::string_view b, usage_totals& t) {
  if (b.size() != kTotalsSize || static_cast<uint8_t>(b[0]) != kTotalsVersion) return false;
  uint64_t v[8];
  for (int f = 0; f < 8; ++f) {
    v[f] = 0;
    for (int i = 0; i < 8; ++i)
      v[f] |= static_cast<uint64_t>(static_cast<uint8_t>(b[1 + 8 * f + i])) << (8 * i);
  }
  t.requests = v[0];
  t.prompt_tokens = v[1];
  t.cached_tokens = v[2];
  t.completion_tokens = v[3];
  t.cache_hits = v[4];
  t.cost_micros = static_cast<int64_t>(v[5]);
  t.charged_micros = static_cast<int64_t>(v[6]);
  t.saved_micros = static_cast<int64_t>(v[7]);
  return true;
}

/// First day of the month holding `day` (a valid day).
int64_t month_start(int64_t day) {
  std::string name = billing::day_name(day);  // "YYYY-MM-DD" for valid days
  name.replace(name.size() - 2, 2, "01");
  int64_t first = day;
  if (!billing::parse_day(name, first)) return day;
  return first;
}

store::status corruption(std::string message) {
  return {code::corruption, std::move(message)};
}

// a/ row key <-> aggregate key; templates because agg_key is private to ledger_book.
template <typename Key>
std::string agg_row_key(const Key& k) {
  std::string out;
  out.reserve(2 + 8 + 5 + k.tenant.size() + k.project.size() + k.key.size() + k.model.size() +
              k.provider.size() + 8);
  out.append(kAggPrefix).append(pad8(k.day));
  for (const std::string* s : {&k.tenant, &k.project, &k.key, &k.model, &k.provider}) {
    out.push_back('/');
    append_escaped(out, *s);
  }
  return out;
}

template <typename Key>
bool parse_agg_row_key(std::string_view row, Key& k) {
  if (row.substr(0, kAggPrefix.size()) != kAggPrefix) return false;
  row.remove_prefix(kAggPrefix.size());
  if (row.size() < 9 || row[8] != '/' || !parse8(row.substr(0, 8), k.day)) return false;
  row.remove_prefix(9);
  std::string* parts[] = {&k.tenant, &k.project, &k.key, &k.model, &k.provider};
  for (size_t i = 0; i < 5; ++i) {
    const size_t slash = row.find('/');
    const bool last = i == 4;
    if (last != (slash == std::string_view::npos)) return false;  // exactly five components
    if (!unescape(row.substr(0, slash), *parts[i])) return false;
    if (!last) row.remove_prefix(slash + 1);
  }
  return true;
}

}  // namespace

ledger_book::ledger_book(store& db, store::status& error) : db_(db) {
  error = {};
  store::status bad;
  store::status st =
      db_.scan(family::ledger, kAggPrefix, [&](std::string_view k, std::string_view v) {
        agg_key key;
        usage_totals totals;
        if (!parse_agg_row_key(k, key)) {
          bad = corruption("ledger: malformed aggregate key '" + std::string(k) + "'");
          return false;
        }
        if (!decode_totals(v, totals)) {
          bad = corruption("ledger: malformed aggregate value at '" + std::string(k) + "'");
          return false;
        }
        aggregates_.emplace(std::move(key), totals);
        return true;
      });
  if (!st.ok()) {
    error = std::move(st);
  } else if (!bad.ok()) {
    error = std::move(bad);
  }
  if (!error.ok()) aggregates_.clear();
}

store::status ledger_book::append(const std::vector<usage_record>& records, size_t* added,
                                  const store::batch* with) {
  if (added) *added = 0;
  static const store::batch nothing;
  const store::batch& also = with != nullptr ? *with : nothing;
  std::lock_guard lock(mu_);

  // One candidate per usable request id, first occurrence wins.
  std::vector<const usage_record*> candidates;
  std::vector<std::string> keys;
  candidates.reserve(records.size());
  keys.reserve(records.size());
  size_t refused = 0;
  std::string first_refused;
  {
    std::unordered_set<std::string_view> seen;
    seen.reserve(records.size());
    for (const usage_record& r : records) {
      std::string why;
      if (r.request_id.empty()) {
        why = "a record without a request id";
      } else if (!valid_day(billing::day_of(r.ts_ms))) {
        why = "record '" + r.request_id + "' has a time out of range (" + std::to_string(r.ts_ms) +
              " ms)";
      }
      if (!why.empty()) {
        if (refused++ == 0) first_refused = std::move(why);
        continue;
      }
      if (!seen.insert(r.request_id).second) continue;
      candidates.push_back(&r);
      keys.push_back(record_key(r.request_id));
    }
  }
  const store::status refusal =
      refused == 0 ? store::status{}
                   : store::status{code::invalid, "ledger: refused " + std::to_string(refused) +
                                                      " record(s), first: " + first_refused};
  if (candidates.empty()) {
    const store::status s = db_.write(also, nothing);
    return s.ok() ? refusal : s;
  }

  std::vector<std::string> values;
  const std::vector<store::status> present = db_.multi_get(family::ledger, keys, values);
  if (present.size() != keys.size()) return {code::other, "ledger: multi_get answered short"};

  // New totals of every aggregate touched, applied to memory only once the batch is written.
  std::map<agg_key, usage_totals> touched;
  std::vector<size_t> fresh_rows;  // candidates to write, by index
  std::vector<std::string> day_keys;
  fresh_rows.reserve(candidates.size());
  day_keys.reserve(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (present[i].ok()) continue;  // already recorded: a retry
    if (!present[i].not_found()) return present[i];
    const usage_record& r = *candidates[i];
    const int64_t day = billing::day_of(r.ts_ms);
    day_keys.push_back(day_key(day, r.request_id));
    agg_key k{day, r.tenant, r.project, r.key, r.model, r.provider};
    auto [it, inserted] = touched.try_emplace(std::move(k));
    if (inserted) {
      auto old = aggregates_.find(it->first);
      if (old != aggregates_.end()) it->second = old->second;
    }
    it->second.add(r);
    fresh_rows.push_back(i);
  }
  // Rows go into the batch in key order, r/ rows, then s/ rows, then a/ rows: the memtable
  // inserts them one after another, and an insert next to the previous one reuses its place in
  // the skip list (measured: the writer's CPU per exact hit fell 9-25% against one record's
  // r/ and s/ rows going in together).
  std::sort(fresh_rows.begin(), fresh_rows.end(),
            [&keys](size_t x, size_t y) { return keys[x] < keys[y]; });
  std::sort(day_keys.begin(), day_keys.end());
  store::batch b;
  for (size_t i : fresh_rows) b.put(family::ledger, keys[i], billing::encode(*candidates[i]));
  for (const std::string& k : day_keys) b.put(family::ledger, k, "");
  for (const auto& [k, t] : touched) b.put(family::ledger, agg_row_key(k), encode_totals(t));
  const size_t fresh = fresh_rows.size();

  store::status st = db_.write(also, b);  // nothing new and nothing with it: a no-op
  if (!st.ok()) return st;
  for (auto& [k, t] : touched) aggregates_.insert_or_assign(k, t);
  appended_ += fresh;
  if (added) *added = fresh;
  return refusal;
}

billing::usage_report ledger_book::report(const billing::usage_query& q) const {
  std::lock_guard lock(mu_);
  billing::usage_report rep;
  rep.query = q;
  rep.query.group_by.clear();
  for (billing::dimension d : q.group_by) {
    if (std::find(rep.query.group_by.begin(), rep.query.group_by.end(), d) ==
        rep.query.group_by.end())
      rep.query.group_by.push_back(d);
  }
  const auto& dims = rep.query.group_by;

  std::map<std::vector<std::string>, usage_totals> groups;
  if (q.from_day <= q.to_day) {
    auto it = aggregates_.lower_bound(agg_key{q.from_day, {}, {}, {}, {}, {}});
    for (; it != aggregates_.end() && it->first.day <= q.to_day; ++it) {
      const agg_key& k = it->first;
      if ((!q.tenant.empty() && k.tenant != q.tenant) ||
          (!q.project.empty() && k.project != q.project) || (!q.key.empty() && k.key != q.key))
        continue;
      rep.totals.add(it->second);
      if (dims.empty()) continue;
      std::vector<std::string> group;
      group.reserve(dims.size());
      for (billing::dimension d : dims) {
        switch (d) {
          case billing::dimension::day:
            group.push_back(billing::day_name(k.day));
            break;
          case billing::dimension::tenant:
            group.push_back(k.tenant);
            break;
          case billing::dimension::project:
            group.push_back(k.project);
            break;
          case billing::dimension::key:
            group.push_back(k.key);
            break;
          case billing::dimension::model:
            group.push_back(k.model);
            break;
          case billing::dimension::provider:
            group.push_back(k.provider);
            break;
          default:
            group.emplace_back();
            break;
        }
      }
      groups[std::move(group)].add(it->second);
    }
  }
  if (dims.empty()) {
    rep.rows.push_back(billing::usage_row{{}, rep.totals});
  } else {
    rep.rows.reserve(groups.size());
    for (auto& [g, t] : groups) rep.rows.push_back(billing::usage_row{g, t});
  }
  return rep;
}

store::status ledger_book::records(int64_t from_day, int64_t to_day, const std::string& tenant,
                                   size_t limit, std::vector<usage_record>& out) const {
  out.clear();
  from_day = std::max<int64_t>(from_day, 0);
  if (to_day < from_day || from_day > kMaxDay) return {};
  const std::string from = "s/" + pad8(from_day);
  const std::string to = to_day >= kMaxDay ? std::string("s0") : "s/" + pad8(to_day + 1);

  std::vector<std::string> chunk;  // r/ keys waiting to be fetched
  chunk.reserve(kFetchChunk);
  std::vector<std::string> values;
  bool full = false;
  const auto fetch = [&]() -> store::status {
    const std::vector<store::status> st = db_.multi_get(family::ledger, chunk, values);
    for (size_t i = 0; i < chunk.size() && !full; ++i) {
      if (i >= st.size()) return {code::other, "ledger: multi_get answered short"};
      if (st[i].not_found()) return corruption("ledger: day index names a missing " + chunk[i]);
      if (!st[i].ok()) return st[i];
      usage_record r;
      if (!billing::decode(values[i], r))
        return corruption("ledger: undecodable record at " + chunk[i]);
      if (!tenant.empty() && r.tenant != tenant) continue;
      out.push_back(std::move(r));
      full = limit != 0 && out.size() >= limit;
    }
    chunk.clear();
    return {};
  };

  store::status bad;
  store::status st =
      db_.scan_range(family::ledger, from, to, [&](std::string_view k, std::string_view) {
        if (k.size() <= kDayKeyPrefix || k[kDayKeyPrefix - 1] != '/') {
          bad = corruption("ledger: malformed day index key '" + std::string(k) + "'");
          return false;
        }
        chunk.push_back(record_key(k.substr(kDayKeyPrefix)));
        // Without a tenant filter every id is a record out: fetch no more than the limit needs.
        const bool enough = tenant.empty() && limit != 0 && out.size() + chunk.size() >= limit;
        if (chunk.size() >= kFetchChunk || enough) {
          bad = fetch();
          if (!bad.ok() || full) return false;
        }
        return true;
      });
  if (!st.ok()) return st;
  if (!bad.ok()) return bad;
  if (!chunk.empty() && !full) return fetch();
  return {};
}

ledger_book::spend ledger_book::spent(const std::string& tenant, int64_t day) const {
  std::lock_guard lock(mu_);
  spend out;
  if (!valid_day(day)) return out;
  auto it = aggregates_.lower_bound(agg_key{month_start(day), {}, {}, {}, {}, {}});
  for (; it != aggregates_.end() && it->first.day <= day; ++it) {
    if (it->first.tenant != tenant) continue;
    add_sat(out.month_micros, it->second.charged_micros);
    if (it->first.day == day) add_sat(out.day_micros, it->second.charged_micros);
  }
  return out;
}

std::map<std::string, ledger_book::spend> ledger_book::spent_all(int64_t day) const {
  std::lock_guard lock(mu_);
  std::map<std::string, spend> out;
  if (!valid_day(day)) return out;
  auto it = aggregates_.lower_bound(agg_key{month_start(day), {}, {}, {}, {}, {}});
  for (; it != aggregates_.end() && it->first.day <= day; ++it) {
    spend& s = out[it->first.tenant];
    add_sat(s.month_micros, it->second.charged_micros);
    if (it->first.day == day) add_sat(s.day_micros, it->second.charged_micros);
  }
  return out;
}

std::vector<ledger_book::scope_spend> ledger_book::spent_by_scope(int64_t day) const {
  std::lock_guard lock(mu_);
  std::map<std::string, scope_spend> by_scope;
  if (!valid_day(day)) return {};
  auto add = [&](const std::string& tenant, std::string scope, const agg_key& k,
                 const billing::usage_totals& t) {
    scope_spend& s = by_scope[scope];
    s.tenant = tenant;
    s.scope = std::move(scope);
    add_sat(s.amount.month_micros, t.charged_micros);
    if (k.day == day) add_sat(s.amount.day_micros, t.charged_micros);
  };
  auto it = aggregates_.lower_bound(agg_key{month_start(day), {}, {}, {}, {}, {}});
  for (; it != aggregates_.end() && it->first.day <= day; ++it) {
    const agg_key& k = it->first;
    add(k.tenant, "t:" + k.tenant, k, it->second);
    if (!k.project.empty()) add(k.tenant, "p:" + k.tenant + "/" + k.project, k, it->second);
    if (!k.key.empty()) add(k.tenant, "k:" + k.key, k, it->second);
  }
  std::vector<scope_spend> out;
  out.reserve(by_scope.size());
  for (auto& [_, s] : by_scope) out.push_back(std::move(s));
  return out;
}

}  // namespace tc::actors
