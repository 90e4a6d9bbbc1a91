// Stream <-> non-stream conversion of one answer, and the include_usage body surgery.
//
// Parsing: every input (upstream chunks, stored responses) is parsed with RapidJSON,
// iteratively and at most max_depth deep (the values are later written back recursively), in
// situ on a per-thread scratch copy. Output JSON is written by hand: strings are escaped here
// and any invalid UTF-8 byte becomes \ufffd, so what a client receives always parses.
//
// Assembly rules (stream -> non-stream):
// - id, created, model, system_fingerprint, service_tier: the first non-null value seen; other
//   top-level chunk fields (e.g. OpenAI's "obfuscation" padding) are dropped.
// - choices by index; delta.content / refusal / reasoning_content / reasoning concatenated.
// - content is null if no content string was seen, or if the concatenation is empty and the
//   choice has tool calls, a function call or a refusal (OpenAI's role chunk carries
//   "content":"" even for tool-call answers, whose non-stream content is null).
// - tool_calls by their index: the first id, type and function.name seen win, arguments are
//   concatenated; type defaults to "function".
// - logprobs: each array member (content, refusal; tokens, token_logprobs, ... for text
//   completions) concatenated across chunks; null if no chunk carried logprobs.
// - usage: the last usage object seen, verbatim; "usage":null is ignored.
// - other delta and choice fields are kept (last non-null value wins).
//
// Synthesis (non-stream -> stream) is the inverse: the role chunk carries role, content ""
// (or null when the message content is null) and the message's null text fields and other
// fields; content is cut into pieces at UTF-8 boundaries, or one piece per logprobs token
// when the tokens spell the content exactly; one chunk per tool call; the finish chunk
// carries the choice's other fields. Choices are interleaved chunk by chunk.
#include "protocol/openai/stream.hpp"
#include "protocol/openai/json_text.hpp"

#include "protocol/openai/json_document.hpp"
#include "protocol/openai/json_scan.hpp"

#include <rapidjson/document.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

