// JSON for the account types: apply() for admin API bodies, to_json() for its answers,
// encode()/decode() for the stored rows. Pure; any thread.
//
// Bodies are untrusted: parsed iteratively (deep nesting cannot overflow the stack), UTF-8
// validated, and applied to a copy that replaces the target only when every field passed, so a
// refused body changes nothing. Numbers are parsed at full precision so that what a client sent
// (0.1) is what is stored and shown, and so that rows written with RapidJSON's shortest
// round-tripping double output read back bit for bit.
#include "protocol/accounts/json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <utility>

namespace tc::accounts {

namespace {

using json = rapidjson::Value;
using writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr unsigned body_flags = rapidjson::kParseIterativeFlag |
                                rapidjson::kParseValidateEncodingFlag |
                                rapidjson::kParseFullPrecisionFlag;
constexpr unsigned row_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag;

constexpr std::size_t max_name_chars = 200;  ///< names, model globs (bytes)
constexpr std::size_t max_entries = 64;      ///< allowed_models, allowed_endpoints, model_limits
constexpr uint64_t max_burst_pct = 1000;     ///< beyond 10x in one minute a burst means nothing
/// Money amounts (budgets, prices): far above any real one, and small enough that the quota
/// book's conversion to integer micro-units cannot overflow.
constexpr double max_amount = 1e12;
constexpr double max_price_factor = 100;
constexpr unsigned row_version = 1;

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

std::string path_of(std::string_view prefix, std::string_view key) {
  std::string p;
  p.reserve(prefix.size() + 1 + key.size());
  if (!prefix.empty()) {
    p.append(prefix);
    p += '.';
  }
  p.append(key);
  return p;
}

// -- apply: reading one field ------------------------------------------------------------------

bool fail(field_error& err, std::string message, std::string param) {
  err.message = std::move(message);
  err.param = std::move(param);
  return false;
}

bool type_error(field_error& err, const std::string& param, std::string_view expected) {
  return fail(err, "Invalid type for '" + param + "': expected " + std::string(expected) + ".",
              param);
}

bool value_error(field_error& err, const std::string& param, std::string_view why) {
  return fail(err, "Invalid value for '" + param + "': " + std::string(why) + ".", param);
}

bool unknown_field(field_error& err, const std::string& param) {
  return fail(err, "Unknown field '" + param + "'.", param);
}

bool read_only(field_error& err, const std::string& param) {
  return fail(err, "'" + param + "' is read-only.", param);
}

/// A whole number in [0, max]; integral doubles (1e3, 5.0) count, fractions do not.
bool read_whole(const json& v, const std::string& param, uint64_t max, uint64_t& out,
                field_error& err) {
  if (!v.IsNumber()) return type_error(err, param, "a whole number");
  uint64_t n = 0;
  bool ok = false;
  if (v.IsUint64()) {
    n = v.GetUint64();
    ok = true;
  } else if (v.IsDouble()) {
    const double d = v.GetDouble();
    // 2^64 is exactly representable; every integral double below it converts exactly.
    if (d >= 0 && d < 18446744073709551616.0 && d == std::floor(d)) {
      n = static_cast<uint64_t>(d);
      ok = true;
    }
  }
  if (!ok || n > max) {
    return value_error(err, param, "expected a whole number from 0 to " + std::to_string(max));
  }
  out = n;
  return true;
}

/// A money amount: a finite number in [0, max_amount].
bool read_amount(const json& v, const std::string& param, double& out, field_error& err) {
  if (!v.IsNumber()) return type_error(err, param, "a number");
  const double d = v.GetDouble();
  if (!std::isfinite(d) || d < 0 || d > max_amount) {
    return value_error(err, param, "expected a number from 0 to 1e12");
  }
  out = d;
  return true;
}

bool read_text(const json& v, const std::string& param, std::string& out, field_error& err) {
  if (!v.IsString()) return type_error(err, param, "a string");
  if (v.GetStringLength() > max_name_chars) {
    return value_error(err, param, "longer than 200 characters");
  }
  out.assign(v.GetString(), v.GetStringLength());
  return true;
}

bool read_slug(const json& v, const std::string& param, bool allow_empty, std::string& out,
               field_error& err) {
  if (!v.IsString()) return type_error(err, param, "a string");
  const std::string_view s = str(v);
  if (!(allow_empty && s.empty()) && !valid_slug(s)) {
    return value_error(err, param,
                       allow_empty ? "expected \"\" or 1-64 characters of a-z, 0-9, '_' and '-', "
                                     "starting with a letter or digit"
                                   : "expected 1-64 characters of a-z, 0-9, '_' and '-', "
                                     "starting with a letter or digit");
  }
  out.assign(s);
  return true;
}

/// A string that `valid` accepts; `expected` lists the accepted values for the message.
bool read_choice(const json& v, const std::string& param, bool (*valid)(std::string_view),
                 std::string_view expected, std::string& out, field_error& err) {
  if (!v.IsString()) return type_error(err, param, "a string");
  const std::string_view s = str(v);
  if (!valid(s)) return value_error(err, param, "expected one of " + std::string(expected));
  out.assign(s);
  return true;
}

bool read_priority(const json& v, const std::string& param, uint8_t& out, field_error& err) {
  uint64_t n = 0;
  if (!read_whole(v, param, lowest_priority, n, err)) return false;
  out = static_cast<uint8_t>(n);
  return true;
}

/// A non-empty array of at most max_entries strings, each accepted by `item_ok`.
bool read_list(const json& v, const std::string& param, bool (*item_ok)(std::string_view),
               std::string_view item_what, std::vector<std::string>& out, field_error& err,
               bool may_be_empty = false) {
  if (!v.IsArray()) return type_error(err, param, "an array of strings");
  if (v.Size() > max_entries || (v.Empty() && !may_be_empty)) {
    return value_error(err, param,
                       may_be_empty ? "expected an array of at most 64 items"
                                    : "expected an array of 1 to 64 items");
  }
  std::vector<std::string> items;
  items.reserve(v.Size());
  for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
    const json& e = v[i];
    if (!e.IsString()) return type_error(err, param, "an array of strings");
    if (!item_ok(str(e))) {
      return fail(err,
                  "Invalid value for '" + param + "': item " + std::to_string(i) + " is not " +
                      std::string(item_what) + ".",
                  param);
    }
    items.emplace_back(str(e));
  }
  out = std::move(items);
  return true;
}

/// A provider region or tag as config writes them: 1-64 of [A-Za-z0-9._:-].
bool label_ok(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
  });
}

