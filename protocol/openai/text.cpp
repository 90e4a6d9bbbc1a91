// Moderated text in OpenAI bodies: extraction and byte-surgical rewrites.
//
// Why a scanner and not a RapidJSON DOM: a rewritten request goes upstream and a rewritten
// answer to the client, and a DOM round trip re-prints every number (1e2 -> 100.0, doubles
// parsed without full precision) and keeps one of duplicate keys. The scanner (json_scan) makes
// one pass: it descends only along the few paths that hold text, skips every other value
// (strings by memchr, containers by counting brackets, iteratively), and records the byte span
// of each text value; rewrites splice new literals into those spans. The walk's own nesting is
// fixed by the paths (at most five levels), never by the input, so 100,000 '[' cost one
// linear pass and no stack.
#include "protocol/openai/text.hpp"
#include "protocol/openai/json_text.hpp"

#include "protocol/openai/json_scan.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace tc::openai {

namespace {

using json_scan::hex4;
using json_scan::skip_string;
using json_scan::skip_value;
using json_scan::skip_ws;

constexpr uint32_t max_filter_choices = 128;                   ///< OpenAI's n limit
constexpr std::string_view replacement_char = "\xEF\xBF\xBD";  ///< U+FFFD in UTF-8

// --- UTF-8 and string literals ---

/// Skips ASCII 8 bytes at a time: most text is ASCII.
const unsigned char* skip_ascii(const unsigned char* p, const unsigned char* end) {
  while (end - p >= 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof word);
    if ((word & 0x8080808080808080ULL) != 0) break;
    p += 8;
  }
  while (p < end && *p < 0x80) ++p;
  return p;
}

/// Appends `s` with each invalid UTF-8 byte replaced by U+FFFD.
void append_clean(std::string& out, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  const auto* run = p;
  for (;;) {
    p = skip_ascii(p, end);
    if (p == end) break;
    if (const std::size_t n = json_text::utf8_sequence(p, end)) {
      p += n;
      continue;
    }
    out.append(reinterpret_cast<const char*>(run), p - run);
    out += replacement_char;
    run = ++p;
  }
  out.append(reinterpret_cast<const char*>(run), p - run);
}

