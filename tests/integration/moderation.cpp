// Two-way moderation and algorithm filing through a real node (issue 5): blocked input is 400
// content_filter before anything is spent, a streamed answer is cut before a blocked term
// reaches the client (checked on the raw bytes), masks apply, lexicons reload while the node
// serves, and the filing ID is stamped where the rules say.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// A node with a keywords engine over `lexicon` (reloaded every 50 ms), a pii engine that
/// masks phone numbers, and a filing ID on sim-chat.
std::string moderated_config(const std::string& lexicon) {
  return server_toml() + "[cache]\nenabled = false\n" +
         "[moderation]\nenabled = true\n"
         "[[moderation.engines]]\nname = \"words\"\ntype = \"keywords\"\n"
         "lexicons = [\"" +
         lexicon +
         "\"]\n"
         "actions = [\"violence=block\", \"brand=mask\"]\nreload_interval_ms = 50\n"
         "[[moderation.engines]]\nname = \"pii\"\ntype = \"pii\"\nkinds = [\"phone\"]\n"
         "default_action = \"mask\"\n"
         "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[providers.sim]\nttft_ms = 1\n"
         "tokens_per_sec = 300\ndefault_max_tokens = 120\n"
         "[[providers.models]]\nname = \"sim-chat\"\nfiling_id = \"BJ-ALG-2026-0001\"\n";
}

/// The streamed answer's content, concatenated.
std::string stream_text(const std::string& body) {
  std::string text;
  for (const auto& c : sse_json_chunks(body)) {
    if (!c.HasMember("choices") || !c["choices"].IsArray() || c["choices"].Empty()) continue;
    const auto& ch = c["choices"][0];
    if (ch.HasMember("delta") && ch["delta"].HasMember("content") &&
        ch["delta"]["content"].IsString())
      text += ch["delta"]["content"].GetString();
  }
  return text;
}

/// A word of 6+ letters whose first occurrence (any case) starts at or past byte `from`, and
/// where it starts; ("", npos) if there is none.
std::pair<std::string, size_t> word_past(const std::string& text, size_t from) {
  const std::string low = lower(text);
  for (size_t i = std::max<size_t>(from, 1); i < text.size(); ++i) {
    if (!std::isalpha(static_cast<unsigned char>(text[i])) ||
        std::isalpha(static_cast<unsigned char>(text[i - 1])))
      continue;
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string w = low.substr(i, j - i);
    if (w.size() >= 6 && low.find(w) == i) return {w, i};
  }
  return {"", std::string::npos};
}

}  // namespace