bool model_glob_ok(std::string_view s) {
  return !s.empty() && s.size() <= max_name_chars;
}

/// Applies a limits object onto `x` (all or nothing); `prefix` is its path in the body.
bool read_limits(const json& v, const std::string& prefix, limits& x, field_error& err) {
  if (!v.IsObject()) return type_error(err, prefix, "an object");
  limits n = x;
  for (const auto& m : v.GetObject()) {
    const std::string_view k = str(m.name);
    const json& f = m.value;
    const std::string param = path_of(prefix, k);
    bool ok;
    if (k == "rpm") {
      ok = read_whole(f, param, std::numeric_limits<uint64_t>::max(), n.rpm, err);
    } else if (k == "rpd") {
      ok = read_whole(f, param, std::numeric_limits<uint64_t>::max(), n.rpd, err);
    } else if (k == "tpm") {
      ok = read_whole(f, param, std::numeric_limits<uint64_t>::max(), n.tpm, err);
    } else if (k == "max_concurrent") {
      ok = read_whole(f, param, std::numeric_limits<uint64_t>::max(), n.max_concurrent, err);
    } else if (k == "burst_pct") {
      uint64_t pct = 0;
      ok = read_whole(f, param, max_burst_pct, pct, err);
      if (ok) n.burst_pct = static_cast<uint32_t>(pct);
    } else if (k == "daily_budget") {
      ok = read_amount(f, param, n.daily_budget, err);
    } else if (k == "monthly_budget") {
      ok = read_amount(f, param, n.monthly_budget, err);
    } else if (k == "budget_mode") {
      if (!f.IsString()) {
        ok = type_error(err, param, "a string");
      } else if (str(f) == "hard" || str(f) == "soft") {
        n.soft_budget = str(f) == "soft";
        ok = true;
      } else {
        ok = value_error(err, param, "expected one of 'hard', 'soft'");
      }
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = n;
  return true;
}

/// Replaces the whole map: a glob left out of the body is removed.
bool read_model_limits(const json& v, const std::string& param, std::map<std::string, limits>& out,
                       field_error& err) {
  if (!v.IsObject()) return type_error(err, param, "an object of model glob -> limits");
  if (v.MemberCount() > max_entries) return value_error(err, param, "more than 64 entries");
  std::map<std::string, limits> map;
  for (const auto& m : v.GetObject()) {
    const std::string_view glob = str(m.name);
    const std::string entry = path_of(param, glob);
    if (!model_glob_ok(glob)) {
      return value_error(err, entry, "a model glob must be 1-200 characters");
    }
    limits l;
    if (!read_limits(m.value, entry, l, err)) return false;
    map[std::string(glob)] = l;
  }
  out = std::move(map);
  return true;
}

bool parse_body(std::string_view body, rapidjson::Document& doc, field_error& err) {
  // RapidJSON takes a NUL byte for the end of the input: refuse it rather than ignore the rest.
  if (body.find('\0') != std::string_view::npos) {
    return fail(err, "We could not parse the JSON body of your request: it holds a NUL byte.", {});
  }
  doc.Parse<body_flags>(body.data(), body.size());
  if (doc.HasParseError()) {
    return fail(err,
                std::string("We could not parse the JSON body of your request: ") +
                    rapidjson::GetParseError_En(doc.GetParseError()) + " (at byte " +
                    std::to_string(doc.GetErrorOffset()) + ").",
                {});
  }
  if (!doc.IsObject()) return fail(err, "The request body must be a JSON object.", {});
  return true;
}

// -- API view and rows: writing ------------------------------------------------------------------

void put_key(writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}

void put_str(writer& w, std::string_view k, std::string_view v) {
  put_key(w, k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

/// RapidJSON writes nothing for NaN or infinity (leaving a key without a value): write 0.
void put_num(writer& w, std::string_view k, double v) {
  put_key(w, k);
  w.Double(std::isfinite(v) ? v : 0.0);
}

void put_u64(writer& w, std::string_view k, uint64_t v) {
  put_key(w, k);
  w.Uint64(v);
}

void put_i64(writer& w, std::string_view k, int64_t v) {
  put_key(w, k);
  w.Int64(v);
}

void put_bool(writer& w, std::string_view k, bool v) {
  put_key(w, k);
  w.Bool(v);
}

void put_list(writer& w, std::string_view k, const std::vector<std::string>& items) {
  put_key(w, k);
  w.StartArray();
  for (const auto& s : items) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  w.EndArray();
}

void write_limits(writer& w, const limits& x) {
  w.StartObject();
  put_u64(w, "rpm", x.rpm);
  put_u64(w, "rpd", x.rpd);
  put_u64(w, "tpm", x.tpm);
  put_u64(w, "max_concurrent", x.max_concurrent);
  put_u64(w, "burst_pct", x.burst_pct);
  put_num(w, "daily_budget", x.daily_budget);
  put_num(w, "monthly_budget", x.monthly_budget);
  put_str(w, "budget_mode", x.soft_budget ? "soft" : "hard");
  w.EndObject();
}

void put_limits(writer& w, std::string_view k, const limits& x) {
  put_key(w, k);
  write_limits(w, x);
}

void put_model_limits(writer& w, std::string_view k, const std::map<std::string, limits>& m) {
  put_key(w, k);
  w.StartObject();
  for (const auto& [glob, l] : m) put_limits(w, glob, l);
  w.EndObject();
}

std::string take(const rapidjson::StringBuffer& sb) {
  return std::string(sb.GetString(), sb.GetSize());
}

// -- rows: reading ----------------------------------------------------------------------------

bool get(const json& v, std::string& out) {
  if (!v.IsString()) return false;
  out.assign(v.GetString(), v.GetStringLength());
  return true;
}

bool get(const json& v, int64_t& out) {
  if (!v.IsInt64()) return false;
  out = v.GetInt64();
  return true;
}

bool get(const json& v, uint64_t& out) {
  if (!v.IsUint64()) return false;
  out = v.GetUint64();
  return true;
}

bool get(const json& v, uint32_t& out) {
  if (!v.IsUint()) return false;
  out = v.GetUint();
  return true;
}

bool get(const json& v, uint8_t& out) {
  if (!v.IsUint() || v.GetUint() > std::numeric_limits<uint8_t>::max()) return false;
  out = static_cast<uint8_t>(v.GetUint());
  return true;
}

bool get(const json& v, double& out) {
  if (!v.IsNumber()) return false;
  out = v.GetDouble();
  return true;
}

bool get(const json& v, bool& out) {
  if (!v.IsBool()) return false;
  out = v.GetBool();
  return true;
}

bool get(const json& v, std::vector<std::string>& out) {
  if (!v.IsArray()) return false;
  std::vector<std::string> items;
  items.reserve(v.Size());
  for (const auto& e : v.GetArray()) {
    if (!e.IsString()) return false;
    items.emplace_back(str(e));
  }
  out = std::move(items);
  return true;
}

/// One field of a row: its name and how to read it into T.
template <class T>
struct field_reader {
  std::string_view name;
  bool (*read)(const json&, T&);
  /// Added after rows were first written: a row without it keeps the default (rows written by
  /// an older node still load).
  bool added_later = false;
};

/// Reads an object that must hold exactly `fields` (each once; those added later may be
/// missing), plus "v": row_version when `versioned`. Anything else, missing or repeated fails.
template <class T, std::size_t N>
bool read_fields(const json& obj, const field_reader<T> (&fields)[N], bool versioned, T& out) {
  static_assert(N < 64);
  if (!obj.IsObject()) return false;
  bool has_version = false;
  uint64_t seen = 0;
  for (const auto& m : obj.GetObject()) {
    const std::string_view k = str(m.name);
    if (versioned && k == "v") {
      if (has_version || !m.value.IsUint() || m.value.GetUint() != row_version) return false;
      has_version = true;
      continue;
    }
    std::size_t i = 0;
    while (i < N && fields[i].name != k) ++i;
    if (i == N) return false;
    const uint64_t bit = uint64_t{1} << i;
    if ((seen & bit) != 0 || !fields[i].read(m.value, out)) return false;
    seen |= bit;
  }
  uint64_t required = 0;
  for (std::size_t i = 0; i < N; ++i)
    if (!fields[i].added_later) required |= uint64_t{1} << i;
  return (has_version || !versioned) && (seen & required) == required;
}

constexpr field_reader<limits> limits_fields[] = {
    {"rpm", [](const json& v, limits& x) { return get(v, x.rpm); }},
    {"rpd", [](const json& v, limits& x) { return get(v, x.rpd); }},
    {"tpm", [](const json& v, limits& x) { return get(v, x.tpm); }},
    {"max_concurrent", [](const json& v, limits& x) { return get(v, x.max_concurrent); }},
    {"burst_pct", [](const json& v, limits& x) { return get(v, x.burst_pct); }},
    {"daily_budget", [](const json& v, limits& x) { return get(v, x.daily_budget); }},
    {"monthly_budget", [](const json& v, limits& x) { return get(v, x.monthly_budget); }},
    {"budget_mode",
     [](const json& v, limits& x) {
       if (!v.IsString() || (str(v) != "hard" && str(v) != "soft")) return false;
       x.soft_budget = str(v) == "soft";
       return true;
     }},
};

bool get(const json& v, limits& out) {
  limits n;
  if (!read_fields(v, limits_fields, false, n)) return false;
  out = n;
  return true;
}

bool get(const json& v, std::map<std::string, limits>& out) {
  if (!v.IsObject()) return false;
  std::map<std::string, limits> map;
  for (const auto& m : v.GetObject()) {
    limits l;
    if (!get(m.value, l) || !map.emplace(std::string(str(m.name)), l).second) return false;
  }
  out = std::move(map);
  return true;
}

constexpr field_reader<tenant> tenant_fields[] = {
    {"id", [](const json& v, tenant& x) { return get(v, x.id); }},
    {"name", [](const json& v, tenant& x) { return get(v, x.name); }},
    {"currency", [](const json& v, tenant& x) { return get(v, x.currency); }},
    {"price_factor", [](const json& v, tenant& x) { return get(v, x.price_factor); }},
    {"cache_scope", [](const json& v, tenant& x) { return get(v, x.cache_scope); }},
    {"filing_id", [](const json& v, tenant& x) { return get(v, x.filing_id); }},
    {"priority", [](const json& v, tenant& x) { return get(v, x.priority); }},
    {"residency_regions", [](const json& v, tenant& x) { return get(v, x.residency_regions); },
     true},
    {"residency_tags", [](const json& v, tenant& x) { return get(v, x.residency_tags); }, true},
    {"limits", [](const json& v, tenant& x) { return get(v, x.limit); }},
    {"model_limits", [](const json& v, tenant& x) { return get(v, x.model_limits); }},
    {"disabled", [](const json& v, tenant& x) { return get(v, x.disabled); }},
    {"created_at", [](const json& v, tenant& x) { return get(v, x.created_at); }},
};

constexpr field_reader<project> project_fields[] = {
    {"tenant", [](const json& v, project& x) { return get(v, x.tenant); }},
    {"id", [](const json& v, project& x) { return get(v, x.id); }},
    {"name", [](const json& v, project& x) { return get(v, x.name); }},
    {"limits", [](const json& v, project& x) { return get(v, x.limit); }},
    {"created_at", [](const json& v, project& x) { return get(v, x.created_at); }},
};

constexpr field_reader<api_key> key_fields[] = {
    {"id", [](const json& v, api_key& x) { return get(v, x.id); }},
    {"tenant", [](const json& v, api_key& x) { return get(v, x.tenant); }},
    {"project", [](const json& v, api_key& x) { return get(v, x.project); }},
    {"environment", [](const json& v, api_key& x) { return get(v, x.environment); }},
    {"name", [](const json& v, api_key& x) { return get(v, x.name); }},
    {"prefix", [](const json& v, api_key& x) { return get(v, x.prefix); }},
    {"hash", [](const json& v, api_key& x) { return get(v, x.hash); }},
    {"created_at", [](const json& v, api_key& x) { return get(v, x.created_at); }},
    {"expires_at", [](const json& v, api_key& x) { return get(v, x.expires_at); }},
    {"revoked_at", [](const json& v, api_key& x) { return get(v, x.revoked_at); }},
    {"replaced_by", [](const json& v, api_key& x) { return get(v, x.replaced_by); }},
    {"grace_until", [](const json& v, api_key& x) { return get(v, x.grace_until); }},
    {"allowed_models", [](const json& v, api_key& x) { return get(v, x.allowed_models); }},
    {"allowed_endpoints", [](const json& v, api_key& x) { return get(v, x.allowed_endpoints); }},
    {"priority", [](const json& v, api_key& x) { return get(v, x.priority); }},
    {"max_priority", [](const json& v, api_key& x) { return get(v, x.max_priority); }, true},
    {"limits", [](const json& v, api_key& x) { return get(v, x.limit); }},
};

constexpr field_reader<admin_token> admin_fields[] = {
    {"id", [](const json& v, admin_token& x) { return get(v, x.id); }},
    {"name", [](const json& v, admin_token& x) { return get(v, x.name); }},
    {"role",
     [](const json& v, admin_token& x) { return v.IsString() && parse_role(str(v), x.level); }},
    {"prefix", [](const json& v, admin_token& x) { return get(v, x.prefix); }},
    {"hash", [](const json& v, admin_token& x) { return get(v, x.hash); }},
    {"created_at", [](const json& v, admin_token& x) { return get(v, x.created_at); }},
    {"revoked_at", [](const json& v, admin_token& x) { return get(v, x.revoked_at); }},
};

bool get(const json& v, std::map<std::string, uint32_t>& out) {
  if (!v.IsObject()) return false;
  std::map<std::string, uint32_t> m;
  for (const auto& e : v.GetObject()) {
    uint32_t w = 0;
    if (!get(e.value, w) || !m.emplace(str(e.name), w).second) return false;
  }
  out = std::move(m);
  return true;
}

void put_weights(writer& w, std::string_view k, const std::map<std::string, uint32_t>& m) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
  w.StartObject();
  for (const auto& [name, weight] : m) {
    w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    w.Uint(weight);
  }
  w.EndObject();
}

constexpr field_reader<model_split> split_fields[] = {
    {"group", [](const json& v, model_split& x) { return get(v, x.group); }},
    {"weights", [](const json& v, model_split& x) { return get(v, x.weights); }},
    {"updated_at", [](const json& v, model_split& x) { return get(v, x.updated_at); }},
};

constexpr field_reader<price> price_fields[] = {
    {"provider", [](const json& v, price& x) { return get(v, x.provider); }},
    {"model", [](const json& v, price& x) { return get(v, x.model); }},
    {"input_per_m", [](const json& v, price& x) { return get(v, x.input_per_m); }},
    {"cached_input_per_m", [](const json& v, price& x) { return get(v, x.cached_input_per_m); }},
    {"output_per_m", [](const json& v, price& x) { return get(v, x.output_per_m); }},
    {"currency", [](const json& v, price& x) { return get(v, x.currency); }},
};

template <class T, std::size_t N>
bool decode_row(std::string_view bytes, const field_reader<T> (&fields)[N], T& out) {
  if (bytes.find('\0') != std::string_view::npos) return false;  // never written; see parse_body
  rapidjson::Document doc;
  doc.Parse<row_flags>(bytes.data(), bytes.size());
  if (doc.HasParseError()) return false;
  T n;
  if (!read_fields(doc, fields, true, n)) return false;
  out = std::move(n);
  return true;
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// -- apply ------------------------------------------------------------------------------------

bool apply(std::string_view body, limits& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  return read_limits(doc, {}, x, err);
}

bool apply(std::string_view body, tenant& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  tenant n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    bool ok;
    if (k == "id") {
      ok = read_slug(v, param, false, n.id, err);
    } else if (k == "name") {
      ok = read_text(v, param, n.name, err);
    } else if (k == "currency") {
      ok = read_choice(v, param, valid_currency, "'CNY', 'USD'", n.currency, err);
    } else if (k == "price_factor") {
      if (!v.IsNumber()) {
        ok = type_error(err, param, "a number");
      } else if (const double d = v.GetDouble(); !(d > 0 && d <= max_price_factor)) {
        ok = value_error(err, param, "expected a number above 0 and at most 100");
      } else {
        n.price_factor = d;
        ok = true;
      }
    } else if (k == "cache_scope") {
      ok = read_slug(v, param, true, n.cache_scope, err);
    } else if (k == "filing_id") {
      // It goes into a response header: no control characters.
      ok = read_text(v, param, n.filing_id, err);
      for (unsigned char c : n.filing_id) {
        if (ok && (c < 0x20 || c == 0x7f))
          ok = value_error(err, param, "must not contain control characters");
      }
    } else if (k == "priority") {
      ok = read_priority(v, param, n.priority, err);
    } else if (k == "residency_regions" || k == "residency_tags") {
      ok = read_list(v, param, label_ok, "1-64 characters of A-Z a-z 0-9 . _ : -",
                     k == "residency_regions" ? n.residency_regions : n.residency_tags, err, true);
    } else if (k == "limits") {
      ok = read_limits(v, param, n.limit, err);
    } else if (k == "model_limits") {
      ok = read_model_limits(v, param, n.model_limits, err);
    } else if (k == "disabled") {
      if (v.IsBool()) {
        n.disabled = v.GetBool();
        ok = true;
      } else {
        ok = type_error(err, param, "a boolean");
      }
    } else if (k == "object" || k == "created_at") {
      ok = read_only(err, param);
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = std::move(n);
  return true;
}

bool apply(std::string_view body, project& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  project n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    bool ok;
    if (k == "id") {
      ok = read_slug(v, param, false, n.id, err);
    } else if (k == "name") {
      ok = read_text(v, param, n.name, err);
    } else if (k == "limits") {
      ok = read_limits(v, param, n.limit, err);
    } else if (k == "object" || k == "tenant" || k == "created_at") {
      ok = read_only(err, param);
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = std::move(n);
  return true;
}

bool apply(std::string_view body, api_key& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  api_key n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    bool ok;
    if (k == "tenant") {
      ok = read_slug(v, param, false, n.tenant, err);
    } else if (k == "project") {
      ok = read_slug(v, param, true, n.project, err);
    } else if (k == "environment") {
      ok = read_choice(v, param, valid_environment, "'dev', 'staging', 'prod'", n.environment, err);
    } else if (k == "name") {
      ok = read_text(v, param, n.name, err);
    } else if (k == "expires_at") {
      uint64_t t = 0;
      ok = read_whole(v, param, std::numeric_limits<int64_t>::max(), t, err);
      if (ok) n.expires_at = static_cast<int64_t>(t);
    } else if (k == "allowed_models") {
      ok = read_list(v, param, model_glob_ok, "a model glob of 1-200 characters", n.allowed_models,
                     err);
    } else if (k == "allowed_endpoints") {
      ok = read_list(v, param, valid_endpoint,
                     "one of 'chat', 'completions', 'embeddings', 'models'", n.allowed_endpoints,
                     err);
    } else if (k == "priority") {
      ok = read_priority(v, param, n.priority, err);
    } else if (k == "max_priority") {
      ok = read_priority(v, param, n.max_priority, err);
    } else if (k == "limits") {
      ok = read_limits(v, param, n.limit, err);
    } else if (k == "object" || k == "id" || k == "prefix" || k == "hash" || k == "secret" ||
               k == "status" || k == "created_at" || k == "revoked_at" || k == "replaced_by" ||
               k == "grace_until") {
      ok = read_only(err, param);
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = std::move(n);
  return true;
}

bool apply(std::string_view body, admin_token& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  admin_token n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    bool ok;
    if (k == "name") {
      ok = read_text(v, param, n.name, err);
    } else if (k == "role") {
      if (!v.IsString()) {
        ok = type_error(err, param, "a string");
      } else {
        ok = parse_role(str(v), n.level) ||
             value_error(err, param, "expected one of 'viewer', 'operator', 'owner'");
      }
    } else if (k == "object" || k == "id" || k == "prefix" || k == "hash" || k == "secret" ||
               k == "created_at" || k == "revoked_at") {
      ok = read_only(err, param);
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = std::move(n);
  return true;
}

bool apply(std::string_view body, price& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  price n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    bool ok;
    if (k == "input_per_m") {
      ok = read_amount(v, param, n.input_per_m, err);
    } else if (k == "cached_input_per_m") {
      ok = read_amount(v, param, n.cached_input_per_m, err);
    } else if (k == "output_per_m") {
      ok = read_amount(v, param, n.output_per_m, err);
    } else if (k == "currency") {
      ok = read_choice(v, param, valid_currency, "'CNY', 'USD'", n.currency, err);
    } else if (k == "object" || k == "provider" || k == "model") {
      ok = read_only(err, param);
    } else {
      ok = unknown_field(err, param);
    }
    if (!ok) return false;
  }
  x = std::move(n);
  return true;
}

bool apply(std::string_view body, model_split& x, field_error& err) {
  rapidjson::Document doc;
  if (!parse_body(body, doc, err)) return false;
  model_split n = x;
  for (const auto& m : doc.GetObject()) {
    const std::string_view k = str(m.name);
    const json& v = m.value;
    const std::string param(k);
    if (k == "weights") {
      if (!v.IsObject()) return type_error(err, param, "an object of model: weight");
      if (v.MemberCount() == 0 || v.MemberCount() > max_entries)
        return value_error(err, param, "expected 1 to 64 models");
      std::map<std::string, uint32_t> weights;
      uint64_t total = 0;
      for (const auto& e : v.GetObject()) {
        const std::string item = param + "." + std::string(str(e.name));
        uint64_t w = 0;
        if (!read_whole(e.value, item, 1'000'000, w, err)) return false;
        if (!weights.emplace(str(e.name), static_cast<uint32_t>(w)).second)
          return value_error(err, item, "given twice");
        total += w;
      }
      if (total == 0) return value_error(err, param, "at least one weight must be above 0");
      n.weights = std::move(weights);
    } else if (k == "object" || k == "group" || k == "updated_at") {
      if (!read_only(err, param)) return false;
    } else {
      return unknown_field(err, param);
    }
  }
  x = std::move(n);
  return true;
}

// -- API view ---------------------------------------------------------------------------------

std::string to_json(const limits& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  write_limits(w, x);
  return take(sb);
}

std::string to_json(const tenant& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "tenant");
  put_str(w, "id", x.id);
  put_str(w, "name", x.name);
  put_str(w, "currency", x.currency);
  put_num(w, "price_factor", x.price_factor);
  put_str(w, "cache_scope", x.cache_scope);
  put_str(w, "filing_id", x.filing_id);
  put_u64(w, "priority", x.priority);
  put_list(w, "residency_regions", x.residency_regions);
  put_list(w, "residency_tags", x.residency_tags);
  put_limits(w, "limits", x.limit);
  put_model_limits(w, "model_limits", x.model_limits);
  put_bool(w, "disabled", x.disabled);
  put_i64(w, "created_at", x.created_at);
  w.EndObject();
  return take(sb);
}

std::string to_json(const project& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "project");
  put_str(w, "id", x.id);
  put_str(w, "tenant", x.tenant);
  put_str(w, "name", x.name);
  put_limits(w, "limits", x.limit);
  put_i64(w, "created_at", x.created_at);
  w.EndObject();
  return take(sb);
}

std::string to_json(const api_key& x) {
  return to_json(x, now_unix());
}

std::string to_json(const api_key& x, int64_t now) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "key");
  put_str(w, "id", x.id);
  put_str(w, "tenant", x.tenant);
  put_str(w, "project", x.project);
  put_str(w, "environment", x.environment);
  put_str(w, "name", x.name);
  put_str(w, "prefix", x.prefix);
  put_str(w, "status", key_status(x, now));
  put_i64(w, "created_at", x.created_at);
  put_i64(w, "expires_at", x.expires_at);
  put_i64(w, "revoked_at", x.revoked_at);
  put_str(w, "replaced_by", x.replaced_by);
  put_i64(w, "grace_until", x.grace_until);
  put_list(w, "allowed_models", x.allowed_models);
  put_list(w, "allowed_endpoints", x.allowed_endpoints);
  put_u64(w, "priority", x.priority);
  put_u64(w, "max_priority", x.max_priority);
  put_limits(w, "limits", x.limit);
  w.EndObject();
  return take(sb);
}

std::string to_json(const admin_token& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "admin_token");
  put_str(w, "id", x.id);
  put_str(w, "name", x.name);
  put_str(w, "role", role_name(x.level));
  put_str(w, "prefix", x.prefix);
  put_i64(w, "created_at", x.created_at);
  put_i64(w, "revoked_at", x.revoked_at);
  w.EndObject();
  return take(sb);
}

std::string to_json(const price& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "price");
  put_str(w, "provider", x.provider);
  put_str(w, "model", x.model);
  put_num(w, "input_per_m", x.input_per_m);
  put_num(w, "cached_input_per_m", x.cached_input_per_m);
  put_num(w, "output_per_m", x.output_per_m);
  put_str(w, "currency", x.currency);
  w.EndObject();
  return take(sb);
}

std::string list_json(const std::vector<std::string>& items) {
  std::size_t size = 32;
  for (const auto& s : items) size += s.size() + 1;
  std::string out;
  out.reserve(size);
  out += R"({"object":"list","data":[)";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ',';
    out += items[i];
  }
  out += "]}";
  return out;
}