namespace tc::openai {

namespace {

using json = rapidjson::Value;

constexpr unsigned max_depth = 64;           ///< chunks nest about 9 deep (top_logprobs)
constexpr std::size_t max_choices = 128;     ///< OpenAI's n limit
constexpr uint64_t max_index = 1023;         ///< choice and tool-call indexes
constexpr std::size_t max_tool_calls = 256;  ///< per choice
constexpr std::size_t max_fields = 32;       ///< kept unknown fields per object
constexpr std::size_t keep_capacity = 64 * 1024;

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

// --- parsing ---

struct parse_scratch {
  std::string text;
  rapidjson::Reader reader;  ///< kept: its stack is reused
};

parse_scratch& scratch() {
  thread_local parse_scratch s;
  return s;
}

/// Releases a large scratch buffer when the parse that used it is over. Declare it before the
/// document so that it runs after the document is gone.
struct scratch_release {
  ~scratch_release() {
    std::string& t = scratch().text;
    if (t.capacity() > keep_capacity) std::string().swap(t);
  }
};

/// Parses `text` into `doc`. Strings of `doc` point into the per-thread scratch copy, valid
/// until the next parse on this thread. False if not JSON, too deep, or holding a raw NUL.
bool parse_json(std::string_view text, rapidjson::Document& doc) {
  if (text.empty() || std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
  parse_scratch& s = scratch();
  s.text.assign(text);
  depth_limited_handler handler{doc, max_depth};
  bool ok = false;
  auto generate = [&](rapidjson::Document&) {
    rapidjson::InsituStringStream in(s.text.data());
    ok = !s.reader.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseInsituFlag>(in, handler)
              .IsError();
    return ok;
  };
  doc.Populate(generate);
  return ok;
}

// --- writing ---

bool is_cont(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

using json_text::append_string;

template <class Number>
void append_number(std::string& out, Number v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

using json_text::append_value;

std::string to_json(const json& v) {
  std::string out;
  append_value(out, v);
  return out;
}

/// The member `key` of object `obj`, or nullptr if absent.
const json* member(const json& obj, std::string_view key) {
  auto it = obj.FindMember(json(rapidjson::StringRef(key.data(), key.size())));
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

/// The member `key` of `obj` unless absent or null.
const json* non_null(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && !v->IsNull() ? v : nullptr;
}

// --- assembly state ---

/// Fields kept as compact JSON: a non-null value replaces, null only records the key.
struct field_list {
  struct field {
    std::string key;
    std::string value;
  };
  std::vector<field> items;

  /// `first`: a non-null value already kept is not replaced (chunk metadata repeats).
  void put(std::string_view key, const json& v, bool first = false) {
    for (field& f : items) {
      if (f.key == key) {
        if (!v.IsNull() && !(first && f.value != "null")) {
          f.value.clear();
          append_value(f.value, v);
        }
        return;
      }
    }
    if (items.size() < max_fields) items.push_back({std::string(key), to_json(v)});
  }
  const std::string* find(std::string_view key) const {
    for (const field& f : items) {
      if (f.key == key) return &f.value;
    }
    return nullptr;
  }
  /// Appends `,"key":value` for each field.
  void write(std::string& out) const {
    for (const field& f : items) {
      out += ',';
      append_string(out, f.key);
      out += ':';
      out += f.value;
    }
  }
};

/// A concatenated text field: its key may have been seen with only nulls.
struct text_field {
  std::string text;
  bool present = false;  ///< the key was seen
  bool string = false;   ///< a string value was seen

  bool add(const json& v) {
    if (v.IsString()) {
      text.append(v.GetString(), v.GetStringLength());
      present = string = true;
      return true;
    }
    present = true;
    return v.IsNull();
  }
  void write(std::string& out) const {
    if (string) {
      append_string(out, text);
    } else {
      out += "null";
    }
  }
};

struct tool_call {
  uint64_t index = 0;
  std::string id, type, name, arguments;
};

/// logprobs objects of one choice, array members concatenated.
struct logprobs_acc {
  struct part {
    std::string key;
    std::string items;  ///< array elements, comma-separated
    std::string other;  ///< last non-array value
    bool is_array = false;
  };
  bool present = false;
  std::vector<part> parts;

  bool add(const json& v) {
    if (v.IsNull()) return true;
    if (!v.IsObject()) return false;
    present = true;
    for (const auto& m : v.GetObject()) {
      const std::string_view key = str(m.name);
      part* p = nullptr;
      for (part& x : parts) {
        if (x.key == key) p = &x;
      }
      if (p == nullptr) {
        if (parts.size() >= max_fields) continue;
        p = &parts.emplace_back();
        p->key = key;
        p->other = "null";
      }
      if (m.value.IsArray()) {
        p->is_array = true;
        for (const auto& e : m.value.GetArray()) {
          if (!p->items.empty()) p->items += ',';
          append_value(p->items, e);
        }
      } else if (!m.value.IsNull()) {
        p->other.clear();
        append_value(p->other, m.value);
      }
    }
    return true;
  }
  void write(std::string& out) const {
    if (!present) {
      out += "null";
      return;
    }
    out += '{';
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i) out += ',';
      append_string(out, parts[i].key);
      out += ':';
      if (parts[i].is_array) {
        out += '[';
        out += parts[i].items;
        out += ']';
      } else {
        out += parts[i].other;
      }
    }
    out += '}';
  }
};

struct choice_acc {
  uint64_t index = 0;
  std::string role;
  text_field content;  ///< text of a text completion
  text_field reasoning_content, reasoning, refusal;
  std::vector<tool_call> tool_calls;
  bool function_call = false;
  std::string function_name, function_arguments;
  field_list message_fields, choice_fields;
  logprobs_acc logprobs;
  std::string finish_reason;
  bool finished = false;
};

enum class kind : uint8_t { unknown, chat, text };

/// A string field taken once: the first non-empty value wins.
bool take_first(std::string& into, const json& v) {
  if (v.IsString()) {
    if (into.empty()) into.assign(v.GetString(), v.GetStringLength());
    return true;
  }
  return v.IsNull();
}

bool valid_index(const json& v) {
  return v.IsUint64() && v.GetUint64() <= max_index;
}

}  // namespace

struct stream_assembler::state {
  kind declared = kind::unknown;  ///< from "object"
  kind inferred = kind::unknown;  ///< from the choices' shape
  field_list meta;                ///< id, created, model, system_fingerprint, service_tier
  std::string usage;              ///< compact JSON, empty if none yet
  std::vector<choice_acc> choices;
  bool filtered = false;

  bool consume(std::string_view data) {
    scratch_release release;
    stack_document parsed;
    rapidjson::Document& doc = parsed.doc;
    if (!parse_json(data, doc) || !doc.IsObject()) return false;
    for (const auto& m : doc.GetObject()) {
      const std::string_view key = str(m.name);
      const json& v = m.value;
      if (key == "choices") {
        if (v.IsNull()) continue;
        if (!v.IsArray()) return false;
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
          if (!add_choice(v[i], i)) return false;
        }
      } else if (key == "usage") {
        if (v.IsObject()) {
          usage.clear();
          append_value(usage, v);
        } else if (!v.IsNull()) {
          return false;
        }
      } else if (key == "error") {
        if (!v.IsNull()) return false;
      } else if (key == "object") {
        if (!v.IsString()) return false;
        kind k;
        if (str(v) == "chat.completion.chunk") {
          k = kind::chat;
        } else if (str(v) == "text_completion") {
          k = kind::text;
        } else {
          return false;
        }
        if (declared != kind::unknown && declared != k) return false;
        declared = k;
      } else if (key == "id" || key == "created" || key == "model" || key == "system_fingerprint" ||
                 key == "service_tier") {
        meta.put(key, v, true);
      }
    }
    return true;
  }

  choice_acc* find_choice(uint64_t index) {
    for (choice_acc& c : choices) {
      if (c.index == index) return &c;
    }
    if (choices.size() >= max_choices) return nullptr;
    choice_acc& c = choices.emplace_back();
    c.index = index;
    return &c;
  }

  bool add_choice(const json& c, uint64_t position) {
    if (!c.IsObject()) return false;
    uint64_t index = position;
    if (const json* i = non_null(c, "index")) {
      if (!valid_index(*i)) return false;
      index = i->GetUint64();
    }
    choice_acc* ch = find_choice(index);
    if (ch == nullptr) return false;
    for (const auto& m : c.GetObject()) {
      const std::string_view key = str(m.name);
      const json& v = m.value;
      if (key == "index") continue;
      if (key == "delta") {
        if (v.IsNull()) continue;
        if (!v.IsObject() || !add_delta(*ch, v)) return false;
        if (inferred == kind::unknown) inferred = kind::chat;
      } else if (key == "text") {
        if (!ch->content.add(v)) return false;
        if (inferred == kind::unknown) inferred = kind::text;
      } else if (key == "logprobs") {
        if (!ch->logprobs.add(v)) return false;
      } else if (key == "finish_reason") {
        if (v.IsNull()) continue;
        if (!v.IsString()) return false;
        ch->finish_reason.assign(v.GetString(), v.GetStringLength());
        ch->finished = true;
        if (str(v) == "length" || str(v) == "content_filter") filtered = true;
      } else {
        ch->choice_fields.put(key, v);
      }
    }
    return true;
  }

  static bool add_delta(choice_acc& ch, const json& delta) {
    for (const auto& m : delta.GetObject()) {
      const std::string_view key = str(m.name);
      const json& v = m.value;
      if (key == "content") {
        if (!ch.content.add(v)) return false;
      } else if (key == "role") {
        if (!take_first(ch.role, v)) return false;
      } else if (key == "tool_calls") {
        if (v.IsNull()) continue;
        if (!v.IsArray()) return false;
        for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
          if (!add_tool_call(ch, v[i], i)) return false;
        }
      } else if (key == "refusal") {
        if (!ch.refusal.add(v)) return false;
      } else if (key == "reasoning_content") {
        if (!ch.reasoning_content.add(v)) return false;
      } else if (key == "reasoning") {
        if (!ch.reasoning.add(v)) return false;
      } else if (key == "function_call") {
        if (v.IsNull()) continue;
        if (!v.IsObject()) return false;
        ch.function_call = true;
        if (const json* name = member(v, "name"); name && !take_first(ch.function_name, *name)) {
          return false;
        }
        if (const json* args = non_null(v, "arguments")) {
          if (!args->IsString()) return false;
          ch.function_arguments.append(args->GetString(), args->GetStringLength());
        }
      } else {
        ch.message_fields.put(key, v);
      }
    }
    return true;
  }