void append_code_point(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// Appends the text of a string literal's inside `raw`: escapes decoded, lone surrogates and
/// invalid UTF-8 as U+FFFD, a malformed escape kept as written.
void append_decoded(std::string& out, std::string_view raw) {
  std::size_t i = 0;
  while (i < raw.size()) {
    const void* bs = std::memchr(raw.data() + i, '\\', raw.size() - i);
    const std::size_t k = bs ? static_cast<const char*>(bs) - raw.data() : raw.size();
    append_clean(out, raw.substr(i, k - i));
    if (k + 1 >= raw.size()) {
      if (k < raw.size()) out += '\\';  // a trailing backslash
      return;
    }
    i = k + 2;
    switch (raw[k + 1]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (!hex4(raw, k + 2, cp)) {
          out += '\\';
          i = k + 1;
          break;
        }
        i = k + 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= raw.size() && raw[i] == '\\' &&
            raw[i + 1] == 'u') {
          uint32_t lo;
          if (hex4(raw, i + 2, lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        append_code_point(out, cp);
        break;
      }
      default:
        out += '\\';
        i = k + 1;
    }
  }
}

std::string literal(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  json_text::append_string(out, s);
  return out;
}

/// True if the inside of a key literal decodes to `name` (escaped keys are rare: "\u0063ontent"
/// is "content" to every parser, so it must be to moderation too).
bool key_is(std::string_view raw, std::string_view name) {
  if (raw.find('\\') == std::string_view::npos) return raw == name;
  std::string decoded;
  append_decoded(decoded, raw);
  return decoded == name;
}

// --- the scanner ---

/// Bytes [begin, end) of one value in the scanned text.
struct span {
  std::size_t begin = 0;
  std::size_t end = 0;

  bool empty() const { return begin == end; }
};

/// Walks a JSON text in one pass without building it: each walk function starts at a value's
/// first byte and leaves `i` past the value. False (and the walk stops) at a malformed byte.
class scanner {
 public:
  explicit scanner(std::string_view s) : s_(s) {}

  /// Offset of the root value.
  std::size_t root() const {
    std::size_t i = 0;
    skip_ws(s_, i);
    return i;
  }
  /// The byte at `i`, NUL past the end.
  char at(std::size_t i) const { return i < s_.size() ? s_[i] : '\0'; }

  bool skip(std::size_t& i) const { return skip_value(s_, i); }
  /// Skips the value at `i`, recording its span in `v`.
  bool take(std::size_t& i, span& v) const {
    v.begin = i;
    const bool ok = skip(i);
    v.end = i;
    return ok;
  }

  bool is_string(span v) const { return !v.empty() && s_[v.begin] == '"'; }
  bool is_null(span v) const { return text(v) == "null"; }
  std::string_view text(span v) const { return s_.substr(v.begin, v.end - v.begin); }
  /// The inside of a string literal (without its quotes).
  std::string_view raw(span v) const { return s_.substr(v.begin + 1, v.end - v.begin - 2); }
  /// True if `v` is a string literal that decodes to `s`.
  bool string_is(span v, std::string_view s) const { return is_string(v) && key_is(raw(v), s); }
  /// The decoded text of string literal `v`.
  std::string decode(span v) const {
    std::string out;
    out.reserve(v.end - v.begin);
    append_decoded(out, raw(v));
    return out;
  }

  /// Calls on(key, i) with `i` at each member's value of the object at `i` (`key` the inside
  /// of its literal); `on` must leave `i` past the value. A value that is not an object is
  /// skipped.
  template <class F>
  bool members(std::size_t& i, F&& on) const {
    if (at(i) != '{') return skip(i);
    ++i;
    skip_ws(s_, i);
    if (at(i) == '}') {
      ++i;
      return true;
    }
    for (;;) {
      skip_ws(s_, i);
      if (at(i) != '"') return false;
      const std::size_t key_begin = i;
      if (!skip_string(s_, i)) return false;
      const std::string_view key = s_.substr(key_begin + 1, i - key_begin - 2);
      skip_ws(s_, i);
      if (at(i) != ':') return false;
      ++i;
      skip_ws(s_, i);
      if (!on(key, i)) return false;
      skip_ws(s_, i);
      if (at(i) == '}') {
        ++i;
        return true;
      }
      if (at(i) != ',') return false;
      ++i;
    }
  }

  /// Calls on(i) with `i` at each element of the array at `i`; `on` must leave `i` past it.
  /// A value that is not an array is skipped.
  template <class F>
  bool elements(std::size_t& i, F&& on) const {
    if (at(i) != '[') return skip(i);
    ++i;
    skip_ws(s_, i);
    if (at(i) == ']') {
      ++i;
      return true;
    }
    for (;;) {
      skip_ws(s_, i);
      if (!on(i)) return false;
      skip_ws(s_, i);
      if (at(i) == ']') {
        ++i;
        return true;
      }
      if (at(i) != ',') return false;
      ++i;
    }
  }

  /// True if the object starting at `begin` has no members (only whitespace in its braces).
  bool empty_object(std::size_t begin) const {
    std::size_t i = begin + 1;
    skip_ws(s_, i);
    return at(i) == '}';
  }

 private:
  std::string_view s_;
};

/// Pending changes to a text, applied in one copy.
class editor {
 public:
  explicit editor(const scanner& d) : d_(d) {}

  /// Replaces value `v` by the JSON text `json`.
  void replace(span v, std::string json) { edits_.push_back({v.begin, v.end, std::move(json)}); }

  /// Adds member `"key":json` at the start of the object starting at `object`.
  void insert(std::size_t object, std::string_view key, std::string_view json) {
    std::string member = literal(key);
    member += ':';
    member += json;
    for (insertion& in : inserts_) {
      if (in.object == object) {
        in.members += ',';
        in.members += member;
        return;
      }
    }
    inserts_.push_back({object, d_.empty_object(object), std::move(member)});
  }

  bool empty() const { return edits_.empty() && inserts_.empty(); }

  /// `s` with the edits made.
  std::string apply(std::string_view s) {
    for (insertion& in : inserts_) {
      if (!in.into_empty) in.members += ',';
      edits_.push_back({in.object + 1, in.object + 1, std::move(in.members)});
    }
    std::stable_sort(edits_.begin(), edits_.end(),
                     [](const edit& a, const edit& b) { return a.begin < b.begin; });
    std::size_t size = s.size();
    for (const edit& e : edits_) size += e.text.size();
    std::string out;
    out.reserve(size);
    std::size_t from = 0;
    for (const edit& e : edits_) {
      if (e.begin < from) continue;  // overlapping: cannot happen for spans found by one walk
      out.append(s.substr(from, e.begin - from));
      out.append(e.text);
      from = e.end;
    }
    out.append(s.substr(from));
    return out;
  }

 private:
  struct edit {
    std::size_t begin, end;
    std::string text;
  };
  struct insertion {
    std::size_t object;  ///< offset of the object's '{'
    bool into_empty;
    std::string members;
  };
  const scanner& d_;
  std::vector<edit> edits_;
  std::vector<insertion> inserts_;
};

// --- requests ---

/// Appends the span of the string at `i` to `out` (other values are skipped).
bool string_value(const scanner& d, std::size_t& i, std::vector<span>& out) {
  span v;
  if (!d.take(i, v)) return false;
  if (d.is_string(v)) out.push_back(v);
  return true;
}

/// `{"type":"text","text":...}`: the text values of a content part whose type is "text" (any
/// of its "type" members, as parsers differ on duplicates; "type" may follow "text").
bool text_part(const scanner& d, std::size_t& i, std::vector<span>& out) {
  const std::size_t mark = out.size();
  bool is_text = false;
  const bool ok = d.members(i, [&](std::string_view key, std::size_t& j) {
    if (key_is(key, "text")) return string_value(d, j, out);
    if (!key_is(key, "type")) return d.skip(j);
    span type;
    if (!d.take(j, type)) return false;
    is_text = is_text || d.string_is(type, "text");
    return true;
  });
  if (!is_text) out.resize(mark);
  return ok;
}

/// `tool_calls[].function.arguments` strings.
bool tool_call_arguments(const scanner& d, std::size_t& i, std::vector<span>& out) {
  return d.elements(i, [&](std::size_t& j) {
    return d.members(j, [&](std::string_view key, std::size_t& k) {
      if (!key_is(key, "function")) return d.skip(k);
      return d.members(k, [&](std::string_view name, std::size_t& l) {
        return key_is(name, "arguments") ? string_value(d, l, out) : d.skip(l);
      });
    });
  });
}

bool chat_message(const scanner& d, std::size_t& i, std::vector<span>& out) {
  return d.members(i, [&](std::string_view key, std::size_t& j) {
    if (key_is(key, "content")) {
      if (d.at(j) == '"') return string_value(d, j, out);
      return d.elements(j, [&](std::size_t& k) { return text_part(d, k, out); });
    }
    if (key_is(key, "tool_calls")) return tool_call_arguments(d, j, out);
    return d.skip(j);
  });
}

/// The spans of the texts input_texts returns, in the same order.
std::vector<span> input_spans(endpoint kind, const scanner& d) {
  std::vector<span> out;
  const std::string_view field = kind == endpoint::chat_completions ? "messages"
                                 : kind == endpoint::completions    ? "prompt"
                                                                    : "input";
  std::size_t i = d.root();
  d.members(i, [&](std::string_view key, std::size_t& j) {
    if (!key_is(key, field)) return d.skip(j);
    if (kind == endpoint::chat_completions) {
      return d.elements(j, [&](std::size_t& k) { return chat_message(d, k, out); });
    }
    if (d.at(j) == '"') return string_value(d, j, out);
    return d.elements(j, [&](std::size_t& k) { return string_value(d, k, out); });
  });
  return out;
}

// --- answers and chunks ---

/// A text field's values within one object: the strings, and a null if there was one.
struct text_values {
  std::vector<span> strings;  ///< several only if the key is duplicated
  span null;

  bool add(const scanner& d, std::size_t& i) {
    span v;
    if (!d.take(i, v)) return false;
    if (d.is_string(v)) {
      strings.push_back(v);
    } else if (d.is_null(v) && null.empty()) {
      null = v;
    }
    return true;
  }
};

/// Where one choice's text is. For chat the text lives in the holder object ("message" in
/// answers, "delta" in chunks) under "content", for text completions in the choice under "text".
struct choice_spans {
  std::size_t choice = 0;   ///< offset of the choice object's '{'
  bool is_object = false;   ///< false: the element is not an object and is left alone
  uint32_t index = 0;       ///< "index", else the array position
  bool chat = true;         ///< chat shape (else text completion)
  std::size_t holder = 0;   ///< offset of the first holder object
  bool has_holder = false;  ///< a holder object was seen
  text_values content;      ///< the holders' "content" values
  text_values text;         ///< the choice's "text" values
  bool has_text_key = false;
  std::vector<span> finishes;  ///< finish_reason values

  const text_values& values() const { return chat ? content : text; }
};

/// Reads a choice index: a plain non-negative integer that fits uint32_t.
bool read_index(std::string_view v, uint32_t& out) {
  if (v.empty() || v.size() > 10) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > UINT32_MAX) return false;
  out = static_cast<uint32_t>(n);
  return true;
}

bool read_choice(const scanner& d, std::size_t& i, std::string_view holder_key, choice_spans& c) {
  c.is_object = d.at(i) == '{';
  c.choice = i;
  return d.members(i, [&](std::string_view key, std::size_t& j) {
    if (key_is(key, holder_key)) {
      if (d.at(j) != '{') return d.skip(j);
      if (!c.has_holder) c.holder = j;
      c.has_holder = true;
      return d.members(j, [&](std::string_view k, std::size_t& l) {
        return key_is(k, "content") ? c.content.add(d, l) : d.skip(l);
      });
    }
    if (key_is(key, "text")) {
      c.has_text_key = true;
      return c.text.add(d, j);
    }
    span v;
    if (!d.take(j, v)) return false;
    if (key_is(key, "index")) {
      read_index(d.text(v), c.index);
    } else if (key_is(key, "finish_reason")) {
      c.finishes.push_back(v);
    }
    return true;
  });
}

/// Every choice of a chat.completion(.chunk) or text_completion, holders named `holder_key`.
/// The kind comes from "object" (which may follow "choices"), else from each choice's shape.
std::vector<choice_spans> find_choices(const scanner& d, std::string_view holder_key) {
  enum class shape : uint8_t { unknown, chat, text };
  shape declared = shape::unknown;
  std::vector<choice_spans> out;
  std::size_t i = d.root();
  d.members(i, [&](std::string_view key, std::size_t& j) {
    if (key_is(key, "choices")) {
      return d.elements(j, [&](std::size_t& k) {
        choice_spans& c = out.emplace_back();
        c.index = static_cast<uint32_t>(out.size() - 1);
        return read_choice(d, k, holder_key, c);
      });
    }
    if (!key_is(key, "object") || declared != shape::unknown) return d.skip(j);
    span v;
    if (!d.take(j, v)) return false;
    if (d.string_is(v, "chat.completion") || d.string_is(v, "chat.completion.chunk")) {
      declared = shape::chat;
    } else if (d.string_is(v, "text_completion")) {
      declared = shape::text;
    }
    return true;
  });
  for (choice_spans& c : out) {
    c.chat = declared == shape::chat ||
             (declared == shape::unknown && (c.has_holder || !c.has_text_key));
  }
  return out;
}

std::string choice_text(const scanner& d, const choice_spans& c) {
  const std::vector<span>& strings = c.values().strings;
  if (strings.size() == 1) return d.decode(strings.front());
  std::string out;
  for (span t : strings) append_decoded(out, d.raw(t));
  return out;
}

/// Sets choice `c`'s text to `text`: the first string value replaced, duplicates emptied; a
/// null value or a missing field is set only for a non-empty text. A missing chat holder is
/// created as `"holder_key":{<holder_prefix>"content":text}`.
void set_choice_text(const scanner& d, editor& ed, const choice_spans& c, std::string_view text,
                     std::string_view holder_key, std::string_view holder_prefix) {
  if (!c.is_object) return;
  const text_values& v = c.values();
  if (!v.strings.empty()) {
    if (v.strings.size() == 1 && d.decode(v.strings.front()) == text) return;
    ed.replace(v.strings.front(), literal(text));
    for (std::size_t k = 1; k < v.strings.size(); ++k) ed.replace(v.strings[k], "\"\"");
    return;
  }
  if (text.empty()) return;
  if (!v.null.empty()) {
    ed.replace(v.null, literal(text));
  } else if (!c.chat) {
    ed.insert(c.choice, "text", literal(text));
  } else if (c.has_holder) {
    ed.insert(c.holder, "content", literal(text));
  } else {
    std::string holder = "{";
    holder += holder_prefix;
    holder += "\"content\":";
    json_text::append_string(holder, text);
    holder += '}';
    ed.insert(c.choice, holder_key, holder);
  }
}

/// `v` if it is a JSON integer of Unix seconds (digits only, no leading zero), else "0".
std::string_view unix_seconds(std::string_view v) {
  const bool ok = !v.empty() && v.size() <= 12 &&
                  v.find_first_not_of("0123456789") == std::string_view::npos &&
                  (v.size() == 1 || v[0] != '0');
  return ok ? v : std::string_view("0");
}

/// A top-level string member of a chunk as a literal, re-encoded (so always valid JSON).
std::string string_literal(const scanner& d, span v) {
  return d.is_string(v) ? literal(d.decode(v)) : std::string("\"\"");
}

}  // namespace