std::string_view key_status(const api_key& k, int64_t now) {
  if (k.revoked_at != 0) return "revoked";
  if (!k.replaced_by.empty()) return now < k.grace_until ? "rotated" : "expired";
  if (k.expires_at != 0 && now >= k.expires_at) return "expired";
  return "active";
}

// -- rows -------------------------------------------------------------------------------------

std::string encode(const tenant& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "id", x.id);
  put_str(w, "name", x.name);
  put_str(w, "currency", x.currency);
  put_num(w, "price_factor", x.price_factor);
  put_str(w, "cache_scope", x.cache_scope);
  put_str(w, "filing_id", x.filing_id);
  put_u64(w, "priority", x.priority);
  put_list(w, "residency_regions", x.residency_regions);
  put_list(w, "residency_tags", x.residency_tags);
  put_limits(w, "limits", x.limit);
  put_model_limits(w, "model_limits", x.model_limits);
  put_bool(w, "disabled", x.disabled);
  put_i64(w, "created_at", x.created_at);
  w.EndObject();
  return take(sb);
}

std::string encode(const project& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "tenant", x.tenant);
  put_str(w, "id", x.id);
  put_str(w, "name", x.name);
  put_limits(w, "limits", x.limit);
  put_i64(w, "created_at", x.created_at);
  w.EndObject();
  return take(sb);
}

