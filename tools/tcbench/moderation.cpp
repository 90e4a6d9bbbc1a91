// tcbench moderation: keyword and PII moderation latency on a 4 KB prompt with a 10,000-term
// lexicon (issue 5's target: at most 50 us at p50).
// Terms and prompt are generated deterministically from one pool of common Chinese characters
// and English syllables, so the prompt shares most bytes with the lexicon (a pessimistic case
// for the literal matcher); terms that happen to occur in the clean prompt are dropped.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tools/tcbench/moderation.hpp"

#include "protocol/moderation/keywords.hpp"
#include "protocol/moderation/pii.hpp"

namespace tc::bench {

using namespace tc::moderation;
using bench_clock = std::chrono::steady_clock;

namespace {

constexpr int iterations = 20000;

const char* const zh_sentences[] = {
    "请帮我写一份关于城市交通规划的报告，重点分析早晚高峰的拥堵原因和可能的解决方案。",
    "我们公司下个季度计划推出新的产品线，需要一份详细的市场调研和竞争对手分析。",
    "这段代码在处理大文件时内存占用很高，能否给出优化建议并解释原因？",
    "把下面的会议纪要整理成要点，并列出每个人负责的后续事项和截止日期。",
    "孩子最近对天文很感兴趣，请推荐几本适合十岁左右读者的科普书籍。",
    "用简单的语言解释一下机器学习中过拟合的概念，以及常见的预防方法。",
};
const char* const en_sentences[] = {
    "Please summarize the following document and highlight the key decisions made. ",
    "Write a short function that parses the configuration file and reports errors. ",
    "What are the main differences between the two approaches described above? ",
    "Translate the paragraph into formal English while keeping the original meaning. ",
};
const char* const syllables[] = {"ka",  "zor", "vel", "mit", "qua", "dre", "lon", "fis",
                                 "gru", "xen", "pol", "tav", "rin", "sho", "bek", "wum"};

std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string make_prompt() {
  std::string p;
  for (size_t i = 0; p.size() < 4096; ++i) {
    p += zh_sentences[i % std::size(zh_sentences)];
    p += en_sentences[i % std::size(en_sentences)];
  }
  // Cut back to 4096 bytes on a character boundary.
  size_t cut = 4096;
  while (cut > 0 && (static_cast<unsigned char>(p[cut]) & 0xC0) == 0x80) --cut;
  p.resize(cut);
  return p;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::vector<lexicon_term> make_lexicon(const std::string& prompt) {
  std::set<std::string> pool_set;
  for (const char* s : zh_sentences) {
    for (const std::string& ch : utf8_chars(s)) {
      if (ch.size() == 3 && ch != "，" && ch != "。" && ch != "？") pool_set.insert(ch);
    }
  }
  const std::vector<std::string> pool(pool_set.begin(), pool_set.end());
  const std::string lprompt = lower(prompt);
  const char* const categories[] = {"politics", "violence", "drugs", "ads"};

  std::mt19937 rng(12345);
  std::vector<lexicon_term> terms;
  std::set<std::string> seen;
  while (terms.size() < 10000) {
    std::string t;
    if (terms.size() % 3 != 2) {  // two thirds Chinese, 2-6 characters
      const int n = 2 + static_cast<int>(rng() % 5);
      for (int i = 0; i < n; ++i) t += pool[rng() % pool.size()];
    } else {  // one third English, 2-4 syllables
      const int n = 2 + static_cast<int>(rng() % 3);
      for (int i = 0; i < n; ++i) t += syllables[rng() % std::size(syllables)];
    }
    if (lprompt.find(lower(t)) != std::string::npos || !seen.insert(lower(t)).second) continue;
    terms.push_back({t, categories[terms.size() % std::size(categories)]});
  }
  return terms;
}

struct stats {
  double p50, p90, p99;
};

template <class F>
stats measure(F&& f) {
  std::vector<double> us(iterations);
  for (int i = 0; i < 200; ++i) f();  // warm-up
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = bench_clock::now();
    f();
    us[i] = std::chrono::duration<double, std::micro>(bench_clock::now() - t0).count();
  }
  std::sort(us.begin(), us.end());
  return {us[iterations / 2], us[iterations * 9 / 10], us[iterations * 99 / 100]};
}

/// As measure(), with every cache flushed before each call: a 64 MB sweep, untimed (a node
/// between requests: other work has evicted the lexicon's database).
template <class F>
stats measure_cold(F&& f) {
  constexpr int runs = 300;
  static std::vector<char> sweep(64u << 20, 1);
  std::vector<double> us(runs);
  for (int i = 0; i < runs; ++i) {
    for (size_t k = 0; k < sweep.size(); k += 64) ++sweep[k];
    const auto t0 = bench_clock::now();
    f();
    us[i] = std::chrono::duration<double, std::micro>(bench_clock::now() - t0).count();
  }
  std::sort(us.begin(), us.end());
  return {us[runs / 2], us[runs * 9 / 10], us[runs * 99 / 100]};
}

void report(const char* what, const stats& s) {
  std::printf("  %-40s p50 %8.2f  p90 %8.2f  p99 %8.2f us\n", what, s.p50, s.p90, s.p99);
}

}  // namespace

int write_moderation_inputs(const std::string& dir) {
  const std::string prompt = make_prompt();
  const std::vector<lexicon_term> terms = make_lexicon(prompt);
  std::map<std::string, std::vector<std::string>> by_category;
  for (const auto& t : terms) by_category[t.category].push_back(t.text);
  std::ofstream lex(dir + "/lexicon.txt", std::ios::binary | std::ios::trunc);
  lex << "# 10,000 generated terms (tcbench moderation --write)\n";
  for (const auto& [category, list] : by_category) {
    lex << "[" << category << "]\n";
    for (const auto& t : list) lex << t << "\n";
  }
  std::string escaped;
  for (char c : prompt) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  std::ofstream chat(dir + "/chat.json", std::ios::binary | std::ios::trunc);
  chat << R"({"model":"bench-model","messages":[{"role":"user","content":")" << escaped
       << R"("}],"max_tokens":16})";
  if (!lex.good() || !chat.good()) {
    std::fprintf(stderr, "cannot write %s/lexicon.txt or chat.json\n", dir.c_str());
    return 1;
  }
  std::printf("wrote %s/lexicon.txt (%zu terms) and %s/chat.json (%zu-byte prompt)\n", dir.c_str(),
              terms.size(), dir.c_str(), prompt.size());
  return 0;
}

