// Bounded parsing and compact writing of JSON for protocol/anthropic.
#include "protocol/anthropic/json.hpp"

#include "protocol/openai/json_text.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

namespace tc::anthropic::json {

namespace {

/// Forwards SAX events into a Document, refusing nesting deeper than max_depth.
struct depth_limited_handler {
  rapidjson::Document& doc;
  unsigned depth = 0;
  bool too_deep = false;

  bool enter() {
    if (++depth <= max_depth) return true;
    too_deep = true;
    return false;
  }
  bool Null() { return doc.Null(); }
  bool Bool(bool b) { return doc.Bool(b); }
  bool Int(int i) { return doc.Int(i); }
  bool Uint(unsigned i) { return doc.Uint(i); }
  bool Int64(int64_t i) { return doc.Int64(i); }
  bool Uint64(uint64_t i) { return doc.Uint64(i); }
  bool Double(double d) { return doc.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc.Key(s, n, copy); }
  bool StartObject() { return enter() && doc.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth;
    return doc.EndObject(n);
  }
  bool StartArray() { return enter() && doc.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth;
    return doc.EndArray(n);
  }
};

template <class Number>
void append_number(std::string& out, Number v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

}  // namespace

parse_status parse(std::string_view text, rapidjson::Document& doc) {
  if (text.empty()) return parse_status::not_json;
  // A MemoryStream reads exactly text.size() bytes, so a NUL inside is seen as invalid JSON
  // rather than as the end of the input.
  rapidjson::MemoryStream in(text.data(), text.size());
  rapidjson::Reader reader;
  depth_limited_handler handler{doc};
  bool ok = false;
  auto generate = [&](rapidjson::Document&) {
    ok = !reader
              .Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                     rapidjson::kParseStopWhenDoneFlag>(in, handler)
              .IsError();
    return ok;
  };
  doc.Populate(generate);
  if (!ok) return handler.too_deep ? parse_status::too_deep : parse_status::not_json;
  // kParseStopWhenDoneFlag stops after the value: only whitespace may follow.
  for (std::size_t i = in.Tell(); i < text.size(); ++i) {
    const char c = text[i];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return parse_status::not_json;
  }
  return parse_status::ok;
}

const value* find(const value& obj, std::string_view key) {
  if (!obj.IsObject()) return nullptr;
  for (const auto& m : obj.GetObject()) {
    if (str(m.name) == key) return &m.value;
  }
  return nullptr;
}

std::string_view find_string(const value& obj, std::string_view key) {
  const value* v = find(obj, key);
  return v != nullptr && v->IsString() ? str(*v) : std::string_view{};
}

uint32_t find_count(const value& obj, std::string_view key) {
  const value* v = find(obj, key);
  if (v == nullptr || !v->IsNumber()) return 0;
  if (v->IsUint64()) {
    return static_cast<uint32_t>(
        std::min<uint64_t>(v->GetUint64(), std::numeric_limits<uint32_t>::max()));
  }
  return 0;
}

void append_string(std::string& out, std::string_view s) {
  openai::json_text::append_string(out, s);
}

void append_uint(std::string& out, uint64_t v) {
  append_number(out, v);
}

void append_int(std::string& out, int64_t v) {
  append_number(out, v);
}

void append_double(std::string& out, double v) {
  if (std::isfinite(v)) {
    append_number(out, v);
  } else {
    out += "null";
  }
}

void append_value(std::string& out, const value& v) {
  openai::json_text::append_value(out, v);
}

}  // namespace tc::anthropic::json