std::vector<std::string> input_texts(endpoint kind, std::string_view body) {
  const scanner d(body);
  const std::vector<span> spans = input_spans(kind, d);
  std::vector<std::string> out;
  out.reserve(spans.size());
  for (span s : spans) out.push_back(d.decode(s));
  return out;
}

std::string with_input_texts(endpoint kind, std::string_view body,
                             const std::vector<std::string>& texts) {
  const scanner d(body);
  const std::vector<span> spans = input_spans(kind, d);
  if (spans.size() != texts.size()) return std::string(body);
  editor ed(d);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    if (d.decode(spans[i]) != texts[i]) ed.replace(spans[i], literal(texts[i]));
  }
  if (ed.empty()) return std::string(body);
  return ed.apply(body);
}

std::vector<std::string> answer_texts(std::string_view body) {
  const scanner d(body);
  const std::vector<choice_spans> choices = find_choices(d, "message");
  std::vector<std::string> out;
  out.reserve(choices.size());
  for (const choice_spans& c : choices) out.push_back(choice_text(d, c));
  return out;
}

std::string with_answer_texts(std::string_view body, const std::vector<std::string>& texts,
                              std::string_view finish_reason) {
  const scanner d(body);
  const std::vector<choice_spans> choices = find_choices(d, "message");
  if (choices.size() != texts.size()) return std::string(body);
  editor ed(d);
  const std::string reason = literal(finish_reason);
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const choice_spans& c = choices[i];
    set_choice_text(d, ed, c, texts[i], "message", "\"role\":\"assistant\",");
    if (finish_reason.empty() || !c.is_object) continue;
    for (span f : c.finishes) {
      if (d.text(f) != reason) ed.replace(f, reason);
    }
    if (c.finishes.empty()) ed.insert(c.choice, "finish_reason", reason);
  }
  if (ed.empty()) return std::string(body);
  return ed.apply(body);
}