  static bool add_tool_call(choice_acc& ch, const json& t, uint64_t position) {
    if (!t.IsObject()) return false;
    uint64_t index = position;
    if (const json* i = non_null(t, "index")) {
      if (!valid_index(*i)) return false;
      index = i->GetUint64();
    }
    tool_call* call = nullptr;
    for (tool_call& c : ch.tool_calls) {
      if (c.index == index) call = &c;
    }
    if (call == nullptr) {
      if (ch.tool_calls.size() >= max_tool_calls) return false;
      call = &ch.tool_calls.emplace_back();
      call->index = index;
    }
    if (const json* id = member(t, "id"); id && !take_first(call->id, *id)) return false;
    if (const json* type = member(t, "type"); type && !take_first(call->type, *type)) {
      return false;
    }
    const json* fn = non_null(t, "function");
    if (fn == nullptr) return true;
    if (!fn->IsObject()) return false;
    if (const json* name = member(*fn, "name"); name && !take_first(call->name, *name)) {
      return false;
    }
    if (const json* args = non_null(*fn, "arguments")) {
      if (!args->IsString()) return false;
      call->arguments.append(args->GetString(), args->GetStringLength());
    }
    return true;
  }

  bool is_text() const {
    return declared == kind::text || (declared == kind::unknown && inferred == kind::text);
  }

  void write_meta(std::string& out, std::string_view key, std::string_view fallback) const {
    out += ",\"";
    out += key;
    out += "\":";
    const std::string* v = meta.find(key);
    out += v != nullptr ? std::string_view(*v) : fallback;
  }

