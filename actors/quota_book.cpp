// The counters behind tenant_quota. Every scope holds five rolling windows (ring buffers of
// buckets, each bucket tagged with the bucket index it counts so a stale one reads as 0, plus a
// running total so a check is O(1)), an in-flight count, the cost held by open reservations and
// the spend of one UTC day and month. Nothing is allocated per request but the open
// reservation's hash node (and a scope's entry the first time it counts).
// reserve() probes every scope first and writes only if all admit; open reservations remember
// the buckets they went into so settle() can correct them.
//
// Contract notes beyond the header:
// - Time never runs backwards inside a book: now_ms is raised to the largest value seen (and
//   clamped to [0, year 9999]), so a late or skewed call counts as "now".
// - A rolling window is bucketed: "the last 60 s" is the current second plus the 59 before it,
//   so a bucket's counts leave together when the bucket index moves N past it.
// - Windows always count, limited or not (limits travel with each request and may change).
// - burst_pct > 0: a rolling minute admits floor(limit * (100 + burst_pct) / 100) and the last
//   10 one-minute buckets admit 10 x limit. The x-ratelimit limit reported is that per-minute
//   figure; remaining is the smaller of what the minute and the 10 minutes leave.
// - A request asking more tokens than a minute can ever admit is denied with retry_after 60.
// - retry_after_s is the largest over every check that failed, in every scope (the request
//   needs them all); the code and message name the first failure in scope and check order.
// - A denial reports x-ratelimit values as they are now; a grant, as they are after it.
// - The same scope id twice in one ask is checked against every limit given but counted once;
//   the first occurrence's budgets are the ones its alerts are measured against.
// - Budget alerts: after a settle that spends something, every threshold (50, 80, 100) at or
//   under the period's spend and above the highest already alerted in that period is reported,
//   lowest first. Spend seeded with add_spend is therefore alerted on the next paid settle.
// - add_spend adds to the counters of `day` / its month if that period is the scope's current
//   one, starts a new period if it is later, and is ignored for an earlier one.
// - sweep() keeps a swept reservation's tokens counted (the request may have used them).
#include "actors/quota_book.hpp"

#include <array>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tc::actors {

namespace {

constexpr int64_t second_ms = 1000;
constexpr int64_t minute_ms = 60 * second_ms;
constexpr int64_t hour_ms = 60 * minute_ms;
constexpr int64_t day_ms = 24 * hour_ms;
/// 9999-12-31T23:59:59.999Z: keeps bucket arithmetic far from overflow.
constexpr int64_t max_now_ms = 253402300799999;
constexpr int64_t no_period = std::numeric_limits<int64_t>::min();
/// Budgets above this many currency units are treated as this many (keeps micros x 6 in int64).
constexpr double max_budget_units = 1e12;

using i128 = __int128;
using u128 = unsigned __int128;

uint64_t sat_add(uint64_t a, uint64_t b) {
  uint64_t r = a + b;
  return r < a ? std::numeric_limits<uint64_t>::max() : r;
}

int64_t sat_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? std::numeric_limits<int64_t>::max() : 0;
  return r;
}

/// floor(v * num / den), saturating.
uint64_t scale(uint64_t v, uint64_t num, uint64_t den) {
  u128 r = static_cast<u128>(v) * num / den;
  return r > std::numeric_limits<uint64_t>::max() ? std::numeric_limits<uint64_t>::max()
                                                  : static_cast<uint64_t>(r);
}

/// Currency units -> micros; 0 (unlimited) for anything not positive or not a number.
int64_t to_micros(double units) {
  if (!(units > 0)) return 0;
  if (units > max_budget_units) units = max_budget_units;
  return std::llround(units * 1e6);
}

/// Seconds a client should wait, from milliseconds: ceil, at least 1.
uint32_t retry_seconds(int64_t ms) {
  if (ms <= second_ms) return 1;
  int64_t s = (ms + second_ms - 1) / second_ms;
  return s > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                  : static_cast<uint32_t>(s);
}

/// Months since year 0 of a day index (days since the unix epoch, UTC).
int64_t month_index(int64_t day) {
  using namespace std::chrono;
  year_month_day ymd{sys_days{days{day}}};
  return static_cast<int64_t>(static_cast<int>(ymd.year())) * 12 +
         static_cast<unsigned>(ymd.month()) - 1;
}

