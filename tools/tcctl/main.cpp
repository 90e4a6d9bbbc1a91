// tcctl: the TokensChain admin CLI, a client of a node's admin HTTP API (docs/api.md, "Admin
// port").
//   tcctl [--admin URL] [--token T] [--json] [--timeout-ms N] GROUP COMMAND [ARGS]
//   groups: tenants, projects, keys, tokens, prices, models, usage, cache, audit
//   (`tcctl GROUP --help`)
// People get aligned tables and "field: value" lines; --json prints the server's answer as is.
// Exit codes: 0 done; 1 the server answered an error (or something unreadable); 2 usage error or
// the admin port could not be reached. One blocking libcurl call per command.
// The pure helpers (durations, limits, tables, numbers, URLs) come first, then HTTP, then the
// commands, then the command line.
#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <CLI/CLI.hpp>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_server = 1;  ///< the server answered an error or something unreadable
constexpr int exit_usage = 2;   ///< bad command line, or the admin port was not reachable

// ------------------------------------------------------------------------------------------
// Durations

/// Seconds in a duration such as 90s, 15m, 24h, 30d, 2w or 1h30m (a bare number is seconds);
/// nullopt when malformed or longer than 100 years.
std::optional<int64_t> parse_duration(std::string_view text) {
  constexpr int64_t max_s = int64_t{100} * 365 * 86400;
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == start || i - start > 12) return std::nullopt;
    int64_t n = 0;
    std::from_chars(text.data() + start, text.data() + i, n);
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = 86400;
          break;
        case 'w':
          unit = 7 * 86400;
          break;
        default:
          return std::nullopt;
      }
      ++i;
    } else if (start != 0) {
      return std::nullopt;  // "1h30": a trailing bare number after a unit is ambiguous
    }
    total += n * unit;  // n < 1e12 and unit <= 604800: no overflow before the check below
    if (total > max_s) return std::nullopt;
  }
  return total;
}

// ------------------------------------------------------------------------------------------
// Limits (the nested "limits" object) and per-model limits

/// The limit fields given on a command line; only the set ones are sent.
struct limit_set {
  std::optional<uint64_t> rpm, rpd, tpm, max_concurrent, burst_pct;
  std::optional<double> daily_budget, monthly_budget;
  std::optional<std::string> budget_mode;

  bool empty() const {
    return !rpm && !rpd && !tpm && !max_concurrent && !burst_pct && !daily_budget &&
           !monthly_budget && !budget_mode;
  }
};

/// The limit field names as the API spells them, in the order of docs/api.md.
constexpr std::array<std::string_view, 8> limit_names = {
    "rpm",        "rpd", "tpm", "max_concurrent", "burst_pct", "daily_budget", "monthly_budget",
    "budget_mode"};

/// A whole non-negative decimal integer, no sign, no spaces.
bool parse_uint(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

/// A finite non-negative decimal amount ("12", "0.5", "1e3").
bool parse_amount(std::string_view s, double& out) {
  if (s.empty() || s.size() > 40 || s[0] == '-' || s[0] == '+') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && std::isfinite(out) && out >= 0;
}

/// Sets one limit from its API name (dashes may stand for underscores) and its text; false with
/// `err` set when the name is unknown, the value malformed, or the field was already set.
bool set_limit(limit_set& l, std::string_view name, std::string_view value, std::string& err) {
  std::string key(name);
  std::replace(key.begin(), key.end(), '-', '_');
  auto fail = [&](std::string why) {
    err = std::move(why);
    return false;
  };
  auto set_uint = [&](std::optional<uint64_t>& field) {
    uint64_t v = 0;
    if (field) return fail(key + " given twice");
    if (!parse_uint(value, v)) return fail(key + " wants a whole number >= 0");
    field = v;
    return true;
  };
  auto set_amount = [&](std::optional<double>& field) {
    double v = 0;
    if (field) return fail(key + " given twice");
    if (!parse_amount(value, v)) return fail(key + " wants an amount >= 0");
    field = v;
    return true;
  };
  if (key == "rpm") return set_uint(l.rpm);
  if (key == "rpd") return set_uint(l.rpd);
  if (key == "tpm") return set_uint(l.tpm);
  if (key == "max_concurrent") return set_uint(l.max_concurrent);
  if (key == "burst_pct") return set_uint(l.burst_pct);
  if (key == "daily_budget") return set_amount(l.daily_budget);
  if (key == "monthly_budget") return set_amount(l.monthly_budget);
  if (key == "budget_mode") {
    if (l.budget_mode) return fail("budget_mode given twice");
    if (value != "hard" && value != "soft") return fail("budget_mode is hard or soft");
    l.budget_mode = std::string(value);
    return true;
  }
  return fail("unknown limit '" + key + "' (rpm, rpd, tpm, max_concurrent, burst_pct, " +
              "daily_budget, monthly_budget, budget_mode)");
}

/// One --model-limit: a model glob and its limits.
struct model_limit {
  std::string pattern;
  limit_set limits;
};

/// Parses 'PATTERN:key=value,key=value'. Splits at the last ':' because model names may hold
/// one (llama3:8b); nullopt with `err` set when malformed.
std::optional<model_limit> parse_model_limit(std::string_view spec, std::string& err) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size()) {
    err = "expected MODEL_GLOB:key=value[,key=value...], e.g. 'gpt-4*:rpm=10,tpm=1000'";
    return std::nullopt;
  }
  model_limit out;
  out.pattern = std::string(spec.substr(0, colon));
  std::string_view rest = spec.substr(colon + 1);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      err = "'" + std::string(item) + "' is not key=value";
      return std::nullopt;
    }
    if (!set_limit(out.limits, item.substr(0, eq), item.substr(eq + 1), err)) return std::nullopt;
    if (comma != std::string_view::npos && rest.empty()) {
      err = "trailing ','";
      return std::nullopt;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// Numbers, money, times, text

/// Shortest text that reads back as `v` ("2", "0.5", "1e+21").
std::string format_double(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

/// A money amount with 6 decimals, as the usage report writes its strings.
std::string format_money(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6f", v);
  return buf;
}

/// A unix time as "2026-11-22T00:00:00Z" (UTC).
std::string format_time(int64_t unix_s) {
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_s);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// Unix milliseconds as "2026-12-04T10:00:00.123Z" (UTC).
std::string format_time_ms(int64_t unix_ms) {
  const int64_t s = unix_ms >= 0 ? unix_ms / 1000 : -((999 - unix_ms) / 1000);
  const std::string whole = format_time(s);
  if (whole.empty() || whole.back() != 'Z') return std::to_string(unix_ms);
  char frac[8];
  std::snprintf(frac, sizeof(frac), ".%03d", static_cast<int>(unix_ms - s * 1000));
  return whole.substr(0, whole.size() - 1) + frac + "Z";
}

/// True for a well-formed "YYYY-MM-DD" (the server checks the calendar).
bool is_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

/// True for what may be an audit time bound: a day, unix milliseconds, or a day followed by 'T'
/// (an RFC 3339 time; the server checks the rest).
bool is_time_bound(std::string_view s) {
  if (is_day(s)) return true;
  if (s.size() > 10 && is_day(s.substr(0, 10))) return s[10] == 'T' || s[10] == 't';
  if (s.empty() || s.size() > 15) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

/// The text with control characters (C0, DEL, C1) replaced by '?', so that nothing the server
/// sends can move the cursor or recolour the terminal.
std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += '?';
    } else if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      out += '?';
      ++i;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// Terminal columns the UTF-8 text takes: East Asian wide characters count 2, combining marks 0,
/// a byte that is not valid UTF-8 counts 1.
size_t display_width(std::string_view s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp = c;
    size_t len = 1;
    if (c >= 0xf0 && c < 0xf8) {
      len = 4, cp = c & 0x07;
    } else if (c >= 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if (c >= 0xc0) {
      len = 2, cp = c & 0x1f;
    }
    bool valid = i + len <= s.size();
    for (size_t k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!valid || (c >= 0x80 && c < 0xc0)) {
      ++width, ++i;
      continue;
    }
    i += len;
    if ((cp >= 0x300 && cp <= 0x36f) || cp == 0x200b) continue;
    const bool wide = (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                      (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                      (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                      (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1faff) ||
                      (cp >= 0x20000 && cp <= 0x3fffd);
    width += wide ? 2 : 1;
  }
  return width;
}

/// The text in upper case (ASCII only), for column titles.
std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// ------------------------------------------------------------------------------------------
// Tables

enum class align { left, right };

struct column {
  std::string title;
  align side = align::left;
};

/// Columns padded to their widest cell, two spaces apart, no trailing blanks; cells are
/// sanitized. A row shorter than the header gets empty cells.
std::string render_table(const std::vector<column>& cols,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size() + 1);
  std::vector<std::string> head;
  for (const auto& c : cols) head.push_back(sanitize(c.title));
  cells.push_back(std::move(head));
  for (const auto& r : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < cols.size(); ++i) line.push_back(i < r.size() ? sanitize(r[i]) : "");
    cells.push_back(std::move(line));
  }
  std::vector<size_t> widths(cols.size(), 0);
  for (const auto& line : cells)
    for (size_t i = 0; i < cols.size(); ++i)
      widths[i] = std::max(widths[i], display_width(line[i]));
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t i = 0; i < cols.size(); ++i) {
      const size_t pad = widths[i] - display_width(line[i]);
      if (i > 0) text += "  ";
      if (cols[i].side == align::right) text.append(pad, ' ');
      text += line[i];
      if (cols[i].side == align::left) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text;
    out += '\n';
  }
  return out;
}

// ------------------------------------------------------------------------------------------
// URLs

/// Percent-encodes everything but RFC 3986 unreserved characters (curl_easy_escape; the handle
/// argument is unused since curl 7.82).
std::string escape_component(std::string_view s) {
  char* e = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  if (e == nullptr) return std::string();
  std::string out(e);
  curl_free(e);
  return out;
}

/// One encoded path segment; "." and ".." are encoded too so nothing resolves them away.
std::string url_segment(std::string_view s) {
  if (s == "." || s == "..") {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) out += "%2E";
    return out;
  }
  return escape_component(s);
}

/// "/a/b/c" from the segments, each encoded.
std::string build_path(std::initializer_list<std::string_view> segments) {
  std::string out;
  for (std::string_view s : segments) {
    out += '/';
    out += url_segment(s);
  }
  return out;
}

/// The path with "?k=v&..." for the pairs whose value is not empty, values encoded.
std::string append_query(std::string path,
                         std::initializer_list<std::pair<std::string_view, std::string_view>> q) {
  char sep = '?';
  for (const auto& [k, v] : q) {
    if (v.empty()) continue;
    path += sep;
    path += escape_component(k);
    path += '=';
    path += escape_component(v);
    sep = '&';
  }
  return path;
}

/// The admin base URL without trailing slashes.
std::string normalize_base(std::string_view url) {
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  return std::string(url);
}

// ------------------------------------------------------------------------------------------
// JSON: writing request bodies, reading answers

using json_writer =
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                      rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;

/// Builds one JSON object; refuses text that is not valid UTF-8.
class body_builder {
 public:
  body_builder() : w_(buf_) { w_.StartObject(); }

  /// Adds "key": "value".
  body_builder& str(std::string_view key, std::string_view v) {
    field(key);
    ok_ = w_.String(v.data(), static_cast<rapidjson::SizeType>(v.size())) && ok_;
    return *this;
  }
  /// Adds "key": <integer>.
  body_builder& i64(std::string_view key, int64_t v) {
    field(key);
    w_.Int64(v);
    return *this;
  }
  /// Adds "key": <number>.
  body_builder& num(std::string_view key, double v) {
    field(key);
    w_.Double(v);
    return *this;
  }
  /// Adds "key": true|false.
  body_builder& boolean(std::string_view key, bool v) {
    field(key);
    w_.Bool(v);
    return *this;
  }
  /// Adds "key": ["a","b"].
  body_builder& strings(std::string_view key, const std::vector<std::string>& v) {
    field(key);
    w_.StartArray();
    for (const auto& s : v)
      ok_ = w_.String(s.data(), static_cast<rapidjson::SizeType>(s.size())) && ok_;
    w_.EndArray();
    return *this;
  }
  /// Adds "key": {the set limits}.
  body_builder& limits(std::string_view key, const limit_set& l) {
    field(key);
    write_limits(l);
    return *this;
  }
  /// Adds "key": {"glob": {limits}, ...}.
  body_builder& model_limits(std::string_view key, const std::vector<model_limit>& v) {
    field(key);
    w_.StartObject();
    for (const auto& m : v) {
      this->key(m.pattern);
      write_limits(m.limits);
    }
    w_.EndObject();
    return *this;
  }
  /// Adds "key": {"name": <integer>, ...}.
  body_builder& counts(std::string_view key,
                       const std::vector<std::pair<std::string, int64_t>>& v) {
    field(key);
    w_.StartObject();
    for (const auto& [name, n] : v) {
      this->key(name);
      w_.Int64(n);
    }
    w_.EndObject();
    return *this;
  }
  /// How many top-level fields were added.
  size_t fields() const { return fields_; }
  /// The finished object, or nullopt when some text was not valid UTF-8.
  std::optional<std::string> finish() {
    w_.EndObject();
    if (!ok_) return std::nullopt;
    return std::string(buf_.GetString(), buf_.GetSize());
  }

 private:
  void field(std::string_view k) {
    ++fields_;
    key(k);
  }
  void key(std::string_view k) {
    ok_ = w_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size())) && ok_;
  }
  void write_limits(const limit_set& l) {
    w_.StartObject();
    const std::optional<uint64_t>* ints[] = {&l.rpm, &l.rpd, &l.tpm, &l.max_concurrent,
                                             &l.burst_pct};
    for (size_t i = 0; i < 5; ++i) {
      if (!*ints[i]) continue;
      key(limit_names[i]);
      w_.Uint64(**ints[i]);
    }
    if (l.daily_budget) {
      key("daily_budget");
      w_.Double(*l.daily_budget);
    }
    if (l.monthly_budget) {
      key("monthly_budget");
      w_.Double(*l.monthly_budget);
    }
    if (l.budget_mode) {
      key("budget_mode");
      w_.String(l.budget_mode->c_str());
    }
    w_.EndObject();
  }

  rapidjson::StringBuffer buf_;
  json_writer w_;
  bool ok_ = true;
  size_t fields_ = 0;
};

