// UTF-8 checking and JSON string writing shared by the body writers of protocol/openai
// (stream.cpp, text.cpp) and the node's JSON log lines (node/log.cpp). Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace tc::openai::json_text {

/// Length of the valid UTF-8 sequence starting with the non-ASCII byte at p, 0 if invalid
/// (overlong forms, surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end);

/// Appends `s` as a JSON string literal; invalid UTF-8 bytes become \ufffd so the output parses.
void append_string(std::string& out, std::string_view s);

/// Appends an integer as JSON.
void append_uint(std::string& out, uint64_t v);
void append_int(std::string& out, int64_t v);
/// Appends a double in its shortest round-trip form; null if it is not finite (JSON has no NaN).
void append_double(std::string& out, double v);

/// Appends `v` as compact JSON: strings through append_string, integers as they are, doubles
/// in their shortest round-trip form (null if not finite). Recursive: only for values whose
/// depth the parser bounded.
void append_value(std::string& out, const rapidjson::Value& v);

}  // namespace tc::openai::json_text