  static void write_chat_choice(std::string& out, const choice_acc& c) {
    out += "{\"index\":";
    append_number(out, c.index);
    out += ",\"message\":{\"role\":";
    append_string(out, c.role.empty() ? std::string_view("assistant") : c.role);
    out += ",\"content\":";
    const bool other_answer = !c.tool_calls.empty() || c.function_call || c.refusal.string;
    if (c.content.string && (!c.content.text.empty() || !other_answer)) {
      append_string(out, c.content.text);
    } else {
      out += "null";
    }
    auto optional_text = [&out](std::string_view key, const text_field& f) {
      if (!f.present) return;
      out += ",\"";
      out += key;
      out += "\":";
      f.write(out);
    };
    optional_text("reasoning_content", c.reasoning_content);
    optional_text("reasoning", c.reasoning);
    optional_text("refusal", c.refusal);
    if (!c.tool_calls.empty()) {
      std::vector<const tool_call*> calls;
      calls.reserve(c.tool_calls.size());
      for (const tool_call& t : c.tool_calls) calls.push_back(&t);
      std::sort(calls.begin(), calls.end(),
                [](const tool_call* a, const tool_call* b) { return a->index < b->index; });
      out += ",\"tool_calls\":[";
      for (std::size_t i = 0; i < calls.size(); ++i) {
        if (i) out += ',';
        out += "{\"id\":";
        append_string(out, calls[i]->id);
        out += ",\"type\":";
        append_string(out, calls[i]->type.empty() ? std::string_view("function") : calls[i]->type);
        out += ",\"function\":{\"name\":";
        append_string(out, calls[i]->name);
        out += ",\"arguments\":";
        append_string(out, calls[i]->arguments);
        out += "}}";
      }
      out += ']';
    }
    if (c.function_call) {
      out += ",\"function_call\":{\"name\":";
      append_string(out, c.function_name);
      out += ",\"arguments\":";
      append_string(out, c.function_arguments);
      out += '}';
    }
    c.message_fields.write(out);
    out += "},\"logprobs\":";
    c.logprobs.write(out);
    write_finish(out, c);
  }

  static void write_text_choice(std::string& out, const choice_acc& c) {
    out += "{\"text\":";
    append_string(out, c.content.text);
    out += ",\"index\":";
    append_number(out, c.index);
    out += ",\"logprobs\":";
    c.logprobs.write(out);
    write_finish(out, c);
  }

  static void write_finish(std::string& out, const choice_acc& c) {
    out += ",\"finish_reason\":";
    if (c.finished) {
      append_string(out, c.finish_reason);
    } else {
      out += "null";
    }
    c.choice_fields.write(out);
    out += '}';
  }

