// protocol/routing/auto_model.cpp: features from texts (tokens, code with and without fences,
// prose that is not code), each threshold of classify, and pick_auto's price, tier and context
// rules.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "protocol/routing/auto_model.hpp"
#include "protocol/tokens.hpp"

using namespace tc::routing;

namespace {

bool code(const std::string& text) {
  return features_of({text}, 0, false, 1).code;
}

}  // namespace

TEST_CASE("routing auto: features_of counts tokens over all texts and passes the flags") {
  const std::vector<std::string> texts = {"You are a helpful assistant.", "你好，请介绍一下自己。",
                                          "What is the capital of France?"};
  const request_features f = features_of(texts, 300, true, 3);
  CHECK(f.prompt_tokens == tc::estimate_tokens(texts[0]) + tc::estimate_tokens(texts[1]) +
                               tc::estimate_tokens(texts[2]));
  CHECK(f.prompt_tokens > 10);
  CHECK(f.max_tokens == 300);
  CHECK(f.tools);
  CHECK(f.turns == 3);
  CHECK_FALSE(f.code);
  CHECK(features_of({}, 0, false, 0).prompt_tokens == 0);
}

TEST_CASE("routing auto: code is found fenced, or by its idioms and line ends") {
  CHECK(code("Why does this fail?\n```\nx = 1\n```"));
  CHECK(code("```python"));
  CHECK(code("#include <vector>\nint main() {\n  std::vector<int> v;\n  return v.size();\n}\n"));
  CHECK(code("def area(r):\n    if r == 0:\n        return 0\n    return self.pi * r * r\n"));
  CHECK(code("const add = (a, b) => a + b;\nconsole.log(add(1, 2));\n"));
  CHECK(code("for (int i = 0; i < n; i++) {\n  sum += a[i];\n}\n"));
  CHECK(code("SELECT * FROM users WHERE id != 3 && active == 1"));
  // Spread over several messages still counts.
  CHECK(features_of({"look: def f(x):", "it says x == None", "and self.x is unset"}, 0, false, 3)
            .code);

  CHECK_FALSE(code("Please summarise the public transport report and return it by Friday."));
  CHECK_FALSE(code("Let me import the function of each department into one table; thanks."));
  CHECK_FALSE(code("请把这段话翻译成英文：我们明天上午十点开会。"));
  CHECK_FALSE(code("Rate it 1-10. Is 5 >= 4? Yes -> good."));
  CHECK_FALSE(code("Salt && pepper, then bake at 200°C => golden brown."));  // two signs only
  CHECK_FALSE(code(""));
}

TEST_CASE("routing auto: only the first 64 KiB are searched for code") {
  const std::string filler(64 * 1024, 'a');
  CHECK_FALSE(features_of({filler, "```"}, 0, false, 2).code);
  CHECK(features_of({filler.substr(10), "```"}, 0, false, 2).code);
  // Tokens still count every byte.
  CHECK(features_of({filler, filler}, 0, false, 2).prompt_tokens ==
        2 * tc::estimate_tokens(filler));
}

TEST_CASE("routing auto: classify crosses each threshold on its own") {
  const auto_thresholds t;  // the documented defaults
  request_features f{.prompt_tokens = 2'000, .max_tokens = 1'024, .turns = 50};
  CHECK(classify(f, t) == weight_class::light);
  f.prompt_tokens = 2'001;
  CHECK(classify(f, t) == weight_class::heavy);
  f.prompt_tokens = 10;
  f.max_tokens = 1'025;
  CHECK(classify(f, t) == weight_class::heavy);
  f.max_tokens = 0;
  f.tools = true;
  CHECK(classify(f, t) == weight_class::heavy);
  CHECK(classify(f, auto_thresholds{.tools_heavy = false}) == weight_class::light);
  f.tools = false;
  f.code = true;
  CHECK(classify(f, t) == weight_class::heavy);
  CHECK(classify(f, auto_thresholds{.code_heavy = false}) == weight_class::light);
  f.code = false;
  CHECK(classify(f, t) == weight_class::light);  // 50 turns: turns off by default
  CHECK(classify(f, auto_thresholds{.heavy_turns = 49}) == weight_class::heavy);
  CHECK(classify(f, auto_thresholds{.heavy_turns = 50}) == weight_class::light);

  weight_class c = weight_class::light;
  CHECK(parse_weight_class("heavy", c));
  CHECK(c == weight_class::heavy);
  CHECK(parse_weight_class(to_string(weight_class::light), c));
  CHECK(c == weight_class::light);
  CHECK_FALSE(parse_weight_class("medium", c));
}

