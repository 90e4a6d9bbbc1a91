#include "node/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "protocol/openai/json_text.hpp"

namespace tc::log {

namespace {

std::atomic<int> min_level{static_cast<int>(level::info)};

constexpr std::string_view names[] = {"debug", "info", "warn", "error"};

}  // namespace

void set_level(std::string_view name) {
  for (int i = 0; i < 4; ++i)
    if (names[i] == name) min_level.store(i, std::memory_order_relaxed);
}

bool enabled(level l) {
  return static_cast<int>(l) >= min_level.load(std::memory_order_relaxed);
}

std::string format_line(std::string_view ts, level l, std::string_view event,
                        std::initializer_list<field> fields) {
  using openai::json_text::append_string;  // invalid UTF-8 becomes U+FFFD: the line stays JSON
  std::string line;
  line.reserve(128);
  line += "{\"ts\":";
  append_string(line, ts);
  line += ",\"level\":\"";
  line += names[static_cast<int>(l)];
  line += "\",\"event\":";
  append_string(line, event);
  for (const auto& f : fields) {
    line += ',';
    append_string(line, f.key);
    line += ':';
    if (f.is_number)
      line += std::to_string(f.number);
    else
      append_string(line, f.text);
  }
  line += "}\n";
  return line;
}

void write(level l, std::string_view event, std::initializer_list<field> fields) {
  if (!enabled(l)) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[96];  // ample for any int fields snprintf could be handed
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  const std::string line = format_line(ts, l, event, fields);
  std::fwrite(line.data(), 1, line.size(), stderr);  // one write per line: lines never interleave
}

}  // namespace tc::log
