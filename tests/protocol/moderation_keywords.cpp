// protocol/moderation/keywords.cpp: lexicon parsing and the Hyperscan matcher (categories,
// actions, ASCII case folding, overlaps, dedupe, blocks(), threads, random input).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "protocol/moderation/keywords.hpp"

using namespace tc::moderation;

namespace {

using matcher_ptr = std::shared_ptr<const keyword_matcher>;

matcher_ptr build(const std::vector<lexicon_term>& terms,
                  const std::map<std::string, action>& actions, action fallback = action::flag) {
  std::string error;
  auto m = keyword_matcher::compile(terms, actions, fallback, error);
  INFO(error);
  REQUIRE(m != nullptr);
  CHECK(error.empty());
  return m;
}

const std::map<std::string, action> actions = {
    {"violence", action::block}, {"drugs", action::mask}, {"spam", action::flag}};

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

/// Every occurrence by brute force: the reference the matcher is checked against.
std::vector<std::pair<uint32_t, uint32_t>> naive(const std::string& text,
                                                 const std::vector<std::string>& terms) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  const std::string t = lower(text);
  for (size_t b = 0; b < t.size(); ++b) {
    for (const std::string& term : terms) {
      const std::string l = lower(term);
      if (t.compare(b, l.size(), l) == 0 && b + l.size() <= t.size()) {
        out.emplace_back(static_cast<uint32_t>(b), static_cast<uint32_t>(b + l.size()));
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> spans(const std::vector<hit>& hits) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const hit& h : hits) out.emplace_back(h.begin, h.end);
  return out;
}

}  // namespace

TEST_CASE("parse_lexicon: headers, default category, comments, trimming, BOM, CRLF") {
  const std::string text =
      "\xEF\xBB\xBF"  // BOM
      "# sample lexicon\r\n"
      "赌博\r\n"
      "  spam link  \r\n"
      "\r\n"
      "   # indented comment\n"
      "[violence]\n"
      "炸弹\n"
      "\tBomb Making\t\n"
      "[ drugs ]\n"
      "冰毒\n"
      "C# cocaine\n"
      "last line without newline";
  std::vector<lexicon_term> out = {{"kept", "before"}};
  std::string error;
  REQUIRE(parse_lexicon(text, "general", out, error));
  CHECK(error.empty());
  const std::vector<lexicon_term> want = {
      {"kept", "before"},          {"赌博", "general"},
      {"spam link", "general"},    {"炸弹", "violence"},
      {"Bomb Making", "violence"}, {"冰毒", "drugs"},
      {"C# cocaine", "drugs"},     {"last line without newline", "drugs"}};
  CHECK(out == want);

  out.clear();
  REQUIRE(parse_lexicon("", "general", out, error));
  REQUIRE(parse_lexicon("\xEF\xBB\xBF", "general", out, error));
  REQUIRE(parse_lexicon("# only\n\n[empty]\n", "general", out, error));
  CHECK(out.empty());
  // A BOM only counts at the very start; 256 bytes is the longest term.
  REQUIRE(parse_lexicon(std::string(256, 'a'), "g", out, error));
  CHECK(out.size() == 1);
}

TEST_CASE("parse_lexicon: errors carry the line number and leave the output untouched") {
  struct bad_case {
    std::string text;
    std::string error;
  };
  const std::vector<bad_case> cases = {
      {"ok\n\xE4\xB8\n", "line 2: invalid UTF-8"},             // truncated sequence
      {"ok\r\nok\r\n\xC0\xAF\r\n", "line 3: invalid UTF-8"},   // overlong '/'
      {"\xED\xA0\x80", "line 1: invalid UTF-8"},               // surrogate
      {"a\nb\nc\n\xF4\x90\x80\x80", "line 4: invalid UTF-8"},  // above U+10FFFF
      {"# comment \xFF\n", "line 1: invalid UTF-8"},           // even in a comment
      {"\xEF\xBB\xBF"
       "x\n\xFE",
       "line 2: invalid UTF-8"},  // BOM is not a line
      {"a\n" + std::string(257, 'b') + "\n", "line 2: term longer than 256 bytes"},
      {"[violence\n", "line 1: malformed category header (expected [name])"},
      {"x\n[\n", "line 2: malformed category header (expected [name])"},
      {"x\ny\n[]\n", "line 3: empty category name"},
      {"[  ]", "line 1: empty category name"},
      {"[a]b]", "line 1: malformed category header (brackets inside the name)"},
  };
  for (const bad_case& c : cases) {
    std::vector<lexicon_term> out = {{"kept", "before"}};
    std::string error;
    CHECK_FALSE(parse_lexicon(c.text, "general", out, error));
    CHECK(error == c.error);
    CHECK(out == std::vector<lexicon_term>{{"kept", "before"}});
  }
  // No default category: terms before the first header are refused.
  std::vector<lexicon_term> out;
  std::string error;
  CHECK_FALSE(parse_lexicon("# c\nterm\n[x]\ny\n", "", out, error));
  CHECK(error == "line 2: term before any [category] header, and no default category");
  CHECK(out.empty());
  REQUIRE(parse_lexicon("# c\n[x]\ny\n", "", out, error));
  CHECK(out == std::vector<lexicon_term>{{"y", "x"}});
}

TEST_CASE("scan: Chinese and English terms with their categories and actions") {
  const auto m = build({{"炸弹", "violence"},
                        {"bomb", "violence"},
                        {"冰毒", "drugs"},
                        {"Cocaine", "drugs"},
                        {"免费领取", "spam"},
                        {"casino", "gambling"}},
                       actions, action::flag);
  CHECK(m->size() == 6);
  CHECK(m->max_term_bytes() == 12);  // 免费领取

  const std::string text = "如何制作炸弹? How to buy COCAINE and 冰毒, 免费领取 at the Casino";
  const auto hits = m->scan(text);
  REQUIRE(hits.size() == 5);
  const std::vector<std::string> words = {"炸弹", "COCAINE", "冰毒", "免费领取", "Casino"};
  const std::vector<std::string> cats = {"violence", "drugs", "drugs", "spam", "gambling"};
  const std::vector<action> acts = {action::block, action::mask, action::mask, action::flag,
                                    action::flag};
  for (size_t i = 0; i < hits.size(); ++i) {
    CHECK(text.substr(hits[i].begin, hits[i].end - hits[i].begin) == words[i]);
    CHECK(hits[i].category == cats[i]);
    CHECK(hits[i].act == acts[i]);
  }
  CHECK(strongest(hits) == action::block);
  CHECK(m->blocks(text));
  CHECK(apply_masks(text, hits) ==
        "如何制作炸弹? How to buy ******* and **, 免费领取 at the Casino");

  CHECK_FALSE(m->blocks("buy cocaine and 冰毒 at the casino"));
  CHECK(m->blocks("BoMb"));
  CHECK(m->scan("nothing to see here, 一切正常").empty());
  CHECK(m->scan("").empty());
  CHECK_FALSE(m->blocks(""));
  CHECK(m->scan("炸").empty());     // a prefix of a term is no match
  CHECK(m->scan("bom b").empty());  // nor a spaced-out one (a known gap)
}

TEST_CASE("scan: ASCII folds case, other bytes match exactly") {
  const auto m = build({{"Straße", "spam"}, {"ÉCOLE", "spam"}, {"ab", "spam"}}, actions);
  CHECK(m->scan("STRAßE strasse").size() == 1);  // ß is not folded to ss
  CHECK(m->scan("STRAẞE").empty());              // nor to capital ẞ
  CHECK(m->scan("école").empty());               // É and é are different bytes
  CHECK(m->scan("ÉCOLE éCOLE Écolé").size() == 1);
  CHECK(spans(m->scan("AB aB Ab ab")) ==
        std::vector<std::pair<uint32_t, uint32_t>>{{0, 2}, {3, 5}, {6, 8}, {9, 11}});
}

TEST_CASE("scan: overlapping terms, terms at both ends, ordered by (begin, end)") {
  const auto m = build({{"炸弹", "violence"},
                        {"炸弹制作", "violence"},
                        {"制作", "spam"},
                        {"aa", "spam"},
                        {"a", "spam"}},
                       actions);
  const std::string text = "炸弹制作";  // 炸弹 [0,6) 制作 [6,12)
  const auto hits = m->scan(text);
  CHECK(spans(hits) == std::vector<std::pair<uint32_t, uint32_t>>{{0, 6}, {0, 12}, {6, 12}});
  CHECK(hits[1].category == "violence");
  CHECK(hits[2].category == "spam");
  CHECK(hits[2].act == action::flag);

  CHECK(spans(m->scan("aaa")) ==
        std::vector<std::pair<uint32_t, uint32_t>>{{0, 1}, {0, 2}, {1, 2}, {1, 3}, {2, 3}});
  const std::string ends = "炸弹 in the middle 炸弹";
  CHECK(spans(m->scan(ends)) ==
        std::vector<std::pair<uint32_t, uint32_t>>{{0, 6}, {ends.size() - 6, ends.size()}});
}

TEST_CASE("scan: many matches") {
  const auto m = build({{"毒品", "drugs"}, {"spam", "spam"}}, actions);
  std::string text;
  for (int i = 0; i < 1000; ++i) text += i % 2 ? "毒品," : "SPAM ";
  const auto hits = m->scan(text);
  REQUIRE(hits.size() == 1000);
  for (size_t i = 0; i < hits.size(); ++i) {
    CHECK(hits[i].category == (i % 2 ? "drugs" : "spam"));
    if (i > 0) CHECK(hits[i - 1].end <= hits[i].begin);
  }
  const std::string masked = apply_masks(text, hits);
  CHECK(masked.find("毒品") == std::string::npos);
  CHECK(masked.find("SPAM") != std::string::npos);
}

TEST_CASE("duplicates collapse, a term in two categories keeps the stronger action") {
  for (bool block_first : {true, false}) {
    std::vector<lexicon_term> terms = {{"bomb", "violence"}, {"BOMB", "spam"}};
    if (!block_first) std::swap(terms[0], terms[1]);
    terms.push_back({"Bomb", "spam"});
    terms.push_back({"炸弹", "drugs"});
    terms.push_back({"炸弹", "spam"});
    const auto m = build(terms, actions);
    CHECK(m->size() == 2);
    const auto hits = m->scan("a bomb, 一个炸弹");
    REQUIRE(hits.size() == 2);
    CHECK(hits[0].category == "violence");
    CHECK(hits[0].act == action::block);
    CHECK(hits[1].category == "drugs");
    CHECK(hits[1].act == action::mask);
  }
}

TEST_CASE("fallback action, the empty lexicon, compile errors") {
  const auto m = build({{"unknown-cat term", "misc"}}, actions, action::mask);
  const auto hits = m->scan("an unknown-cat term");
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].act == action::mask);
  CHECK(hits[0].category == "misc");

  const auto empty = build({}, actions);
  CHECK(empty->size() == 0);
  CHECK(empty->max_term_bytes() == 0);
  CHECK(empty->scan("anything at all 炸弹").empty());
  CHECK_FALSE(empty->blocks("anything at all 炸弹"));

  const auto no_block = build({{"spam", "spam"}}, actions);
  CHECK_FALSE(no_block->blocks("spam spam"));
  CHECK(no_block->scan("spam spam").size() == 2);

  std::string error;
  CHECK(keyword_matcher::compile({{"ok", "spam"}, {"", "spam"}}, actions, action::flag, error) ==
        nullptr);
  CHECK(error == "term 1 is empty");

  // NUL bytes and regex metacharacters are plain literal bytes.
  const auto lit = build({{std::string("a\0b", 3), "spam"}, {".*(x|y)+[", "violence"}}, actions);
  CHECK(lit->scan(std::string("xa\0by", 5)).size() == 1);
  CHECK(lit->scan("axb").empty());
  CHECK(lit->blocks("is .*(X|Y)+[ here"));
  CHECK_FALSE(lit->blocks("is xy here"));
}

