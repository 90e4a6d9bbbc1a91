// protocol/tokens.cpp: token estimates for English, CJK, mixed, code, empty and bad UTF-8.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <string>

#include "protocol/tokens.hpp"

using tc::estimate_tokens;

namespace {

/// Estimates over an exactly-sized heap copy, so ASan sees any read past the end.
uint32_t exact(std::string_view s) {
  std::unique_ptr<char[]> buf(new char[s.size() == 0 ? 1 : s.size()]);
  std::memcpy(buf.get(), s.data(), s.size());
  return estimate_tokens(std::string_view(buf.get(), s.size()));
}

}  // namespace

TEST_CASE("empty is 0, anything else at least 1") {
  CHECK(estimate_tokens("") == 0);
  for (std::string s : {"a", " ", "\n", ".", "\x80", "\xE4", "\xF0\x9F\x98\x80", "\xE4\xBD\xA0"}) {
    CAPTURE(s);
    CHECK(exact(s) >= 1);
  }
  CHECK(estimate_tokens("a") == 1);
  CHECK(estimate_tokens("hello") == 2);  // 5 chars at 4 a token
}

TEST_CASE("English is about 4 characters a token") {
  // cl100k: 9 tokens; o200k: 9.
  const uint32_t fox = estimate_tokens("The quick brown fox jumps over the lazy dog");
  CHECK(fox >= 9);
  CHECK(fox <= 13);
  const std::string para =
      "Large language models are trained on vast amounts of text and can generate fluent "
      "answers to questions, summarize documents, translate between languages, and write "
      "code. Their cost is usually billed per token, so estimating the number of tokens in "
      "a request before sending it helps with quotas, budgets, and admission control.";
  const uint32_t t = estimate_tokens(para);
  CAPTURE(t);
  CHECK(t >= para.size() / 5);  // 322 chars; tokenizers give ~60
  CHECK(t <= para.size() / 3);
  // Short words cost a token each; repeated text scales linearly.
  CHECK(estimate_tokens("a b c d e f") == 6);
  std::string many;
  for (int i = 0; i < 100; ++i) many += para + " ";
  CHECK(estimate_tokens(many) >= 95 * t);
  CHECK(estimate_tokens(many) <= 105 * t);
}

TEST_CASE("punctuation, whitespace runs and code count sensibly") {
  CHECK(estimate_tokens("{\"a\": 1}") >= 4);
  CHECK(estimate_tokens("{\"a\": 1}") <= 8);
  CHECK(estimate_tokens("!!!!!!!!") == 4);
  CHECK(estimate_tokens("a\n\n\nb") == 3);
  CHECK(estimate_tokens("    ") == 1);
  const std::string code = "for (int i = 0; i < n; ++i) {\n  sum += a[i] * b[i];\n}\n";
  const uint32_t t = estimate_tokens(code);
  CAPTURE(t);
  CHECK(t >= 20);  // cl100k: 28
  CHECK(t <= 40);
}

TEST_CASE("CJK is about one token a character") {
  const std::string zh = "\xE4\xBB\x8A\xE5\xA4\xA9\xE5\xA4\xA9\xE6\xB0\x94\xE5\xBE\x88\xE5\xA5\xBD";
  CHECK(estimate_tokens(zh) == 6);                                         // 今天天气很好
  const std::string zh_punct = zh + "\xEF\xBC\x8C" + zh + "\xE3\x80\x82";  // ，。
  CHECK(estimate_tokens(zh_punct) == 14);
  const std::string ja =
      "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF";  // こんにちは
  CHECK(estimate_tokens(ja) == 5);
  const std::string ko = "\xEC\x95\x88\xEB\x85\x95";  // 안녕
  CHECK(estimate_tokens(ko) == 2);
  const std::string ext_a = "\xE3\x90\x80";  // U+3400
  CHECK(estimate_tokens(ext_a) == 1);
}

TEST_CASE("other non-ASCII is about 2 characters a token") {
  const std::string ru = "\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82";  // привет
  CHECK(estimate_tokens(ru) == 3);
  CHECK(estimate_tokens("caf\xC3\xA9") == 2);  // café: 3 quarters + 2
}

TEST_CASE("mixed text adds up its parts") {
  const std::string zh = "\xE4\xBD\xA0\xE5\xA5\xBD";  // 你好
  const uint32_t mixed = estimate_tokens("Hello " + zh + " world");
  CHECK(mixed == 5);  // (5 + 6) quarters for the words, 2 for the ideographs: 4.75 rounded up
  const std::string doc = "GPT-4o " + zh + zh + ", price: $5.00 / 1M tokens.";
  CHECK(estimate_tokens(doc) >= 10);
  CHECK(estimate_tokens(doc) <= 20);
}

TEST_CASE("truncated and malformed UTF-8 never reads past the end") {
  const std::string zh = "\xE4\xBD\xA0";  // 你
  CHECK(exact(zh) == 1);
  CHECK(exact(zh.substr(0, 2)) == 1);
  CHECK(exact(zh.substr(0, 1)) == 1);
  CHECK(exact("abcd" + zh.substr(0, 2)) >= 1);
  CHECK(exact("\xF0\x9F\x98") >= 1);
  CHECK(exact("\xF0\x9F") >= 1);
  CHECK(exact("\xC3") >= 1);
  CHECK(exact("\xFF\xFE\x80\x80\xC0\xAF") >= 1);
  CHECK(exact("\xE4\x41\x42") >= 1);  // lead byte then ASCII: the ASCII still counts
  for (std::size_t n = 0; n <= 12; ++n) {
    const std::string s = std::string("x\xE4\xBD\xA0\xF0\x9F\x98\x80\xD0\xBF!").substr(0, n);
    CAPTURE(n);
    CHECK(exact(s) == (n == 0 ? 0u : exact(s)));
    CHECK((n == 0) == (exact(s) == 0));
  }
}