int run_moderation(const std::string& command_line) {
  std::printf("## tcbench moderation\n\nCommand: `%s`\n\n", command_line.c_str());
  const std::string clean = make_prompt();
  const std::vector<lexicon_term> terms = make_lexicon(clean);
  const std::map<std::string, action> actions = {{"politics", action::block},
                                                 {"violence", action::block},
                                                 {"drugs", action::mask},
                                                 {"ads", action::flag}};

  std::string error;
  const auto t0 = bench_clock::now();
  const auto m = keyword_matcher::compile(terms, actions, action::flag, error);
  const double compile_ms =
      std::chrono::duration<double, std::milli>(bench_clock::now() - t0).count();
  if (!m) {
    std::fprintf(stderr, "compile failed: %s\n", error.c_str());
    return 1;
  }
  std::printf("lexicon: %zu distinct terms, longest %zu bytes, compiled in %.1f ms\n", m->size(),
              m->max_term_bytes(), compile_ms);

  // The dirty prompt: the clean one with five terms (one of each action kind or so) inserted,
  // trimmed back to about 4 KB.
  std::string dirty = clean;
  const size_t picks[] = {3, 1000, 4002, 7001, 9998};  // categories cycle every 4 terms
  for (size_t k = 0; k < std::size(picks); ++k) {
    const size_t at = (k + 1) * 600;
    const size_t pos = at - (at % 3);  // inside the leading Chinese text: keep alignment simple
    size_t p = pos;
    while (p < dirty.size() && (static_cast<unsigned char>(dirty[p]) & 0xC0) == 0x80) ++p;
    dirty.insert(p, terms[picks[k]].text);
  }
  const auto clean_hits = m->scan(clean);
  const auto dirty_hits = m->scan(dirty);
  std::printf("prompt: clean %zu bytes (%zu hits), dirty %zu bytes (%zu hits, blocks=%d)\n",
              clean.size(), clean_hits.size(), dirty.size(), dirty_hits.size(),
              static_cast<int>(m->blocks(dirty)));
  if (!clean_hits.empty() || dirty_hits.size() < std::size(picks)) {
    std::fprintf(stderr, "unexpected hit counts\n");
    return 1;
  }

  std::printf("%d iterations each:\n", iterations);
  size_t sink = 0;
  report("scan(clean 4 KB)", measure([&] { sink += m->scan(clean).size(); }));
  report("scan(dirty 4 KB)", measure([&] { sink += m->scan(dirty).size(); }));
  report("blocks(clean 4 KB)", measure([&] { sink += m->blocks(clean); }));
  report("blocks(dirty 4 KB)", measure([&] { sink += m->blocks(dirty); }));
  report("find_pii(clean 4 KB)", measure([&] { sink += find_pii(clean).size(); }));
  report("scan + find_pii (clean 4 KB)",
         measure([&] { sink += m->scan(clean).size() + find_pii(clean).size(); }));
  std::printf("300 iterations each, every cache flushed before each (64 MB sweep, untimed):\n");
  report("scan(clean 4 KB), cold", measure_cold([&] { sink += m->scan(clean).size(); }));
  report("find_pii(clean 4 KB), cold", measure_cold([&] { sink += find_pii(clean).size(); }));
  report("scan + find_pii (clean 4 KB), cold",
         measure_cold([&] { sink += m->scan(clean).size() + find_pii(clean).size(); }));

  // Scratch overhead.
  const auto tiny = keyword_matcher::compile({{"zz", "ads"}}, actions, action::flag, error);
  report("scan(\"hi\"), same matcher each call", measure([&] { sink += m->scan("hi").size(); }));
  bool flip = false;
  report("scan(\"hi\"), alternating two matchers", measure([&] {
           flip = !flip;
           sink += (flip ? m : tiny)->scan("hi").size();
         }));
  double first_us = 0;
  double second_us = 0;
  constexpr int thread_runs = 50;
  for (int i = 0; i < thread_runs; ++i) {
    std::thread th([&] {
      const auto a = bench_clock::now();
      sink += m->scan("hi").size();
      const auto b = bench_clock::now();
      sink += m->scan("hi").size();
      const auto c = bench_clock::now();
      first_us += std::chrono::duration<double, std::micro>(b - a).count();
      second_us += std::chrono::duration<double, std::micro>(c - b).count();
    });
    th.join();
  }
  std::printf("  first scan in a new thread (clones a scratch): mean %.2f us; second %.2f us\n",
              first_us / thread_runs, second_us / thread_runs);
  std::printf("(sink %zu)\n", sink);
  return 0;
}

}  // namespace tc::bench