TEST_CASE("blocks stops at the first block term and agrees with scan") {
  const auto m = build({{"炸弹", "violence"}, {"spam", "spam"}, {"冰毒", "drugs"}}, actions);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "spam 冰毒 ";
  CHECK_FALSE(m->blocks(text));
  CHECK(strongest(m->scan(text)) == action::mask);
  text += "炸弹";
  CHECK(m->blocks(text));
  CHECK(strongest(m->scan(text)) == action::block);
}

TEST_CASE("four threads share one matcher, each with its own scratch") {
  // Two matchers of very different sizes used alternately: each thread needs a scratch made for
  // each of them at once.
  const auto small = build({{"炸弹", "violence"}, {"spam", "spam"}}, actions);
  std::vector<lexicon_term> many;
  for (int i = 0; i < 2000; ++i) many.push_back({"term" + std::to_string(i) + "x", "drugs"});
  many.push_back({"炸弹", "violence"});
  const auto big = build(many, actions);

  std::string text;
  for (int i = 0; i < 40; ++i) text += "spam 炸弹 term" + std::to_string(i * 37) + "x 文本 ";
  const auto want_small = small->scan(text);
  const auto want_big = big->scan(text);
  REQUIRE(want_small.size() == 80);
  REQUIRE(want_big.size() == 80);

  std::atomic<int> mismatches{0};
  std::atomic<int> scans{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const bool use_big = (i + t) % 3 == 0;
        const auto& m = use_big ? big : small;
        if (m->scan(text) != (use_big ? want_big : want_small)) ++mismatches;
        if (!m->blocks(text)) ++mismatches;
        ++scans;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0);
  CHECK(scans.load() == 1200);

  // More matchers in rotation than a thread caches scratches for (8), some dropped on the way:
  // evicted scratches are made again, and a new matcher never inherits a stale one.
  std::vector<matcher_ptr> rotation;
  std::vector<size_t> expected;  // hits of each on the text below
  for (int k = 0; k < 12; ++k) {
    std::vector<lexicon_term> terms(many.begin(), many.begin() + 100 * (k + 1));
    rotation.push_back(build(terms, actions));
    expected.push_back(k == 0 ? 2 : 3);
  }
  for (size_t round = 0; round < 3; ++round) {
    for (size_t k = 0; k < rotation.size(); ++k) {
      CHECK(rotation[k]->scan("term0x term99x term150x term2000x").size() == expected[k]);
    }
    rotation[round * 4] = build({{"term2000x", "spam"}}, actions);
    expected[round * 4] = 1;
  }
}

