// protocol/scheduling/vocab.cpp: exact counts from tokenizer.json files, checked against
// HuggingFace tokenizers, the refusals of what is not implemented, and use as the counter of
// protect_context.
//
// tests/protocol/data/bpe_*.json are three byte-level BPE tokenizers made for these tests: 700
// merges trained on docs/*.md and DESIGN.md (plus a few Chinese lines), with three pipelines:
// bpe_split (NFC, a Qwen-style Split, ByteLevel without regex, merges as pairs, an added token
// marked normalized), bpe_gpt2 (ByteLevel with the GPT-2 regex and a prefix space, merges as
// strings, ignore_merges) and bpe_multi (NFKC in a Sequence, a String Split and an inverted
// Removed Split; its vocab also holds " TokensChain", a word its merges never build). bpe_llama3
// and bpe_deepseek are bpe_split's vocab and merges with Llama 3's pre-tokenizer (its Split
// pattern, no normalizer) and DeepSeek V3's (three Splits: digits, CJK runs, its main pattern; an
// empty normalizer Sequence). The expected counts are what HuggingFace tokenizers 0.23.2 (npm
// `tokenizers`, encode without special tokens) returned for each text.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/scheduling/context.hpp"
#include "protocol/scheduling/vocab.hpp"

using namespace tc::scheduling;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(TC_SOURCE_DIR) + "/tests/protocol/data/" + name, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<const vocab_counter> load(const std::string& name) {
  std::string error;
  auto counter = vocab_counter::from_json(fixture(name), error);
  INFO(error);
  REQUIRE(counter != nullptr);
  CHECK(error.empty());
  return counter;
}

struct expected {
  std::string text;
  uint32_t split, gpt2, multi, llama3, deepseek;  ///< HuggingFace's counts with each fixture
};