/// Unix ms at which the UTC month after the one holding `day` starts.
int64_t next_month_ms(int64_t day) {
  using namespace std::chrono;
  year_month_day ymd{sys_days{days{day}}};
  year_month next = year_month{ymd.year(), ymd.month()} + months{1};
  return static_cast<int64_t>(sys_days{next / 1}.time_since_epoch().count()) * day_ms;
}

/// "k:key_x" -> "key key_x", for messages people read.
std::string describe(const std::string& id) {
  if (id.size() > 2 && id[1] == ':') {
    const char* kind = nullptr;
    switch (id[0]) {
      case 't':
        kind = "tenant ";
        break;
      case 'p':
        kind = "project ";
        break;
      case 'k':
        kind = "key ";
        break;
      case 'm':
        kind = "model ";
        break;
      default:
        break;
    }
    if (kind) return kind + id.substr(2);
  }
  return "scope " + id;
}

/// Micros as currency units with 2 to 6 decimals: 1500000 -> "1.50", 1234 -> "0.001234".
std::string money(int64_t micros) {
  char buf[48];
  const char* sign = micros < 0 ? "-" : "";
  uint64_t v = micros < 0 ? 0 - static_cast<uint64_t>(micros) : static_cast<uint64_t>(micros);
  int n = std::snprintf(buf, sizeof buf, "%s%llu.%06llu", sign,
                        static_cast<unsigned long long>(v / 1000000),
                        static_cast<unsigned long long>(v % 1000000));
  while (n > 0 && buf[n - 1] == '0' && buf[n - 3] != '.') --n;
  return std::string(buf, static_cast<size_t>(n));
}

/// A rolling window of N buckets, each W ms wide. Bucket b counts events in [b*W, (b+1)*W) and
/// is live while the current bucket index is below b + N. Each slot remembers the bucket it
/// holds, so a slot holding an older bucket reads as 0 and is reset when written; advance()
/// empties the slots that left since the last call, which keeps `total` (the sum of the live
/// buckets) exact and every read O(1). Counts saturate at `cap`, so `total` cannot overflow.
template <typename Count, int64_t N, int64_t W>
struct window {
  static constexpr int64_t buckets = N;
  static constexpr int64_t width_ms = W;
  static constexpr uint64_t cap = std::numeric_limits<Count>::max() < (uint64_t{1} << 57)
                                      ? std::numeric_limits<Count>::max()
                                      : (uint64_t{1} << 57);
  std::array<int64_t, N> epoch;
  std::array<Count, N> count{};
  uint64_t total = 0;
  int64_t head = no_period;  ///< the bucket of the last advance(): "now" for every other call

  window() { epoch.fill(no_period); }

  static int64_t bucket_of(int64_t now) { return now / W; }
  static size_t slot_of(int64_t b) { return static_cast<size_t>(b % N); }

  /// Moves the window to `now` (never backwards), emptying the buckets that left it.
  void advance(int64_t now) {
    const int64_t cur = bucket_of(now);
    if (cur <= head) return;
    if (head == no_period || cur - head >= N) {
      count.fill(0);
      total = 0;
    } else {
      for (int64_t b = head + 1; b <= cur; ++b) {
        const size_t s = slot_of(b);
        total -= count[s];
        count[s] = 0;
      }
    }
    head = cur;
  }

  /// Events counted in the live buckets (as of the last advance).
  uint64_t used() const { return total; }

  /// Counts `n` more events in the current bucket.
  void add(uint64_t n) {
    assert(head != no_period);  // advance() first
    const size_t s = slot_of(head);
    if (epoch[s] != head) {
      epoch[s] = head;
      total -= count[s];
      count[s] = 0;
    }
    set(s, sat_add(static_cast<uint64_t>(count[s]), n));
  }

  /// Replaces `from` counted in bucket `b` by `to`, if that bucket is still live.
  void replace(int64_t b, uint64_t from, uint64_t to) {
    if (b <= head - N || b > head) return;
    const size_t s = slot_of(b);
    if (epoch[s] != b) return;
    const uint64_t c = count[s];
    set(s, sat_add(c - (from < c ? from : c), to));
  }