TEST_CASE("random bytes: scan agrees with brute force and never fails") {
  const std::vector<std::string> terms = {"ab", "BA", "aab", "炸弹", "弹", "\xE4", "a\xFF", "zzzz"};
  std::vector<lexicon_term> lex;
  for (const auto& t : terms) lex.push_back({t, "spam"});
  lex.push_back({"zzzz", "violence"});
  const auto m = build(lex, actions);

  std::mt19937 rng(7);
  const std::string alphabet = "abABz \xE4\xFF\xB8\xE7\x82\xB8\xE5\xBC\xB9";
  std::uniform_int_distribution<int> len_dist(0, 200);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(alphabet.size()) - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  size_t total = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string s(static_cast<size_t>(len_dist(rng)), '\0');
    for (char& c : s) {
      c = iter % 4 == 0 ? static_cast<char>(byte(rng)) : alphabet[static_cast<size_t>(pick(rng))];
    }
    std::unique_ptr<char[]> buf(new char[s.size()]);  // exact size: ASan sees overreads
    std::memcpy(buf.get(), s.data(), s.size());
    const std::string_view view(buf.get(), s.size());
    const auto hits = m->scan(view);
    total += hits.size();
    CHECK(spans(hits) == naive(s, terms));
    CHECK(m->blocks(view) == (lower(s).find("zzzz") != std::string::npos));
  }
  CHECK(total > 1000);
}