using jvalue = rapidjson::Value;

/// The member at a dotted path ("limits.rpm") of an object, or nullptr.
const jvalue* get(const jvalue& root, std::string_view path) {
  const jvalue* cur = &root;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    const std::string_view name = path.substr(0, dot);
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
    if (!cur->IsObject()) return nullptr;
    auto it = cur->FindMember(
        jvalue(rapidjson::StringRef(name.data(), static_cast<rapidjson::SizeType>(name.size()))));
    if (it == cur->MemberEnd()) return nullptr;
    cur = &it->value;
  }
  return cur;
}

/// A JSON value as text for people: strings raw, numbers shortest, arrays of scalars joined
/// with ',', objects as {...}; nullptr as "".
std::string scalar_text(const jvalue* v) {
  if (v == nullptr) return "";
  if (v->IsString()) return std::string(v->GetString(), v->GetStringLength());
  if (v->IsBool()) return v->GetBool() ? "true" : "false";
  if (v->IsNull()) return "null";
  if (v->IsUint64()) return std::to_string(v->GetUint64());
  if (v->IsInt64()) return std::to_string(v->GetInt64());
  if (v->IsNumber()) return format_double(v->GetDouble());
  if (v->IsArray()) {
    std::string out;
    for (const auto& e : v->GetArray()) {
      if (!out.empty()) out += ',';
      out += scalar_text(&e);
    }
    return v->Empty() ? "[]" : out;
  }
  return v->MemberCount() == 0 ? "{}" : "{...}";
}

/// A JSON number as an integer, or nullopt.
std::optional<int64_t> as_int(const jvalue* v) {
  if (v == nullptr || !v->IsNumber()) return std::nullopt;
  if (v->IsInt64()) return v->GetInt64();
  if (v->IsUint64()) return INT64_MAX;
  return static_cast<int64_t>(v->GetDouble());
}

/// True for the names of unix-time fields (created_at, grace_until, ...).
bool is_time_field(std::string_view name) {
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  return ends("_at") || ends("_until");
}

/// Appends "path: value" pairs for every scalar under `v`, nested objects flattened with '.'.
void flatten(const jvalue& v, const std::string& path, std::string_view name,
             std::vector<std::pair<std::string, std::string>>& out) {
  if (v.IsObject() && v.MemberCount() > 0) {
    for (const auto& m : v.GetObject()) {
      const std::string_view child(m.name.GetString(), m.name.GetStringLength());
      flatten(m.value, path.empty() ? std::string(child) : path + "." + std::string(child), child,
              out);
    }
    return;
  }
  bool objects = v.IsArray() && !v.Empty();
  if (objects)
    for (const auto& e : v.GetArray()) objects = objects && (e.IsObject() || e.IsArray());
  if (objects) {
    size_t i = 0;
    for (const auto& e : v.GetArray()) flatten(e, path + "." + std::to_string(i++), name, out);
    return;
  }
  std::string text = scalar_text(&v);
  const auto t = as_int(&v);
  if (is_time_field(name) && t && *t > 0 && v.IsInt64()) text += " (" + format_time(*t) + ")";
  out.emplace_back(path, std::move(text));
}

/// "field: value" lines for an answer object, leaving out "object" and "secret".
std::string field_lines(const jvalue& doc) {
  std::vector<std::pair<std::string, std::string>> fields;
  if (doc.IsObject()) {
    for (const auto& m : doc.GetObject()) {
      const std::string name(m.name.GetString(), m.name.GetStringLength());
      if (name == "object" || name == "secret") continue;
      flatten(m.value, name, name, fields);
    }
  } else {
    flatten(doc, "value", "value", fields);
  }
  std::string out;
  for (const auto& [k, v] : fields) out += sanitize(k) + ": " + sanitize(v) + "\n";
  return out;
}

// ------------------------------------------------------------------------------------------
// HTTP

/// What one admin call came back with.
struct http_answer {
  bool reached = false;  ///< false: no HTTP answer (connect error, timeout, ...)
  std::string error;     ///< curl's explanation when !reached
  long status = 0;
  std::string body;
};

/// One blocking call per request against the admin base URL.
class admin_client {
 public:
  admin_client(std::string base, std::string token, long timeout_ms)
      : base_(normalize_base(base)), token_(std::move(token)), timeout_ms_(timeout_ms) {}

  /// The base URL, as error messages name it.
  const std::string& base() const { return base_; }

