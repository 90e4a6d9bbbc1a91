// Usage records and reports (issue 4): one record per request, written by the ledger on every
// outcome, and the aggregates reports are made of. Money is integer micro-units (1e-6 of the
// currency), never floating point. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tc::billing {

/// How a request ended, as billed.
enum class outcome : uint8_t {
  ok = 0,              ///< answered by an upstream
  upstream_error = 1,  ///< an upstream error after tokens were spent (or none were)
  client_gone = 2,     ///< the client left mid-answer: usage up to the cut
  content_filter = 3,  ///< moderation stopped the answer
  cache_hit = 4,       ///< answered by the cache: nothing spent upstream
  dedup = 5,           ///< answered by an identical request in flight
  rejected = 6,        ///< refused before any upstream call (quota, validation)
};
std::string_view outcome_name(outcome o);
bool parse_outcome(std::string_view name, outcome& out);

struct usage_record {
  std::string request_id;  ///< idempotency key: a request is recorded once
  int64_t ts_ms = 0;       ///< unix milliseconds at settlement
  std::string tenant;
  std::string project;   ///< empty: none
  std::string key;       ///< API key id; empty: anonymous
  std::string model;     ///< as the client named it
  std::string provider;  ///< empty: no upstream call
  std::string endpoint;  ///< chat | completions | embeddings
  int status = 0;        ///< HTTP status sent to the client
  outcome result = outcome::ok;
  uint32_t prompt_tokens = 0;
  uint32_t cached_tokens = 0;  ///< of prompt_tokens, served from the upstream's prefix cache
  uint32_t completion_tokens = 0;
  bool estimated = false;   ///< tokens counted by the gateway, not reported upstream
  int64_t cost_micros = 0;  ///< what the upstream call cost (provider currency)
  std::string cost_currency = "CNY";
  int64_t charged_micros = 0;  ///< what the tenant is charged (tenant currency)
  std::string charged_currency = "CNY";
  int64_t saved_micros = 0;       ///< cost the cache or dedup saved (provider currency)
  std::string client_request_id;  ///< the client's own x-request-id, if it sent one
  friend bool operator==(const usage_record&, const usage_record&) = default;
};

/// Days since the unix epoch (UTC) of a unix-milliseconds time, and back to "YYYY-MM-DD".
int64_t day_of(int64_t unix_ms);
std::string day_name(int64_t day);
/// "YYYY-MM-DD" -> day; false if malformed.
bool parse_day(std::string_view text, int64_t& day);

/// Compact, versioned bytes for RocksDB; decode() fails (false) on anything it did not write.
std::string encode(const usage_record& r);
bool decode(std::string_view bytes, usage_record& out);

/// One JSON object (the admin API's and the JSON export's shape); money as decimal strings
/// with 6 decimals ("0.001250"), tokens as numbers.
std::string to_json(const usage_record& r);
/// The CSV export: a header line, then one line per record (RFC 4180 quoting).
std::string csv_header();
std::string to_csv_line(const usage_record& r);

/// Dimensions a report can group by.
enum class dimension : uint8_t { day, tenant, project, key, model, provider };
bool parse_dimension(std::string_view name, dimension& out);
std::string_view dimension_name(dimension d);

/// Summed usage of one group.
struct usage_totals {
  uint64_t requests = 0;
  uint64_t prompt_tokens = 0;
  uint64_t cached_tokens = 0;
  uint64_t completion_tokens = 0;
  uint64_t cache_hits = 0;  ///< requests answered by the cache or dedup
  int64_t cost_micros = 0;
  int64_t charged_micros = 0;
  int64_t saved_micros = 0;
  void add(const usage_record& r);
  void add(const usage_totals& t);
  friend bool operator==(const usage_totals&, const usage_totals&) = default;
};

struct usage_query {
  int64_t from_day = 0;             ///< inclusive
  int64_t to_day = 0;               ///< inclusive
  std::string tenant;               ///< empty: all
  std::string project;              ///< empty: all
  std::string key;                  ///< empty: all
  std::vector<dimension> group_by;  ///< empty: one row of totals
};

struct usage_row {
  std::vector<std::string> group;  ///< values of query.group_by, in its order
  usage_totals totals;
};

struct usage_report {
  usage_query query;
  std::vector<usage_row> rows;  ///< sorted by group values
  usage_totals totals;          ///< over all rows
};

/// {"object":"usage_report","from":"2026-11-01","to":..,"group_by":[..],"rows":[{..}],"totals":{..}}
/// Money as decimal strings with 6 decimals.
std::string to_json(const usage_report& r);
/// CSV: group columns then the totals' columns; one line per row.
std::string to_csv(const usage_report& r);

}  // namespace tc::billing