const std::vector<expected> cases = {
    {"", 0, 0, 0, 0, 0},             //
    {"x", 1, 2, 1, 1, 1},            // x
    {"Hello world", 5, 5, 5, 5, 5},  // Hello world
    {"The gateway queues requests by priority and batches them per model.", 22, 22, 22, 22,
     22},  // The gateway queues requests by priority and batches them per
    {"HELLO'S we'LL don't I'm", 18, 18, 18, 18, 18},  // HELLO'S we'LL don't I'm
    {"1234567 3.14159 and 42", 19, 16, 17, 17, 17},   // 1234567 3.14159 and 42
    {"\344\273\212\345\244\251\345\244\251\346\260\224\345\276\210\345\245\275\357\274\214\346\210"
     "\221\344\273\254\345\216\273\345\205\254\345\233\255\346\225\243\346\255\245\345\220\247\343"
     "\200\202",
     48, 49, 46, 48, 48},  // 今天天气很好，我们去公园散步吧。
    {"\343\201\223\343\202\223\343\201\253\343\201\241\343\201\257 "
     "\354\225\210\353\205\225\355\225\230\354\204\270\354\232\224 "
     "\320\237\321\200\320\270\320\262\320\265\321\202",
     44, 45, 44, 44, 44},  // こんにちは 안녕하세요 Привет
    {"emoji \360\237\231\202\360\237\221\215\360\237\217\275\360\237\207\250\360\237\207\263", 25,
     26, 25, 25, 25},  // emoji 🙂👍🏽🇨🇳
    {"line one\015\012line two\012\012\011indented   spaces  ", 20, 20, 20, 20,
     20},  // line one\r\nline two\n\n\tindented   spaces
    {"\013\014\302\205\302\240\343\200\200 odd spaces", 15, 16, 11, 15,
     15},  // \x0b\x0c\x85\xa0　 odd spaces
    {"e\314\201 vs \303\251, \342\204\253, \357\254\201, \342\221\240, "
     "\357\275\206\357\275\225\357\275\214\357\275\214",
     35, 37, 19, 37, 37},  // é vs é, Å, ﬁ, ①, ｆｕｌｌ
    {"<|im_start|>user\012hi<|im_end|>", 7, 21, 20, 7, 7},  // <|im_start|>user\nhi<|im_end|>
    {"<|endoftext|><|endoftext|>", 2, 2, 16, 2, 2},         // <|endoftext|><|endoftext|>
    {"<|endofprompt|>x", 10, 11, 2, 10, 10},                // <|endofprompt|>x
    {"caf\303\251! and cafe\314\201! and CAF\303\211!", 11, 21, 20, 21,
     21},                        // café! and café! and CAFÉ!
    {"a::b::c", 5, 5, 5, 5, 5},  // a::b::c
    {"def f(x):\012    return x  # comment\012", 22, 20, 22, 22,
     22},  // def f(x):\n    return x  # comment\n
    {"{\"role\": \"user\", \"content\": \"hi\"}", 15, 16, 15, 15,
     15},  // {"role": "user", "content": "hi"}
    {"context window context window context window", 15, 15, 15, 15,
     15},                                  // context window context window context window
    {"   leading spaces", 7, 7, 7, 7, 7},  //    leading spaces
    {"http://example.com/a/b?q=1&r=2", 23, 25, 23, 23, 23},  // http://example.com/a/b?q=1&r=2
    {"\303\234n\303\257c\303\266d\303\251 w\303\266rds \303\241nd \303\240ccents", 28, 29, 28, 28,
     28},  // Ünïcödé wörds ánd àccents
    {"\331\205\330\261\330\255\330\250\330\247 "
     "\330\250\330\247\331\204\330\271\330\247\331\204\331\205",
     25, 26, 25, 25, 25},  // مرحبا بالعالم
    {"MixedCASEWords camelCase snake_case", 21, 21, 21, 21,
     21},                                         // MixedCASEWords camelCase snake_case
    {"\015\012    indented", 8, 7, 8, 8, 8},      // \r\n    indented
    {"            \012\012\012", 3, 3, 3, 3, 3},  //             \n\n\n
    {"about TokensChain", 8, 3, 8, 8, 8},         // about TokensChain
    {std::string(300, 'a'), 300, 300, 300, 300, 300},
    {"Hello \344\270\226\347\225\214! "
     "\346\210\221\346\234\2113\344\270\252\360\237\215\216\345\222\21412345\344\270\252\360\237"
     "\215\214\343\200\202\012\012  Tabs\011here \342\200\224 ok?",
     55, 54, 54, 54, 54},  // Hello 世界! 我有3个🍎和12345个🍌。\n\n  Tabs\there — ok?
    {"DeepSeek-V3 \345\234\250 2024\345\271\26412\346\234\21026\346\227\245 "
     "\345\217\221\345\270\203\357\274\214\345\217\202\346\225\260 671B\343\200\202",
     56, 51, 51, 53, 53},  // DeepSeek-V3 在 2024年12月26日 发布，参数 671B。
    {"\346\227\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203"
     "\210\357\274\232\343\202\253\343\202\277\343\202\253\343\203\212\343\201\250\343\201\262\343"
     "\202\211\343\201\214\343\201\252\343\200\201\346\274\242\345\255\227\343\200\202",
     66, 67, 64, 66, 66},  // 日本語のテキスト：カタカナとひらがな、漢字。
    {"x = [1, 2, 3]  # list\015\012\015\012\011print(x)", 27, 26, 27, 27,
     27},  // x = [1, 2, 3]  # list\r\n\r\n\tprint(x)
    {"I'M GOING, WE'LL SEE; they've 'quoted' it", 29, 29, 29, 29,
     29},                                          // I'M GOING, WE'LL SEE; they've 'quoted' it
    {"   \012\012   trailing   ", 9, 9, 9, 9, 9},  //    \n\n   trailing
    {"\342\200\246and \342\200\234quotes\342\200\235 \342\200\224 dashes \342\200\223 "
     "\302\253guillemets\302\273",
     31, 32, 32, 31, 31},  // …and “quotes” — dashes – «guillemets»
    {"\303\274ber na\303\257ve fa\303\247ade \357\254\201nancial "
     "\342\221\240\342\221\241\342\221\242 "
     "\357\274\241\357\274\242\357\274\243\357\274\221\357\274\222\357\274\223",
     53, 54, 29, 53, 53},  // über naïve façade ﬁnancial ①②③ ＡＢＣ１２３
    {"$100.00 #tag @user .NET -flag", 23, 22, 21, 21, 21},  // $100.00 #tag @user .NET -flag
};

/// A tokenizer.json from bpe_gpt2.json with `from` replaced by `to` (which must be there).
std::string edited(const std::string& from, const std::string& to) {
  std::string text = fixture("bpe_gpt2.json");
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string refusal(const std::string& json) {
  std::string error;
  auto counter = vocab_counter::from_json(json, error);
  CHECK(counter == nullptr);
  return error;
}

}  // namespace

TEST_CASE("vocab: counts equal HuggingFace tokenizers' on five pipelines") {
  const auto split = load("bpe_split.json");
  const auto gpt2 = load("bpe_gpt2.json");
  const auto multi = load("bpe_multi.json");
  const auto llama3 = load("bpe_llama3.json");
  const auto deepseek = load("bpe_deepseek.json");
  CHECK(split->vocab_size() == 956);
  // Bounds for the caller's shortcut: NFC x3, prefix space x2, NFKC x11, none.
  CHECK(split->max_tokens_per_byte() == 3);
  CHECK(gpt2->max_tokens_per_byte() == 2);
  CHECK(multi->max_tokens_per_byte() == 11);
  CHECK(llama3->max_tokens_per_byte() == 1);
  for (const expected& e : cases) {
    CAPTURE(e.text);
    CHECK(split->count(e.text) == e.split);
    CHECK(gpt2->count(e.text) == e.gpt2);
    CHECK(multi->count(e.text) == e.multi);
    CHECK(llama3->count(e.text) == e.llama3);
    CHECK(deepseek->count(e.text) == e.deepseek);
  }
}

