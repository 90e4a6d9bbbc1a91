// Structured logs: one JSON object per line on stderr. Thread-safe; cheap when the level is off.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tc::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };

/// Sets the minimum level written ("debug", "info", "warn", "error"); unknown names keep it.
void set_level(std::string_view name);
bool enabled(level l);

/// A field of a log line; numbers are written as JSON numbers, strings escaped.
struct field {
  field(std::string_view k, std::string_view v) : key(k), text(v) {}
  field(std::string_view k, const char* v) : key(k), text(v) {}
  field(std::string_view k, long long v) : key(k), number(v), is_number(true) {}
  field(std::string_view k, int v) : field(k, static_cast<long long>(v)) {}
  field(std::string_view k, unsigned v) : field(k, static_cast<long long>(v)) {}
  field(std::string_view k, unsigned long v) : field(k, static_cast<long long>(v)) {}
  field(std::string_view k, long v) : field(k, static_cast<long long>(v)) {}
  field(std::string_view k, unsigned long long v) : field(k, static_cast<long long>(v)) {}
  std::string_view key;
  std::string_view text;
  long long number = 0;
  bool is_number = false;
};

/// One log line: {"ts":...,"level":...,"event":...,<fields>}\n, strings escaped as JSON with
/// invalid UTF-8 replaced by U+FFFD (a line is always valid JSON).
std::string format_line(std::string_view ts, level l, std::string_view event,
                        std::initializer_list<field> fields);

/// Writes format_line(now, ...) to stderr if `l` is enabled.
void write(level l, std::string_view event, std::initializer_list<field> fields = {});

inline void debug(std::string_view e, std::initializer_list<field> f = {}) {
  write(level::debug, e, f);
}
inline void info(std::string_view e, std::initializer_list<field> f = {}) {
  write(level::info, e, f);
}
inline void warn(std::string_view e, std::initializer_list<field> f = {}) {
  write(level::warn, e, f);
}
inline void error(std::string_view e, std::initializer_list<field> f = {}) {
  write(level::error, e, f);
}

}  // namespace tc::log
