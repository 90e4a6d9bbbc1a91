// tcbench tokenizer: see tokenizer.hpp. Single-threaded; the median of `rounds` timed calls per
// text is reported, as MB/s of UTF-8 input and tokens/s.
#include "tools/tcbench/tokenizer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/scheduling/context.hpp"
#include "protocol/scheduling/vocab.hpp"

namespace tc::bench {

namespace {

using bench_clock = std::chrono::steady_clock;

const char* const en_sentences[] = {
    "Please summarize the following document and highlight the key decisions made.",
    "Write a short function that parses the configuration file and reports errors.",
    "What are the main differences between the two approaches described above?",
    "Translate the paragraph into formal English while keeping the original meaning.",
    "The gateway queues requests by priority, batches them per model, and protects "
    "each endpoint from contexts longer than its window.",
    "In 2024, the team shipped 17 releases; the largest one changed 3,482 lines.",
    "\"Don't retry on a 4xx,\" she said, \"unless it's a 429 with Retry-After.\"",
    "def handle(request):\n    return route(request, timeout=30)\n",
};
const char* const zh_sentences[] = {
    "请帮我写一份关于城市交通规划的报告，重点分析早晚高峰的拥堵原因和可能的解决方案。",
    "我们公司下个季度计划推出新的产品线，需要一份详细的市场调研和竞争对手分析。",
    "这段代码在处理大文件时内存占用很高，能否给出优化建议并解释原因？",
    "把下面的会议纪要整理成要点，并列出每个人负责的后续事项和截止日期。",
    "孩子最近对天文很感兴趣，请推荐几本适合十岁左右读者的科普书籍。",
    "用简单的语言解释一下机器学习中过拟合的概念，以及常见的预防方法。",
    "二〇二四年第三季度营收同比增长百分之十二，达到三百四十五亿元。",
    "网关按优先级排队，按模型分批，并保护每个端点不超出其上下文窗口。",
};

/// About `bytes` of text: the sentences in a deterministic shuffled order, space-joined.
template <size_t N>
std::string make_text(const char* const (&sentences)[N], size_t bytes, const char* joint) {
  std::string out;
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  while (out.size() < bytes) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    out += sentences[(state >> 33) % N];
    out += joint;
  }
  return out;
}

struct figures {
  double median_us = 0;
  uint32_t tokens = 0;
};

figures measure(const scheduling::token_counter& counter, const std::string& text,
                unsigned rounds) {
  std::vector<double> us;
  uint32_t tokens = 0;
  for (unsigned i = 0; i < rounds + 5; ++i) {
    const auto t0 = bench_clock::now();
    tokens = counter.count(text);
    const auto t1 = bench_clock::now();
    if (i >= 5) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], tokens};
}

void row(const char* what, const char* text_name, const std::string& text, const figures& f) {
  const double mb_s = text.size() / f.median_us;  // bytes per µs = MB/s
  const double tok_s = f.tokens / f.median_us * 1e6;
  std::printf("| %s | %s | %zu | %u | %.1f | %.1f | %.2f M |\n", what, text_name, text.size(),
              f.tokens, f.median_us, mb_s, tok_s / 1e6);
}

}  // namespace

int run_tokenizer(const tokenizer_args& a, const std::string& command_line) {
  std::printf("## tcbench tokenizer\n\nCommand: `%s`\n\n", command_line.c_str());
  const std::string english = make_text(en_sentences, 16 * 1024, " ");
  const std::string chinese = make_text(zh_sentences, 16 * 1024, "");
  std::printf("Median of %u calls of count() on one thread.\n\n", a.rounds);
  std::printf("| counter | text | bytes | tokens | µs | MB/s | tokens/s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  const scheduling::estimate_counter estimate;
  row("estimator", "English", english, measure(estimate, english, a.rounds));
  row("estimator", "Chinese", chinese, measure(estimate, chinese, a.rounds));
  for (const std::string& file : a.files) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "cannot read %s\n", file.c_str());
      return 1;
    }
    std::string error;
    const auto t0 = bench_clock::now();
    auto counter = scheduling::vocab_counter::from_json(ss.str(), error);
    const double build_ms =
        std::chrono::duration<double, std::milli>(bench_clock::now() - t0).count();
    if (counter == nullptr) {
      std::fprintf(stderr, "%s does not build: %s\n", file.c_str(), error.c_str());
      return 1;
    }
    const std::string name = file.substr(file.find_last_of('/') + 1);
    row(name.c_str(), "English", english, measure(*counter, english, a.rounds));
    row(name.c_str(), "Chinese", chinese, measure(*counter, chinese, a.rounds));
    std::fprintf(stderr, "%s: %zu vocab entries, built in %.1f ms\n", name.c_str(),
                 counter->vocab_size(), build_ms);
  }
  return 0;
}

}  // namespace tc::bench