  /// Ms from `now` until at least `need` of the counted events have left the window (the
  /// oldest buckets first); the whole window's span if they never will.
  int64_t ms_until_freed(uint64_t need, int64_t now) const {
    uint64_t freed = 0;
    for (int64_t b = head - N + 1; b <= head; ++b) {
      const size_t s = slot_of(b);
      if (epoch[s] != b || count[s] == 0) continue;
      freed = sat_add(freed, static_cast<uint64_t>(count[s]));
      if (freed >= need) return (b + N) * W - now;
    }
    return (head + N) * W - now;
  }

  /// Ms from `now` until the oldest counted bucket leaves; 0 if nothing is counted.
  int64_t ms_until_oldest_leaves(int64_t now) const {
    return total == 0 ? 0 : ms_until_freed(1, now);
  }

 private:
  void set(size_t s, uint64_t v) {
    if (v > cap) v = cap;
    total = total - count[s] + v;
    count[s] = static_cast<Count>(v);
  }
};

using second_requests = window<uint32_t, 60, second_ms>;
using second_tokens = window<uint64_t, 60, second_ms>;
using hour_requests = window<uint32_t, 24, hour_ms>;
using minute_requests = window<uint32_t, 10, minute_ms>;
using minute_tokens = window<uint64_t, 10, minute_ms>;

struct scope_state {
  second_requests rpm;
  second_tokens tpm;
  hour_requests rpd;
  minute_requests burst_requests;  ///< the 10-minute pay-back of rpm bursts
  minute_tokens burst_tokens;      ///< the 10-minute pay-back of tpm bursts
  uint64_t in_flight = 0;
  int64_t held_micros = 0;  ///< cost of this scope's open reservations
  int64_t day = no_period;
  int64_t spent_day = 0;
  uint32_t alerted_day = 0;  ///< highest threshold alerted this day
  int64_t month = no_period;
  int64_t spent_month = 0;
  uint32_t alerted_month = 0;

  /// Starts a new day or month if `day` / `month` are later than the ones counted.
  void roll(int64_t d, int64_t m) {
    if (d > day) {
      day = d;
      spent_day = 0;
      alerted_day = 0;
    }
    if (m > month) {
      month = m;
      spent_month = 0;
      alerted_month = 0;
    }
  }

  /// Brings every window to `now` and the spend to day `d` / month `m`.
  void advance(int64_t now, int64_t d, int64_t m) {
    rpm.advance(now);
    tpm.advance(now);
    rpd.advance(now);
    burst_requests.advance(now);
    burst_tokens.advance(now);
    roll(d, m);
  }

  /// Nothing left to count (after advance()).
  bool idle() const {
    return in_flight == 0 && held_micros == 0 && spent_day == 0 && spent_month == 0 &&
           rpm.used() == 0 && tpm.used() == 0 && rpd.used() == 0 && burst_requests.used() == 0 &&
           burst_tokens.used() == 0;
  }
};

using scope_map = std::unordered_map<std::string, scope_state>;
using scope_entry = scope_map::value_type;

/// What a reservation holds in one scope.
struct charge {
  scope_entry* scope = nullptr;
  int64_t day_budget = 0;  ///< micros, from the limits at reserve time (for alerts)
  int64_t month_budget = 0;
};

struct reservation {
  int64_t created_ms = 0;
  int64_t cost_micros = 0;
  uint64_t tokens = 0;
  int64_t second = 0;  ///< the tpm bucket the tokens went into
  int64_t minute = 0;  ///< the burst_tokens bucket they went into
  uint32_t inline_count = 0;
  std::array<charge, 4> inline_charges;  ///< tenant, project, key, model without allocating
  std::vector<charge> more;

  void push(const charge& c) {
    if (inline_count < inline_charges.size())
      inline_charges[inline_count++] = c;
    else
      more.push_back(c);
  }
  bool holds(const scope_entry* e) const {
    for (uint32_t i = 0; i < inline_count; ++i)
      if (inline_charges[i].scope == e) return true;
    for (const charge& c : more)
      if (c.scope == e) return true;
    return false;
  }
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t i = 0; i < inline_count; ++i) f(inline_charges[i]);
    for (const charge& c : more) f(c);
  }
};

/// One scope of an ask while it is being checked.
struct probe {
  const quota_scope* scope = nullptr;
  scope_entry* entry = nullptr;  ///< null: the scope has never counted anything
  uint64_t rpm_used = 0;
  uint64_t burst_requests_used = 0;
  uint64_t tpm_used = 0;
  uint64_t burst_tokens_used = 0;
  int64_t day_budget = 0;  ///< micros
  int64_t month_budget = 0;
};