  /// Performs METHOD base+path with an optional JSON body; never throws.
  http_answer call(const char* method, const std::string& path, const std::string* body) const {
    http_answer a;
    CURL* h = curl_easy_init();
    if (h == nullptr) {
      a.error = "curl_easy_init failed";
      return a;
    }
    const std::string url = base_ + path;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    headers =
        curl_slist_append(headers, "Accept: application/json, application/x-ndjson, text/csv");
    headers = curl_slist_append(headers, "Expect:");
    if (body != nullptr) headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!token_.empty())
      headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body != nullptr) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms_);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "tcctl/1");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &admin_client::on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a.body);
    const CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
      a.reached = true;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    } else {
      a.error = errbuf[0] != 0 ? errbuf : curl_easy_strerror(rc);
      if (rc == CURLE_WRITE_ERROR) a.error = "answer larger than 64 MiB";
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return a;
  }

 private:
  static size_t on_data(char* data, size_t size, size_t n, void* user) {
    auto* out = static_cast<std::string*>(user);
    if (out->size() + size * n > (size_t{64} << 20)) return 0;  // bounded: abort the transfer
    out->append(data, size * n);
    return size * n;
  }

  std::string base_;
  std::string token_;
  long timeout_ms_;
};

// ------------------------------------------------------------------------------------------
// Output and the shared request path

/// Writes text to stdout as is.
void out(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

/// Says what was wrong with the command line; returns the usage exit code.
int usage_fail(const std::string& msg) {
  std::fprintf(stderr, "tcctl: %s\n", sanitize(msg).c_str());
  return exit_usage;
}

/// Prints "tcctl: <status> <type>: <message> (param: X)" from an error answer.
void print_http_error(const http_answer& a) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(a.body.data(), a.body.size());
  const jvalue* err = doc.HasParseError() ? nullptr : get(doc, "error");
  if (err != nullptr && err->IsObject()) {
    const jvalue* type = get(*err, "type");
    const jvalue* message = get(*err, "message");
    const jvalue* param = get(*err, "param");
    std::string line = "tcctl: " + std::to_string(a.status) + " " +
                       (type && type->IsString() ? scalar_text(type) : "error") + ": " +
                       (message && message->IsString() ? scalar_text(message) : "(no message)");
    if (param != nullptr && param->IsString() && param->GetStringLength() > 0)
      line += " (param: " + scalar_text(param) + ")";
    std::fprintf(stderr, "%s\n", sanitize(line).c_str());
    return;
  }
  std::string text = a.body.substr(0, 300);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::fprintf(stderr, "tcctl: %ld http_error: %s\n", a.status,
               text.empty() ? "(empty answer)" : sanitize(text).c_str());
}

using show_fn = std::function<int(const rapidjson::Document&)>;

/// One command's run: the admin client and whether answers are printed raw.
struct session {
  admin_client client;
  bool raw = false;  ///< --json: print the answer as the server sent it

  /// Calls the API; prints an error answer and returns 1, prints an unreachable node and
  /// returns 2, prints the raw answer under --json (or when `raw_body`), else parses it and
  /// hands it to `show`.
  int request(const char* method, const std::string& path, const std::string* body,
              const show_fn& show, bool raw_body = false) const {
    http_answer a;
    if (const std::optional<int> failed = fetch(method, path, body, a)) return *failed;
    if (raw || raw_body) {
      out(a.body);
      if (!a.body.empty() && a.body.back() != '\n') out("\n");
      return exit_ok;
    }
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(a.body.data(), a.body.size());
    if (doc.HasParseError()) {
      std::fprintf(stderr, "tcctl: %ld answer is not JSON (%s at byte %zu)\n", a.status,
                   rapidjson::GetParseError_En(doc.GetParseError()), doc.GetErrorOffset());
      return exit_server;
    }
    return show(doc);
  }

  /// Calls the API; prints an error answer (returns 1) or an unreachable node (returns 2), else
  /// returns nullopt with the 2xx answer in `a`, printed nowhere.
  std::optional<int> fetch(const char* method, const std::string& path, const std::string* body,
                           http_answer& a) const {
    a = client.call(method, path, body);
    if (!a.reached) {
      std::fprintf(stderr, "tcctl: cannot reach %s: %s\n", sanitize(client.base()).c_str(),
                   sanitize(a.error).c_str());
      return exit_usage;
    }
    if (a.status < 200 || a.status > 299) {
      print_http_error(a);
      return exit_server;
    }
    return std::nullopt;
  }
};

/// Prints an answer's fields, and its secret prominently when it has one.
int show_fields(const rapidjson::Document& doc) {
  out(field_lines(doc));
  const jvalue* secret = get(doc, "secret");
  if (secret != nullptr && secret->IsString()) {
    const std::string rule(72, '=');
    out("\n" + rule + "\n");
    out("secret: " + sanitize(scalar_text(secret)) + "\n");
    out("This secret is shown only once and cannot be retrieved again: store it now.\n");
    out(rule + "\n");
  }
  return exit_ok;
}

/// Prints "deleted <object> <id>" for a deletion stub, else the answer's fields.
int show_deleted(const rapidjson::Document& doc) {
  const jvalue* deleted = get(doc, "deleted");
  if (deleted != nullptr && deleted->IsBool() && deleted->GetBool()) {
    out(sanitize("deleted " + scalar_text(get(doc, "object")) + " " + scalar_text(get(doc, "id"))) +
        "\n");
    return exit_ok;
  }
  return show_fields(doc);
}

/// The items of a list answer: {"data": [...]} or a bare array.
const jvalue* list_items(const jvalue& doc) {
  if (doc.IsArray()) return &doc;
  for (const char* name : {"data", "records", "rows"}) {
    const jvalue* v = get(doc, name);
    if (v != nullptr && v->IsArray()) return v;
  }
  return nullptr;
}

/// How a list column shows its value.
enum class cell { text, count, limit, amount, time, expiry, flag, revoked };

struct list_column {
  const char* title;
  const char* path;
  cell kind;
};

/// The text of one table cell.
std::string cell_text(const jvalue& item, const list_column& c) {
  const jvalue* v = get(item, c.path);
  switch (c.kind) {
    case cell::text:
    case cell::count:
    case cell::amount:
      return scalar_text(v);
    case cell::limit:
      return v != nullptr && v->IsNumber() && v->GetDouble() == 0 ? "-" : scalar_text(v);
    case cell::time:
    case cell::expiry: {
      const auto t = as_int(v);
      if (!t) return scalar_text(v);
      if (*t == 0) return c.kind == cell::expiry ? "never" : "-";
      return format_time(*t);
    }
    case cell::flag:
      if (v != nullptr && v->IsBool()) return v->GetBool() ? "yes" : "no";
      return scalar_text(v);
    case cell::revoked: {
      const auto t = as_int(v);
      return t && *t != 0 ? "revoked" : "active";
    }
  }
  return "";
}

/// Prints a list answer as a table with the given columns.
int show_list(const rapidjson::Document& doc, std::initializer_list<list_column> spec) {
  const jvalue* items = list_items(doc);
  if (items == nullptr) {
    std::fprintf(stderr, "tcctl: answer is not a list\n");
    return exit_server;
  }
  std::vector<column> cols;
  for (const auto& c : spec) {
    const bool right = c.kind == cell::count || c.kind == cell::limit || c.kind == cell::amount;
    cols.push_back({c.title, right ? align::right : align::left});
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : items->GetArray()) {
    std::vector<std::string> row;
    for (const auto& c : spec) row.push_back(cell_text(item, c));
    rows.push_back(std::move(row));
  }
  out(render_table(cols, rows));
  return exit_ok;
}

/// A money cell: the server's decimal string as is, a number with 6 decimals.
std::string money_text(const jvalue* v) {
  if (v != nullptr && v->IsNumber()) return format_money(v->GetDouble());
  return scalar_text(v);
}

/// The usage report as a table: the group columns, the counters, then a TOTAL line.
int show_usage_report(const rapidjson::Document& doc) {
  std::vector<std::string> groups;
  if (const jvalue* g = get(doc, "group_by"); g != nullptr && g->IsArray())
    for (const auto& e : g->GetArray()) groups.push_back(scalar_text(&e));
  const jvalue* rows_v = get(doc, "rows");
  if (rows_v == nullptr || !rows_v->IsArray()) {
    std::fprintf(stderr, "tcctl: answer is not a usage report\n");
    return exit_server;
  }
  static constexpr std::array<std::pair<const char*, const char*>, 8> counters = {{
      {"REQUESTS", "requests"},
      {"PROMPT", "prompt_tokens"},
      {"COMPLETION", "completion_tokens"},
      {"CACHED", "cached_tokens"},
      {"HITS", "cache_hits"},
      {"COST", "cost"},
      {"CHARGED", "charged"},
      {"SAVED", "saved"},
  }};
  const bool label_column = groups.empty();  // no grouping: only the TOTAL line
  std::vector<column> cols;
  if (label_column) cols.push_back({"", align::left});
  for (const auto& g : groups) cols.push_back({upper(g), align::left});
  for (const auto& [title, field] : counters) cols.push_back({title, align::right});
  auto counter_cells = [&](const jvalue& obj, std::vector<std::string>& row) {
    for (size_t i = 0; i < counters.size(); ++i) {
      const jvalue* v = get(obj, counters[i].second);
      row.push_back(i >= 5 ? money_text(v) : scalar_text(v));
    }
  };
  std::vector<std::vector<std::string>> rows;
  if (!label_column) {
    for (const auto& r : rows_v->GetArray()) {
      std::vector<std::string> row;
      const jvalue* group = get(r, "group");
      for (const auto& g : groups) row.push_back(group ? scalar_text(get(*group, g)) : "");
      counter_cells(r, row);
      rows.push_back(std::move(row));
    }
  }
  if (const jvalue* totals = get(doc, "totals"); totals != nullptr && totals->IsObject()) {
    std::vector<std::string> row{"TOTAL"};
    for (size_t i = 1; i < groups.size(); ++i) row.emplace_back();
    counter_cells(*totals, row);
    rows.push_back(std::move(row));
  }
  out(sanitize("usage " + scalar_text(get(doc, "from")) + " .. " + scalar_text(get(doc, "to")) +
               " (UTC days)") +
      "\n");
  out(render_table(cols, rows));
  return exit_ok;
}

