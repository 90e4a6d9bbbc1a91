// The audit trail through a real node (issue 5): one record per request with what the client
// sent and got, text modes, and a record changed on disk behind the node's back found by
// `tcctl audit verify` at that record.
#include <doctest/doctest.h>

#include <string>
#include <tuple>

#include "actors/store.hpp"
#include "protocol/audit/record.hpp"
#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

TEST_CASE("audit: records with clear text, and tampering on disk found at that record") {
  temp_dir dir;
  const std::string config = server_toml() + "[store]\npath = \"" + dir.path() + "/db\"\n" +
                             "[cache]\nenabled = false\n[audit]\ntext = \"clear\"\n" +
                             sim_provider_toml();
  {
    node_process node;
    REQUIRE_MESSAGE(node.start(config), node.error());
    for (int i = 1; i <= 4; ++i) {
      response r = post_json(node.data_port(), "/v1/chat/completions",
                             chat_body("sim-chat", "audited question " + std::to_string(i)),
                             {{"x-request-id", "aud-" + std::to_string(i)}});
      REQUIRE(r.status == 200);
    }
    CHECK(post_json(node.data_port(), "/v1/chat/completions", "{not json").status == 400);
    response unknown = post_json(node.data_port(), "/v1/chat/completions",
                                 chat_body("no-such-model", "x"), {{"x-request-id", "aud-404"}});
    CHECK(unknown.status == 404);

    tcctl_result found = run_tcctl(node, {"--json", "audit", "search", "--request-id", "aud-3"});
    REQUIRE_MESSAGE(found.code == 0, found.out);
    auto rec = parse_json(found.out.substr(0, found.out.find('\n')));
    REQUIRE(rec.IsObject());
    CHECK(rec["status"].GetInt() == 200);
    CHECK(str_of(rec, "tenant") == "anonymous");
    CHECK(str_of(rec, "model") == "sim-chat");
    CHECK(str_of(rec, "provider") == "sim");
    CHECK(rec["completion_tokens"].GetUint() > 0);
    CHECK(found.out.find("audited question 3") != std::string::npos);  // the input, kept clear
    CHECK(found.out.find("chat.completion") != std::string::npos);     // what the client got
    CHECK(str_of(rec, "input_digest").size() == 64);

    tcctl_result refused =
        run_tcctl(node, {"--json", "audit", "search", "--request-id", "aud-404"});
    REQUIRE(refused.code == 0);
    CHECK(refused.out.find("\"status\":404") != std::string::npos);

    tcctl_result verify = run_tcctl(node, {"audit", "verify"});
    CHECK_MESSAGE(verify.code == 0, verify.out);
    CHECK(verify.out.find("5 records") != std::string::npos);
    CHECK(node.stop().code == 0);
  }
  // One byte of record 2 changes on disk while the node is down.
  {
    tc::actors::store::status st;
    auto db = tc::actors::store::open(dir.path() + "/db", false, st);
    REQUIRE_MESSAGE(db, st.message);
    std::string value;
    const std::string key = tc::audit::record_key("node-1", 2);
    REQUIRE(db->get(tc::actors::store::family::audit, key, value).ok());
    const size_t at = value.find("audited question 2");
    REQUIRE(at != std::string::npos);
    value[at] = 'A';
    REQUIRE(db->put(tc::actors::store::family::audit, key, value).ok());
  }
  node_process again;
  REQUIRE_MESSAGE(again.start(config), again.error());
  tcctl_result verify = run_tcctl(again, {"audit", "verify"});
  CHECK(verify.code == 1);
  CHECK_MESSAGE(verify.out.find("BROKEN at seq 2") != std::string::npos, verify.out);
}

TEST_CASE("audit: with no text kept, records hold digests of the bytes sent and answered") {
  // SM3, so a digest made with the default algorithm anywhere on the way would not match. A
  // hit served as stored brings the digest its answer was stored with; with a filing ID added
  // to the body, or served as a stream, the bytes differ from the stored ones and are digested.
  for (const bool filing : {false, true}) {
    CAPTURE(filing);
    std::string providers = sim_provider_toml(1, 5000);
    if (filing) {
      const std::string model = "name = \"sim-chat\"\n";
      providers.insert(providers.find(model) + model.size(), "filing_id = \"BJ-ALG-2026-0001\"\n");
    }
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + "[audit]\nhash = \"sm3\"\n" + providers),
                    node.error());
    const std::string body = chat_body("sim-chat", "digest me", "\"temperature\":0");
    response miss =
        post_json(node.data_port(), "/v1/chat/completions", body, {{"x-request-id", "dig-miss"}});
    REQUIRE(miss.status == 200);
    CHECK(miss.header("x-tc-cache") == "miss");
    REQUIRE(eventually([&] { return node_metric(node, "tc_cache_entries").value_or(0) >= 1; },
                       10000ms));
    response hit =
        post_json(node.data_port(), "/v1/chat/completions", body, {{"x-request-id", "dig-hit"}});
    REQUIRE(hit.status == 200);
    CHECK(hit.header("x-tc-cache") == "hit-exact");  // answered by the I/O loop's lane
    CHECK((hit.body.find("BJ-ALG-2026-0001") != std::string::npos) == filing);
    const std::string streamed_body =
        chat_body("sim-chat", "digest me", "\"temperature\":0,\"stream\":true");
    response streamed = post_json(node.data_port(), "/v1/chat/completions", streamed_body,
                                  {{"x-request-id", "dig-stream"}});
    REQUIRE(streamed.status == 200);
    CHECK(streamed.header("x-tc-cache") == "hit-exact");
    CHECK(streamed.body.find("data: ") != std::string::npos);

    for (const auto& [id, sent, answer] :
         {std::tuple{"dig-miss", &body, &miss}, std::tuple{"dig-hit", &body, &hit},
          std::tuple{"dig-stream", &streamed_body, &streamed}}) {
      tcctl_result found = run_tcctl(node, {"--json", "audit", "search", "--request-id", id});
      REQUIRE_MESSAGE(found.code == 0, found.out);
      auto rec = parse_json(found.out.substr(0, found.out.find('\n')));
      REQUIRE(rec.IsObject());
      INFO(id);
      CHECK_FALSE(rec.HasMember("input_text"));
      CHECK_FALSE(rec.HasMember("output_text"));
      using tc::audit::digest;
      using tc::audit::hash_algo;
      CHECK(str_of(rec, "input_digest") == tc::audit::to_hex(digest(hash_algo::sm3, *sent)));
      CHECK(str_of(rec, "output_digest") ==
            tc::audit::to_hex(digest(hash_algo::sm3, answer->body)));
    }
    tcctl_result verify = run_tcctl(node, {"audit", "verify"});
    CHECK_MESSAGE(verify.code == 0, verify.out);
  }
}

TEST_CASE("audit: sealed text needs its SM4 key, or the node does not start") {
  node_process node;
  CHECK(!node.start(server_toml() +
                    "[audit]\ntext = \"sealed\"\nsm4_key_env = \"TC_TEST_NO_SUCH_KEY\"\n" +
                    sim_provider_toml()));
  CHECK(node.error().find("TC_TEST_NO_SUCH_KEY") != std::string::npos);
}
