// protocol/text/regex.cpp: each construct, the pre-tokenizer patterns of real tokenizer.json
// files on mixed input, compile errors, and the step budget. Where a test gives the splits of a
// real pattern, they are what Oniguruma 6.9.8 (Debian 12's libonig5, the version HuggingFace
// tokenizers bundles) returns for the same pattern and text.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "protocol/text/regex.hpp"

using tc::text::regex;

namespace {

regex compiled(const std::string& pattern) {
  std::string error;
  std::optional<regex> re = regex::compile(pattern, error);
  INFO(pattern, " ", error);
  REQUIRE(re.has_value());
  return std::move(*re);
}

/// The matches of `pattern` in `text`, as strings.
std::vector<std::string> matches(const std::string& pattern, const std::string& text) {
  const regex re = compiled(pattern);
  std::vector<regex::span> spans;
  CHECK(re.find_all(text, spans));
  std::vector<std::string> out;
  for (const regex::span& s : spans) out.push_back(text.substr(s.begin, s.end - s.begin));
  return out;
}

using list = std::vector<std::string>;

std::string compile_error(const std::string& pattern) {
  std::string error;
  CHECK_FALSE(regex::compile(pattern, error).has_value());
  CHECK_FALSE(error.empty());
  return error;
}

const std::string gpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const std::string llama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string qwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string deepseek_digits = R"(\p{N}{1,3})";
const std::string deepseek_cjk = "[一-龥぀-ゟ゠-ヿ]+";
const std::string deepseek_main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::string english =
    "Hello 世界! I'm 3 years old, WE'LL see 12345 \xF0\x9F\x8D\x8E\xF0\x9F\x8D\x8E\n\n  \tok?  ";
const std::string chinese = "DeepSeek-V3 发布于2024年，日本語のカタカナ。 $100 .NET\r\n";
const std::string apples = "\xF0\x9F\x8D\x8E\xF0\x9F\x8D\x8E";  // 🍎🍎

}  // namespace

TEST_CASE("regex: literals, escapes and the dot") {
  CHECK(matches(R"(a\.b)", "a.b axb") == list{"a.b"});
  CHECK(matches(R"(\t|\n|\r|\f|\v)", "a\tb\nc\rd\fe\v") == list{"\t", "\n", "\r", "\f", "\v"});
  CHECK(matches(R"(\x41|\x{4E00}|\u3042)", "xA一あ") == list{"A", "一", "あ"});
  CHECK(matches(R"(\\|\-|\[|\]|\'|\ )", "a\\-[]' ") == list{"\\", "-", "[", "]", "'", " "});
  CHECK(matches(".", "a\nb") == list{"a", "b"});  // . is not \n
  CHECK(matches("世.", "世界世\n") == list{"世界"});
  CHECK(matches("a{x", "a{x") == list{"a{x"});  // not an interval: a literal {
}

TEST_CASE("regex: character classes") {
  CHECK(matches("[a-c]+", "abcdcba") == list{"abc", "cba"});
  CHECK(matches("[^a-c]+", "abxyzc") == list{"xyz"});
  CHECK(matches(R"([\p{L}\d]+)", "ab12 c3!") == list{"ab12", "c3"});
  CHECK(matches(R"([\s,]+)",
                "a, b\t\xE3\x80\x80"
                "c") == list{", ", "\t\xE3\x80\x80"});
  CHECK(matches(R"([\-a]+|[a-]+)", "-a-") == list{"-a-"});
  CHECK(matches("[a-]+", "a-b") == list{"a-"});
  CHECK(matches("[]a]+", "]a]b") == list{"]a]"});
  CHECK(matches(R"([^\s\p{L}\p{N}]+)", "ab, 12!? 😀") == list{",", "!?", "😀"});
  CHECK(matches("[一-龥]+", "abc中文def") == list{"中文"});
  CHECK(matches(R"([\b])", "a\bb") == list{"\b"});
}