/// Usage records as a table whose columns are the records' own fields, in first-seen order.
int show_records(const rapidjson::Document& doc) {
  const jvalue* items = list_items(doc);
  if (items == nullptr) {
    std::fprintf(stderr, "tcctl: answer is not a list of records\n");
    return exit_server;
  }
  std::vector<std::string> names;
  std::vector<bool> numeric;
  std::vector<std::vector<std::pair<std::string, std::string>>> flat;
  for (const auto& item : items->GetArray()) {
    std::vector<std::pair<std::string, std::string>> fields;
    if (item.IsObject()) {
      for (const auto& m : item.GetObject()) {
        const std::string name(m.name.GetString(), m.name.GetStringLength());
        if (name == "object") continue;
        const size_t before = fields.size();
        flatten(m.value, name, "", fields);  // no time annotation inside a table cell
        const bool is_num = m.value.IsNumber();
        for (size_t i = before; i < fields.size(); ++i) {
          auto it = std::find(names.begin(), names.end(), fields[i].first);
          if (it == names.end()) {
            names.push_back(fields[i].first);
            numeric.push_back(is_num);
          } else if (!is_num) {
            numeric[static_cast<size_t>(it - names.begin())] = false;
          }
        }
      }
    }
    flat.push_back(std::move(fields));
  }
  std::vector<column> cols;
  for (size_t i = 0; i < names.size(); ++i)
    cols.push_back({upper(names[i]), numeric[i] ? align::right : align::left});
  std::vector<std::vector<std::string>> rows;
  for (const auto& fields : flat) {
    std::vector<std::string> row(names.size());
    for (const auto& [k, v] : fields) {
      auto it = std::find(names.begin(), names.end(), k);
      row[static_cast<size_t>(it - names.begin())] = v;
    }
    rows.push_back(std::move(row));
  }
  if (!names.empty()) out(render_table(cols, rows));
  return exit_ok;
}

// ------------------------------------------------------------------------------------------
// Command-line values

/// The limit flags of one subcommand.
struct limit_flags {
  std::array<std::string, 8> values;
  std::array<CLI::Option*, 8> options{};

  /// The limits given (all were validated while parsing).
  limit_set collect() const {
    limit_set l;
    std::string err;
    for (size_t i = 0; i < values.size(); ++i)
      if (options[i] != nullptr && options[i]->count() > 0)
        set_limit(l, limit_names[i], values[i], err);
    return l;
  }
};

/// A CLI11 check that runs `fn(text)` and reports its error string.
CLI::Validator check_with(std::string name, std::function<std::string(const std::string&)> fn) {
  return CLI::Validator([fn](std::string& v) { return fn(v); }, "", std::move(name));
}

/// Adds --rpm ... --budget-mode to `cmd`, each checked while parsing.
void add_limit_flags(CLI::App* cmd, limit_flags& f) {
  static constexpr std::array<const char*, 8> help = {
      "requests per minute (0 = no limit)",
      "requests per day",
      "tokens per minute",
      "requests in flight at once",
      "burst allowance above rpm/tpm, percent",
      "budget per UTC day, in the tenant's currency",
      "budget per calendar month",
      "hard (reject when spent) or soft (alert only)"};
  for (size_t i = 0; i < limit_names.size(); ++i) {
    std::string flag = "--" + std::string(limit_names[i]);
    std::replace(flag.begin(), flag.end(), '_', '-');
    const std::string_view name = limit_names[i];
    f.options[i] = cmd->add_option(flag, f.values[i], help[i])
                       ->type_name(i == 7 ? "hard|soft" : (i >= 5 ? "AMOUNT" : "N"))
                       ->group("Limits")
                       ->check(check_with("LIMIT", [name](const std::string& v) {
                         limit_set scratch;
                         std::string err;
                         return set_limit(scratch, name, v, err) ? std::string() : err;
                       }));
  }
}

/// Checks that a positional id is not empty.
const CLI::Validator non_empty = check_with("NONEMPTY", [](const std::string& v) {
  return v.empty() ? std::string("must not be empty") : std::string();
});

/// Checks a duration (parse_duration).
const CLI::Validator duration_check = check_with("DURATION", [](const std::string& v) {
  return parse_duration(v) ? std::string()
                           : "'" + v + "' is not a duration (e.g. 30d, 24h, 15m, 90s, 1h30m)";
});

/// Checks a YYYY-MM-DD day.
const CLI::Validator day_check = check_with("DAY", [](const std::string& v) {
  return is_day(v) ? std::string() : "'" + v + "' is not a day YYYY-MM-DD";
});

/// Checks a whole number >= 0 written in decimal (parse_uint).
const CLI::Validator count_check = check_with("N", [](const std::string& v) {
  uint64_t n = 0;
  return parse_uint(v, n) ? std::string() : "'" + v + "' is not a whole number >= 0";
});

/// Checks an audit time bound (is_time_bound).
const CLI::Validator time_check = check_with("TIME", [](const std::string& v) {
  return is_time_bound(v) ? std::string()
                          : "'" + v +
                                "' is not a day YYYY-MM-DD, an RFC 3339 time "
                                "(2026-12-04T10:00:00Z) or unix milliseconds";
});

/// Checks one --model-limit spec.
const CLI::Validator model_limit_check = check_with("MODEL_LIMIT", [](const std::string& v) {
  std::string err;
  return parse_model_limit(v, err) ? std::string() : err;
});

/// True when the option was given on the command line.
bool given(const CLI::Option* o) {
  return o != nullptr && o->count() > 0;
}

/// Values of one tenant command; the `*_o` options tell which flags were given.
struct tenant_args {
  std::string id, name, currency, cache_scope, filing_id, disabled;
  double price_factor = 1;
  int64_t priority = 0;
  std::vector<std::string> model_limits;
  bool clear_model_limits = false;
  CLI::Option *name_o = nullptr, *currency_o = nullptr, *price_factor_o = nullptr,
              *priority_o = nullptr, *cache_scope_o = nullptr, *filing_id_o = nullptr,
              *disabled_o = nullptr, *model_limits_o = nullptr, *clear_o = nullptr;
  limit_flags limits;
};

/// Values of one project command.
struct project_args {
  std::string tenant, id, name;
  CLI::Option* name_o = nullptr;
  limit_flags limits;
};

/// Values of one key command.
struct key_args {
  std::string id, tenant, project, environment, name, expires_in, grace;
  int64_t expires_at = 0, priority = 0;
  std::vector<std::string> models, endpoints;
  CLI::Option *project_o = nullptr, *environment_o = nullptr, *name_o = nullptr,
              *expires_at_o = nullptr, *expires_in_o = nullptr, *priority_o = nullptr,
              *models_o = nullptr, *endpoints_o = nullptr, *grace_o = nullptr;
  limit_flags limits;
};

/// Values of the admin-token commands.
struct token_args {
  std::string id, name, role;
};

/// Values of the price commands.
struct price_args {
  std::string provider, model, currency;
  double input = 0, cached_input = 0, output = 0;
  CLI::Option *input_o = nullptr, *cached_o = nullptr, *output_o = nullptr, *currency_o = nullptr;
};

/// Values of `usage` or `usage records`.
struct usage_args {
  std::string from, to, tenant, project, key, format;
  std::vector<std::string> group_by;
  uint64_t limit = 0;
  CLI::Option *format_o = nullptr, *limit_o = nullptr;
};

/// Values of the audit commands.
struct audit_args {
  std::string from, to, tenant, out_path, request_id;
  uint64_t limit = 0;
  CLI::Option* limit_o = nullptr;
};

/// Values of `cache invalidate`.
struct cache_args {
  std::string tenant, model, ns;
  bool all = false;
};

// ------------------------------------------------------------------------------------------
// Commands

/// Sends a body, or says which argument was not valid UTF-8.
int send(const session& s, const char* method, const std::string& path, body_builder& b,
         const show_fn& show) {
  const auto body = b.finish();
  if (!body) return usage_fail("an argument is not valid UTF-8");
  return s.request(method, path, &*body, show);
}

/// Adds the tenant fields given on the command line; false (after printing why) on a bad value.
bool tenant_body(const tenant_args& a, body_builder& b) {
  if (given(a.name_o)) b.str("name", a.name);
  if (given(a.currency_o)) b.str("currency", a.currency);
  if (given(a.price_factor_o)) b.num("price_factor", a.price_factor);
  if (given(a.cache_scope_o)) b.str("cache_scope", a.cache_scope);
  if (given(a.filing_id_o)) b.str("filing_id", a.filing_id);
  if (given(a.priority_o)) b.i64("priority", a.priority);
  if (const limit_set l = a.limits.collect(); !l.empty()) b.limits("limits", l);
  std::vector<model_limit> mls;
  for (const auto& spec : a.model_limits) {
    std::string err;
    auto ml = parse_model_limit(spec, err);
    if (!ml) {
      usage_fail("--model-limit: " + err);
      return false;
    }
    for (const auto& prev : mls) {
      if (prev.pattern == ml->pattern) {
        usage_fail("--model-limit: '" + ml->pattern + "' given twice");
        return false;
      }
    }
    mls.push_back(std::move(*ml));
  }
  if (!mls.empty() || a.clear_model_limits) b.model_limits("model_limits", mls);
  if (given(a.disabled_o)) b.boolean("disabled", a.disabled == "true");
  return true;
}

