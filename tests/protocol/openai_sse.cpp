// protocol/openai/sse.cpp: SSE framing, the splitter across every chunking, and find_usage.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "protocol/openai/sse.hpp"

using namespace tc::openai;

namespace {

struct got {
  std::string name;
  std::string data;
  bool operator==(const got& o) const { return name == o.name && data == o.data; }
};

std::ostream& operator<<(std::ostream& os, const got& g) {
  return os << "{" << g.name << "|" << g.data << "}";
}

/// Feeds `chunks` in order to a fresh splitter and returns what it dispatched.
std::vector<got> split(const std::vector<std::string_view>& chunks, bool* ok = nullptr) {
  sse_splitter s;
  std::vector<got> out;
  bool all = true;
  for (auto c : chunks) {
    all = s.feed(c, [&out](const sse_splitter::event& e) {
      out.push_back({std::string(e.name), std::string(e.data)});
    }) && all;
  }
  if (ok != nullptr) *ok = all;
  return out;
}

/// Deterministic xorshift64*: the same chunkings on every platform.
struct prng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ULL;
  }
};

/// A stream with every line-end style, comments, names, multi-line and empty data, an event
/// without data (not dispatched) and unknown fields.
const std::string stream =
    ": keep-alive comment\n"
    "data: {\"id\":1}\n\n"
    "data:no-space\r\n\r\n"
    "event: error\r\ndata: {\"error\":{}}\r\n\r\n"
    "data: line one\rdata: line two\r\rdata:  two spaces\n\n"
    "id: 7\nretry: 10\nevent: lonely\n\n"
    "data\n\n"
    "data:\n\n"
    "event: x\n:comment inside\ndata: a\ndata:\ndata: b\n\n"
    "data: colon: inside\r\n\r\n"
    "\n\n\r\n"
    "data: [DONE]\n\n";

const std::vector<got> expected = {
    {"", "{\"id\":1}"},
    {"", "no-space"},
    {"error", "{\"error\":{}}"},
    {"", "line one\nline two"},
    {"", " two spaces"},
    {"", ""},
    {"", ""},
    {"x", "a\n\nb"},
    {"", "colon: inside"},
    {"", "[DONE]"},
};

}  // namespace

TEST_CASE("sse_data and sse_error frame events") {
  CHECK(sse_data("{\"a\":1}") == "data: {\"a\":1}\n\n");
  CHECK(sse_data("") == "data: \n\n");
  CHECK(sse_data("a\nb\r\nc\rd") == "data: a\ndata: b\ndata: c\ndata: d\n\n");
  CHECK(sse_done == "data: [DONE]\n\n");
  CHECK(sse_error(upstream_error("boom")) ==
        "event: error\ndata: "
        "{\"error\":{\"message\":\"boom\",\"type\":\"upstream_error\",\"param\":null,"
        "\"code\":\"upstream_error\"}}\n\n");
  // What we frame, the splitter reads back.
  const std::string framed =
      sse_data("x\ny") + sse_error(upstream_timeout("t")) + std::string(sse_done);
  auto events = split({framed});
  REQUIRE(events.size() == 3);
  CHECK(events[0] == got{"", "x\ny"});
  CHECK(events[1].name == "error");
  CHECK(events[1].data.find("\"type\":\"timeout\"") != std::string::npos);
  CHECK(events[2] == got{"", "[DONE]"});
}

TEST_CASE("sse_splitter: the whole stream in one chunk") {
  CHECK(split({stream}) == expected);
}

TEST_CASE("sse_splitter: byte by byte") {
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i)
    bytes.push_back(std::string_view(stream).substr(i, 1));
  CHECK(split(bytes) == expected);
}

TEST_CASE("sse_splitter: every split point, and every pair of split points") {
  const std::string_view s = stream;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    CAPTURE(i);
    REQUIRE(split({s.substr(0, i), s.substr(i)}) == expected);
  }
  for (std::size_t i = 0; i <= s.size(); ++i) {
    for (std::size_t j = i; j <= s.size(); ++j) {
      auto got = split({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      if (got != expected) {
        CAPTURE(i);
        CAPTURE(j);
        REQUIRE(got == expected);
      }
    }
  }
}

TEST_CASE("sse_splitter: random chunkings (deterministic)") {
  prng rng{0x9E3779B97F4A7C15ULL};
  const std::string_view s = stream;
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string_view> chunks;
    const uint64_t max_len = 1 + round % 40;
    for (std::size_t at = 0; at < s.size();) {
      const std::size_t n = 1 + static_cast<std::size_t>(rng.next() % max_len);
      chunks.push_back(s.substr(at, n));
      at += n;
    }
    if (rng.next() % 4 == 0)
      chunks.insert(chunks.begin() + static_cast<long>(chunks.size() / 2), "");
    CAPTURE(round);
    REQUIRE(split(chunks) == expected);
  }
}

