// Remote moderation engines: request bodies, answer parsers and the aggregation of verdicts.
//
// Answers come from outside: they are parsed with RapidJSON's iterative parser (deep nesting
// cannot overflow the stack) and encoding validation, every member's type is checked before it
// is read, and strings we keep are re-checked as strict UTF-8 (RapidJSON 1.1 decodes a lone
// low-surrogate escape such as \udc00 into invalid UTF-8 despite the validation flag).
#include "protocol/moderation/remote.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "protocol/openai/json_document.hpp"

namespace tc::moderation {

namespace {

using json = rapidjson::Value;

constexpr unsigned parse_flags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
constexpr size_t max_category_bytes = 256;

// ---- writing ---------------------------------------------------------------------------------

/// Length of the strictly valid UTF-8 sequence at s[i] (no overlongs, no surrogates, nothing
/// above U+10FFFF), or 0 if the bytes there are not one.
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char c = p[i];
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  if (p[i + 1] < lo || p[i + 1] > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((p[i + k] & 0xC0) != 0x80) return 0;
  }
  return len;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// At most `max` bytes of outside text for an error message, cut on a code point boundary, with
/// control bytes and bytes that are not valid UTF-8 shown as '?'.
std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (out.size() + std::max<size_t>(n, 1) > max) break;
    if (n == 0 || static_cast<unsigned char>(s[i]) < 0x20 || s[i] == 0x7F) {
      out += '?';
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

/// Appends `s` as a JSON string literal. Quote, backslash and control bytes are escaped; a byte
/// that does not start a valid UTF-8 sequence becomes \ufffd, so the output is always JSON.
void append_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    const size_t n = c < 0x80 ? 1 : utf8_sequence(s, i);
    if (n > 1) {
      i += n;
      continue;
    }
    out.append(s.substr(run, i - run));
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += "\\ufffd";
    }
    run = ++i;
  }
  out.append(s.substr(run));
  out += '"';
}

void append_texts(std::string& out, const std::vector<std::string>& texts) {
  out += '[';
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i) out += ',';
    append_string(out, texts[i]);
  }
  out += ']';
}

