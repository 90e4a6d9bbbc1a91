// Context-length protection (issue 6): a chat prompt longer than the model's window is refused
// with 400 context_length_exceeded under reject, or cut to fit under truncate_oldest (the
// upstream sees fewer prompt tokens), and short prompts pass untouched. With a tokenizer_file
// the decision is taken at the exact count.
#include <doctest/doctest.h>

#include <string>

#include "protocol/scheduling/context.hpp"
#include "tests/integration/harness.hpp"

using namespace tc::test;

namespace {

const std::string context_config =
    server_toml() +
    "[cache]\nenabled = false\n"
    "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[providers.sim]\nttft_ms = 1\n"
    "tokens_per_sec = 5000\n"
    "[[providers.models]]\nname = \"small\"\ncontext_window = 300\n"
    "[[providers.models]]\nname = \"small-trunc\"\ncontext_window = 300\n"
    "context_mode = \"truncate_oldest\"\n";

/// A chat body: a system message, `turns` user/assistant pairs of ~200 bytes, a last question.
std::string long_chat(const std::string& model, int turns, std::string_view extra = {}) {
  std::string b = R"({"model":")" + model + R"(",)";
  if (!extra.empty()) b += std::string(extra) + ",";
  b += R"("messages":[{"role":"system","content":"Be brief."})";
  for (int i = 0; i < turns; ++i) {
    std::string words;
    for (int w = 0; w < 20; ++w) words += "turn" + std::to_string(i) + " word ";
    b += R"(,{"role":"user","content":")" + words + R"("})";
    b += R"(,{"role":"assistant","content":")" + words + R"("})";
  }
  b += R"(,{"role":"user","content":"and the last question?"}]})";
  return b;
}

int prompt_tokens(const response& r) {
  auto d = parse_json(r.body);
  if (!d.IsObject() || !d.HasMember("usage")) return -1;
  return d["usage"]["prompt_tokens"].GetInt();
}

}  // namespace

TEST_CASE("context: reject answers 400 context_length_exceeded, truncate_oldest cuts to fit") {
  node_process node;
  REQUIRE_MESSAGE(node.start(context_config), node.error());

  // Short prompts pass, both modes.
  CHECK(post_json(node.data_port(), "/v1/chat/completions", long_chat("small", 1)).status == 200);
  response short_trunc =
      post_json(node.data_port(), "/v1/chat/completions", long_chat("small-trunc", 1));
  REQUIRE(short_trunc.status == 200);

  // 20 turns of ~50 tokens each: far over 300.
  response rejected = post_json(node.data_port(), "/v1/chat/completions", long_chat("small", 20));
  CHECK(rejected.status == 400);
  api_error_view e = error_of(rejected.body);
  CHECK(e.valid);
  CHECK(e.code == "context_length_exceeded");
  CHECK(e.param == "messages");
  CHECK(e.message.find("300") != std::string::npos);
  // max_tokens counts: a prompt that fits alone does not fit with 290 tokens reserved.
  response reserved = post_json(node.data_port(), "/v1/chat/completions",
                                long_chat("small", 1, R"("max_tokens":290)"));
  CHECK(reserved.status == 400);
  CHECK(error_of(reserved.body).code == "context_length_exceeded");

  // Truncated: answered, and the upstream saw a prompt within the window.
  response cut = post_json(node.data_port(), "/v1/chat/completions", long_chat("small-trunc", 20));
  INFO(cut.body);
  REQUIRE(cut.status == 200);
  CHECK(prompt_tokens(cut) > 0);
  CHECK(prompt_tokens(cut) <= 300);
  CHECK(prompt_tokens(cut) >= prompt_tokens(short_trunc));
}

TEST_CASE("context: a model with a tokenizer_file decides at the exact count") {
  // 今天天气很好，我们去公园散步吧。 is 48 tokens with tests/protocol/data/bpe_split.json
  // (HuggingFace tokenizers' count; that small vocab has no Chinese merges), far more than the
  // estimator's ~1 per character. Prompt: 3 (priming) + 4 (the message) + 48 = 55, and
  // max_tokens 1: 56 tokens needed. A window of 56 fits, 55 does not; without the tokenizer
  // the same window of 55 lets it through on the estimate.
  const std::string text =
      "\344\273\212\345\244\251\345\244\251\346\260\224\345\276\210\345\245\275\357\274\214"
      "\346\210\221\344\273\254\345\216\273\345\205\254\345\233\255\346\225\243\346\255\245"
      "\345\220\247\343\200\202";
  REQUIRE(tc::scheduling::default_counter().count(text) + 3 + 4 + 1 < 55);
  const std::string tokenizer = TC_SOURCE_DIR "/tests/protocol/data/bpe_split.json";
  const std::string config =
      server_toml() +
      "[cache]\nenabled = false\n"
      "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[providers.sim]\nttft_ms = 1\n"
      "tokens_per_sec = 5000\n"
      "[[providers.models]]\nname = \"exact-56\"\ncontext_window = 56\ntokenizer_file = \"" +
      tokenizer +
      "\"\n"
      "[[providers.models]]\nname = \"exact-55\"\ncontext_window = 55\ntokenizer_file = \"" +
      tokenizer +
      "\"\n"
      "[[providers.models]]\nname = \"estimated-55\"\ncontext_window = 55\n";
  node_process node;
  REQUIRE_MESSAGE(node.start(config), node.error());
  auto body = [&](const std::string& model) {
    return R"({"model":")" + model + R"(","max_tokens":1,"messages":[{"role":"user","content":")" +
           text + R"("}]})";
  };
  response fits = post_json(node.data_port(), "/v1/chat/completions", body("exact-56"));
  CHECK(fits.status == 200);
  response over = post_json(node.data_port(), "/v1/chat/completions", body("exact-55"));
  CHECK(over.status == 400);
  api_error_view e = error_of(over.body);
  CHECK(e.code == "context_length_exceeded");
  CHECK(e.message.find("about 55 tokens") != std::string::npos);
  response estimated = post_json(node.data_port(), "/v1/chat/completions", body("estimated-55"));
  CHECK(estimated.status == 200);
}

TEST_CASE("context: a tokenizer_file that does not build fails start-up") {
  const std::string config = server_toml() +
                             "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n"
                             "[[providers.models]]\nname = \"m\"\ntokenizer_file = \"" TC_SOURCE_DIR
                             "/config/tokenschain.toml\"\n";
  node_process node;
  CHECK_FALSE(node.start(config));
  const std::string said = node.error() + node.log();
  INFO(said);
  CHECK(said.find("tokenizer_file") != std::string::npos);
  CHECK(said.find("cannot be used: not JSON") != std::string::npos);
}