int tenants_create(const session& s, const tenant_args& a) {
  body_builder b;
  b.str("id", a.id);
  if (!tenant_body(a, b)) return exit_usage;
  return send(s, "POST", "/v1/tenants", b, show_fields);
}

int tenants_update(const session& s, const tenant_args& a) {
  body_builder b;
  if (!tenant_body(a, b)) return exit_usage;
  if (b.fields() == 0) return usage_fail("tenants update: nothing to change (see --help)");
  return send(s, "PATCH", build_path({"v1", "tenants", a.id}), b, show_fields);
}

void project_body(const project_args& a, body_builder& b) {
  if (given(a.name_o)) b.str("name", a.name);
  if (const limit_set l = a.limits.collect(); !l.empty()) b.limits("limits", l);
}

int projects_create(const session& s, const project_args& a) {
  body_builder b;
  b.str("id", a.id);
  project_body(a, b);
  return send(s, "POST", build_path({"v1", "tenants", a.tenant, "projects"}), b, show_fields);
}

int projects_update(const session& s, const project_args& a) {
  body_builder b;
  project_body(a, b);
  if (b.fields() == 0) return usage_fail("projects update: nothing to change (see --help)");
  return send(s, "PATCH", build_path({"v1", "tenants", a.tenant, "projects", a.id}), b,
              show_fields);
}

/// The writable key fields given on the command line.
void key_body(const key_args& a, body_builder& b) {
  if (given(a.environment_o)) b.str("environment", a.environment);
  if (given(a.name_o)) b.str("name", a.name);
  if (given(a.expires_at_o)) b.i64("expires_at", a.expires_at);
  if (given(a.expires_in_o)) {
    b.i64("expires_at", static_cast<int64_t>(std::time(nullptr)) + *parse_duration(a.expires_in));
  }
  if (given(a.models_o)) b.strings("allowed_models", a.models);
  if (given(a.endpoints_o)) b.strings("allowed_endpoints", a.endpoints);
  if (given(a.priority_o)) b.i64("priority", a.priority);
  if (const limit_set l = a.limits.collect(); !l.empty()) b.limits("limits", l);
}

int keys_create(const session& s, const key_args& a) {
  body_builder b;
  b.str("tenant", a.tenant);
  if (given(a.project_o)) b.str("project", a.project);
  key_body(a, b);
  return send(s, "POST", "/v1/keys", b, show_fields);
}

int keys_update(const session& s, const key_args& a) {
  body_builder b;
  key_body(a, b);
  if (b.fields() == 0) return usage_fail("keys update: nothing to change (see --help)");
  return send(s, "PATCH", build_path({"v1", "keys", a.id}), b, show_fields);
}

int keys_rotate(const session& s, const key_args& a) {
  body_builder b;
  if (given(a.grace_o)) b.i64("grace_s", *parse_duration(a.grace));
  return send(s, "POST", build_path({"v1", "keys", a.id, "rotate"}), b, show_fields);
}

int prices_set(const session& s, const price_args& a) {
  body_builder b;
  if (given(a.input_o)) b.num("input_per_m", a.input);
  if (given(a.cached_o)) b.num("cached_input_per_m", a.cached_input);
  if (given(a.output_o)) b.num("output_per_m", a.output);
  if (given(a.currency_o)) b.str("currency", a.currency);
  if (b.fields() == 0)
    return usage_fail("prices set: give --input, --cached-input, --output or --currency");
  return send(s, "PUT", build_path({"v1", "prices", a.provider, a.model}), b, show_fields);
}

/// The output format of a usage command: --format if given, else json under --json, else table.
std::string usage_format(const session& s, const usage_args& a) {
  if (given(a.format_o)) return a.format;
  return s.raw ? "json" : "table";
}

/// The strings joined with `sep`.
std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

int usage_report(const session& s, const usage_args& a) {
  const std::string format = usage_format(s, a);
  const std::string group_by = join(a.group_by, ',');
  const std::string path = append_query("/v1/usage", {{"from", a.from},
                                                      {"to", a.to},
                                                      {"tenant", a.tenant},
                                                      {"project", a.project},
                                                      {"key", a.key},
                                                      {"group_by", group_by},
                                                      {"format", format == "csv" ? "csv" : ""}});
  return s.request("GET", path, nullptr, show_usage_report, format != "table");
}

int usage_records(const session& s, const usage_args& a) {
  const std::string format = usage_format(s, a);
  const std::string limit = given(a.limit_o) ? std::to_string(a.limit) : "";
  const std::string path =
      append_query("/v1/usage/records", {{"from", a.from},
                                         {"to", a.to},
                                         {"tenant", a.tenant},
                                         {"limit", limit},
                                         {"format", format == "csv" ? "csv" : ""}});
  return s.request("GET", path, nullptr, show_records, format != "table");
}

int cache_invalidate(const session& s, const cache_args& a) {
  if (a.tenant.empty() && a.model.empty() && a.ns.empty() && !a.all)
    return usage_fail(
        "cache invalidate: give --tenant, --model or --namespace, or --all to empty "
        "the whole cache");
  body_builder b;
  if (!a.tenant.empty()) b.str("tenant", a.tenant);
  if (!a.model.empty()) b.str("model", a.model);
  if (!a.ns.empty()) b.str("namespace", a.ns);
  return send(s, "POST", "/v1/cache/invalidate", b, show_fields);
}

/// `tcctl audit verify`: one summary line (or the JSON under --json); exit 1 when the chain is
/// broken or could not be walked.
int audit_verify(const session& s) {
  http_answer a;
  if (const std::optional<int> failed = s.fetch("GET", "/v1/audit/verify", nullptr, a))
    return *failed;
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseIterativeFlag>(a.body.data(), a.body.size());
  const jvalue* ok = doc.HasParseError() ? nullptr : get(doc, "ok");
  if (ok == nullptr || !ok->IsBool()) {
    std::fprintf(stderr, "tcctl: %ld answer is not a verify result\n", a.status);
    return exit_server;
  }
  if (s.raw) {
    out(a.body);
    if (!a.body.empty() && a.body.back() != '\n') out("\n");
    return ok->GetBool() ? exit_ok : exit_server;
  }
  const std::string checked = scalar_text(get(doc, "checked"));
  const std::string broken_seq = scalar_text(get(doc, "first_broken_seq"));
  const std::string reason = scalar_text(get(doc, "reason"));
  std::string line;
  if (ok->GetBool()) {
    line = "chain ok: " + checked + (checked == "1" ? " record" : " records");
    if (checked != "0")
      line +=
          ", seq " + scalar_text(get(doc, "first_seq")) + ".." + scalar_text(get(doc, "last_seq"));
  } else if (broken_seq == "0") {  // the store could not be read: no record is named
    line = "chain could not be verified: " + reason;
  } else {
    line = "chain BROKEN at seq " + broken_seq + ": " + reason;
  }
  out(sanitize(line) + "\n");
  if (const jvalue* note = get(doc, "start_error"); note != nullptr && note->IsString())
    std::fprintf(stderr, "tcctl: note: %s\n", sanitize(scalar_text(note)).c_str());
  return ok->GetBool() ? exit_ok : exit_server;
}

/// The number of lines in a JSON lines text.
size_t line_count(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) +
         (!text.empty() && text.back() != '\n' ? 1 : 0);
}

/// `tcctl audit export`: the JSON lines as sent, to stdout or to --out (written only once the
/// node has answered; a file that cannot be written is exit 2).
int audit_export(const session& s, const audit_args& v) {
  const std::string limit = given(v.limit_o) ? std::to_string(v.limit) : "";
  const std::string path = append_query(
      "/v1/audit/export", {{"from", v.from}, {"to", v.to}, {"tenant", v.tenant}, {"limit", limit}});
  http_answer a;
  if (const std::optional<int> failed = s.fetch("GET", path, nullptr, a)) return *failed;
  if (v.out_path.empty()) {
    out(a.body);
    return exit_ok;
  }
  std::FILE* f = std::fopen(v.out_path.c_str(), "wb");
  if (f == nullptr) return usage_fail("cannot write " + v.out_path + ": " + std::strerror(errno));
  const bool written = std::fwrite(a.body.data(), 1, a.body.size(), f) == a.body.size();
  if (std::fclose(f) != 0 || !written)
    return usage_fail("cannot write " + v.out_path + ": " + std::strerror(errno));
  if (!s.raw)
    out(sanitize("wrote " + std::to_string(line_count(a.body)) + " records to " + v.out_path) +
        "\n");
  return exit_ok;
}