/// The first failed check of a reserve() and the longest wait over all of them.
struct denial {
  bool denied = false;
  bool budget = false;
  std::string message;
  int64_t retry_ms = 0;

  template <typename F>
  void fail(bool is_budget, int64_t wait_ms, F&& describe_failure) {
    if (!denied) {
      denied = true;
      budget = is_budget;
      message = describe_failure();
    }
    if (wait_ms > retry_ms) retry_ms = wait_ms;
  }
};

const scope_state& empty_state() {
  static const scope_state empty;
  return empty;
}

/// The x-ratelimit figures of one dimension (requests or tokens).
struct headroom {
  bool found = false;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  int64_t reset_ms = 0;
};

/// Folds in one scope's limit if it leaves less than the tightest so far. `used` counts events
/// already in the window; `after` is what this request adds (0 when denied). The reset is the
/// ms until the oldest counted bucket of the binding window leaves (this request's bucket if
/// the window held nothing else).
template <typename Minute, typename Ten>
void tighten(headroom& h, uint64_t limit, uint32_t burst_pct, uint64_t used, uint64_t used10,
             uint64_t after, const Minute& minute, const Ten& ten, int64_t now) {
  const uint64_t per_minute = scale(limit, 100 + uint64_t{burst_pct}, 100);
  const uint64_t in_minute = sat_add(used, after);
  uint64_t remaining = per_minute > in_minute ? per_minute - in_minute : 0;
  bool ten_binds = false;
  if (burst_pct > 0) {
    const uint64_t cap10 = scale(limit, 10, 1);
    const uint64_t in_ten = sat_add(used10, after);
    const uint64_t remaining10 = cap10 > in_ten ? cap10 - in_ten : 0;
    if (remaining10 < remaining) {
      remaining = remaining10;
      ten_binds = true;
    }
  }
  if (h.found && remaining >= h.remaining) return;
  h.found = true;
  h.limit = per_minute;
  h.remaining = remaining;
  if (ten_binds) {
    h.reset_ms = used10 > 0  ? ten.ms_until_oldest_leaves(now)
                 : after > 0 ? (Ten::bucket_of(now) + Ten::buckets) * Ten::width_ms - now
                             : 0;
  } else {
    h.reset_ms = used > 0    ? minute.ms_until_oldest_leaves(now)
                 : after > 0 ? (Minute::bucket_of(now) + Minute::buckets) * Minute::width_ms - now
                             : 0;
  }
}

uint32_t to_ms32(int64_t ms) {
  if (ms <= 0) return 0;
  return ms > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                   : static_cast<uint32_t>(ms);
}

}  // namespace

struct quota_book::impl {
  scope_map scopes;
  std::unordered_map<uint64_t, reservation> open;
  std::vector<probe> probes;  ///< reused by every reserve(): no allocation once warm
  uint64_t next_ticket = 1;
  int64_t clock_ms = 0;  ///< the largest now_ms seen
  int64_t cached_day = no_period;
  int64_t cached_month = 0;

  impl() { open.reserve(1024); }

  /// The book's now: monotonic, within [0, max_now_ms].
  int64_t tick(int64_t now_ms) {
    if (now_ms > max_now_ms) now_ms = max_now_ms;
    if (now_ms > clock_ms) clock_ms = now_ms;
    return clock_ms;
  }

  int64_t month_of(int64_t day) {
    if (day != cached_day) {
      cached_day = day;
      cached_month = month_index(day);
    }
    return cached_month;
  }

  void check_scope(probe& p, const quota_ask& ask, int64_t now, int64_t day, int64_t cost,
                   denial& d, bool& warning);
  void check_budget(const std::string& id, const char* period, int64_t budget, bool soft,
                    int64_t spent, int64_t held, int64_t cost, int64_t wait_ms, denial& d,
                    bool& warning);
  void fill_headers(quota_verdict& v, uint64_t tokens, bool granted, int64_t now) const;
};