TEST_CASE("regex: General Category properties") {
  CHECK(matches(R"(\p{L}+)", "Hello, 世界 Привет") == list{"Hello", "世界", "Привет"});
  CHECK(matches(R"(\p{Lu}+)", "aBCdE") == list{"BC", "E"});
  CHECK(matches(R"(\p{Ll}+)", "aBCdE") == list{"a", "d"});
  CHECK(matches(R"(\P{L}+)", "ab12cd") == list{"12"});
  CHECK(matches(R"(\p{^L}+)", "ab12cd") == list{"12"});
  CHECK(matches(R"(\p{Letter}+)", "ab12") == list{"ab"});
  CHECK(matches(R"(\p{N}+)", "x1²Ⅻ①٣y") == list{"1²Ⅻ①٣"});
  CHECK(matches(R"(\p{Nd}+)", "x1²٣y") == list{"1", "٣"});
  CHECK(matches(R"(\p{P}+)", "a,.!?「」b") == list{",.!?「」"});
  CHECK(matches(R"(\p{S}+)", "a+$^😀b") == list{"+$^😀"});
  CHECK(matches(R"(\p{M}+)", "e\xCC\x81x") == list{"\xCC\x81"});
  CHECK(matches(R"(\p{Z}+)",
                "a \xC2\xA0\xE3\x80\x80"
                "b") == list{" \xC2\xA0\xE3\x80\x80"});
  CHECK(matches(R"(\p{C}+)",
                "a\x01\xC2\xAD"
                "b") == list{"\x01\xC2\xAD"});
  CHECK(matches(R"(\p{Zs})", "a\tb") == list{});
}

TEST_CASE("regex: \\s is Unicode White_Space, \\d is Nd, \\w is Oniguruma's word") {
  // U+0085, U+00A0, U+1680, U+2000, U+2028, U+202F, U+3000 are White_Space; U+200B is not.
  CHECK(matches(R"(\s+)",
                "a\xC2\x85\xC2\xA0\xE1\x9A\x80\xE2\x80\x80\xE2\x80\xA8\xE2\x80\xAF"
                "\xE3\x80\x80\xE2\x80\x8B") ==
        list{"\xC2\x85\xC2\xA0\xE1\x9A\x80\xE2\x80\x80\xE2\x80\xA8\xE2\x80\xAF\xE3\x80\x80"});
  CHECK(matches(R"(\S+)", "ab \x0B cd") == list{"ab", "cd"});
  CHECK(matches(R"(\d+)", "a12٣4b") == list{"12٣4"});
  CHECK(matches(R"(\D+)", "a12b") == list{"a", "b"});
  CHECK(matches(R"(\w+)", "ab_1 é²① x") == list{"ab_1", "é²", "x"});
  CHECK(matches(R"(\W+)", "ab, ①c") == list{", ①"});
  CHECK(matches(R"([\w\W]+)", "a ①") == list{"a ①"});
}

TEST_CASE("regex: groups, alternation in order, leftmost first") {
  CHECK(matches("a|ab", "ab") == list{"a"});  // the first alternative, not the longest
  CHECK(matches("ab|a", "ab") == list{"ab"});
  CHECK(matches("b|ab", "xab") == list{"ab"});  // the leftmost start wins over the order
  CHECK(matches("(?:ab)+", "ababa") == list{"abab"});
  CHECK(matches("(ab|a)(c|bcd)", "abcd") == list{"abc"});
  CHECK(matches("x(?:a|b)*y", "xabbay xy") == list{"xabbay", "xy"});
}

TEST_CASE("regex: case-insensitive groups fold case") {
  CHECK(matches("(?i:'s|'ll)", "'S 'LL 'Ll 's") == list{"'S", "'LL", "'Ll", "'s"});
  CHECK(matches("(?i:'s)", "'\xC5\xBF") == list{"'\xC5\xBF"});  // ſ folds to s
  CHECK(matches("(?i)ab|c", "AB C") == list{"AB", "C"});        // to the end of the group
  // Ruby syntax: x(?i)b|c is x(?i:b|c), so C alone does not match, xC does.
  CHECK(matches("x(?i)b|c", "xB C xC") == list{"xB", "xC"});
  CHECK(matches("(?i:a(?-i:b))", "Ab AB") == list{"Ab"});
  CHECK(matches("(?i:[a-c]+)", "xAbCx") == list{"AbC"});
  CHECK(matches("(?i:[^a-c]+)", "xAbCx") == list{"x", "x"});
  CHECK(matches("'s", "'S") == list{});
}