std::string encode(const api_key& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "id", x.id);
  put_str(w, "tenant", x.tenant);
  put_str(w, "project", x.project);
  put_str(w, "environment", x.environment);
  put_str(w, "name", x.name);
  put_str(w, "prefix", x.prefix);
  put_str(w, "hash", x.hash);
  put_i64(w, "created_at", x.created_at);
  put_i64(w, "expires_at", x.expires_at);
  put_i64(w, "revoked_at", x.revoked_at);
  put_str(w, "replaced_by", x.replaced_by);
  put_i64(w, "grace_until", x.grace_until);
  put_list(w, "allowed_models", x.allowed_models);
  put_list(w, "allowed_endpoints", x.allowed_endpoints);
  put_u64(w, "priority", x.priority);
  put_u64(w, "max_priority", x.max_priority);
  put_limits(w, "limits", x.limit);
  w.EndObject();
  return take(sb);
}

std::string encode(const admin_token& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "id", x.id);
  put_str(w, "name", x.name);
  put_str(w, "role", role_name(x.level));
  put_str(w, "prefix", x.prefix);
  put_str(w, "hash", x.hash);
  put_i64(w, "created_at", x.created_at);
  put_i64(w, "revoked_at", x.revoked_at);
  w.EndObject();
  return take(sb);
}