std::vector<delta_piece> delta_texts(std::string_view event) {
  const scanner d(event);
  std::vector<delta_piece> out;
  for (const choice_spans& c : find_choices(d, "delta")) {
    std::string text = choice_text(d, c);
    if (!text.empty()) out.push_back({c.index, std::move(text)});
  }
  return out;
}

std::string with_delta_texts(std::string_view event, const std::vector<delta_piece>& pieces) {
  if (pieces.empty()) return std::string(event);
  const scanner d(event);
  const std::vector<choice_spans> choices = find_choices(d, "delta");
  editor ed(d);
  std::vector<uint32_t> done;  // indexes already given their text
  for (const choice_spans& c : choices) {
    bool named = false;
    std::string text;
    for (const delta_piece& p : pieces) {
      if (p.index != c.index) continue;
      named = true;
      text += p.text;
    }
    if (!named) continue;
    // A later choice with an index already served (a malformed chunk) gets no text twice.
    if (std::find(done.begin(), done.end(), c.index) != done.end()) text.clear();
    done.push_back(c.index);
    set_choice_text(d, ed, c, text, "delta", "");
  }
  if (ed.empty()) return std::string(event);
  return ed.apply(event);
}

std::string content_filter_chunk(std::string_view last_event, uint32_t choices) {
  const scanner d(last_event);
  span id, object, created, model, fingerprint;
  std::size_t i = d.root();
  d.members(i, [&](std::string_view key, std::size_t& j) {
    span v;
    if (!d.take(j, v)) return false;
    auto first = [&v](span& into) {
      if (into.empty()) into = v;
    };
    if (key_is(key, "id")) {
      first(id);
    } else if (key_is(key, "object")) {
      first(object);
    } else if (key_is(key, "created")) {
      first(created);
    } else if (key_is(key, "model")) {
      first(model);
    } else if (key_is(key, "system_fingerprint")) {
      first(fingerprint);
    }
    return true;
  });
  const bool text = d.string_is(object, "text_completion");
  std::string out = "{\"id\":";
  out += string_literal(d, id);
  out += ",\"object\":";
  out += text ? "\"text_completion\"" : "\"chat.completion.chunk\"";
  out += ",\"created\":";
  out += unix_seconds(d.text(created));
  out += ",\"model\":";
  out += string_literal(d, model);
  if (d.is_string(fingerprint)) {
    out += ",\"system_fingerprint\":";
    out += string_literal(d, fingerprint);
  } else if (d.is_null(fingerprint)) {
    out += ",\"system_fingerprint\":null";
  }
  out += ",\"choices\":[";
  const uint32_t n = std::min(choices, max_filter_choices);
  for (uint32_t k = 0; k < n; ++k) {
    if (k) out += ',';
    out += "{\"index\":";
    out += std::to_string(k);
    out += text ? ",\"text\":\"\"" : ",\"delta\":{}";
    out += ",\"finish_reason\":\"content_filter\"}";
  }
  out += "]}";
  return out;
}

std::string with_top_field(std::string_view json_object, std::string_view name,
                           std::string_view string_value) {
  std::size_t i = 0;
  skip_ws(json_object, i);
  if (i >= json_object.size() || json_object[i] != '{') return std::string(json_object);
  std::size_t next = i + 1;
  skip_ws(json_object, next);
  if (next >= json_object.size()) return std::string(json_object);
  const bool empty = json_object[next] == '}';
  std::string out;
  out.reserve(json_object.size() + name.size() + string_value.size() + 8);
  out.append(json_object.substr(0, i + 1));
  json_text::append_string(out, name);
  out += ':';
  json_text::append_string(out, string_value);
  if (!empty) out += ',';
  out.append(json_object.substr(i + 1));
  return out;
}

}  // namespace tc::openai