TEST_CASE("sse_splitter: CRLF split between CR and LF") {
  CHECK(split({"data: a\r", "\ndata: b\r\n\r", "\n", "data: c\r\n", "\r", "\n"}) ==
        std::vector<got>{{"", "a\nb"}, {"", "c"}});
  // A CR at a chunk end that ends an event dispatches at once, without waiting for more bytes.
  sse_splitter s;
  int n = 0;
  s.feed("data: now\r\r", [&n](const sse_splitter::event& e) {
    CHECK(e.data == "now");
    ++n;
  });
  CHECK(n == 1);
  s.feed("\n", [&n](const sse_splitter::event&) { ++n; });
  CHECK(n == 1);
  CHECK(s.pending() == 0);
}

TEST_CASE("sse_splitter: pending, no dispatch without a blank line, zero-copy fast path") {
  sse_splitter s;
  std::vector<got> out;
  auto cb = [&out](const sse_splitter::event& e) {
    out.push_back({std::string(e.name), std::string(e.data)});
  };
  CHECK(s.feed("data: partial", cb));
  CHECK(out.empty());
  CHECK(s.pending() == 13);
  CHECK(s.feed(" more\n", cb));
  CHECK(out.empty());
  CHECK(s.pending() > 0);  // a complete line of an event that is not yet complete
  CHECK(s.feed("\n", cb));
  REQUIRE(out.size() == 1);
  CHECK(out[0].data == "partial more");
  CHECK(s.pending() == 0);

  const std::string chunk = "data: {\"x\":1}\n\n";
  bool inside = false;
  s.feed(chunk, [&](const sse_splitter::event& e) {
    inside = e.data.data() > chunk.data() && e.data.data() < chunk.data() + chunk.size();
  });
  CHECK(inside);
}

TEST_CASE("sse_splitter: an incomplete event over max_event_bytes stops the splitter") {
  sse_splitter s;
  s.max_event_bytes = 64;
  int n = 0;
  auto cb = [&n](const sse_splitter::event&) { ++n; };
  CHECK(s.feed("data: " + std::string(40, 'a') + "\n\n", cb));
  CHECK(n == 1);
  CHECK(s.feed("data: " + std::string(40, 'b'), cb));
  CHECK_FALSE(s.feed(std::string(40, 'b'), cb));
  sse_splitter t;
  t.max_event_bytes = 64;
  CHECK_FALSE(t.feed("data: x\n\ndata: " + std::string(100, 'c'), cb));
  CHECK(n == 2);
  // A complete event bigger than the limit is not held back, so it passes.
  sse_splitter u;
  u.max_event_bytes = 64;
  CHECK(u.feed("data: " + std::string(100, 'd') + "\n\n", cb));
  CHECK(n == 3);
}

TEST_CASE("sse_splitter: a large event across many chunks stays linear and exact") {
  std::string big = "data: ";
  for (int i = 0; i < 20000; ++i) big += static_cast<char>('a' + i % 26);
  big += "\r\ndata: tail\r\n\r\n";
  sse_splitter s;
  std::vector<got> out;
  for (std::size_t at = 0; at < big.size(); at += 7) {
    REQUIRE(s.feed(std::string_view(big).substr(at, 7), [&out](const sse_splitter::event& e) {
      out.push_back({std::string(e.name), std::string(e.data)});
    }));
  }
  REQUIRE(out.size() == 1);
  CHECK(out[0].data.size() == 20000 + 5);
  CHECK(out[0].data.substr(20000) == "\ntail");
}