std::string encode(const price& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "provider", x.provider);
  put_str(w, "model", x.model);
  put_num(w, "input_per_m", x.input_per_m);
  put_num(w, "cached_input_per_m", x.cached_input_per_m);
  put_num(w, "output_per_m", x.output_per_m);
  put_str(w, "currency", x.currency);
  w.EndObject();
  return take(sb);
}

bool decode(std::string_view bytes, tenant& x) {
  return decode_row(bytes, tenant_fields, x);
}

bool decode(std::string_view bytes, project& x) {
  return decode_row(bytes, project_fields, x);
}

bool decode(std::string_view bytes, api_key& x) {
  return decode_row(bytes, key_fields, x);
}

bool decode(std::string_view bytes, admin_token& x) {
  return decode_row(bytes, admin_fields, x);
}

bool decode(std::string_view bytes, price& x) {
  return decode_row(bytes, price_fields, x);
}

std::string to_json(const model_split& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_str(w, "object", "model_split");
  put_str(w, "group", x.group);
  put_weights(w, "weights", x.weights);
  put_i64(w, "updated_at", x.updated_at);
  w.EndObject();
  return take(sb);
}

std::string encode(const model_split& x) {
  rapidjson::StringBuffer sb;
  writer w(sb);
  w.StartObject();
  put_u64(w, "v", row_version);
  put_str(w, "group", x.group);
  put_weights(w, "weights", x.weights);
  put_i64(w, "updated_at", x.updated_at);
  w.EndObject();
  return take(sb);
}

bool decode(std::string_view bytes, model_split& x) {
  return decode_row(bytes, split_fields, x);
}

}  // namespace tc::accounts