void quota_book::impl::check_scope(probe& p, const quota_ask& ask, int64_t now, int64_t day,
                                   int64_t cost, denial& d, bool& warning) {
  const accounts::limits& lim = p.scope->limit;
  const std::string& id = p.scope->id;
  const scope_state& st = p.entry ? p.entry->second : empty_state();

  if (lim.max_concurrent > 0 && st.in_flight >= lim.max_concurrent) {
    d.fail(false, second_ms, [&] {
      return "Concurrency limit reached on " + describe(id) + ": limit " +
             std::to_string(lim.max_concurrent) + " requests in flight.";
    });
  }

  if (lim.rpm > 0) {
    const uint64_t per_minute = scale(lim.rpm, 100 + uint64_t{lim.burst_pct}, 100);
    p.rpm_used = st.rpm.used();
    if (p.rpm_used >= per_minute) {
      d.fail(false, st.rpm.ms_until_freed(p.rpm_used + 1 - per_minute, now), [&] {
        return "Rate limit reached for requests per minute on " + describe(id) + ": limit " +
               std::to_string(per_minute) + ", used " + std::to_string(p.rpm_used) + ".";
      });
    }
    if (lim.burst_pct > 0) {
      const uint64_t cap10 = scale(lim.rpm, 10, 1);
      p.burst_requests_used = st.burst_requests.used();
      if (p.burst_requests_used >= cap10) {
        d.fail(false, st.burst_requests.ms_until_freed(p.burst_requests_used + 1 - cap10, now),
               [&] {
                 return "Rate limit reached for requests per 10 minutes (burst pay-back) on " +
                        describe(id) + ": limit " + std::to_string(cap10) + ", used " +
                        std::to_string(p.burst_requests_used) + ".";
               });
      }
    }
  }

  if (lim.rpd > 0) {
    const uint64_t used = st.rpd.used();
    if (used >= lim.rpd) {
      d.fail(false, st.rpd.ms_until_freed(used + 1 - lim.rpd, now), [&] {
        return "Rate limit reached for requests per day on " + describe(id) + ": limit " +
               std::to_string(lim.rpd) + ", used " + std::to_string(used) + ".";
      });
    }
  }

  if (lim.tpm > 0) {
    const uint64_t per_minute = scale(lim.tpm, 100 + uint64_t{lim.burst_pct}, 100);
    const uint64_t cap10 = lim.burst_pct > 0 ? scale(lim.tpm, 10, 1) : per_minute;
    const uint64_t most = per_minute < cap10 ? per_minute : cap10;
    p.tpm_used = st.tpm.used();
    if (lim.burst_pct > 0) p.burst_tokens_used = st.burst_tokens.used();
    if (ask.tokens > most) {
      d.fail(false, minute_ms, [&] {
        return "Request too large for tokens per minute on " + describe(id) + ": requested " +
               std::to_string(ask.tokens) + " tokens, limit " + std::to_string(most) +
               ". Reduce the prompt or max_tokens.";
      });
    } else {
      if (sat_add(p.tpm_used, ask.tokens) > per_minute) {
        d.fail(false, st.tpm.ms_until_freed(sat_add(p.tpm_used, ask.tokens) - per_minute, now),
               [&] {
                 return "Rate limit reached for tokens per minute on " + describe(id) + ": limit " +
                        std::to_string(per_minute) + ", used " + std::to_string(p.tpm_used) +
                        ", requested " + std::to_string(ask.tokens) + ".";
               });
      }
      if (lim.burst_pct > 0 && sat_add(p.burst_tokens_used, ask.tokens) > cap10) {
        d.fail(
            false,
            st.burst_tokens.ms_until_freed(sat_add(p.burst_tokens_used, ask.tokens) - cap10, now),
            [&] {
              return "Rate limit reached for tokens per 10 minutes (burst pay-back) on " +
                     describe(id) + ": limit " + std::to_string(cap10) + ", used " +
                     std::to_string(p.burst_tokens_used) + ", requested " +
                     std::to_string(ask.tokens) + ".";
            });
      }
    }
  }

  if (p.day_budget > 0) {
    check_budget(id, "Daily", p.day_budget, lim.soft_budget, st.spent_day, st.held_micros, cost,
                 (day + 1) * day_ms - now, d, warning);
  }
  if (p.month_budget > 0) {
    check_budget(id, "Monthly", p.month_budget, lim.soft_budget, st.spent_month, st.held_micros,
                 cost, next_month_ms(day) - now, d, warning);
  }
}