/// `tcctl audit search`: each record as "field: value" lines, a blank line between records
/// (the JSON lines as sent under --json).
int audit_search(const session& s, const audit_args& v) {
  const std::string limit = given(v.limit_o) ? std::to_string(v.limit) : "";
  const std::string path = append_query(
      "/v1/audit/search", {{"request_id", v.request_id}, {"tenant", v.tenant}, {"limit", limit}});
  http_answer a;
  if (const std::optional<int> failed = s.fetch("GET", path, nullptr, a)) return *failed;
  if (s.raw) {
    out(a.body);
    return exit_ok;
  }
  std::string text;
  size_t n = 0;
  for (size_t start = 0; start < a.body.size();) {
    size_t end = a.body.find('\n', start);
    if (end == std::string::npos) end = a.body.size();
    const std::string_view line(a.body.data() + start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(line.data(), line.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      std::fprintf(stderr, "tcctl: %ld answer line %zu is not a JSON object\n", a.status, n + 1);
      return exit_server;
    }
    if (n++ > 0) text += "\n";
    std::string fields = field_lines(doc);
    const size_t ts = fields.find("\nts_ms: ");  // the record's time in UTC right after it
    if (const auto ms = as_int(get(doc, "ts_ms")); ms && ts != std::string::npos)
      fields.insert(fields.find('\n', ts + 1) + 1, "time: " + format_time_ms(*ms) + "\n");
    text += fields;
  }
  out(n == 0 ? std::string("no audit records\n") : text);
  return exit_ok;
}

/// An empty JSON object, the body of POSTs that carry no fields.
const std::string empty_body = "{}";

// ------------------------------------------------------------------------------------------
// The command line

/// The global options.
struct globals {
  std::string admin, token;
  bool json = false;
  long timeout_ms = 10000;
};

/// The environment variable, or `fallback` when unset or empty.
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != 0 ? v : fallback;
}

using action_fn = std::function<int(const session&)>;

/// Makes `cmd` a leaf whose run is `fn` once parsing succeeds.
void on_run(CLI::App* cmd, action_fn& slot, action_fn fn) {
  cmd->callback([&slot, fn = std::move(fn)] { slot = fn; });
}

/// What the command line fills in; lives in main so the run callbacks can read it.
struct tenant_cli {
  std::string id;
  tenant_args create, update;
};

struct project_cli {
  project_args ids, create, update;
};

struct key_cli {
  key_args ids, create, update;
};

struct usage_cli {
  usage_args report, listing;
  CLI::App* usage = nullptr;
  CLI::App* records = nullptr;
};

/// Adds `tcctl tenants ...`.
void add_tenants(CLI::App& app, action_fn& action, tenant_cli& v) {
  auto* tenants = app.add_subcommand("tenants", "tenants: list, show, create, update, delete");
  tenants->require_subcommand(1);
  auto* t_list = tenants->add_subcommand("list", "list tenants");
  on_run(t_list, action, [](const session& s) {
    return s.request("GET", "/v1/tenants", nullptr, [](const rapidjson::Document& d) {
      return show_list(d, {{"ID", "id", cell::text},
                           {"NAME", "name", cell::text},
                           {"CURRENCY", "currency", cell::text},
                           {"PRIORITY", "priority", cell::count},
                           {"RPM", "limits.rpm", cell::limit},
                           {"TPM", "limits.tpm", cell::limit},
                           {"DAILY_BUDGET", "limits.daily_budget", cell::limit},
                           {"DISABLED", "disabled", cell::flag}});
    });
  });
  auto* t_show = tenants->add_subcommand("show", "show one tenant");
  t_show->add_option("id", v.id, "tenant id")->required()->check(non_empty);
  on_run(t_show, action, [&](const session& s) {
    return s.request("GET", build_path({"v1", "tenants", v.id}), nullptr, show_fields);
  });
  auto add_tenant_flags = [](CLI::App* cmd, tenant_args& a, bool update) {
    cmd->add_option("id", a.id, "tenant id")->required()->check(non_empty);
    a.name_o = cmd->add_option("--name", a.name, "display name");
    a.currency_o = cmd->add_option("--currency", a.currency, "billing currency (CNY, USD)");
    a.price_factor_o = cmd->add_option("--price-factor", a.price_factor,
                                       "multiplier on list prices for what is charged")
                           ->check(CLI::NonNegativeNumber);
    a.priority_o = cmd->add_option("--priority", a.priority, "scheduling priority");
    a.cache_scope_o =
        cmd->add_option("--cache-scope", a.cache_scope, "cache sharing scope (empty: tenant)");
    a.filing_id_o = cmd->add_option("--filing-id", a.filing_id,
                                    "the tenant's own algorithm-filing ID, stamped on its answers "
                                    "instead of the model's (empty: the model's)");
    a.disabled_o = cmd->add_option("--disabled", a.disabled, "refuse the tenant's requests")
                       ->check(CLI::IsMember({"true", "false"}))
                       ->type_name("true|false");
    add_limit_flags(cmd, a.limits);
    a.model_limits_o = cmd->add_option("--model-limit", a.model_limits,
                                       "per-model limits, repeatable: 'GLOB:key=value,...' e.g. "
                                       "'gpt-4*:rpm=10,tpm=1000'")
                           ->check(model_limit_check)
                           ->group("Limits")
                           ->type_name("SPEC");
    if (update)
      a.clear_o = cmd->add_flag("--clear-model-limits", a.clear_model_limits,
                                "send an empty model_limits (with no --model-limit)")
                      ->group("Limits")
                      ->excludes(a.model_limits_o);
  };
  auto* t_create = tenants->add_subcommand("create", "create a tenant");
  add_tenant_flags(t_create, v.create, false);
  on_run(t_create, action, [&](const session& s) { return tenants_create(s, v.create); });
  auto* t_update = tenants->add_subcommand("update", "change a tenant's fields (only those given)");
  add_tenant_flags(t_update, v.update, true);
  on_run(t_update, action, [&](const session& s) { return tenants_update(s, v.update); });
  auto* t_delete = tenants->add_subcommand("delete",
                                           "delete a tenant (refused while it has "
                                           "projects or keys)");
  t_delete->add_option("id", v.id, "tenant id")->required()->check(non_empty);
  on_run(t_delete, action, [&](const session& s) {
    return s.request("DELETE", build_path({"v1", "tenants", v.id}), nullptr, show_deleted);
  });
}

/// Adds `tcctl projects ...`.
void add_projects(CLI::App& app, action_fn& action, project_cli& v) {
  auto* projects = app.add_subcommand("projects", "projects: list, show, create, update, delete");
  projects->require_subcommand(1);
  auto* p_list = projects->add_subcommand("list", "list a tenant's projects");
  p_list->add_option("tenant", v.ids.tenant, "tenant id")->required()->check(non_empty);
  on_run(p_list, action, [&](const session& s) {
    return s.request("GET", build_path({"v1", "tenants", v.ids.tenant, "projects"}), nullptr,
                     [](const rapidjson::Document& d) {
                       return show_list(d, {{"ID", "id", cell::text},
                                            {"TENANT", "tenant", cell::text},
                                            {"NAME", "name", cell::text},
                                            {"RPM", "limits.rpm", cell::limit},
                                            {"TPM", "limits.tpm", cell::limit},
                                            {"DAILY_BUDGET", "limits.daily_budget", cell::limit},
                                            {"CREATED", "created_at", cell::time}});
                     });
  });
  auto add_project_ids = [](CLI::App* cmd, project_args& a) {
    cmd->add_option("tenant", a.tenant, "tenant id")->required()->check(non_empty);
    cmd->add_option("id", a.id, "project id")->required()->check(non_empty);
  };
  auto* p_show = projects->add_subcommand("show", "show one project");
  add_project_ids(p_show, v.ids);
  on_run(p_show, action, [&](const session& s) {
    return s.request("GET", build_path({"v1", "tenants", v.ids.tenant, "projects", v.ids.id}),
                     nullptr, show_fields);
  });
  auto* p_create = projects->add_subcommand("create", "create a project in a tenant");
  add_project_ids(p_create, v.create);
  v.create.name_o = p_create->add_option("--name", v.create.name, "display name");
  add_limit_flags(p_create, v.create.limits);
  on_run(p_create, action, [&](const session& s) { return projects_create(s, v.create); });
  auto* p_update = projects->add_subcommand("update", "change a project's fields");
  add_project_ids(p_update, v.update);
  v.update.name_o = p_update->add_option("--name", v.update.name, "display name");
  add_limit_flags(p_update, v.update.limits);
  on_run(p_update, action, [&](const session& s) { return projects_update(s, v.update); });
  auto* p_delete =
      projects->add_subcommand("delete", "delete a project (refused while it has keys)");
  add_project_ids(p_delete, v.ids);
  on_run(p_delete, action, [&](const session& s) {
    return s.request("DELETE", build_path({"v1", "tenants", v.ids.tenant, "projects", v.ids.id}),
                     nullptr, show_deleted);
  });
}

