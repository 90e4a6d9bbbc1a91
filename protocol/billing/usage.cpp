// Usage records: names, UTC days, the binary row format, JSON and CSV.
//
// Contract notes beyond the header:
// - day_name() writes the year with at least 4 digits and a '-' sign before year 0; parse_day()
//   accepts exactly "YYYY-MM-DD" with years 0000-9999 (proleptic Gregorian), so the two round
//   trip over that range.
// - encode() layout, version 1: u8 version; then in declaration order, strings as an unsigned
//   LEB128 length (at most 5 bytes, minimal form) and the bytes, integers as fixed-width little
//   endian (ts_ms, money: 8 bytes; status, tokens: 4; outcome, estimated: 1). decode() accepts
//   exactly what encode() writes: no short or trailing bytes, no unknown outcome, estimated 0 or 1.
// - JSON strings are written as valid UTF-8: invalid byte sequences (names may come from clients)
//   become U+FFFD. CSV keeps the bytes as they are.
// - csv_header(), to_csv_line() and each line of to_csv() end with CRLF (RFC 4180).
// - Sums saturate at the integer limits instead of wrapping.
#include "protocol/billing/usage.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <charconv>
#include <cstring>
#include <limits>

namespace tc::billing {

namespace {

constexpr int64_t kMsPerDay = 86400000;
// Version 2 appends client_request_id; version 1 rows (without it) still decode.
constexpr uint8_t kRecordVersion = 2;

constexpr std::array<std::string_view, 7> kOutcomeNames = {
    "ok", "upstream_error", "client_gone", "content_filter", "cache_hit", "dedup", "rejected"};
constexpr std::array<std::string_view, 6> kDimensionNames = {"day", "tenant", "project",
                                                             "key", "model",  "provider"};

// ---- civil calendar (proleptic Gregorian, eras of 400 years = 146097 days) ----

struct civil {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

template <typename T>
T floor_div(T a, T b) {
  T q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

/// Days since 1970-01-01 -> date. Wide arithmetic so every int64 day is safe.
civil civil_of(int64_t days) {
  // Shift the epoch to 0000-03-01 so that leap days end each 4/100/400-year cycle.
  const __int128 z = static_cast<__int128>(days) + 719468;
  const __int128 era = floor_div<__int128>(z, 146097);
  const int64_t doe = static_cast<int64_t>(z - era * 146097);                 // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // March = 0
  const unsigned d = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const unsigned m = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  const int64_t y = static_cast<int64_t>(era * 400 + yoe) + (m <= 2 ? 1 : 0);
  return {y, m, d};
}

/// Date -> days since 1970-01-01; the date must be valid, |year| small.
int64_t days_of(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = floor_div<int64_t>(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t mp = m > 2 ? m - 3 : m + 9;
  const int64_t doy = (153 * mp + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

void append_padded(std::string& out, uint64_t v, int width) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  for (int n = static_cast<int>(end - buf); n < width; ++n) out.push_back('0');
  out.append(buf, end);
}

// ---- binary encoding ----

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

template <typename T>
void put_fixed(std::string& out, T v) {
  auto u = static_cast<std::make_unsigned_t<T>>(v);
  for (size_t i = 0; i < sizeof(T); ++i) {
    out.push_back(static_cast<char>(u & 0xff));
    u = static_cast<std::make_unsigned_t<T>>(u >> 8);
  }
}

void put_string(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

/// Bounds-checked reader; every getter fails (false) instead of reading past the end.
class reader {
 public:
  explicit reader(std::string_view b) : b_(b) {}
  bool done() const { return pos_ == b_.size(); }

  bool u8(uint8_t& v) {
    if (pos_ >= b_.size()) return false;
    v = static_cast<uint8_t>(b_[pos_++]);
    return true;
  }

  template <typename T>
  bool fixed(T& v) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      u |= static_cast<std::make_unsigned_t<T>>(static_cast<uint8_t>(b_[pos_ + i])) << (8 * i);
    pos_ += sizeof(T);
    v = static_cast<T>(u);
    return true;
  }

  /// A minimal-form LEB128 length of at most 32 bits.
  bool length(size_t& v) {
    uint64_t acc = 0;
    for (int i = 0; i < 5; ++i) {
      uint8_t byte = 0;
      if (!u8(byte)) return false;
      acc |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) {
        if (i > 0 && byte == 0) return false;  // non-minimal: we never write it
        if (acc > std::numeric_limits<uint32_t>::max()) return false;
        v = static_cast<size_t>(acc);
        return true;
      }
    }
    return false;
  }

  bool str(std::string& s) {
    size_t n = 0;
    if (!length(n) || b_.size() - pos_ < n) return false;
    s.assign(b_.substr(pos_, n));
    pos_ += n;
    return true;
  }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

// ---- text helpers ----

/// Micro-units as a decimal string with 6 decimals: 1250 -> "0.001250", -1 -> "-0.000001".
std::string money(int64_t micros) {
  std::string out;
  uint64_t mag = micros < 0 ? 0 - static_cast<uint64_t>(micros) : static_cast<uint64_t>(micros);
  if (micros < 0) out.push_back('-');
  append_padded(out, mag / 1000000, 1);
  out.push_back('.');
  append_padded(out, mag % 1000000, 6);
  return out;
}

/// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one (RFC 3629: no overlongs,
/// no surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  return n;
}

/// `s` with each invalid UTF-8 byte replaced by U+FFFD.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out.append("\xef\xbf\xbd");
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

void json_string(json_writer& w, std::string_view s) {
  std::string v = valid_utf8(s);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

void json_field(json_writer& w, std::string_view key, std::string_view value) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  json_string(w, value);
}

void json_totals_fields(json_writer& w, const usage_totals& t) {
  w.Key("requests");
  w.Uint64(t.requests);
  w.Key("prompt_tokens");
  w.Uint64(t.prompt_tokens);
  w.Key("cached_tokens");
  w.Uint64(t.cached_tokens);
  w.Key("completion_tokens");
  w.Uint64(t.completion_tokens);
  w.Key("cache_hits");
  w.Uint64(t.cache_hits);
  json_field(w, "cost", money(t.cost_micros));
  json_field(w, "charged", money(t.charged_micros));
  json_field(w, "saved", money(t.saved_micros));
}

/// One CSV field, quoted when it holds a comma, a quote, CR or LF (quotes doubled).
void csv_field(std::string& out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(s);
    return;
  }
  out.push_back('"');
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

void csv_number(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void csv_unsigned(std::string& out, uint64_t v) {
  append_padded(out, v, 1);
}

void csv_totals(std::string& out, const usage_totals& t) {
  csv_unsigned(out, t.requests);
  out.push_back(',');
  csv_unsigned(out, t.prompt_tokens);
  out.push_back(',');
  csv_unsigned(out, t.cached_tokens);
  out.push_back(',');
  csv_unsigned(out, t.completion_tokens);
  out.push_back(',');
  csv_unsigned(out, t.cache_hits);
  out.push_back(',');
  out.append(money(t.cost_micros));
  out.push_back(',');
  out.append(money(t.charged_micros));
  out.push_back(',');
  out.append(money(t.saved_micros));
}

void add_sat(uint64_t& a, uint64_t b) {
  if (__builtin_add_overflow(a, b, &a)) a = std::numeric_limits<uint64_t>::max();
}

void add_sat(int64_t& a, int64_t b) {
  if (__builtin_add_overflow(a, b, &a))
    a = b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

}  // namespace

std::string_view outcome_name(outcome o) {
  auto i = static_cast<size_t>(o);
  return i < kOutcomeNames.size() ? kOutcomeNames[i] : std::string_view{"unknown"};
}

bool parse_outcome(std::string_view name, outcome& out) {
  for (size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == name) {
      out = static_cast<outcome>(i);
      return true;
    }
  }
  return false;
}

int64_t day_of(int64_t unix_ms) {
  return floor_div<int64_t>(unix_ms, kMsPerDay);
}

std::string day_name(int64_t day) {
  const civil c = civil_of(day);
  std::string out;
  out.reserve(12);
  if (c.year < 0) out.push_back('-');
  append_padded(out, c.year < 0 ? 0 - static_cast<uint64_t>(c.year) : c.year, 4);
  out.push_back('-');
  append_padded(out, c.month, 2);
  out.push_back('-');
  append_padded(out, c.day, 2);
  return out;
}

bool parse_day(std::string_view text, int64_t& day) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  const auto number = [&](size_t from, size_t len, unsigned& v) {
    v = 0;
    for (size_t i = from; i < from + len; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return true;
  };
  unsigned y = 0, m = 0, d = 0;
  if (!number(0, 4, y) || !number(5, 2, m) || !number(8, 2, d)) return false;
  if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return false;
  day = days_of(y, m, d);
  return true;
}

std::string encode(const usage_record& r) {
  std::string out;
  out.reserve(64 + r.request_id.size() + r.tenant.size() + r.project.size() + r.key.size() +
              r.model.size() + r.provider.size() + r.endpoint.size() + r.cost_currency.size() +
              r.charged_currency.size());
  out.push_back(static_cast<char>(kRecordVersion));
  put_string(out, r.request_id);
  put_fixed<int64_t>(out, r.ts_ms);
  put_string(out, r.tenant);
  put_string(out, r.project);
  put_string(out, r.key);
  put_string(out, r.model);
  put_string(out, r.provider);
  put_string(out, r.endpoint);
  put_fixed<int32_t>(out, r.status);
  out.push_back(static_cast<char>(r.result));
  put_fixed<uint32_t>(out, r.prompt_tokens);
  put_fixed<uint32_t>(out, r.cached_tokens);
  put_fixed<uint32_t>(out, r.completion_tokens);
  out.push_back(r.estimated ? 1 : 0);
  put_fixed<int64_t>(out, r.cost_micros);
  put_string(out, r.cost_currency);
  put_fixed<int64_t>(out, r.charged_micros);
  put_string(out, r.charged_currency);
  put_fixed<int64_t>(out, r.saved_micros);
  put_string(out, r.client_request_id);
  return out;
}

bool decode(std::string_view bytes, usage_record& out) {
  reader in(bytes);
  usage_record r;
  uint8_t version = 0, result = 0, estimated = 0;
  int32_t status = 0;
  bool ok = in.u8(version) && (version == 1 || version == kRecordVersion) && in.str(r.request_id) &&
            in.fixed(r.ts_ms) && in.str(r.tenant) && in.str(r.project) && in.str(r.key) &&
            in.str(r.model) && in.str(r.provider) && in.str(r.endpoint) && in.fixed(status) &&
            in.u8(result) && result < kOutcomeNames.size() && in.fixed(r.prompt_tokens) &&
            in.fixed(r.cached_tokens) && in.fixed(r.completion_tokens) && in.u8(estimated) &&
            estimated <= 1 && in.fixed(r.cost_micros) && in.str(r.cost_currency) &&
            in.fixed(r.charged_micros) && in.str(r.charged_currency) && in.fixed(r.saved_micros) &&
            (version == 1 || in.str(r.client_request_id)) && in.done();
  if (!ok) return false;
  r.status = status;
  r.result = static_cast<outcome>(result);
  r.estimated = estimated != 0;
  out = std::move(r);
  return true;
}

std::string to_json(const usage_record& r) {
  rapidjson::StringBuffer buf;
  json_writer w(buf);
  w.StartObject();
  json_field(w, "object", "usage_record");
  json_field(w, "request_id", r.request_id);
  w.Key("ts_ms");
  w.Int64(r.ts_ms);
  json_field(w, "day", day_name(day_of(r.ts_ms)));
  json_field(w, "tenant", r.tenant);
  json_field(w, "project", r.project);
  json_field(w, "key", r.key);
  json_field(w, "model", r.model);
  json_field(w, "provider", r.provider);
  json_field(w, "endpoint", r.endpoint);
  w.Key("status");
  w.Int(r.status);
  json_field(w, "outcome", outcome_name(r.result));
  w.Key("prompt_tokens");
  w.Uint(r.prompt_tokens);
  w.Key("cached_tokens");
  w.Uint(r.cached_tokens);
  w.Key("completion_tokens");
  w.Uint(r.completion_tokens);
  w.Key("estimated");
  w.Bool(r.estimated);
  json_field(w, "cost", money(r.cost_micros));
  json_field(w, "cost_currency", r.cost_currency);
  json_field(w, "charged", money(r.charged_micros));
  json_field(w, "charged_currency", r.charged_currency);
  json_field(w, "saved", money(r.saved_micros));
  json_field(w, "client_request_id", r.client_request_id);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string csv_header() {
  return "request_id,ts_ms,day,tenant,project,key,model,provider,endpoint,status,outcome,"
         "prompt_tokens,cached_tokens,completion_tokens,estimated,cost,cost_currency,charged,"
         "charged_currency,saved,client_request_id\r\n";
}

std::string to_csv_line(const usage_record& r) {
  std::string out;
  csv_field(out, r.request_id);
  out.push_back(',');
  csv_number(out, r.ts_ms);
  out.push_back(',');
  out.append(day_name(day_of(r.ts_ms)));
  for (const std::string* s : {&r.tenant, &r.project, &r.key, &r.model, &r.provider, &r.endpoint}) {
    out.push_back(',');
    csv_field(out, *s);
  }
  out.push_back(',');
  csv_number(out, r.status);
  out.push_back(',');
  out.append(outcome_name(r.result));
  out.push_back(',');
  csv_unsigned(out, r.prompt_tokens);
  out.push_back(',');
  csv_unsigned(out, r.cached_tokens);
  out.push_back(',');
  csv_unsigned(out, r.completion_tokens);
  out.append(r.estimated ? ",true," : ",false,");
  out.append(money(r.cost_micros));
  out.push_back(',');
  csv_field(out, r.cost_currency);
  out.push_back(',');
  out.append(money(r.charged_micros));
  out.push_back(',');
  csv_field(out, r.charged_currency);
  out.push_back(',');
  out.append(money(r.saved_micros));
  out.push_back(',');
  csv_field(out, r.client_request_id);
  out.append("\r\n");
  return out;
}

bool parse_dimension(std::string_view name, dimension& out) {
  for (size_t i = 0; i < kDimensionNames.size(); ++i) {
    if (kDimensionNames[i] == name) {
      out = static_cast<dimension>(i);
      return true;
    }
  }
  return false;
}

std::string_view dimension_name(dimension d) {
  auto i = static_cast<size_t>(d);
  return i < kDimensionNames.size() ? kDimensionNames[i] : std::string_view{"unknown"};
}

void usage_totals::add(const usage_record& r) {
  add_sat(requests, 1);
  add_sat(prompt_tokens, r.prompt_tokens);
  add_sat(cached_tokens, r.cached_tokens);
  add_sat(completion_tokens, r.completion_tokens);
  if (r.result == outcome::cache_hit || r.result == outcome::dedup) add_sat(cache_hits, 1);
  add_sat(cost_micros, r.cost_micros);
  add_sat(charged_micros, r.charged_micros);
  add_sat(saved_micros, r.saved_micros);
}

void usage_totals::add(const usage_totals& t) {
  add_sat(requests, t.requests);
  add_sat(prompt_tokens, t.prompt_tokens);
  add_sat(cached_tokens, t.cached_tokens);
  add_sat(completion_tokens, t.completion_tokens);
  add_sat(cache_hits, t.cache_hits);
  add_sat(cost_micros, t.cost_micros);
  add_sat(charged_micros, t.charged_micros);
  add_sat(saved_micros, t.saved_micros);
}

std::string to_json(const usage_report& r) {
  rapidjson::StringBuffer buf;
  json_writer w(buf);
  w.StartObject();
  json_field(w, "object", "usage_report");
  json_field(w, "from", day_name(r.query.from_day));
  json_field(w, "to", day_name(r.query.to_day));
  w.Key("group_by");
  w.StartArray();
  for (dimension d : r.query.group_by) json_string(w, dimension_name(d));
  w.EndArray();
  w.Key("rows");
  w.StartArray();
  for (const usage_row& row : r.rows) {
    w.StartObject();
    w.Key("group");
    w.StartObject();
    for (size_t i = 0; i < r.query.group_by.size(); ++i) {
      json_field(w, dimension_name(r.query.group_by[i]),
                 i < row.group.size() ? std::string_view{row.group[i]} : std::string_view{});
    }
    w.EndObject();
    json_totals_fields(w, row.totals);
    w.EndObject();
  }
  w.EndArray();
  w.Key("totals");
  w.StartObject();
  json_totals_fields(w, r.totals);
  w.EndObject();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::string to_csv(const usage_report& r) {
  std::string out;
  for (dimension d : r.query.group_by) {
    out.append(dimension_name(d));
    out.push_back(',');
  }
  out.append(
      "requests,prompt_tokens,cached_tokens,completion_tokens,cache_hits,cost,charged,saved\r\n");
  for (const usage_row& row : r.rows) {
    for (size_t i = 0; i < r.query.group_by.size(); ++i) {
      if (i < row.group.size()) csv_field(out, row.group[i]);
      out.push_back(',');
    }
    csv_totals(out, row.totals);
    out.append("\r\n");
  }
  return out;
}

}  // namespace tc::billing
