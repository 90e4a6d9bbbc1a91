// node/log: every line is one JSON object, whatever bytes a field carries.
#include <doctest/doctest.h>

#include <string>

#include <rapidjson/document.h>

#include "node/log.hpp"

using namespace tc::log;

TEST_CASE("log lines are valid JSON: escapes, control bytes and invalid UTF-8") {
  const std::string bad_utf8 =
      std::string("caf\xc3") + "\xff" + "\xed\xa0\x80 end";  // cut, ff, surrogate
  const std::string line = format_line("2026-12-05T01:02:03.004Z", level::warn, "ev\"ent",
                                       {{"text", bad_utf8},
                                        {"ctl", std::string("a\x01\tb\n", 5)},
                                        {"n", 42},
                                        {"k\\ey", "\xe4\xb8\xad"}});
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  rapidjson::Document d;
  d.Parse(line.c_str(), line.size() - 1);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["ts"].GetString()) == "2026-12-05T01:02:03.004Z");
  CHECK(std::string(d["level"].GetString()) == "warn");
  CHECK(std::string(d["event"].GetString()) == "ev\"ent");
  const std::string text = d["text"].GetString();
  CHECK(text.find("caf") == 0);
  CHECK(text.find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD for each bad byte
  CHECK(text.find('\xff') == std::string::npos);
  CHECK(std::string(d["ctl"].GetString(), d["ctl"].GetStringLength()) ==
        std::string("a\x01\tb\n", 5));
  CHECK(d["n"].GetInt() == 42);
  CHECK(std::string(d["k\\ey"].GetString()) == "\xe4\xb8\xad");  // valid UTF-8 kept as is
}
