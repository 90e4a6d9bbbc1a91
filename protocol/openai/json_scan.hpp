// A byte scanner over JSON text that is already known to be valid, for the byte-surgical edits
// (with_model, with_stream_usage) that must keep every other byte of a body as it was.
// Internal to protocol/openai. Pure; any thread.
#pragma once

#include <cstddef>
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

}  // namespace tc::openai::json_scan
