// Context-length protection: one RapidJSON parse builds the DOM (for counting) and records the
// byte spans of the top-level `messages` elements and `tools` (for the rewrite and the count),
// then whole turns are dropped and the kept messages' bytes spliced back together.
#include "protocol/scheduling/context.hpp"

#include <rapidjson/document.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "protocol/openai/json_document.hpp"
#include "protocol/tokens.hpp"

namespace tc::scheduling {

namespace {

using json = rapidjson::Value;

constexpr uint32_t part_tokens = 85;  ///< a non-text content part (image, audio)

struct span {
  size_t begin = 0, end = 0;
};

std::string_view str(const json& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// Forwards SAX events into a Document and records, from the stream position at each event
/// (RapidJSON reports events with the stream at the token's first byte), the byte spans of the
/// top-level `messages` array's elements and of the top-level `tools` / `functions` values.
struct span_recorder {
  span_recorder(rapidjson::Document& d, const rapidjson::StringStream& s) : doc(d), in(s) {}

  rapidjson::Document& doc;
  const rapidjson::StringStream& in;
  unsigned depth = 0;
  std::string key;             ///< the last key at depth 1
  int messages_keys = 0;       ///< top-level "messages" members seen
  bool in_messages = false;    ///< inside the top-level messages array
  bool bad_message = false;    ///< an element of it is not an object
  span messages;               ///< the array's '[' .. ']' inclusive
  std::vector<span> elements;  ///< each message object, braces included
  bool in_tools = false;
  std::vector<span> tools;  ///< tools / functions values, when arrays or objects

  size_t pos() const { return in.Tell(); }
  bool top_key_is(std::string_view k) const { return depth == 1 && key == k; }

  void scalar() {
    if (in_messages && depth == 2) bad_message = true;
  }
  void open() {
    if (depth == 1 && key == "messages") {
      in_messages = true;
      messages.begin = pos();
    } else if (depth == 1 && (key == "tools" || key == "functions")) {
      in_tools = true;
      tools.push_back({pos(), 0});
    } else if (in_messages && depth == 2) {
      elements.push_back({pos(), 0});
    }
    ++depth;
  }
  void close() {
    --depth;
    if (depth == 1 && in_messages) {
      in_messages = false;
      messages.end = pos() + 1;
    } else if (depth == 1 && in_tools) {
      in_tools = false;
      tools.back().end = pos() + 1;
    } else if (in_messages && depth == 2) {
      elements.back().end = pos() + 1;
    }
  }

  bool Null() { return scalar(), doc.Null(); }
  bool Bool(bool b) { return scalar(), doc.Bool(b); }
  bool Int(int i) { return scalar(), doc.Int(i); }
  bool Uint(unsigned i) { return scalar(), doc.Uint(i); }
  bool Int64(int64_t i) { return scalar(), doc.Int64(i); }
  bool Uint64(uint64_t i) { return scalar(), doc.Uint64(i); }
  bool Double(double d) { return scalar(), doc.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return scalar(), doc.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return scalar(), doc.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (depth == 1) {
      key.assign(s, n);
      if (key == "messages") ++messages_keys;
    }
    return doc.Key(s, n, copy);
  }
  bool StartObject() { return open(), doc.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return close(), doc.EndObject(n); }
  bool StartArray() {
    if (in_messages && depth == 2) bad_message = true;
    return open(), doc.StartArray();
  }
  bool EndArray(rapidjson::SizeType n) { return close(), doc.EndArray(n); }
};

bool is_system(std::string_view role) {
  return role == "system" || role == "developer";
}

const json* member(const json& obj, const char* name) {
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

std::string_view string_member(const json& obj, const char* name) {
  const json* v = member(obj, name);
  return v != nullptr && v->IsString() ? str(*v) : std::string_view();
}

/// Name and arguments of a tool call's function (or of a legacy function_call).
uint64_t call_tokens(const json& fn, const token_counter& count) {
  if (!fn.IsObject()) return 0;
  return uint64_t{count.count(string_member(fn, "name"))} +
         count.count(string_member(fn, "arguments"));
}

uint64_t message_tokens(const json& m, const token_counter& count) {
  uint64_t t = count.per_message();
  if (const json* c = member(m, "content")) {
    if (c->IsString()) {
      t += count.count(str(*c));
    } else if (c->IsArray()) {
      for (const json& part : c->GetArray()) {
        if (!part.IsObject()) continue;
        const json* text = member(part, "text");
        if (text == nullptr || !text->IsString()) text = member(part, "refusal");
        if (text != nullptr && text->IsString()) {
          t += count.count(str(*text));
        } else {
          t += part_tokens;
        }
      }
    }
  }
  if (const json* name = member(m, "name"); name != nullptr && name->IsString()) {
    t += uint64_t{count.count(str(*name))} + 1;
  }
  if (const json* calls = member(m, "tool_calls"); calls != nullptr && calls->IsArray()) {
    for (const json& call : calls->GetArray()) {
      if (const json* fn = call.IsObject() ? member(call, "function") : nullptr) {
        t += call_tokens(*fn, count);
      }
    }
  }
  if (const json* fn = member(m, "function_call")) t += call_tokens(*fn, count);
  t += count.count(string_member(m, "tool_call_id"));
  return t;
}

uint32_t clamp32(uint64_t v) {
  return v > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                  : static_cast<uint32_t>(v);
}

}  // namespace

bool parse_context_mode(std::string_view name, context_mode& out) {
  for (context_mode m :
       {context_mode::reject, context_mode::truncate_oldest, context_mode::truncate_middle}) {
    if (name == to_string(m)) {
      out = m;
      return true;
    }
  }
  return false;
}

std::string_view to_string(context_mode m) {
  switch (m) {
    case context_mode::reject:
      return "reject";
    case context_mode::truncate_oldest:
      return "truncate_oldest";
    case context_mode::truncate_middle:
      return "truncate_middle";
  }
  return "unknown";
}

uint32_t estimate_counter::count(std::string_view utf8_text) const {
  return estimate_tokens(utf8_text);
}

const token_counter& default_counter() {
  static const estimate_counter counter;
  return counter;
}

context_result protect_context(std::string_view chat_body, uint32_t context_window,
                               uint32_t reserve_output_tokens, context_mode mode,
                               const token_counter& count) {
  context_result out;
  // RapidJSON's string stream stops at a NUL: a body holding one is not JSON anyway.
  if (std::memchr(chat_body.data(), '\0', chat_body.size()) != nullptr) return out;
  const std::string text(chat_body);

  openai::stack_document parsed;
  rapidjson::Document& doc = parsed.doc;
  rapidjson::StringStream in(text.c_str());
  span_recorder rec(doc, in);
  rapidjson::Reader reader;
  rapidjson::ParseResult result;
  auto generate = [&](rapidjson::Document&) {
    result = reader.Parse<rapidjson::kParseIterativeFlag>(in, rec);
    return !result.IsError();
  };
  doc.Populate(generate);
  if (result.IsError() || !doc.IsObject() || rec.messages_keys != 1 || rec.bad_message) {
    return out;
  }
  const json* messages = member(doc, "messages");
  if (messages == nullptr || !messages->IsArray() || messages->Size() != rec.elements.size()) {
    return out;
  }
  for (const span& e : rec.elements) {  // the spans must be the objects' braces
    if (e.end <= e.begin || text[e.begin] != '{' || text[e.end - 1] != '}') return out;
  }

  // Count, and give each non-system message its turn (-1: always kept).
  const size_t n = messages->Size();
  uint64_t total = count.reply_priming();
  for (const span& t : rec.tools) {
    if (t.end > t.begin) total += count.count(chat_body.substr(t.begin, t.end - t.begin));
  }
  std::vector<uint64_t> tokens(n);
  std::vector<int> turn_of(n, -1);
  int turns = 0;
  for (size_t i = 0; i < n; ++i) {
    const json& m = (*messages)[static_cast<rapidjson::SizeType>(i)];
    tokens[i] = message_tokens(m, count);
    total += tokens[i];
    const std::string_view role = string_member(m, "role");
    if (is_system(role)) continue;
    if (role == "user" || turns == 0) ++turns;
    turn_of[i] = turns - 1;
  }
  const uint64_t limit = context_window;
  auto fits = [&](uint64_t prompt) { return prompt + reserve_output_tokens <= limit; };
  out.prompt_tokens = clamp32(total);
  if (fits(total)) {
    out.fits = true;
    return out;
  }
  if (mode == context_mode::reject || turns < 2) return out;

  // Drop turns, oldest first, never the last one (nor the first under truncate_middle).
  std::vector<uint64_t> turn_tokens(static_cast<size_t>(turns));
  for (size_t i = 0; i < n; ++i) {
    if (turn_of[i] >= 0) turn_tokens[static_cast<size_t>(turn_of[i])] += tokens[i];
  }
  const int first_droppable = mode == context_mode::truncate_middle ? 1 : 0;
  int dropped_below = first_droppable;  // turns [first_droppable, dropped_below) are dropped
  uint64_t left = total;
  while (!fits(left) && dropped_below < turns - 1) {
    left -= turn_tokens[static_cast<size_t>(dropped_below)];
    ++dropped_below;
  }
  if (!fits(left)) return out;

  out.fits = true;
  out.changed = true;
  out.prompt_tokens = clamp32(left);
  out.body.reserve(chat_body.size());
  out.body.append(chat_body.substr(0, rec.messages.begin + 1));
  bool first = true;
  for (size_t i = 0; i < n; ++i) {
    if (turn_of[i] >= first_droppable && turn_of[i] < dropped_below) {
      ++out.dropped_messages;
      continue;
    }
    if (!first) out.body.push_back(',');
    first = false;
    const span& e = rec.elements[i];
    out.body.append(chat_body.substr(e.begin, e.end - e.begin));
  }
  out.body.append(chat_body.substr(rec.messages.end - 1));
  return out;
}

}  // namespace tc::scheduling
