// protocol/canonical/embed.cpp: determinism, unit norm, similarity ordering, CJK, dimensions,
// empty and broken input, dot().
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "protocol/canonical/embed.hpp"

using tc::canonical::dot;
using tc::canonical::embed;
using tc::canonical::embed_options;

namespace {

/// Embeds an exactly-sized heap copy, so ASan sees any read past the end.
std::vector<float> exact(std::string_view s, const embed_options& opt = {}) {
  std::unique_ptr<char[]> buf(new char[s.size() == 0 ? 1 : s.size()]);
  std::memcpy(buf.get(), s.data(), s.size());
  return embed(std::string_view(buf.get(), s.size()), opt);
}

double norm(const std::vector<float>& v) {
  double sum = 0;
  for (const float x : v) sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

float sim(std::string_view a, std::string_view b, const embed_options& opt = {}) {
  const auto x = exact(a, opt);
  const auto y = exact(b, opt);
  return dot(x.data(), y.data(), opt.dimension);
}

bool all_zero(const std::vector<float>& v) {
  for (const float x : v)
    if (x != 0.0f) return false;
  return true;
}

}  // namespace

TEST_CASE("deterministic, and pinned across builds and machines") {
  const std::string text = "What is the capital of France?";
  CHECK(exact(text) == exact(text));
  CHECK(embed(text) == exact(text));

  // "a" has two features: the word and the 3-gram " a ". Their components and signs are
  // pinned: a change to the hash or the tokenizer changes every stored embedding.
  const auto a = exact("a");
  std::vector<int> nonzero;
  for (int i = 0; i < 256; ++i)
    if (a[i] != 0.0f) nonzero.push_back(a[i] > 0 ? i : -i);
  CHECK(nonzero == std::vector<int>{-47, 87});
}

TEST_CASE("unit norm for any text with features") {
  for (const std::string& s : std::vector<std::string>{
           "a", "hello", "Hello, world!", "what is the capital of france", "今天天气怎么样",
           "混合 mixed 文本 text 123", "caf\xC3\xA9 na\xC3\xAFve", "\xE4\xBD", "\xFF\xFE\x80",
           "x \xF0\x9F\x98\x80 y", std::string(5000, 'z'), "0 1 2 3 4 5 6 7 8 9"}) {
    CAPTURE(s);
    const auto v = exact(s);
    REQUIRE(v.size() == 256);
    CHECK(norm(v) == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("empty text and text without words are all zero") {
  for (const std::string& s : std::vector<std::string>{"", " ", "\n\t ", "?!.,;:'\"()[]{}",
                                                       "\xE3\x80\x82\xEF\xBC\x8C", "\xC2\xA0"}) {
    CAPTURE(s);
    const auto v = exact(s);
    REQUIRE(v.size() == 256);
    CHECK(all_zero(v));
  }
  // Two empty embeddings have similarity 0, not 1: nothing matches nothing.
  CHECK(sim("", "") == 0.0f);
}

TEST_CASE("identical texts have similarity 1, case and punctuation aside") {
  CHECK(sim("what is the capital of france", "what is the capital of france") ==
        doctest::Approx(1.0).epsilon(1e-5));
  CHECK(exact("What Is The CAPITAL of France?") == exact("what is the capital of france"));
  CHECK(exact("  what   is\tthe capital, of france ") == exact("what is the capital of france"));
  // Fullwidth letters are their ASCII form; CJK punctuation separates.
  CHECK(exact("\xEF\xBC\xA1\xEF\xBC\xA9 model") == exact("ai model"));
}

TEST_CASE("paraphrases are closer than unrelated questions") {
  const float para = sim("what is the capital of france", "what's the capital city of france");
  const float other_city = sim("what is the capital of france", "what is the capital of spain");
  const float unrelated = sim("what is the capital of france", "how do i sort a list in python");
  CAPTURE(para);
  CAPTURE(other_city);
  CAPTURE(unrelated);
  CHECK(para > 0.6f);
  CHECK(unrelated < 0.3f);
  CHECK(para > unrelated + 0.4f);
  CHECK(other_city < 0.95f);  // the entity word counts

  // Typos keep most of the similarity through the character n-grams.
  const float typo =
      sim("how do i reverse a string in javascript", "how do i revrese a string in javascirpt");
  CAPTURE(typo);
  CHECK(typo > 0.6f);
  CHECK(typo > sim("how do i reverse a string in javascript", "best pizza recipe with cheese"));

  // Word order matters through bigrams, but only a little.
  const float order = sim("dog bites man", "man bites dog");
  CAPTURE(order);
  CHECK(order < 0.99f);
  CHECK(order > 0.6f);
}

TEST_CASE("CJK characters are words, with bigrams") {
  const float para = sim("今天天气怎么样", "今天的天气怎么样");
  const float unrelated = sim("今天天气怎么样", "我喜欢吃苹果");
  CAPTURE(para);
  CAPTURE(unrelated);
  CHECK(para > 0.7f);
  CHECK(unrelated < 0.2f);
  // Japanese kana and Korean syllables too.
  CHECK(sim("東京の天気", "東京の天気は") > sim("東京の天気", "大阪のラーメン"));
  CHECK(norm(exact("안녕하세요")) == doctest::Approx(1.0).epsilon(1e-5));
  // Mixed text: the English and the Chinese both count.
  CHECK(sim("python 排序 列表", "python 列表 排序") > sim("python 排序 列表", "java 网络 请求"));
}

TEST_CASE("any dimension, each with unit norm") {
  for (uint32_t d : {1u, 2u, 17u, 64u, 100u, 256u, 384u, 1000u}) {
    CAPTURE(d);
    embed_options opt;
    opt.dimension = d;
    const auto v = exact("semantic caching of chat completions", opt);
    REQUIRE(v.size() == d);
    CHECK(norm(v) == doctest::Approx(1.0).epsilon(1e-5));
    CHECK(all_zero(exact("", opt)));
  }
  embed_options zero;
  zero.dimension = 0;
  CHECK(exact("anything", zero).empty());
  // A larger dimension separates unrelated texts better (fewer collisions).
  embed_options big;
  big.dimension = 1024;
  CHECK(std::abs(sim("red apples", "stock market crash", big)) < 0.2f);
}

TEST_CASE("weights: each kind of feature can be switched off") {
  embed_options words_only;
  words_only.bigram_weight = 0;
  words_only.char_weight = 0;
  // Without bigrams and n-grams, word order is invisible.
  CHECK(sim("dog bites man", "man bites dog", words_only) == doctest::Approx(1.0).epsilon(1e-5));
  embed_options nothing = words_only;
  nothing.word_weight = 0;
  CHECK(all_zero(exact("dog bites man", nothing)));
  embed_options chars_only = nothing;
  chars_only.char_weight = 0.25f;
  CHECK(norm(exact("dog", chars_only)) == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("dot() matches a plain double sum at every length") {
  std::vector<float> a(70), b(70);
  for (int i = 0; i < 70; ++i) {
    a[i] = static_cast<float>((i * 37) % 11) - 5.0f;
    b[i] = static_cast<float>((i * 13) % 7) * 0.5f - 1.0f;
  }
  for (uint32_t n : {0u, 1u, 3u, 15u, 16u, 17u, 31u, 32u, 33u, 64u, 70u}) {
    CAPTURE(n);
    double want = 0;
    for (uint32_t i = 0; i < n; ++i) want += static_cast<double>(a[i]) * b[i];
    CHECK(dot(a.data(), b.data(), n) == doctest::Approx(want).epsilon(1e-6));
  }
}