TEST_CASE("regex: quantifiers") {
  CHECK(matches("ba?", "b ba baa") == list{"b", "ba", "ba"});
  CHECK(matches("ba*", "b baa") == list{"b", "baa"});
  CHECK(matches("a+", "baab a") == list{"aa", "a"});
  CHECK(matches("a{2}", "aaaaa") == list{"aa", "aa"});
  CHECK(matches("a{2,}", "a aa aaaa") == list{"aa", "aaaa"});
  CHECK(matches("a{1,3}", "aaaaa") == list{"aaa", "aa"});
  CHECK(matches("ba{,2}", "baaa") == list{"baa"});
  CHECK(matches("a+?", "aaa") == list{"a", "a", "a"});
  CHECK(matches("a*?b", "aab") == list{"aab"});
  CHECK(matches("(?:ab){2}", "ababab") == list{"abab"});
  CHECK(matches("(?:ab){1,2}?c|x", "ababc") == list{"ababc"});
  CHECK(matches("(?:a|b){2,3}", "abbab") == list{"abb", "ab"});
  CHECK(matches("a*", "baab") == list{"aa"});             // empty matches are passed over
  CHECK(matches("ba{2}?", "b baa") == list{"b", "baa"});  // Ruby: a{n}? is (?:a{n})?
  CHECK(matches("ba{1,2}?", "baa") == list{"ba"});        // lazy
}

TEST_CASE("regex: lookahead") {
  CHECK(matches("a(?=b)", "ab ac") == list{"a"});
  CHECK(matches("a(?!b)", "ab ac") == list{"a"});
  CHECK(matches(R"(\s+(?!\S)|\s+)", "a   b  ") == list{"  ", " ", "  "});
  CHECK(matches("(?:ab|a)(?=b)|.", "abb") == list{"ab", "b"});
}

TEST_CASE("regex: GPT-2's pattern") {
  CHECK(matches(gpt2, english) == list{"Hello",      " 世界",  "!",   " I", "'m", " 3",   " years",
                                       " old",       ",",      " WE", "'",  "LL", " see", " 12345",
                                       " " + apples, "\n\n  ", "\t",  "ok", "?",  "  "});
  CHECK(matches(gpt2, chinese) == list{"DeepSeek", "-", "V", "3", " 发布于", "2024", "年", "，",
                                       "日本語のカタカナ", "。", " $", "100", " .", "NET", "\r\n"});
}

TEST_CASE("regex: Llama 3's (cl100k's) pattern") {
  CHECK(matches(llama3, english) == list{"Hello",
                                         " 世界",
                                         "!",
                                         " I",
                                         "'m",
                                         " ",
                                         "3",
                                         " years",
                                         " old",
                                         ",",
                                         " WE",
                                         "'LL",
                                         " see",
                                         " ",
                                         "123",
                                         "45",
                                         " " + apples + "\n\n",
                                         "  ",
                                         "\tok",
                                         "?",
                                         "  "});
  CHECK(matches(llama3, chinese) == list{"DeepSeek", "-V", "3", " 发布于", "202", "4", "年",
                                         "，日本語のカタカナ", "。", " $", "100", " .", "NET",
                                         "\r\n"});
}

TEST_CASE("regex: Qwen2's pattern") {
  CHECK(matches(qwen2, english) == list{"Hello", " 世界", "!",      " I",   "'m",
                                        " ",     "3",     " years", " old", ",",
                                        " WE",   "'LL",   " see",   " ",    "1",
                                        "2",     "3",     "4",      "5",    " " + apples + "\n\n",
                                        "  ",    "\tok",  "?",      "  "});
  CHECK(matches(qwen2, chinese) == list{"DeepSeek", "-V", "3", " 发布于", "2", "0", "2", "4", "年",
                                        "，日本語のカタカナ", "。", " $", "1", "0", "0", " .",
                                        "NET", "\r\n"});
}

TEST_CASE("regex: DeepSeek V3's three Split patterns") {
  CHECK(matches(deepseek_digits, english) == list{"3", "123", "45"});
  CHECK(matches(deepseek_digits, chinese) == list{"3", "202", "4", "100"});
  CHECK(matches(deepseek_cjk, english) == list{"世界"});
  CHECK(matches(deepseek_cjk, chinese) == list{"发布于", "年", "日本語のカタカナ"});
  CHECK(matches(deepseek_main, english) == list{"Hello", " 世界", "!", " I", "'m", " ", " years",
                                                " old", ",", " WE", "'LL", " see", " ",
                                                " " + apples + "\n\n", "  ", "\tok", "?", "  "});
  CHECK(matches(deepseek_main, chinese) == list{"DeepSeek", "-V", " 发布于", "4年", "，",
                                                "日本語のカタカナ", "。", " $", " .", "NET",
                                                "\r\n"});
}

TEST_CASE("regex: offsets are bytes, invalid UTF-8 bytes are code points of their own") {
  const regex re = compiled(R"(\p{L}+)");
  std::vector<regex::span> spans;
  CHECK(
      re.find_all("ab\xFF"
                  "cd中",
                  spans));
  CHECK(spans == std::vector<regex::span>{{0, 2}, {3, 8}});
  CHECK(re.search("12ab", 0) == regex::span{2, 4});
  CHECK(re.search("ab cd", 2) == regex::span{3, 5});
  CHECK_FALSE(re.search("123").has_value());
}

