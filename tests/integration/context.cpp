// Context-length protection (issue 6): a chat prompt longer than the model's window is refused
// with 400 context_length_exceeded under reject, or cut to fit under truncate_oldest (the
// upstream sees fewer prompt tokens), and short prompts pass untouched.
#include <doctest/doctest.h>

#include <string>

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