TEST_CASE("vocab: counts are additive only across added tokens") {
  const auto split = load("bpe_split.json");
  // An added token is one token wherever it is, and cuts the text around it.
  const std::string a = "The gateway queues requests";
  const std::string b = "by priority and batches";
  CHECK(split->count(a + "<|im_end|>" + b) == split->count(a) + 1 + split->count(b));
  // Merges make a long word fewer tokens than its letters.
  CHECK(split->count("context") < 7);
}

TEST_CASE("vocab: a merge whose pair changed meanwhile is skipped") {
  // Lowest ranks first: "j q" (0), "z j" (1), "z jq" (2), "zj x" (3). In " zjqx", "j q" goes
  // first; then "z j" no longer applies (its right symbol is now "jq"): "z jq" does, and
  // "zj x" never can. HuggingFace: 3 tokens (" ", "zjq", "x"); applying the stale "z j" would
  // give "zj" then "zjx": 2.
  std::string text = edited("\"merges\":[\"", "\"merges\":[\"j q\",\"z j\",\"z jq\",\"zj x\",\"");
  text.replace(text.find("\"vocab\":{"), 9,
               "\"vocab\":{\"jq\":2000,\"zj\":2001,\"zjq\":2002,\"zjx\":2003,");
  std::string error;
  auto counter = vocab_counter::from_json(text, error);
  INFO(error);
  REQUIRE(counter != nullptr);
  CHECK(counter->count("zjqx") == 3);
  CHECK(counter->count("zj") == 2);
}

TEST_CASE("vocab: what is not implemented is refused, not approximated") {
  auto says = [](const std::string& error, const std::string& what) {
    CAPTURE(error);
    return error.find(what) != std::string::npos;
  };
  CHECK(says(refusal("not json"), "not JSON"));
  CHECK(says(refusal("[]"), "not a JSON object"));
  CHECK(says(refusal("{}"), "no model"));
  CHECK(says(refusal(edited("\"type\":\"BPE\"", "\"type\":\"WordPiece\"")), "only BPE"));
  CHECK(says(refusal(edited("\"dropout\":null", "\"dropout\":0.1")), "dropout"));
  CHECK(
      says(refusal(edited("\"byte_fallback\":false", "\"byte_fallback\":true")), "byte_fallback"));
  CHECK(says(
      refusal(edited("\"continuing_subword_prefix\":null", "\"continuing_subword_prefix\":\"##\"")),
      "continuing_subword_prefix"));
  CHECK(says(refusal(edited("\"normalizer\":null", "\"normalizer\":{\"type\":\"Lowercase\"}")),
             "Lowercase is not supported"));
  CHECK(says(
      refusal(edited("\"pre_tokenizer\":{\"type\":\"ByteLevel\"",
                     "\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"x\":{\"type\":\"ByteLevel\"")),
      "Whitespace is not supported"));
  CHECK(says(refusal(edited("\"pre_tokenizer\":{\"type\":\"ByteLevel\"",
                            "\"pre_tokenizer\":null,\"x\":{\"type\":\"ByteLevel\"")),
             "no ByteLevel"));
  CHECK(says(refusal(edited("\"lstrip\":false", "\"lstrip\":true")), "lstrip"));
  CHECK(says(refusal(edited("\"vocab\":{\"\304\200\":0,", "\"vocab\":{")), "of byte 0 "));
  CHECK(says(refusal(edited("\"merges\":[\"", "\"merges\":[\"nope x\",\"")), "not in the vocab"));
  CHECK(says(refusal(edited("\"merges\":[\"", "\"merges\":[\"a b c\",\"")), "two symbols"));
  // A Split with a behavior not implemented, a regex that does not compile, a Split after
  // ByteLevel.
  const std::string multi = fixture("bpe_multi.json");
  std::string merged = multi;
  merged.replace(merged.find("\"Isolated\""), 10, "\"MergedWithPrevious\"");
  CHECK(says(refusal(merged), "MergedWithPrevious is not supported"));
  std::string broken = multi;
  broken.replace(broken.find("\\\\p{N}{1,3}"), 11, "(unclosed");
  CHECK(says(refusal(broken), "does not compile"));
  const std::string split = fixture("bpe_split.json");
  const size_t first = split.find("{\"type\":\"Split\"");
  const size_t second = split.find("{\"type\":\"ByteLevel\"", first);
  REQUIRE(second != std::string::npos);
  const size_t second_end = split.find('}', second) + 1;
  std::string after = split.substr(0, first) + split.substr(second, second_end - second) + "," +
                      split.substr(first, second - first - 1) + split.substr(second_end);
  CHECK(says(refusal(after), "Split after ByteLevel"));
}

TEST_CASE("vocab: as the counter of protect_context") {
  const auto split = load("bpe_split.json");
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"Hello world"},)"
      R"({"role":"assistant","content":"The gateway queues requests by priority and batches )"
      R"(them per model."},{"role":"user","content":"x"}]})";
  auto r = protect_context(body, 100'000, 0, context_mode::reject, *split);
  CHECK(r.prompt_tokens == 3 + (4 + 5) + (4 + 22) + (4 + 1));
  r = protect_context(body, 3 + 4 + 1, 0, context_mode::truncate_oldest, *split);
  CHECK(r.fits);
  CHECK(r.dropped_messages == 2);
}