TEST_CASE("regex: what is not supported fails to compile, saying what") {
  auto says = [](const std::string& pattern, const std::string& what) {
    const std::string error = compile_error(pattern);
    CAPTURE(pattern);
    CAPTURE(error);
    return error.find(what) != std::string::npos;
  };
  CHECK(says("(a", "unclosed group"));
  CHECK(says("a)", "unmatched ')'"));
  CHECK(says("[ab", "unclosed ["));
  CHECK(says("*a", "nothing to repeat"));
  CHECK(says("a**", "a quantifier after a quantifier"));
  CHECK(says("a++", "a quantifier after a quantifier"));
  CHECK(says("^a", "anchors"));
  CHECK(says("a$", "anchors"));
  CHECK(says("(?<=a)b", "lookbehind"));
  CHECK(says("(?<!a)b", "lookbehind"));
  CHECK(says("(?=a)*", "quantified lookahead"));
  CHECK(says(R"((a)\1)", "the escape \\1"));
  CHECK(says(R"(\bword)", "the escape \\b"));
  CHECK(says(R"(\p{Han})", "\\p{Han} is not supported"));
  CHECK(says(R"(\p{L)", "without }"));
  CHECK(says(R"(\pL)", "without {"));
  CHECK(says("(?x)a", "(?x is not supported"));
  CHECK(says("(?<name>a)", "(?< is not supported"));
  CHECK(says("[[:alpha:]]", "nested classes"));
  CHECK(says("[a&&b]", "intersection"));
  CHECK(says("[?-[a]]", "nested classes"));
  CHECK(says(R"([\w-z])", "a range starting at a property"));
  CHECK(says("(?)a", "without an option"));
  CHECK(says("(?:a*)*", "can match empty"));
  CHECK(says("a{1001}", "above 1000"));
  CHECK(says("a{3,2}", "n > m"));
  CHECK(says("[z-a]", "out of order"));
  CHECK(says(R"([a-\s])", "ending in a property"));
  CHECK(says("\\", "ending in \\"));
  CHECK(says(R"(\q)", "the escape \\q"));
  CHECK(says("a\xFF", "not valid UTF-8"));
  CHECK(says("(?:(?:a{1000}){1000}){1000}", "too many instructions"));
  CHECK(compile_error("a)").find("at byte 1") != std::string::npos);
}

TEST_CASE("regex: past the step budget the rest of the text is one match") {
  // (a|a)* tries 2^n ways before it gives up on a text of n a's without the b: far past the
  // budget of 1024 + 256 * n steps. The rest of the text from where the search began becomes
  // one match, and find_all says so.
  const regex re = compiled("x|(?:a|a)*b");
  const std::string text = "x" + std::string(40, 'a') + "!";
  std::vector<regex::span> spans;
  CHECK_FALSE(re.find_all(text, spans));
  CHECK(spans == std::vector<regex::span>{{0, 1}, {1, text.size()}});
  CHECK_FALSE(re.search(text, 1).has_value());
  // The same pattern on a short text fits in the budget and is exact.
  spans.clear();
  CHECK(re.find_all("xaab", spans));
  CHECK(spans == std::vector<regex::span>{{0, 1}, {1, 4}});
}

TEST_CASE("regex: long runs stay within the budget and the stack") {
  // One greedy repeat over 200,000 letters, and \s*[\r\n]+ backtracking over 100,000 spaces.
  std::string letters;
  for (int i = 0; i < 100'000; ++i) letters += "文a";
  CHECK(matches(llama3, letters) == list{letters});
  const std::string spaces(100'000, ' ');
  CHECK(matches(llama3, spaces + "x") == list{spaces.substr(1), " x"});
}

TEST_CASE("regex: one compiled regex used from several threads") {
  const regex re = compiled(llama3);
  std::vector<regex::span> alone;
  re.find_all(english + chinese, alone);
  std::vector<std::thread> threads;
  std::vector<size_t> counts(4);
  for (size_t t = 0; t < counts.size(); ++t) {
    threads.emplace_back([&, t] {
      std::vector<regex::span> spans;
      for (int i = 0; i < 200; ++i) {
        spans.clear();
        re.find_all(english + chinese, spans);
      }
      counts[t] = spans.size();
    });
  }
  for (std::thread& th : threads) th.join();
  for (size_t c : counts) CHECK(c == alone.size());
}