  std::string result() const {
    std::vector<const choice_acc*> sorted;
    sorted.reserve(choices.size());
    std::size_t size = 256 + usage.size();
    for (const choice_acc& c : choices) {
      sorted.push_back(&c);
      size += 160 + c.content.text.size() + c.refusal.text.size() +
              c.reasoning_content.text.size() + c.reasoning.text.size();
      for (const auto& p : c.logprobs.parts) size += p.items.size();
      for (const tool_call& t : c.tool_calls) size += 64 + t.arguments.size();
    }
    std::sort(sorted.begin(), sorted.end(),
              [](const choice_acc* a, const choice_acc* b) { return a->index < b->index; });
    const bool text = is_text();
    std::string out;
    out.reserve(size + size / 8);
    out += '{';
    out += "\"id\":";
    const std::string* id = meta.find("id");
    out += id != nullptr ? std::string_view(*id) : std::string_view("\"\"");
    out += text ? ",\"object\":\"text_completion\"" : ",\"object\":\"chat.completion\"";
    write_meta(out, "created", "0");
    write_meta(out, "model", "\"\"");
    out += ",\"choices\":[";
    for (std::size_t i = 0; i < sorted.size(); ++i) {
      if (i) out += ',';
      if (text) {
        write_text_choice(out, *sorted[i]);
      } else {
        write_chat_choice(out, *sorted[i]);
      }
    }
    out += ']';
    if (!usage.empty()) {
      out += ",\"usage\":";
      out += usage;
    }
    if (meta.find("service_tier") != nullptr) write_meta(out, "service_tier", "null");
    if (meta.find("system_fingerprint") != nullptr) write_meta(out, "system_fingerprint", "null");
    out += '}';
    return out;
  }
};

stream_assembler::stream_assembler() : st_(new state) {}

stream_assembler::~stream_assembler() {
  delete st_;
}

stream_assembler::stream_assembler(stream_assembler&& other) noexcept
    : st_(std::exchange(other.st_, nullptr)), failed_(other.failed_) {}

stream_assembler& stream_assembler::operator=(stream_assembler&& other) noexcept {
  if (this != &other) {
    delete st_;
    st_ = std::exchange(other.st_, nullptr);
    failed_ = other.failed_;
  }
  return *this;
}

bool stream_assembler::feed(std::string_view data) {
  if (failed_) return false;
  if (st_ == nullptr) st_ = new state;  // moved from: starts over
  if (!st_->consume(data)) failed_ = true;
  return !failed_;
}

bool stream_assembler::complete() const {
  if (st_ == nullptr || failed_ || st_->usage.empty() || st_->choices.empty()) return false;
  return std::all_of(st_->choices.begin(), st_->choices.end(),
                     [](const choice_acc& c) { return c.finished; });
}

bool stream_assembler::filtered_or_truncated() const {
  return st_ != nullptr && st_->filtered;
}

std::string stream_assembler::result() const {
  if (st_ == nullptr || failed_) return {};
  return st_->result();
}

// --- synthesis ---

namespace {

/// The end of the piece of `s` that starts at `from`: at most `max` bytes, at a UTF-8 code
/// point boundary; a single code point longer than `max` is one piece.
std::size_t piece_end(std::string_view s, std::size_t from, std::size_t max) {
  if (s.size() - from <= max) return s.size();
  const auto at = [&s](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  std::size_t e = from + max;
  for (int k = 0; k < 3 && e > from && is_cont(at(e)); ++k) --e;
  if (e > from && !is_cont(at(e))) return e;
  if (e > from) return from + max;  // not UTF-8 here: any cut will do
  e = from + 1;
  for (int k = 0; k < 3 && e < s.size() && is_cont(at(e)); ++k) ++e;
  return e;
}

/// The chunks of one choice, each a complete choice object, in order.
struct choice_chunks {
  std::string buf;
  std::vector<std::size_t> ends;
  std::string index;  ///< the choice's index as JSON

  void end_chunk() { ends.push_back(buf.size()); }
  std::string_view chunk(std::size_t i) const {
    const std::size_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(buf).substr(begin, ends[i] - begin);
  }
};

/// The member of a logprobs object that lists one entry per token.
std::string_view token_list_key(bool chat) {
  return chat ? "content" : "tokens";
}

/// True if the logprobs' tokens spell `text` exactly, each token is at most `max` bytes and
/// ends at a UTF-8 boundary, and every array member has one entry per token: the content
/// can then go out one token per chunk, each with its own logprobs entry.
bool per_token(const json& logprobs, std::string_view text, bool chat, std::size_t max) {
  const json* list = member(logprobs, token_list_key(chat));
  if (list == nullptr || !list->IsArray() || list->Empty()) return false;
  const rapidjson::SizeType n = list->Size();
  for (const auto& m : logprobs.GetObject()) {
    if (m.value.IsArray() && m.value.Size() != n) return false;
  }
  std::size_t pos = 0;
  for (const auto& e : list->GetArray()) {
    const json* token = chat ? (e.IsObject() ? member(e, "token") : nullptr) : &e;
    if (token == nullptr || !token->IsString()) return false;
    const std::string_view t = str(*token);
    if (t.size() > max || text.substr(pos, t.size()) != t) return false;
    pos += t.size();
    if (pos < text.size() && is_cont(static_cast<unsigned char>(text[pos]))) return false;
  }
  return pos == text.size();
}

/// The logprobs object with every array member cut down to its entry `i`.
void append_logprobs_entry(std::string& out, const json& logprobs, rapidjson::SizeType i) {
  out += '{';
  bool first = true;
  for (const auto& m : logprobs.GetObject()) {
    if (!first) out += ',';
    first = false;
    append_string(out, str(m.name));
    out += ':';
    if (m.value.IsArray()) {
      out += '[';
      append_value(out, m.value[i]);
      out += ']';
    } else {
      append_value(out, m.value);
    }
  }
  out += '}';
}

/// Emits the text of a content-like field: pieces or, if `logprobs` fits, one token per
/// chunk. `open(buf)` writes the choice up to the delta's value; `close(buf, logprobs)` the
/// rest. Fallback logprobs (whole) go on the first piece; returns whether they did.
template <class Open, class Close>
bool emit_text(choice_chunks& cc, std::string_view text, const json* logprobs, bool chat,
               std::size_t max, const Open& open, const Close& close) {
  if (logprobs != nullptr && per_token(*logprobs, text, chat, max)) {
    const json& list = *member(*logprobs, token_list_key(chat));
    std::size_t pos = 0;
    std::string lp;
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const json& token = chat ? *member(list[i], "token") : list[i];
      open(cc.buf);
      append_string(cc.buf, text.substr(pos, token.GetStringLength()));
      pos += token.GetStringLength();
      lp.clear();
      append_logprobs_entry(lp, *logprobs, i);
      close(cc.buf, std::string_view(lp));
      cc.end_chunk();
    }
    return true;
  }
  bool attached = false;
  for (std::size_t from = 0; from < text.size();) {
    const std::size_t end = piece_end(text, from, max);
    open(cc.buf);
    append_string(cc.buf, text.substr(from, end - from));
    std::string lp = "null";
    if (logprobs != nullptr && !attached) lp = to_json(*logprobs);
    attached = attached || logprobs != nullptr;
    close(cc.buf, std::string_view(lp));
    cc.end_chunk();
    from = end;
  }
  return attached;
}

/// The chunks of a chat.completion choice; false if it is not one.
bool chat_choice(const json& choice, choice_chunks& cc, std::size_t max) {
  const json* message = member(choice, "message");
  if (message == nullptr || !message->IsObject()) return false;
  const json* content = non_null(*message, "content");
  if (content != nullptr && !content->IsString()) return false;
  const json* logprobs = non_null(choice, "logprobs");
  if (logprobs != nullptr && !logprobs->IsObject()) return false;
  const json* finish = member(choice, "finish_reason");

  auto open_delta = [&cc](std::string& b) {
    b += "{\"index\":";
    b += cc.index;
    b += ",\"delta\":{";
  };
  auto close_chunk = [](std::string& b, std::string_view lp) {
    b += "},\"logprobs\":";
    b += lp;
    b += ",\"finish_reason\":null}";
  };
  constexpr std::string_view text_keys[] = {"reasoning_content", "reasoning", "refusal"};
  auto is_text_key = [&](std::string_view k) {
    return std::find(std::begin(text_keys), std::end(text_keys), k) != std::end(text_keys);
  };

  // The role chunk: role, content "" or null, null text fields, the message's other fields.
  std::string& b = cc.buf;
  open_delta(b);
  b += "\"role\":";
  const json* role = non_null(*message, "role");
  if (role != nullptr && role->IsString()) {
    append_value(b, *role);
  } else {
    b += "\"assistant\"";
  }
  b += content != nullptr ? ",\"content\":\"\"" : ",\"content\":null";
  for (const auto& m : message->GetObject()) {
    const std::string_view key = str(m.name);
    if (key == "role" || key == "content" || key == "tool_calls" || key == "function_call") {
      continue;
    }
    if (is_text_key(key)) {
      if (m.value.IsString()) continue;  // sent in pieces below
      if (!m.value.IsNull()) return false;
    }
    b += ',';
    append_string(b, key);
    b += ':';
    append_value(b, m.value);
  }
  const bool role_logprobs =
      logprobs != nullptr && (content == nullptr || content->GetStringLength() == 0);
  close_chunk(b, role_logprobs ? std::string_view(to_json(*logprobs)) : "null");
  cc.end_chunk();

  auto text_pieces = [&](std::string_view key) {
    const std::string field = "\"" + std::string(key) + "\":";
    auto open = [&](std::string& out) {
      open_delta(out);
      out += field;
    };
    const json* v = member(*message, key);
    if (v == nullptr || !v->IsString()) return;
    if (v->GetStringLength() == 0) {  // keeps the key: one empty piece
      open(b);
      b += "\"\"";
      close_chunk(b, "null");
      cc.end_chunk();
      return;
    }
    emit_text(cc, str(*v), nullptr, true, max, open, close_chunk);
  };
  text_pieces("reasoning_content");
  text_pieces("reasoning");
  if (content != nullptr && content->GetStringLength() != 0) {
    auto open = [&](std::string& out) {
      open_delta(out);
      out += "\"content\":";
    };
    emit_text(cc, str(*content), logprobs, true, max, open, close_chunk);
  }
  text_pieces("refusal");

  if (const json* calls = non_null(*message, "tool_calls")) {
    if (!calls->IsArray()) return false;
    for (rapidjson::SizeType i = 0; i < calls->Size(); ++i) {
      const json& t = (*calls)[i];
      if (!t.IsObject()) return false;
      const json* fn = non_null(t, "function");
      if (fn != nullptr && !fn->IsObject()) return false;
      open_delta(b);
      b += "\"tool_calls\":[{\"index\":";
      append_number(b, i);
      for (const auto& m : t.GetObject()) {
        if (str(m.name) == "index") continue;
        b += ',';
        append_string(b, str(m.name));
        b += ':';
        append_value(b, m.value);
      }
      b += "}]";
      close_chunk(b, "null");
      cc.end_chunk();
    }
  }
  if (const json* fc = non_null(*message, "function_call")) {
    if (!fc->IsObject()) return false;
    open_delta(b);
    b += "\"function_call\":";
    append_value(b, *fc);
    close_chunk(b, "null");
    cc.end_chunk();
  }

  // The finish chunk, with the choice's other fields.
  open_delta(b);
  b += "},\"logprobs\":null,\"finish_reason\":";
  if (finish != nullptr) {
    append_value(b, *finish);
  } else {
    b += "null";
  }
  for (const auto& m : choice.GetObject()) {
    const std::string_view key = str(m.name);
    if (key == "index" || key == "message" || key == "logprobs" || key == "finish_reason") {
      continue;
    }
    b += ',';
    append_string(b, key);
    b += ':';
    append_value(b, m.value);
  }
  b += '}';
  cc.end_chunk();
  return true;
}

/// The chunks of a text_completion choice; false if it is not one.
bool text_choice(const json& choice, choice_chunks& cc, std::size_t max) {
  const json* text = non_null(choice, "text");
  if (text != nullptr && !text->IsString()) return false;
  const json* logprobs = non_null(choice, "logprobs");
  if (logprobs != nullptr && !logprobs->IsObject()) return false;
  const json* finish = member(choice, "finish_reason");
  const std::string_view t = text != nullptr ? str(*text) : std::string_view();

  auto open = [](std::string& b) { b += "{\"text\":"; };
  auto close = [&cc](std::string& b, std::string_view lp) {
    b += ",\"index\":";
    b += cc.index;
    b += ",\"logprobs\":";
    b += lp;
    b += ",\"finish_reason\":null}";
  };
  const bool attached = emit_text(cc, t, logprobs, false, max, open, close);

  std::string& b = cc.buf;
  b += "{\"text\":\"\",\"index\":";
  b += cc.index;
  b += ",\"logprobs\":";
  if (logprobs != nullptr && !attached) {
    append_value(b, *logprobs);
  } else {
    b += "null";
  }
  b += ",\"finish_reason\":";
  if (finish != nullptr) {
    append_value(b, *finish);
  } else {
    b += "null";
  }
  for (const auto& m : choice.GetObject()) {
    const std::string_view key = str(m.name);
    if (key == "index" || key == "text" || key == "logprobs" || key == "finish_reason") continue;
    b += ',';
    append_string(b, key);
    b += ':';
    append_value(b, m.value);
  }
  b += '}';
  cc.end_chunk();
  return true;
}

}  // namespace

std::string synthesize_stream(std::string_view response, bool include_usage, uint32_t piece_chars) {
  scratch_release release;
  stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  if (!parse_json(response, doc) || !doc.IsObject()) return {};
  if (non_null(doc, "error") != nullptr) return {};
  const json* choices = member(doc, "choices");
  if (choices == nullptr || !choices->IsArray()) return {};
  bool chat;
  if (const json* object = non_null(doc, "object")) {
    if (!object->IsString()) return {};
    if (str(*object) == "chat.completion") {
      chat = true;
    } else if (str(*object) == "text_completion") {
      chat = false;
    } else {
      return {};
    }
  } else {
    chat = choices->Empty() || !choices->Begin()->IsObject() ||
           member(*choices->Begin(), "text") == nullptr;
  }
  const std::size_t max = std::max<uint32_t>(piece_chars, 1);

  std::vector<choice_chunks> per_choice(choices->Size());
  for (rapidjson::SizeType i = 0; i < choices->Size(); ++i) {
    const json& c = (*choices)[i];
    if (!c.IsObject()) return {};
    choice_chunks& cc = per_choice[i];
    const json* index = non_null(c, "index");
    if (index != nullptr && !index->IsUint64()) return {};
    if (index != nullptr) {
      append_value(cc.index, *index);
    } else {
      append_number(cc.index, i);
    }
    if (!(chat ? chat_choice(c, cc, max) : text_choice(c, cc, max))) return {};
  }

  std::string head = "data: {\"id\":";
  auto meta = [&](std::string_view key, std::string_view fallback) {
    const json* v = member(doc, key);
    if (v != nullptr) {
      append_value(head, *v);
    } else {
      head += fallback;
    }
  };
  meta("id", "\"\"");
  head += chat ? ",\"object\":\"chat.completion.chunk\",\"created\":"
               : ",\"object\":\"text_completion\",\"created\":";
  meta("created", "0");
  head += ",\"model\":";
  meta("model", "\"\"");
  for (std::string_view key : {"service_tier", "system_fingerprint"}) {
    if (const json* v = member(doc, key)) {
      head += ",\"";
      head += key;
      head += "\":";
      append_value(head, *v);
    }
  }
  head += ",\"choices\":[";
  const std::string_view tail = include_usage ? "],\"usage\":null}\n\n" : "]}\n\n";

  std::size_t total = 0, rounds = 0, bytes = 0;
  for (const choice_chunks& cc : per_choice) {
    total += cc.ends.size();
    rounds = std::max(rounds, cc.ends.size());
    bytes += cc.buf.size();
  }
  std::string out;
  out.reserve(bytes + (total + 2) * (head.size() + tail.size()) + 256);
  // Round robin: chunk k of every choice, then chunk k + 1, as n > 1 streams interleave.
  for (std::size_t k = 0; k < rounds; ++k) {
    for (const choice_chunks& cc : per_choice) {
      if (k >= cc.ends.size()) continue;
      out += head;
      out += cc.chunk(k);
      out += tail;
    }
  }
  if (include_usage) {
    if (const json* usage = non_null(doc, "usage"); usage != nullptr && usage->IsObject()) {
      out += head;
      out += "],\"usage\":";
      append_value(out, *usage);
      out += "}\n\n";
    }
  }
  out += "data: [DONE]\n\n";
  return out;
}

// --- include_usage surgery ---

namespace {

using json_scan::is_ws;
using json_scan::skip_string;
using json_scan::skip_value;
using json_scan::skip_ws;

/// True if the JSON string literal `raw` (without quotes) decodes to the ASCII `want`.
bool key_equals(std::string_view raw, std::string_view want) {
  std::size_t k = 0;
  for (std::size_t i = 0; i < raw.size(); ++i, ++k) {
    char c = raw[i];
    if (c == '\\') {
      if (++i >= raw.size()) return false;
      switch (raw[i]) {
        case 'u': {
          uint32_t cp = 0;
          if (!json_scan::hex4(raw, i + 1, cp)) return false;
          if (cp >= 0x80) return false;  // `want` is ASCII
          c = static_cast<char>(cp);
          i += 4;
          break;
        }
        case '"':
        case '\\':
        case '/':
          c = raw[i];
          break;
        default:
          return false;  // \b \f \n \r \t: not in any key we look for
      }
    }
    if (k >= want.size() || want[k] != c) return false;
  }
  return k == want.size();
}

/// One member of an object being scanned: its key (raw) and value span.
struct member_span {
  std::string_view key;
  std::size_t value_begin, value_end;
};

/// Scans the object whose '{' is at `open`, calling on_member for each member. Returns the
/// end of the last value (or one past '{' if empty) in `last_end` and the index of the
/// closing '}' in `close`. False if malformed.
template <class OnMember>
bool scan_object(std::string_view s, std::size_t open, std::size_t& last_end, std::size_t& close,
                 const OnMember& on_member) {
  std::size_t i = open + 1;
  last_end = i;
  skip_ws(s, i);
  if (i < s.size() && s[i] == '}') {
    close = i;
    return true;
  }
  for (;;) {
    skip_ws(s, i);
    if (i >= s.size() || s[i] != '"') return false;
    const std::size_t key_begin = i;
    if (!skip_string(s, i)) return false;
    const std::string_view key = s.substr(key_begin + 1, i - key_begin - 2);
    skip_ws(s, i);
    if (i >= s.size() || s[i] != ':') return false;
    ++i;
    skip_ws(s, i);
    const std::size_t value_begin = i;
    if (!skip_value(s, i)) return false;
    if (!on_member(member_span{key, value_begin, i})) return false;
    last_end = i;
    skip_ws(s, i);
    if (i >= s.size()) return false;
    if (s[i] == '}') {
      close = i;
      return true;
    }
    if (s[i] != ',') return false;
    ++i;
  }
}

/// A replacement of the bytes [begin, end) (an insertion if begin == end).
struct edit {
  std::size_t begin, end;
  std::string_view text;
};

}  // namespace

std::string with_stream_usage(std::string_view body) {
  constexpr std::size_t max_edits = 8;
  edit edits[max_edits];
  std::size_t count = 0;
  auto add = [&](edit e) {
    if (count == max_edits) return false;
    edits[count++] = e;
    return true;
  };

  std::size_t i = 0;
  skip_ws(body, i);
  if (i >= body.size() || body[i] != '{') return std::string(body);
  bool found = false;
  std::size_t last_end = 0, close = 0;
  const bool ok = scan_object(body, i, last_end, close, [&](const member_span& m) {
    if (!key_equals(m.key, "stream_options")) return true;
    found = true;
    const std::string_view value = body.substr(m.value_begin, m.value_end - m.value_begin);
    if (value == "null") return add({m.value_begin, m.value_end, "{\"include_usage\":true}"});
    if (value.front() != '{') return false;  // not an object: leave the body alone
    bool has_flag = false;
    std::size_t inner_last = 0, inner_close = 0;
    const bool inner_ok =
        scan_object(body, m.value_begin, inner_last, inner_close, [&](const member_span& f) {
          if (!key_equals(f.key, "include_usage")) return true;
          has_flag = true;
          if (body.substr(f.value_begin, f.value_end - f.value_begin) == "true") return true;
          return add({f.value_begin, f.value_end, "true"});
        });
    if (!inner_ok || inner_close + 1 != m.value_end) return false;
    if (has_flag) return true;
    if (inner_last == m.value_begin + 1) {  // empty object
      return add({inner_last, inner_last, "\"include_usage\":true"});
    }
    return add({inner_last, inner_last, ",\"include_usage\":true"});
  });
  if (!ok) return std::string(body);
  std::size_t rest = close + 1;
  skip_ws(body, rest);
  if (rest != body.size()) return std::string(body);
  if (!found) {
    const bool empty = last_end == i + 1;
    if (!add({last_end, last_end,
              empty ? "\"stream_options\":{\"include_usage\":true}"
                    : ",\"stream_options\":{\"include_usage\":true}"})) {
      return std::string(body);
    }
  }
  std::string out;
  out.reserve(body.size() + 48);
  std::size_t from = 0;
  for (std::size_t k = 0; k < count; ++k) {
    out.append(body.substr(from, edits[k].begin - from));
    out.append(edits[k].text);
    from = edits[k].end;
  }
  out.append(body.substr(from));
  return out;
}

// --- usage chunk ---

namespace {

/// True if some `"key"` in `json` is followed by `:` and a value starting with `first`
/// (and, if `second` is set, whose next non-space byte is `second`).
bool key_followed_by(std::string_view json, std::string_view key, char first, char second) {
  for (std::size_t from = 0; from < json.size();) {
    const void* hit = memmem(json.data() + from, json.size() - from, key.data(), key.size());
    if (hit == nullptr) return false;
    std::size_t i = static_cast<std::size_t>(static_cast<const char*>(hit) - json.data());
    from = i + 1;
    i += key.size();
    skip_ws(json, i);
    if (i >= json.size() || json[i] != ':') continue;
    ++i;
    skip_ws(json, i);
    if (i >= json.size() || json[i] != first) continue;
    if (second == 0) return true;
    ++i;
    skip_ws(json, i);
    if (i < json.size() && json[i] == second) return true;
  }
  return false;
}

}  // namespace

bool is_usage_chunk(std::string_view data) {
  // Every content chunk of an include_usage stream has "usage":null: rejected without a parse.
  if (!key_followed_by(data, "\"usage\"", '{', 0)) return false;
  if (!key_followed_by(data, "\"choices\"", '[', ']')) return false;
  scratch_release release;
  stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  if (!parse_json(data, doc) || !doc.IsObject()) return false;
  const json* choices = member(doc, "choices");
  const json* usage = member(doc, "usage");
  return choices != nullptr && choices->IsArray() && choices->Empty() && usage != nullptr &&
         usage->IsObject();
}

}  // namespace tc::openai