TEST_CASE("moderation: input blocks, stream windows, masks, hot reload and filing IDs") {
  temp_dir dir;
  const std::string lexicon =
      dir.write("words.txt", "[violence]\nzzforbiddenzz\n[brand]\nacmecorp\n");
  REQUIRE(!lexicon.empty());
  node_process node;
  REQUIRE_MESSAGE(node.start(moderated_config(lexicon)), node.error());

  SUBCASE("blocked input is 400 content_filter, before any upstream call, the node serves on") {
    response r = chat(node, "", "please explain ZZFORBIDDENZZ to me");
    CHECK(r.status == 400);
    api_error_view e = error_of(r.body);
    CHECK(e.valid);
    CHECK(e.code == "content_filter");
    CHECK(e.message.find("violence") != std::string::npos);
    CHECK(chat(node, "", "a harmless question").status == 200);
    CHECK(node_metric(node, "tc_moderation_blocks_total").value_or(0) >= 1);
    // Nothing was spent: no upstream call was made for the blocked request.
    CHECK(node_metric(node, "tc_upstream_ttft_seconds_count").value_or(0) == 1);
  }

  SUBCASE("answers carry the model's filing ID: header, body field and first stream chunk") {
    response r = chat(node, "", "filing please");
    REQUIRE(r.status == 200);
    CHECK(r.header("x-algorithm-filing-id") == "BJ-ALG-2026-0001");
    auto d = parse_json(r.body);
    REQUIRE(d.IsObject());
    CHECK(str_of(d, "algorithm_filing_id") == "BJ-ALG-2026-0001");
    response s = chat(node, "", "filing please", R"("stream":true)");
    REQUIRE(s.status == 200);
    CHECK(s.header("x-algorithm-filing-id") == "BJ-ALG-2026-0001");
    auto chunks = sse_json_chunks(s.body);
    REQUIRE(chunks.size() > 2);
    CHECK(str_of(chunks[0], "algorithm_filing_id") == "BJ-ALG-2026-0001");
    CHECK(str_of(chunks[1], "algorithm_filing_id").empty());
    // A tenant's own filing ID wins over the model's.
    create_tenant(node, R"({"id":"filer","filing_id":"SH-ALG-9"})");
    const std::string key = create_key(node, "filer");
    response t = chat(node, key, "filing please");
    REQUIRE(t.status == 200);
    CHECK(t.header("x-algorithm-filing-id") == "SH-ALG-9");
    CHECK(str_of(parse_json(t.body), "algorithm_filing_id") == "SH-ALG-9");
  }

  SUBCASE("a phone number in the input is masked before it goes upstream, masks in output") {
    response r = chat(node, "", "call me at 13800138000 about acmecorp");
    CHECK(r.status == 200);  // mask is not block
  }

  SUBCASE("a streamed answer is cut before a blocked term reaches the client (raw bytes)") {
    // First the answer as it is, to pick a word from its middle.
    const std::string prompt = "tell me a long story about rivers";
    const std::string extra = R"("stream":true,"max_tokens":120)";
    response first =
        post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", prompt, extra),
                  {{"cache-control", "no-cache"}});
    REQUIRE(first.status == 200);
    const std::string text = stream_text(first.body);
    REQUIRE(text.size() > 300);
    const auto [word, at] = word_past(text, 200);
    REQUIRE_MESSAGE(!word.empty(), text);
    // The same prompt not streamed is another request (another text): its own word.
    const std::string plain_body = chat_body("sim-chat", prompt, R"("max_tokens":120)");
    response plain_first = post_json(node.data_port(), "/v1/chat/completions", plain_body,
                                     {{"cache-control", "no-cache"}});
    REQUIRE(plain_first.status == 200);
    auto pd = parse_json(plain_first.body);
    REQUIRE(pd.IsObject());
    const std::string plain_text = str_of(pd["choices"][0]["message"], "content");
    const std::string plain_word = word_past(plain_text, 0).first;
    REQUIRE(!plain_word.empty());
    // Hot reload: the lexicon gains the word while the node serves.
    REQUIRE(!dir.write("words.txt", "[violence]\nzzforbiddenzz\n" + word + "\n" + plain_word +
                                        "\n[brand]\nacmecorp\n")
                 .empty());
    REQUIRE(eventually(
        [&] { return node.log().find("\"moderation_reloaded\"") != std::string::npos; }, 5s));

    response cut = post_json(node.data_port(), "/v1/chat/completions",
                             chat_body("sim-chat", prompt, extra), {{"cache-control", "no-cache"}});
    REQUIRE(cut.status == 200);
    CHECK(lower(cut.raw).find(word) == std::string::npos);
    CHECK(lower(cut.body).find(word) == std::string::npos);
    CHECK(cut.body.find("\"finish_reason\":\"content_filter\"") != std::string::npos);
    CHECK(cut.body.find("event: error") != std::string::npos);
    CHECK(cut.body.find("[DONE]") == std::string::npos);
    // What came before the word was delivered, short of the hold-back and the last read (the
    // sim sends a token every ~3 ms, so reads are small).
    const std::string got = stream_text(cut.body);
    CHECK(text.compare(0, got.size(), got) == 0);
    CHECK(got.size() >= 64);
    CHECK(got.size() < at);

    // The same answer, not streamed: emptied, finish_reason content_filter.
    response plain = post_json(node.data_port(), "/v1/chat/completions", plain_body,
                               {{"cache-control", "no-cache"}});
    REQUIRE(plain.status == 200);
    CHECK(lower(plain.raw).find(plain_word) == std::string::npos);
    auto d = parse_json(plain.body);
    REQUIRE(d.IsObject());
    CHECK(str_of(d["choices"][0], "finish_reason") == "content_filter");
    CHECK(str_of(d["choices"][0]["message"], "content").empty());
    CHECK(d.HasMember("usage"));  // the tokens were generated and are billed

    // A lexicon that does not parse keeps the rules that work.
    const auto reloads = [&] {
      size_t n = 0;
      const std::string log = node.log();
      for (size_t p = log.find("moderation_reload"); p != std::string::npos;
           p = log.find("moderation_reload", p + 1))
        ++n;
      return n;
    };
    const size_t before = reloads();
    REQUIRE(!dir.write("words.txt", "[violence\nbroken header\n").empty());
    REQUIRE(eventually([&] { return reloads() > before; }, 5s));
    CHECK(node.log().find("moderation_reload_failed") != std::string::npos);
    CHECK(chat(node, "", "please explain zzforbiddenzz").status == 400);
  }
}