// ---- reading ---------------------------------------------------------------------------------

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// The member `name` of object `obj`, or null when absent or JSON null.
const json* member(const json& obj, const char* name) {
  const auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

const char* type_name(const json& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "unknown";
}

/// Parses `body` into `doc`; false with `error` unless it is a JSON object.
bool parse_object(std::string_view body, rapidjson::Document& doc, std::string& error) {
  doc.Parse<parse_flags>(body.data(), body.size());
  if (doc.HasParseError()) {
    error = "the answer is not valid JSON: ";
    error += rapidjson::GetParseError_En(doc.GetParseError());
    error += " at byte " + std::to_string(doc.GetErrorOffset());
    return false;
  }
  if (!doc.IsObject()) {
    error = std::string("the answer is ") + type_name(doc) + ", not a JSON object";
    return false;
  }
  return true;
}

/// Reads an optional category string at `where`; false with `error` if it is not one.
bool read_category(const json* v, std::string_view where, std::string& out, std::string& error) {
  if (!v) return true;
  if (!v->IsString()) {
    error = std::string(where) + ": expected a string, got " + type_name(*v);
    return false;
  }
  if (v->GetStringLength() > max_category_bytes) {
    error = std::string(where) + ": longer than " + std::to_string(max_category_bytes) + " bytes";
    return false;
  }
  if (!valid_utf8(str(*v))) {
    error = std::string(where) + ": not valid UTF-8";
    return false;
  }
  out.assign(v->GetString(), v->GetStringLength());
  return true;
}

/// Reads a required action name at `where`.
bool read_action(const json* v, std::string_view where, action& out, std::string& error) {
  if (!v) {
    error = std::string(where) + ": missing";
    return false;
  }
  if (!v->IsString()) {
    error = std::string(where) + ": expected a string, got " + type_name(*v);
    return false;
  }
  if (!parse_action(str(*v), out)) {
    error = std::string(where) + ": unknown action \"" + printable(str(*v), 32) +
            "\" (expected allow, flag, mask or block)";
    return false;
  }
  return true;
}

/// Reads a required non-negative integer at `where`.
bool read_index(const json* v, std::string_view where, uint64_t& out, std::string& error) {
  if (!v) {
    error = std::string(where) + ": missing";
    return false;
  }
  if (!v->IsUint64()) {
    error = std::string(where) + ": expected a non-negative integer, got " +
            (v->IsNumber() ? "a negative, fractional or too large number" : type_name(*v));
    return false;
  }
  out = v->GetUint64();
  return true;
}

/// True if `offset` (<= text.size()) does not fall inside a UTF-8 sequence.
bool on_boundary(std::string_view text, size_t offset) {
  return offset == 0 || offset == text.size() ||
         (static_cast<unsigned char>(text[offset]) & 0xC0) != 0x80;
}

/// Reads hits[i] of an http answer: the hit and the index of its text.
bool read_hit(const json& v, size_t i, const std::vector<std::string>& texts, action verdict,
              const std::string& default_category, hit& h, size_t& text_index, std::string& error) {
  const std::string where = "hits[" + std::to_string(i) + "]";
  if (!v.IsObject()) {
    error = where + ": expected an object, got " + type_name(v);
    return false;
  }
  uint64_t text = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
  if (!read_index(member(v, "text"), where + ".text", text, error)) return false;
  if (text >= texts.size()) {
    error = where + ".text: " + std::to_string(text) + " is out of range (the request had " +
            std::to_string(texts.size()) + " texts)";
    return false;
  }
  if (!read_index(member(v, "begin"), where + ".begin", begin, error)) return false;
  if (!read_index(member(v, "end"), where + ".end", end, error)) return false;
  const std::string_view t = texts[text];
  const std::string which = "texts[" + std::to_string(text) + "]";
  if (end > t.size()) {
    error = where + ".end: " + std::to_string(end) + " is past the end of " + which + " (" +
            std::to_string(t.size()) + " bytes)";
    return false;
  }
  if (begin >= end) {
    error =
        where + ": begin " + std::to_string(begin) + " is not before end " + std::to_string(end);
    return false;
  }
  if (!on_boundary(t, begin) || !on_boundary(t, end)) {
    error = where + ": [" + std::to_string(begin) + ", " + std::to_string(end) +
            ") splits a UTF-8 code point of " + which;
    return false;
  }
  h = hit{};
  h.begin = static_cast<uint32_t>(begin);
  h.end = static_cast<uint32_t>(end);
  h.category = default_category;
  h.act = verdict;
  if (!read_category(member(v, "category"), where + ".category", h.category, error)) return false;
  if (const json* a = member(v, "action")) {
    if (!read_action(a, where + ".action", h.act, error)) return false;
  }
  text_index = static_cast<size_t>(text);
  return true;
}

void sort_hits(std::vector<std::vector<hit>>& per_text) {
  for (auto& hits : per_text) {
    std::stable_sort(hits.begin(), hits.end(), [](const hit& a, const hit& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
  }
}

double usable_weight(double w) {
  return std::isfinite(w) && w > 0 ? w : 0.0;
}

}  // namespace

// ---- http engine -------------------------------------------------------------------------------

std::string http_request_body(std::string_view direction, std::string_view request_id,
                              std::string_view tenant, std::string_view model,
                              const std::vector<std::string>& texts) {
  std::string out;
  size_t bytes = 96 + direction.size() + request_id.size() + tenant.size() + model.size();
  for (const std::string& t : texts) bytes += t.size() + 3;
  out.reserve(bytes);
  out += "{\"direction\":";
  append_string(out, direction);
  out += ",\"request_id\":";
  append_string(out, request_id);
  out += ",\"tenant\":";
  append_string(out, tenant);
  out += ",\"model\":";
  append_string(out, model);
  out += ",\"texts\":";
  append_texts(out, texts);
  out += '}';
  return out;
}

bool parse_http_verdict(std::string_view body, const std::vector<std::string>& texts,
                        remote_verdict& out, std::string& error) {
  openai::stack_document sd;
  rapidjson::Document& doc = sd.doc;
  if (!parse_object(body, doc, error)) return false;

  remote_verdict v;
  v.hits.resize(texts.size());
  if (!read_action(member(doc, "verdict"), "verdict", v.act, error)) return false;
  if (!read_category(member(doc, "category"), "category", v.category, error)) return false;

  bool any_mask_hit = false;
  hit strongest_hit;  // the first hit, in answer order, of the strongest action
  strongest_hit.act = action::allow;
  if (const json* hits = member(doc, "hits")) {
    if (!hits->IsArray()) {
      error = std::string("hits: expected an array, got ") + type_name(*hits);
      return false;
    }
    for (rapidjson::SizeType i = 0; i < hits->Size(); ++i) {
      hit h;
      size_t text = 0;
      if (!read_hit((*hits)[i], i, texts, v.act, v.category, h, text, error)) return false;
      any_mask_hit = any_mask_hit || h.act == action::mask;
      if (h.act > strongest_hit.act) strongest_hit = h;
      v.hits[text].push_back(std::move(h));
    }
  }
  if (strongest_hit.act > v.act) {
    v.act = strongest_hit.act;
    v.category = std::move(strongest_hit.category);
  }
  if (v.act == action::mask && !any_mask_hit) v.act = action::block;
  sort_hits(v.hits);
  out = std::move(v);
  return true;
}

// ---- openai engine -----------------------------------------------------------------------------

std::string openai_moderation_body(std::string_view model, const std::vector<std::string>& texts) {
  std::string out;
  size_t bytes = 32 + model.size();
  for (const std::string& t : texts) bytes += t.size() + 3;
  out.reserve(bytes);
  out += '{';
  if (!model.empty()) {
    out += "\"model\":";
    append_string(out, model);
    out += ',';
  }
  out += "\"input\":";
  append_texts(out, texts);
  out += '}';
  return out;
}

bool parse_openai_moderation(std::string_view body, size_t texts,
                             const std::map<std::string, action>& category_actions,
                             action flagged_action, remote_verdict& out, std::string& error) {
  openai::stack_document sd;
  rapidjson::Document& doc = sd.doc;
  if (!parse_object(body, doc, error)) return false;

  const json* results = member(doc, "results");
  if (!results) {
    const json* e = member(doc, "error");
    const json* msg = e && e->IsObject() ? member(*e, "message") : nullptr;
    if (msg && msg->IsString()) {
      error = "the service answered an error: " + printable(str(*msg), 200);
    } else {
      error = "results: missing";
    }
    return false;
  }
  if (!results->IsArray()) {
    error = std::string("results: expected an array, got ") + type_name(*results);
    return false;
  }
  if (results->Size() != texts) {
    error = "results: " + std::to_string(results->Size()) + " results for " +
            std::to_string(texts) + " inputs";
    return false;
  }

  // Per result: the strongest action and its category (first in byte order of the names).
  struct decision {
    action act = action::allow;
    std::string category;
  };
  std::vector<decision> decided(texts);
  std::vector<std::pair<std::string_view, action>> trues;  // reused per result
  for (rapidjson::SizeType i = 0; i < results->Size(); ++i) {
    const std::string where = "results[" + std::to_string(i) + "]";
    const json& r = (*results)[i];
    if (!r.IsObject()) {
      error = where + ": expected an object, got " + type_name(r);
      return false;
    }
    const json* flagged = member(r, "flagged");
    if (!flagged || !flagged->IsBool()) {
      error = where + ".flagged: " +
              (flagged ? std::string("expected a boolean, got ") + type_name(*flagged)
                       : std::string("missing"));
      return false;
    }
    const json* categories = member(r, "categories");
    if (!categories || !categories->IsObject()) {
      error = where + ".categories: " +
              (categories ? std::string("expected an object, got ") + type_name(*categories)
                          : std::string("missing"));
      return false;
    }
    trues.clear();
    for (const auto& m : categories->GetObject()) {
      const std::string_view name = str(m.name);
      if (!m.value.IsBool()) {
        error = where + ".categories[\"" + printable(name, 64) + "\"]: expected a boolean, got " +
                type_name(m.value);
        return false;
      }
      if (!m.value.GetBool()) continue;
      if (name.size() > max_category_bytes || !valid_utf8(name)) {
        error = where + ".categories: a category name is not UTF-8 or longer than " +
                std::to_string(max_category_bytes) + " bytes";
        return false;
      }
      const auto it = category_actions.find(std::string(name));
      trues.emplace_back(name, it == category_actions.end() ? flagged_action : it->second);
    }
    std::sort(trues.begin(), trues.end());
    decision& d = decided[i];
    if (trues.empty()) {
      if (flagged->GetBool()) d.act = flagged_action;
    } else {
      for (const auto& [name, act] : trues) {
        if (act > d.act) {
          d.act = act;
          d.category = std::string(name);
        }
      }
    }
  }

  remote_verdict v;
  v.hits.resize(texts);
  for (const decision& d : decided) v.act = std::max(v.act, d.act);
  for (const decision& d : decided) {
    if (d.act == v.act) {
      v.category = d.category;
      break;
    }
  }
  if (v.act == action::allow) v.category.clear();
  if (v.act == action::mask) v.act = action::block;  // no offsets: nothing could be masked
  out = std::move(v);
  return true;
}

// ---- aggregation -------------------------------------------------------------------------------

std::string_view policy_name(policy p) {
  switch (p) {
    case policy::any_block:
      return "any_block";
    case policy::majority:
      return "majority";
    case policy::weighted:
      return "weighted";
  }
  return "unknown";
}

bool parse_policy(std::string_view name, policy& out) {
  for (policy p : {policy::any_block, policy::majority, policy::weighted}) {
    if (name == policy_name(p)) {
      out = p;
      return true;
    }
  }
  return false;
}

action aggregate(policy p, const std::vector<engine_result>& r, double block_threshold,
                 std::string& deciding_category) {
  deciding_category.clear();
  // The action each engine contributes, or nothing when it is left out.
  const auto vote = [](const engine_result& e, action& a) {
    if (e.failed) {
      a = action::block;
      return e.fail_closed;
    }
    a = e.act;
    return true;
  };

  size_t counted = 0;
  size_t blocks = 0;
  double weight_all = 0;
  double weight_block = 0;
  action strongest_all = action::allow;
  action strongest_non_block = action::allow;
  for (const engine_result& e : r) {
    action a = action::allow;
    if (!vote(e, a)) continue;
    ++counted;
    const double w = usable_weight(e.weight);
    weight_all += w;
    strongest_all = std::max(strongest_all, a);
    if (a == action::block) {
      ++blocks;
      weight_block += w;
    } else {
      strongest_non_block = std::max(strongest_non_block, a);
    }
  }
  if (counted == 0) return action::allow;

  action result = strongest_non_block;
  switch (p) {
    case policy::any_block:
      result = strongest_all;
      break;
    case policy::majority:
      if (blocks * 2 > counted) result = action::block;
      break;
    case policy::weighted:
      if (weight_block > 0 && weight_block / weight_all >= block_threshold) result = action::block;
      break;
  }
  for (const engine_result& e : r) {
    action a = action::allow;
    if (vote(e, a) && a == result) {
      deciding_category = e.category;
      break;
    }
  }
  return result;
}

}  // namespace tc::moderation
