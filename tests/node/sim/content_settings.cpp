// node/sim/content and node/sim/settings_json: the pure helpers.
#include <doctest/doctest.h>

#include <cmath>

#include "node/sim/content.hpp"
#include "node/sim/settings_json.hpp"
#include "sim_support.hpp"

using namespace tc::sim;

TEST_CASE("base64 round trip and rejects malformed input") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    std::string enc;
    append_base64(enc, s.data(), s.size());
    std::string dec;
    REQUIRE(base64_decode(enc, dec));
    CHECK(dec == s);
  }
  std::string enc;
  append_base64(enc, "foobar", 6);
  CHECK(enc == "Zm9vYmFy");
  std::string out;
  CHECK_FALSE(base64_decode("Zm9", out));
  CHECK_FALSE(base64_decode("Zm=v", out));
  CHECK_FALSE(base64_decode("Z!9v", out));
}

TEST_CASE("json string escaping") {
  std::string out;
  append_json_string(out, "a\"b\\c\n\x01 é");
  CHECK(out == "\"a\\\"b\\\\c\\n\\u0001 é\"");
  auto d = tc::sim::test::parse(out);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d.GetString()) == "a\"b\\c\n\x01 é");
}

TEST_CASE("tokens are single words and the text is deterministic") {
  std::string a, b;
  for (uint32_t k = 0; k < 30; ++k) append_token(a, 42, k, 30, true);
  for (uint32_t k = 0; k < 30; ++k) append_token(b, 42, k, 30, true);
  CHECK(a == b);
  CHECK(a.back() == '.');
  std::string one;
  append_token(one, 42, 5, 30, true);
  CHECK(one[0] == ' ');
  CHECK(one.find(' ', 1) == std::string::npos);
  for (uint64_t seed = 0; seed < 100; ++seed) {
    uint32_t n = text_length(seed, 48);
    CHECK(n >= 24);
    CHECK(n <= 48);
  }
  CHECK(text_length(1, 0) == 1);
}

TEST_CASE("fragments never split a UTF-8 character") {
  std::string s = "{\"city\":\"Zürich 北京\"}";
  auto ends = fragment_ends(s);
  uint32_t prev = 0;
  for (uint32_t e : ends) {
    CHECK(e > prev);
    if (e < s.size()) CHECK((static_cast<unsigned char>(s[e]) & 0xC0) != 0x80);
    prev = e;
  }
  CHECK(ends.back() == s.size());
}

TEST_CASE("embedding vectors are normalised and deterministic") {
  std::vector<float> a, b, c;
  embed_text("hello world", 0, 128, a);
  embed_text("hello world", 0, 128, b);
  embed_text("", 0, 128, c);
  CHECK(a == b);
  double n = 0;
  for (float v : c) n += double{v} * v;
  CHECK(std::abs(n - 1) < 1e-5);
}

TEST_CASE("settings JSON round trip and partial update") {
  tc::config::sim_settings s;
  s.outages.push_back({5, 10});
  std::string j = settings_to_json(s);
  tc::config::sim_settings t;
  std::string err;
  REQUIRE(apply_settings_json(j, t, err));
  CHECK(t.ttft_ms == s.ttft_ms);
  CHECK(t.max_batch == s.max_batch);
  REQUIRE(t.outages.size() == 1);
  CHECK(t.outages[0].end_s == 10);

  REQUIRE(
      apply_settings_json(R"({"error_rate":0.25,"error_status":429,"outages":["1:2"]})", t, err));
  CHECK(t.error_rate == 0.25);
  CHECK(t.error_status == 429);
  CHECK(t.outages[0].start_s == 1);
  CHECK(t.ttft_ms == s.ttft_ms);  // untouched

  tc::config::sim_settings before = t;
  CHECK_FALSE(apply_settings_json(R"({"error_rate":2})", t, err));
  CHECK(err.find("error_rate") != std::string::npos);
  CHECK_FALSE(apply_settings_json(R"({"ttft_ms":1,"bogus":1})", t, err));
  CHECK(t.ttft_ms == before.ttft_ms);  // unchanged on failure
  CHECK_FALSE(apply_settings_json(R"({"max_batch":0})", t, err));
  CHECK_FALSE(apply_settings_json("[1]", t, err));

  tc::config::sim_outage o;
  CHECK(parse_outage("10:20.5", o));
  CHECK(o.end_s == 20.5);
  CHECK_FALSE(parse_outage("20:10", o));
  CHECK_FALSE(parse_outage("x:1", o));
  CHECK_FALSE(parse_outage("5", o));
}