TEST_CASE("routing auto: pick_auto takes the cheapest model of the class that fits") {
  const std::vector<auto_choice> models = {
      {"qwen-max", weight_class::heavy, 32'000, 2.4, 9.6},
      {"qwen-turbo", weight_class::light, 8'000, 0.3, 0.6},
      {"deepseek-chat", weight_class::heavy, 64'000, 2.0, 8.0},
      {"glm-flash", weight_class::light, 4'000, 0.1, 0.1},
      {"kimi-128k", weight_class::heavy, 128'000, 6.0, 24.0},
  };
  request_features f{.prompt_tokens = 500, .max_tokens = 200};
  CHECK(pick_auto(models, f, weight_class::light) == 3u);  // glm-flash
  CHECK(pick_auto(models, f, weight_class::heavy) == 2u);  // deepseek-chat, not the light ones

  f.prompt_tokens = 3'900;  // + 200 > 4,000: glm-flash no longer fits
  CHECK(pick_auto(models, f, weight_class::light) == 1u);
  f.prompt_tokens = 3'800;  // 3,800 + 200 = 4,000 fits exactly
  CHECK(pick_auto(models, f, weight_class::light) == 3u);
  f.max_tokens = 0;  // not set: room for 512 expected
  CHECK(pick_auto(models, f, weight_class::light) == 1u);

  f.prompt_tokens = 100'000;
  CHECK(pick_auto(models, f, weight_class::heavy) == 4u);  // only the 128k window fits
  CHECK(pick_auto(models, f, weight_class::light) == 4u);  // light work may use a heavy model
  f.prompt_tokens = 200'000;
  CHECK_FALSE(pick_auto(models, f, weight_class::light).has_value());
  CHECK_FALSE(pick_auto({}, f, weight_class::light).has_value());

  // The expected cost weighs output: a long answer favours cheap output.
  const std::vector<auto_choice> io = {{"in-cheap", weight_class::light, 0, 0.1, 10},
                                       {"out-cheap", weight_class::light, 0, 2, 1}};
  CHECK(pick_auto(io, {.prompt_tokens = 20'000, .max_tokens = 100}, weight_class::light) == 0u);
  CHECK(pick_auto(io, {.prompt_tokens = 100, .max_tokens = 4'000}, weight_class::light) == 1u);
}

TEST_CASE("routing auto: ties, unknown windows and bad prices") {
  const std::vector<auto_choice> same = {{"b", weight_class::light, 8'000, 1, 1},
                                         {"a", weight_class::light, 8'000, 1, 1},
                                         {"c", weight_class::light, 0, 1, 1},
                                         {"d", weight_class::light, 16'000, 1, 1}};
  const request_features f{.prompt_tokens = 100, .max_tokens = 100};
  CHECK(pick_auto(same, f, weight_class::light) == 2u);  // unknown window: the largest
  CHECK(pick_auto({same[0], same[1]}, f, weight_class::light) == 1u);  // then by name
  CHECK(pick_auto({same[0], same[0]}, f, weight_class::light) == 0u);  // then by index
  CHECK(pick_auto({same[0], same[3]}, f, weight_class::light) == 1u);

  // Non-numbers and negatives count as free (never as NaN comparisons): "nan" and "neg" tie at
  // 0, and "nan" wins by name.
  const std::vector<auto_choice> bad = {{"ok", weight_class::light, 0, 1, 1},
                                        {"nan", weight_class::light, 0, NAN, NAN},
                                        {"neg", weight_class::light, 0, -5, -5}};
  CHECK(pick_auto(bad, f, weight_class::light) == 1u);
}