/// Adds `tcctl keys ...`.
void add_keys(CLI::App& app, action_fn& action, key_cli& v) {
  auto* keys = app.add_subcommand("keys", "API keys: list, show, create, update, revoke, rotate");
  keys->require_subcommand(1);
  auto* k_list = keys->add_subcommand("list", "list keys (never their secrets)");
  k_list->add_option("--tenant", v.ids.tenant, "only this tenant's keys");
  k_list->add_option("--project", v.ids.project, "only this project's keys");
  on_run(k_list, action, [&](const session& s) {
    const std::string path =
        append_query("/v1/keys", {{"tenant", v.ids.tenant}, {"project", v.ids.project}});
    return s.request("GET", path, nullptr, [](const rapidjson::Document& d) {
      return show_list(d, {{"ID", "id", cell::text},
                           {"TENANT", "tenant", cell::text},
                           {"PROJECT", "project", cell::text},
                           {"ENV", "environment", cell::text},
                           {"NAME", "name", cell::text},
                           {"PREFIX", "prefix", cell::text},
                           {"STATUS", "status", cell::text},
                           {"PRIORITY", "priority", cell::count},
                           {"EXPIRES", "expires_at", cell::expiry}});
    });
  });
  auto* k_show = keys->add_subcommand("show", "show one key");
  k_show->add_option("id", v.ids.id, "key id")->required()->check(non_empty);
  on_run(k_show, action, [&](const session& s) {
    return s.request("GET", build_path({"v1", "keys", v.ids.id}), nullptr, show_fields);
  });
  auto add_key_flags = [](CLI::App* cmd, key_args& a) {
    a.environment_o = cmd->add_option("--environment", a.environment, "e.g. prod, staging");
    a.name_o = cmd->add_option("--name", a.name, "display name");
    a.expires_at_o =
        cmd->add_option("--expires-at", a.expires_at, "expiry, unix seconds (0: never)")
            ->check(CLI::NonNegativeNumber)
            ->type_name("UNIX");
    a.expires_in_o = cmd->add_option("--expires-in", a.expires_in, "expiry from now, e.g. 30d")
                         ->check(duration_check)
                         ->excludes(a.expires_at_o)
                         ->type_name("DURATION");
    a.models_o = cmd->add_option("--models", a.models, "allowed model globs, comma-separated")
                     ->delimiter(',')
                     ->type_name("GLOB,...");
    a.endpoints_o =
        cmd->add_option(
               "--endpoints", a.endpoints,
               "allowed endpoints, comma-separated (chat, completions, embeddings, models)")
            ->delimiter(',')
            ->type_name("NAME,...");
    a.priority_o = cmd->add_option("--priority", a.priority, "scheduling priority");
    add_limit_flags(cmd, a.limits);
  };
  auto* k_create = keys->add_subcommand("create", "create a key; prints its secret once");
  k_create->add_option("--tenant", v.create.tenant, "owning tenant")->required()->check(non_empty);
  v.create.project_o = k_create->add_option("--project", v.create.project, "owning project");
  add_key_flags(k_create, v.create);
  on_run(k_create, action, [&](const session& s) { return keys_create(s, v.create); });
  auto* k_update = keys->add_subcommand("update", "change a key's fields");
  k_update->add_option("id", v.update.id, "key id")->required()->check(non_empty);
  add_key_flags(k_update, v.update);
  on_run(k_update, action, [&](const session& s) { return keys_update(s, v.update); });
  auto* k_revoke = keys->add_subcommand("revoke", "revoke a key at once");
  k_revoke->add_option("id", v.ids.id, "key id")->required()->check(non_empty);
  on_run(k_revoke, action, [&](const session& s) {
    return s.request("POST", build_path({"v1", "keys", v.ids.id, "revoke"}), &empty_body,
                     show_fields);
  });
  auto* k_rotate = keys->add_subcommand("rotate",
                                        "replace a key; the old one works until the "
                                        "grace period ends");
  k_rotate->add_option("id", v.ids.id, "key id")->required()->check(non_empty);
  v.ids.grace_o =
      k_rotate->add_option("--grace", v.ids.grace, "old key's grace (server default 24h)")
          ->check(duration_check)
          ->type_name("DURATION");
  on_run(k_rotate, action, [&](const session& s) { return keys_rotate(s, v.ids); });
}

/// Adds `tcctl tokens ...`.
void add_tokens(CLI::App& app, action_fn& action, token_args& v) {
  auto* tokens = app.add_subcommand("tokens", "admin tokens: list, create, revoke");
  tokens->require_subcommand(1);
  auto* tok_list = tokens->add_subcommand("list", "list admin tokens");
  on_run(tok_list, action, [](const session& s) {
    return s.request("GET", "/v1/admin-tokens", nullptr, [](const rapidjson::Document& d) {
      return show_list(d, {{"ID", "id", cell::text},
                           {"NAME", "name", cell::text},
                           {"ROLE", "role", cell::text},
                           {"PREFIX", "prefix", cell::text},
                           {"CREATED", "created_at", cell::time},
                           {"STATUS", "revoked_at", cell::revoked}});
    });
  });
  auto* tok_create = tokens->add_subcommand("create", "create an admin token; prints it once");
  tok_create->add_option("--name", v.name, "what the token is for")->required()->check(non_empty);
  tok_create->add_option("--role", v.role, "viewer, operator or owner")
      ->required()
      ->check(CLI::IsMember({"viewer", "operator", "owner"}));
  on_run(tok_create, action, [&](const session& s) {
    body_builder b;
    b.str("name", v.name).str("role", v.role);
    return send(s, "POST", "/v1/admin-tokens", b, show_fields);
  });
  auto* tok_revoke = tokens->add_subcommand("revoke", "revoke an admin token");
  tok_revoke->add_option("id", v.id, "admin token id")->required()->check(non_empty);
  on_run(tok_revoke, action, [&](const session& s) {
    return s.request("DELETE", build_path({"v1", "admin-tokens", v.id}), nullptr, show_deleted);
  });
}

/// Values of `models`.
struct models_args {
  std::string group;
  std::vector<std::string> weights;  ///< "model=weight"
};

/// Model groups as a table: one line per member, with the weight in force and the configured one.
int show_groups(const rapidjson::Document& doc) {
  std::vector<const jvalue*> groups;
  if (const jvalue* items = list_items(doc)) {
    for (const auto& g : items->GetArray()) groups.push_back(&g);
  } else if (doc.IsObject()) {
    groups.push_back(&doc);
  }
  std::vector<std::vector<std::string>> rows;
  for (const jvalue* g : groups) {
    const jvalue* models = get(*g, "models");
    if (models == nullptr || !models->IsArray()) continue;
    const std::string stable = scalar_text(get(*g, "stable"));
    const std::string stored = scalar_text(get(*g, "stored")) == "true" ? "stored" : "config";
    for (const auto& m : models->GetArray()) {
      const std::string model = scalar_text(get(m, "model"));
      rows.push_back({sanitize(scalar_text(get(*g, "id"))), sanitize(model),
                      scalar_text(get(m, "weight")), scalar_text(get(m, "configured_weight")),
                      model == stable ? "stable" : "", stored});
    }
  }
  out(render_table({{"GROUP", align::left},
                    {"MODEL", align::left},
                    {"WEIGHT", align::right},
                    {"CONFIGURED", align::right},
                    {"ROLE", align::left},
                    {"WEIGHTS", align::left}},
                   rows));
  return exit_ok;
}

/// Adds `tcctl models ...`: the groups' canary / A/B weights.
void add_models(CLI::App& app, action_fn& action, models_args& v) {
  auto* models = app.add_subcommand(
      "models", "model groups (canary and A/B splits): list, weights, rollback, reset");
  models->require_subcommand(1);
  auto* m_list = models->add_subcommand("list", "each group's models and weights");
  on_run(m_list, action, [](const session& s) {
    return s.request("GET", "/v1/routing/groups", nullptr, show_groups);
  });
  auto* m_weights = models->add_subcommand(
      "weights", "set a group's weights at once (stored; models left out get 0)");
  m_weights->add_option("group", v.group, "group id")->required()->check(non_empty);
  m_weights->add_option("weights", v.weights, "MODEL=WEIGHT ...")->required();
  on_run(m_weights, action, [&](const session& s) {
    std::vector<std::pair<std::string, int64_t>> weights;
    for (const std::string& w : v.weights) {
      const auto eq = w.rfind('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == w.size() ||
          w.find_first_not_of("0123456789", eq + 1) != std::string::npos || w.size() - eq - 1 > 7)
        return usage_fail("models weights: expected MODEL=WEIGHT (a whole number), got '" + w +
                          "'");
      weights.emplace_back(w.substr(0, eq), std::stoll(w.substr(eq + 1)));
    }
    body_builder b;
    b.counts("weights", weights);
    return send(s, "PUT", build_path({"v1", "routing", "groups", v.group}), b, show_groups);
  });
  auto* m_rollback = models->add_subcommand(
      "rollback", "send every request of a group to its stable (first) model, at once");
  m_rollback->add_option("group", v.group, "group id")->required()->check(non_empty);
  on_run(m_rollback, action, [&](const session& s) {
    const std::string empty = "{}";
    return s.request("POST", build_path({"v1", "routing", "groups", v.group, "rollback"}), &empty,
                     show_groups);
  });
  auto* m_reset = models->add_subcommand("reset", "drop stored weights: the configured apply");
  m_reset->add_option("group", v.group, "group id")->required()->check(non_empty);
  on_run(m_reset, action, [&](const session& s) {
    return s.request("DELETE", build_path({"v1", "routing", "groups", v.group}), nullptr,
                     show_groups);
  });
}