void quota_book::impl::check_budget(const std::string& id, const char* period, int64_t budget,
                                    bool soft, int64_t spent, int64_t held, int64_t cost,
                                    int64_t wait_ms, denial& d, bool& warning) {
  const i128 total = static_cast<i128>(spent) + held + cost;
  const bool over = soft ? total * 5 > static_cast<i128>(budget) * 6 : total > budget;
  if (over) {
    d.fail(true, wait_ms, [&] {
      return std::string(period) + " budget " + (soft ? "(soft, 120%) " : "") + "exceeded on " +
             describe(id) + ": budget " + money(budget) + ", spent " + money(spent) +
             ", reserved " + money(held) + ", this request " + money(cost) + ".";
    });
  } else if (total > budget) {
    warning = true;
  }
}

void quota_book::impl::fill_headers(quota_verdict& v, uint64_t tokens, bool granted,
                                    int64_t now) const {
  headroom requests, toks;
  for (const probe& p : probes) {
    const accounts::limits& lim = p.scope->limit;
    const scope_state& st = p.entry ? p.entry->second : empty_state();
    if (lim.rpm > 0) {
      tighten(requests, lim.rpm, lim.burst_pct, p.rpm_used, p.burst_requests_used, granted ? 1 : 0,
              st.rpm, st.burst_requests, now);
    }
    if (lim.tpm > 0) {
      tighten(toks, lim.tpm, lim.burst_pct, p.tpm_used, p.burst_tokens_used, granted ? tokens : 0,
              st.tpm, st.burst_tokens, now);
    }
  }
  v.limit_requests = requests.limit;
  v.remaining_requests = requests.remaining;
  v.reset_requests_ms = to_ms32(requests.reset_ms);
  v.limit_tokens = toks.limit;
  v.remaining_tokens = toks.remaining;
  v.reset_tokens_ms = to_ms32(toks.reset_ms);
}

quota_book::quota_book() : impl_(std::make_unique<impl>()) {}
quota_book::~quota_book() = default;
quota_book::quota_book(quota_book&&) noexcept = default;
quota_book& quota_book::operator=(quota_book&&) noexcept = default;

quota_verdict quota_book::reserve(const quota_ask& ask, int64_t now_ms) {
  impl& m = *impl_;
  const int64_t now = m.tick(now_ms);
  const int64_t day = now / day_ms;
  const int64_t month = m.month_of(day);
  const int64_t cost = ask.cost_micros > 0 ? ask.cost_micros : 0;

  m.probes.clear();
  for (const quota_scope& s : ask.scopes) {
    probe p;
    p.scope = &s;
    p.day_budget = to_micros(s.limit.daily_budget);
    p.month_budget = to_micros(s.limit.monthly_budget);
    auto it = m.scopes.find(s.id);
    if (it != m.scopes.end()) {
      it->second.advance(now, day, month);
      p.entry = &*it;
    }
    m.probes.push_back(p);
  }

  denial d;
  bool warning = false;
  for (probe& p : m.probes) m.check_scope(p, ask, now, day, cost, d, warning);

  quota_verdict v;
  if (d.denied) {
    v.status = 429;
    v.code = d.budget ? "insufficient_quota" : "rate_limit_exceeded";
    v.message = std::move(d.message);
    v.retry_after_s = retry_seconds(d.retry_ms);
    m.fill_headers(v, ask.tokens, false, now);
    return v;
  }

  // Headers first: they read the windows as they were, plus this request.
  m.fill_headers(v, ask.tokens, true, now);

  reservation r;
  r.created_ms = now;
  r.cost_micros = cost;
  r.tokens = ask.tokens;
  r.second = second_tokens::bucket_of(now);
  r.minute = minute_tokens::bucket_of(now);
  for (probe& p : m.probes) {
    if (!p.entry) {
      p.entry = &*m.scopes.try_emplace(p.scope->id).first;
      p.entry->second.advance(now, day, month);
    }
    if (r.holds(p.entry)) continue;  // the same scope twice counts once
    scope_state& st = p.entry->second;
    st.rpm.add(1);
    st.rpd.add(1);
    st.burst_requests.add(1);
    st.tpm.add(ask.tokens);
    st.burst_tokens.add(ask.tokens);
    st.in_flight += 1;
    st.held_micros = sat_add(st.held_micros, cost);
    r.push(charge{p.entry, p.day_budget, p.month_budget});
  }
  v.granted = true;
  v.ticket = m.next_ticket++;
  v.budget_warning = warning;
  m.open.emplace(v.ticket, std::move(r));
  return v;
}