TEST_CASE("moderation: remote engines (openai-compatible, http webhook) and failure modes") {
  sim_process sim;  // tcsim answers /v1/moderations: "sim-flag:<category>" is flagged
  REQUIRE_MESSAGE(sim.start(), sim.error());
  // A port nothing listens on: the http engine's calls fail at once.
  uint16_t dead_port = 0;
  {
    int fd = listen_loopback(dead_port);
    REQUIRE(fd >= 0);
    ::close(fd);
  }
  auto config = [&](const std::string& on_failure) {
    return server_toml() + "[cache]\nenabled = false\n[moderation]\nenabled = true\n" +
           "[[moderation.engines]]\nname = \"omni\"\ntype = \"openai\"\nurl = \"http://127.0.0.1:" +
           std::to_string(sim.port()) + "/v1\"\ntimeout_ms = 2000\n" +
           "[[moderation.engines]]\nname = \"hook\"\ntype = \"http\"\nurl = \"http://127.0.0.1:" +
           std::to_string(dead_port) + "/check\"\ntimeout_ms = 500\non_failure = \"" + on_failure +
           "\"\ndirection = \"input\"\n" + sim_provider_toml();
  };
  SUBCASE("fail-open: the dead webhook is left out, the openai engine decides") {
    node_process node;
    REQUIRE_MESSAGE(node.start(config("open")), node.error());
    response ok = chat(node, "", "a plain question");
    CHECK(ok.status == 200);
    response blocked = chat(node, "", "please sim-flag:violence now");
    CHECK(blocked.status == 400);
    CHECK(error_of(blocked.body).code == "content_filter");
    CHECK(error_of(blocked.body).message.find("violence") != std::string::npos);
    // The answer is checked by the openai engine too (output): a clean answer passes.
    CHECK(chat(node, "", "another plain question", R"("stream":true)").status == 200);
  }
  SUBCASE("fail-closed: a failing engine blocks") {
    node_process node;
    REQUIRE_MESSAGE(node.start(config("closed")), node.error());
    response r = chat(node, "", "a plain question");
    CHECK(r.status == 400);
    CHECK(error_of(r.body).code == "content_filter");
  }
}

TEST_CASE("moderation: a remote engine that blocks the answer, streams are held for it whole") {
  // An in-house moderation service (the http engine's contract): it blocks every answer and
  // allows every request.
  http_catcher service([](const std::string& body) {
    return body.find(R"("direction":"output")") != std::string::npos
               ? std::string(R"({"verdict":"block","category":"house.policy"})")
               : std::string(R"({"verdict":"allow"})");
  });
  node_process node;
  REQUIRE_MESSAGE(
      node.start(server_toml() + "[cache]\nenabled = false\n[moderation]\n" +
                 "enabled = true\n[[moderation.engines]]\nname = \"house\"\n" +
                 "type = \"http\"\nurl = \"http://127.0.0.1:" + std::to_string(service.port()) +
                 "/check\"\ntimeout_ms = 2000\n" + sim_provider_toml()),
      node.error());
  response plain = chat(node, "", "hello there");
  REQUIRE(plain.status == 200);
  auto d = parse_json(plain.body);
  REQUIRE(d.IsObject());
  CHECK(str_of(d["choices"][0], "finish_reason") == "content_filter");
  CHECK(str_of(d["choices"][0]["message"], "content").empty());

  response stream = chat(node, "", "hello there", R"("stream":true)");
  REQUIRE(stream.status == 200);
  CHECK(stream_text(stream.body).empty());  // no text was sent before the verdict
  CHECK(stream.body.find("\"finish_reason\":\"content_filter\"") != std::string::npos);
  CHECK(stream.body.find("event: error") != std::string::npos);
  CHECK(stream.body.find("[DONE]") == std::string::npos);
  // The service saw the request (input), the answer, and the whole streamed text (output).
  auto bodies = service.bodies();
  REQUIRE(bodies.size() == 4);
  CHECK(bodies[0].find(R"("direction":"input")") != std::string::npos);
  CHECK(bodies[1].find(R"("direction":"output")") != std::string::npos);
  CHECK(bodies[3].find(R"("direction":"output")") != std::string::npos);
  CHECK(bodies[3].find(R"("texts":[")") != std::string::npos);
}
