// A byte scanner over JSON text that is already known to be valid, for the byte-surgical edits
// (with_model, with_stream_usage) that must keep every other byte of a body as it was.
// Internal to protocol/openai. Pure; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace tc::openai::json_scan {

inline bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline void skip_ws(std::string_view s, std::size_t& i) {
  while (i < s.size() && is_ws(s[i])) ++i;
}

/// Advances `i` past the string whose opening quote is at `i`. False if unterminated.
inline bool skip_string(std::string_view s, std::size_t& i) {
  std::size_t j = i + 1;
  for (;;) {
    if (j >= s.size()) return false;
    const void* q = std::memchr(s.data() + j, '"', s.size() - j);
    if (q == nullptr) return false;
    std::size_t k = static_cast<const char*>(q) - s.data();
    std::size_t backslashes = 0;
    while (k - backslashes > i + 1 && s[k - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) {
      i = k + 1;
      return true;
    }
    j = k + 1;
  }
}

/// Advances `i` past one JSON value (iteratively for containers). False if malformed.
inline bool skip_value(std::string_view s, std::size_t& i) {
  if (i >= s.size()) return false;
  const char c = s[i];
  if (c == '"') return skip_string(s, i);
  if (c == '{' || c == '[') {
    std::size_t depth = 0;
    while (i < s.size()) {
      const char d = s[i];
      if (d == '"') {
        if (!skip_string(s, i)) return false;
        continue;
      }
      if (d == '{' || d == '[') {
        ++depth;
      } else if (d == '}' || d == ']') {
        if (--depth == 0) {
          ++i;
          return true;
        }
      }
      ++i;
    }
    return false;
  }
  const std::size_t start = i;
  while (i < s.size() && !is_ws(s[i]) && s[i] != ',' && s[i] != '}' && s[i] != ']') ++i;
  return i > start;
}

/// Reads the 4 hex digits at `i` (of a \uXXXX escape) into `v`. False if there are fewer than
/// 4 or one is not a hex digit.
inline bool hex4(std::string_view s, std::size_t i, uint32_t& v) {
  if (i + 4 > s.size()) return false;
  v = 0;
  for (std::size_t k = i; k < i + 4; ++k) {
    const char c = s[k];
    v <<= 4;
    if (c >= '0' && c <= '9') {
      v |= static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v |= static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      v |= static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace tc::openai::json_scan