namespace {

/// Reports every threshold at or under `spent` that this period has not reported yet.
void alert(const std::string& scope, const char* period, int64_t spent, int64_t budget,
           uint32_t& alerted, std::vector<budget_alert>& out) {
  if (budget <= 0) return;
  for (uint32_t pct : {50u, 80u, 100u}) {
    if (pct <= alerted) continue;
    if (static_cast<i128>(spent) * 100 < static_cast<i128>(budget) * pct) break;
    out.push_back(budget_alert{scope, period, pct, spent, budget});
    alerted = pct;
  }
}

}  // namespace

std::vector<budget_alert> quota_book::settle(uint64_t ticket, uint64_t tokens, int64_t cost_micros,
                                             int64_t now_ms) {
  impl& m = *impl_;
  std::vector<budget_alert> alerts;
  auto it = m.open.find(ticket);
  if (it == m.open.end()) return alerts;
  const int64_t now = m.tick(now_ms);
  const int64_t day = now / day_ms;
  const int64_t month = m.month_of(day);
  const int64_t cost = cost_micros > 0 ? cost_micros : 0;
  const reservation& r = it->second;
  r.for_each([&](const charge& c) {
    scope_state& st = c.scope->second;
    assert(st.in_flight > 0);
    st.in_flight -= 1;
    st.held_micros -= r.cost_micros;
    st.advance(now, day, month);
    st.tpm.replace(r.second, r.tokens, tokens);
    st.burst_tokens.replace(r.minute, r.tokens, tokens);
    if (cost == 0) return;
    st.spent_day = sat_add(st.spent_day, cost);
    st.spent_month = sat_add(st.spent_month, cost);
    alert(c.scope->first, "day", st.spent_day, c.day_budget, st.alerted_day, alerts);
    alert(c.scope->first, "month", st.spent_month, c.month_budget, st.alerted_month, alerts);
  });
  m.open.erase(it);
  return alerts;
}

void quota_book::add_spend(const std::string& scope, int64_t day, int64_t spent_day_micros,
                           int64_t spent_month_micros) {
  impl& m = *impl_;
  if (day < 0 || day > max_now_ms / day_ms) return;
  const int64_t month = m.month_of(day);
  scope_state& st = m.scopes.try_emplace(scope).first->second;
  if (day >= st.day) {
    if (day > st.day) {
      st.day = day;
      st.spent_day = 0;
      st.alerted_day = 0;
    }
    st.spent_day = sat_add(st.spent_day, spent_day_micros);
    if (st.spent_day < 0) st.spent_day = 0;
  }
  if (month >= st.month) {
    if (month > st.month) {
      st.month = month;
      st.spent_month = 0;
      st.alerted_month = 0;
    }
    st.spent_month = sat_add(st.spent_month, spent_month_micros);
    if (st.spent_month < 0) st.spent_month = 0;
  }
}

void quota_book::sweep(int64_t now_ms, int64_t max_age_ms) {
  impl& m = *impl_;
  const int64_t now = m.tick(now_ms);
  const int64_t day = now / day_ms;
  const int64_t month = m.month_of(day);
  if (max_age_ms < 0) max_age_ms = 0;
  for (auto it = m.open.begin(); it != m.open.end();) {
    const reservation& r = it->second;
    if (now - r.created_ms <= max_age_ms) {
      ++it;
      continue;
    }
    r.for_each([&](const charge& c) {
      scope_state& st = c.scope->second;
      assert(st.in_flight > 0);
      st.in_flight -= 1;
      st.held_micros -= r.cost_micros;
    });
    it = m.open.erase(it);
  }
  // A scope with nothing in flight has no open reservation pointing at it.
  for (auto it = m.scopes.begin(); it != m.scopes.end();) {
    it->second.advance(now, day, month);
    if (it->second.idle())
      it = m.scopes.erase(it);
    else
      ++it;
  }
}

size_t quota_book::scopes() const {
  return impl_->scopes.size();
}
size_t quota_book::reservations() const {
  return impl_->open.size();
}

}  // namespace tc::actors
