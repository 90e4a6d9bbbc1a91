// JSON helpers shared by the Anthropic translators (request, response, stream): a bounded
// parse of untrusted text and a compact writer. Internal to protocol/anthropic. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace tc::anthropic::json {

using value = rapidjson::Value;

/// Deepest nesting accepted in any input (tool schemas and arguments stay far below).
inline constexpr unsigned max_depth = 128;

enum class parse_status : uint8_t { ok, not_json, too_deep };

/// Parses `text` into `doc`: iterative (a 100,000-deep array cannot overflow the stack), UTF-8
/// validated, at most max_depth deep. Strings are copied into `doc`'s allocator.
parse_status parse(std::string_view text, rapidjson::Document& doc);

/// The string value of `v` (which must be a string).
inline std::string_view str(const value& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// The member `key` of object `obj`, or nullptr if absent (or `obj` is not an object).
const value* find(const value& obj, std::string_view key);

/// The string member `key`, or empty if absent or not a string.
std::string_view find_string(const value& obj, std::string_view key);

/// The non-negative integer member `key` (saturated at UINT32_MAX), or 0.
uint32_t find_count(const value& obj, std::string_view key);

/// Appends `s` as a JSON string literal (invalid UTF-8 becomes \ufffd).
void append_string(std::string& out, std::string_view s);

/// Appends `v` as compact JSON. Recursive: only for values from parse() (depth bounded).
void append_value(std::string& out, const value& v);

/// Appends an unsigned integer.
void append_uint(std::string& out, uint64_t v);

/// Appends a signed integer.
void append_int(std::string& out, int64_t v);

/// Appends a finite double in its shortest round-trip form (null if not finite).
void append_double(std::string& out, double v);

}  // namespace tc::anthropic::json