/// Adds `tcctl prices ...`.
void add_prices(CLI::App& app, action_fn& action, price_args& v) {
  auto* prices = app.add_subcommand("prices", "price tables: list, set, delete");
  prices->require_subcommand(1);
  auto* pr_list = prices->add_subcommand("list", "list prices (configuration merged with stored)");
  on_run(pr_list, action, [](const session& s) {
    return s.request("GET", "/v1/prices", nullptr, [](const rapidjson::Document& d) {
      return show_list(d, {{"PROVIDER", "provider", cell::text},
                           {"MODEL", "model", cell::text},
                           {"INPUT/1M", "input_per_m", cell::amount},
                           {"CACHED/1M", "cached_input_per_m", cell::amount},
                           {"OUTPUT/1M", "output_per_m", cell::amount},
                           {"CURRENCY", "currency", cell::text}});
    });
  });
  auto add_price_ids = [](CLI::App* cmd, price_args& a) {
    cmd->add_option("provider", a.provider, "provider name")->required()->check(non_empty);
    cmd->add_option("model", a.model, "model name")->required()->check(non_empty);
  };
  auto* pr_set = prices->add_subcommand("set", "store a price (per 1M tokens)");
  add_price_ids(pr_set, v);
  v.input_o =
      pr_set->add_option("--input", v.input, "per 1M input tokens")->check(CLI::NonNegativeNumber);
  v.cached_o = pr_set->add_option("--cached-input", v.cached_input, "per 1M cached input tokens")
                   ->check(CLI::NonNegativeNumber);
  v.output_o = pr_set->add_option("--output", v.output, "per 1M output tokens")
                   ->check(CLI::NonNegativeNumber);
  v.currency_o = pr_set->add_option("--currency", v.currency, "CNY or USD")
                     ->check(CLI::IsMember({"CNY", "USD"}));
  on_run(pr_set, action, [&](const session& s) { return prices_set(s, v); });
  auto* pr_delete = prices->add_subcommand("delete",
                                           "drop a stored price (the configured one "
                                           "applies again)");
  add_price_ids(pr_delete, v);
  on_run(pr_delete, action, [&](const session& s) {
    return s.request("DELETE", build_path({"v1", "prices", v.provider, v.model}), nullptr,
                     show_deleted);
  });
}

/// Adds `tcctl usage ...` (the report) and `tcctl usage records`.
void add_usage(CLI::App& app, action_fn& action, usage_cli& v) {
  auto add_period = [](CLI::App* cmd, usage_args& a) {
    cmd->add_option("--from", a.from, "first UTC day (default today)")
        ->check(day_check)
        ->type_name("YYYY-MM-DD");
    cmd->add_option("--to", a.to, "last UTC day (default today)")
        ->check(day_check)
        ->type_name("YYYY-MM-DD");
    cmd->add_option("--tenant", a.tenant, "only this tenant");
    a.format_o = cmd->add_option("--format", a.format, "table (default), json or csv")
                     ->check(CLI::IsMember({"table", "json", "csv"}));
  };
  v.usage = app.add_subcommand("usage", "usage report (grouped counters and costs)");
  v.usage->require_subcommand(0, 1);
  add_period(v.usage, v.report);
  v.usage->add_option("--project", v.report.project, "only this project");
  v.usage->add_option("--key", v.report.key, "only this key");
  v.usage
      ->add_option("--group-by", v.report.group_by,
                   "comma list of day, tenant, project, key, model, provider")
      ->delimiter(',')
      ->check(CLI::IsMember({"day", "tenant", "project", "key", "model", "provider"}))
      ->type_name("FIELD,...");
  v.records = v.usage->add_subcommand("records", "individual usage records");
  add_period(v.records, v.listing);
  v.listing.limit_o = v.records->add_option("--limit", v.listing.limit, "at most N records")
                          ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  on_run(v.usage, action, [&](const session& s) { return usage_report(s, v.report); });
  on_run(v.records, action, [&](const session& s) { return usage_records(s, v.listing); });
}

/// Adds `tcctl cache ...`.
void add_cache(CLI::App& app, action_fn& action, cache_args& v) {
  auto* cache = app.add_subcommand("cache", "response cache: stats, invalidate");
  cache->require_subcommand(1);
  auto* c_stats = cache->add_subcommand("stats", "the cache's size");
  on_run(c_stats, action,
         [](const session& s) { return s.request("GET", "/v1/cache", nullptr, show_fields); });
  auto* c_inv = cache->add_subcommand("invalidate", "remove entries matching every filter given");
  auto* c_tenant = c_inv->add_option("--tenant", v.tenant, "entries of this tenant");
  auto* c_model = c_inv->add_option("--model", v.model, "entries of this model");
  auto* c_ns = c_inv->add_option("--namespace", v.ns, "entries of this namespace (32 hex)");
  c_inv->add_flag("--all", v.all, "empty the whole cache")
      ->excludes(c_tenant)
      ->excludes(c_model)
      ->excludes(c_ns);
  on_run(c_inv, action, [&](const session& s) { return cache_invalidate(s, v); });
}

/// What the audit commands' command lines fill in.
struct audit_cli {
  audit_args listing, search;
};

/// Adds `tcctl audit ...`.
void add_audit(CLI::App& app, action_fn& action, audit_cli& v) {
  auto* audit = app.add_subcommand("audit", "the audit trail: verify, export, search");
  audit->require_subcommand(1);
  auto* a_verify = audit->add_subcommand(
      "verify",
      "walk this node's hash chain; prints 'chain ok: N records, seq A..B' (exit 0) or "
      "'chain BROKEN at seq S: reason' (exit 1; also under --json)");
  on_run(a_verify, action, [](const session& s) { return audit_verify(s); });
  auto* a_export = audit->add_subcommand(
      "export", "the node's audit records as JSON lines (with or without --json), oldest first");
  a_export
      ->add_option("--from", v.listing.from,
                   "first time: a UTC day YYYY-MM-DD, RFC 3339 (2026-12-04T10:00:00Z) or unix "
                   "ms (default: the beginning)")
      ->check(time_check)
      ->type_name("TIME");
  a_export
      ->add_option("--to", v.listing.to,
                   "end, exclusive; a day YYYY-MM-DD includes that whole day (default: no end)")
      ->check(time_check)
      ->type_name("TIME");
  a_export->add_option("--tenant", v.listing.tenant, "only this tenant's records");
  v.listing.limit_o = a_export->add_option("--limit", v.listing.limit, "at most N records (0: all)")
                          ->check(count_check)
                          ->type_name("N");
  a_export->add_option("--out", v.listing.out_path, "write to FILE instead of stdout")
      ->check(non_empty)
      ->type_name("FILE");
  auto* a_search = audit->add_subcommand(
      "search",
      "the records of one request id (a retried id may have several), each as 'field: value' "
      "lines; --json prints the JSON lines");
  a_search
      ->add_option("--request-id", v.search.request_id,
                   "the x-request-id the gateway answered with")
      ->required()
      ->check(non_empty)
      ->type_name("ID");
  a_search->add_option("--tenant", v.search.tenant, "only this tenant's records");
  v.search.limit_o =
      a_search
          ->add_option("--limit", v.search.limit, "at most N records (server default 100; 0: all)")
          ->check(count_check)
          ->type_name("N");
  on_run(a_export, action, [&](const session& s) { return audit_export(s, v.listing); });
  on_run(a_search, action, [&](const session& s) { return audit_search(s, v.search); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcctl: TokensChain admin CLI (talks to a node's admin port, docs/api.md)", "tcctl"};
  app.fallthrough();  // global options may follow the subcommand
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 done, 1 the server answered an error, 2 usage error or node unreachable.\n"
      "Durations: 90s, 15m, 24h, 30d, 2w, 1h30m. Limits: 0 means no limit.");

  globals g;
  g.admin = env_or("TC_ADMIN_URL", "http://127.0.0.1:9090");
  g.token = env_or("TC_ADMIN_TOKEN", "");
  app.add_option("--admin", g.admin, "admin base URL (env TC_ADMIN_URL)")
      ->capture_default_str()
      ->type_name("URL");
  app.add_option("--token", g.token, "admin token, sent as Bearer (env TC_ADMIN_TOKEN)")
      ->type_name("T");
  app.add_flag("--json", g.json, "print the server's JSON answer as is");
  app.add_option("--timeout-ms", g.timeout_ms, "whole-call timeout")
      ->capture_default_str()
      ->check(CLI::Range(1L, 3600000L));

  action_fn action;
  tenant_cli tc;
  project_cli pc;
  key_cli kc;
  token_args tok;
  price_args pr;
  usage_cli uc;
  cache_args ca;
  audit_cli au;
  add_tenants(app, action, tc);
  add_projects(app, action, pc);
  add_keys(app, action, kc);
  add_tokens(app, action, tok);
  add_prices(app, action, pr);
  models_args mo;
  add_models(app, action, mo);
  add_usage(app, action, uc);
  add_cache(app, action, ca);
  add_audit(app, action, au);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;  // CLI11's own codes are 100+; ours are 2
  }
  // `usage records` also runs the `usage` callback: records wins. Report options only take
  // their own options; one given before `records` (or unknown to it) would be silently lost.
  if (uc.records->parsed()) {
    for (const CLI::Option* o : uc.usage->get_options())
      if (o->count() > 0)
        return usage_fail(
            "usage records takes --from --to --tenant --limit --format, after "
            "'records' (got " +
            o->get_name() + ")");
    action = [&](const session& s) { return usage_records(s, uc.listing); };
  }
  if (!action) return usage_fail("no command (see --help)");
  if (g.token.find_first_of("\r\n") != std::string::npos)
    return usage_fail("--token holds a line break");

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "tcctl: curl_global_init failed\n");
    return exit_server;
  }
  int rc = exit_server;
  try {
    const session s{admin_client(g.admin, g.token, g.timeout_ms), g.json};
    rc = action(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcctl: %s\n", e.what());
  }
  std::fflush(stdout);
  curl_global_cleanup();
  return rc;
}