TEST_CASE("find_usage") {
  SUBCASE("a full response") {
    auto u = find_usage(
        R"({"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":)"
        R"("assistant","content":"the \"usage\" word"}}],"usage":{"prompt_tokens":12,)"
        R"("completion_tokens":34,"total_tokens":46,"prompt_tokens_details":{"cached_tokens":8}}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 12);
    CHECK(u->completion_tokens == 34);
    CHECK(u->total_tokens == 46);
    CHECK(u->cached_tokens == 8);
  }
  SUBCASE("a final stream chunk, whitespace, no details, no total") {
    auto u = find_usage(
        "{\"choices\":[],\n \"usage\" : {\"prompt_tokens\": 3, "
        "\"completion_tokens\": 4}}");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 3);
    CHECK(u->completion_tokens == 4);
    CHECK(u->total_tokens == 7);
    CHECK(u->cached_tokens == 0);
  }
  SUBCASE("absent, null, nested, not an object, not JSON") {
    CHECK_FALSE(find_usage(R"({"choices":[{"delta":{"content":"x"}}]})").has_value());
    CHECK_FALSE(find_usage(R"({"choices":[],"usage":null})").has_value());
    CHECK_FALSE(find_usage(R"({"choices":[],"usage" :  null})").has_value());
    CHECK_FALSE(find_usage(R"({"x":{"usage":{"prompt_tokens":1}}})").has_value());
    CHECK_FALSE(find_usage(R"({"usage":5})").has_value());
    CHECK_FALSE(find_usage(R"({"usage":{"prompt_tokens":1})").has_value());
    CHECK_FALSE(find_usage(R"([{"usage":{"prompt_tokens":1}}])").has_value());
    CHECK_FALSE(find_usage("[DONE]").has_value());
    CHECK_FALSE(find_usage("").has_value());
    CHECK_FALSE(find_usage(std::string("{\"usage\":{}}\0", 13)).has_value());
  }
  SUBCASE("usage as a string value elsewhere does not hide the real one") {
    auto u = find_usage(R"({"kind":"usage","usage":{"prompt_tokens":2,"total_tokens":2}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 2);
  }
  SUBCASE("odd numbers are clamped, not trusted") {
    auto u = find_usage(R"({"usage":{"prompt_tokens":-5,"completion_tokens":1e12,)"
                        R"("total_tokens":"9"}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 0);
    CHECK(u->completion_tokens == UINT32_MAX);
    CHECK(u->total_tokens == 0);
  }
  SUBCASE("the first member of a name counts, as in a DOM lookup") {
    // A later "usage" object does not replace a first one that is not an object.
    CHECK_FALSE(find_usage(R"({"usage":5,"usage":{"prompt_tokens":1}})").has_value());
    auto u =
        find_usage(R"({"usage":{"prompt_tokens":1,"prompt_tokens":9,"total_tokens":null,)"
                   R"("prompt_tokens_details":[1],"prompt_tokens_details":{"cached_tokens":4}},)"
                   R"("usage":{"prompt_tokens":7}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 1);
    CHECK(u->total_tokens == 0);   // present but not a count
    CHECK(u->cached_tokens == 0);  // the first details member is not an object
  }
  SUBCASE("names at other depths are not usage fields") {
    auto u = find_usage(R"({"usage":{"completion_tokens":2,"extra":{"prompt_tokens":50,)"
                        R"("cached_tokens":3},"prompt_tokens_details":{"x":{"cached_tokens":6},)"
                        R"("cached_tokens":1}},"prompt_tokens":40})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 0);
    CHECK(u->completion_tokens == 2);
    CHECK(u->total_tokens == 2);
    CHECK(u->cached_tokens == 1);
  }
  SUBCASE("objects after the usage object or its details are not read as them") {
    auto u = find_usage(R"({"usage":{"prompt_tokens_details":{},"x":{"cached_tokens":6}},)"
                        R"("y":{"prompt_tokens":5}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 0);
    CHECK(u->cached_tokens == 0);
  }
  SUBCASE("a document that fails to parse after its usage gives none") {
    CHECK_FALSE(find_usage(R"({"usage":{"prompt_tokens":1}} x)").has_value());
    CHECK_FALSE(find_usage(R"({"usage":{"prompt_tokens":1},"a":[1,}})").has_value());
    CHECK_FALSE(find_usage("{\"usage\":{\"prompt_tokens\":1},\"s\":\"\\ud800x\"}").has_value());
  }
  SUBCASE("deep nesting next to usage") {
    const std::string deep = std::string(100'000, '[') + std::string(100'000, ']');
    auto u = find_usage(R"({"x":)" + deep + R"(,"usage":{"prompt_tokens":1}})");
    REQUIRE(u.has_value());
    CHECK(u->prompt_tokens == 1);
  }
}
