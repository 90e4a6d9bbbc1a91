// Bounded parsing and compact writing of JSON for protocol/anthropic.
#include "protocol/anthropic/json.hpp"

#include "protocol/openai/json_document.hpp"
#include "protocol/openai/json_text.hpp"

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace tc::anthropic::json {

parse_status parse(std::string_view text, rapidjson::Document& doc) {
  if (text.empty()) return parse_status::not_json;
  // A MemoryStream reads exactly text.size() bytes, so a NUL inside is seen as invalid JSON
  // rather than as the end of the input.
  rapidjson::MemoryStream in(text.data(), text.size());
  rapidjson::Reader reader;
  openai::depth_limited_handler handler{doc, max_depth};
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
  openai::json_text::append_uint(out, v);
}

void append_int(std::string& out, int64_t v) {
  openai::json_text::append_int(out, v);
}

void append_double(std::string& out, double v) {
  openai::json_text::append_double(out, v);
}

void append_value(std::string& out, const value& v) {
  openai::json_text::append_value(out, v);
}

}  // namespace tc::anthropic::json
