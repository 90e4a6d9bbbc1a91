// tc::sim::provider: POST /v1/moderations, the test double of OpenAI's moderation endpoint
// (flags exactly the texts carrying `sim-flag:<category>`), and that the gateway's `openai`
// moderation engine reads its answers.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "protocol/moderation/remote.hpp"
#include "sim_support.hpp"

using namespace tc::sim;
using namespace tc::sim::test;

namespace {

const char* path = "/v1/moderations";

/// Runs one moderation call to completion on a fresh instant provider.
std::shared_ptr<record> moderate(loop_fixture& f, provider& p, std::string body) {
  auto r = post(p, path, std::move(body));
  REQUIRE(f.run_until([&] { return r->done; }));
  return r;
}

bool category(const rapidjson::Value& result, const char* name) {
  return result["categories"][name].GetBool();
}

double score(const rapidjson::Value& result, const char* name) {
  return result["category_scores"][name].GetDouble();
}

}  // namespace

TEST_CASE("moderations: sim-flag markers flag their categories, other texts pass") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto r = moderate(f, p,
                    R"({"model":"omni-moderation-latest","input":["hello there",)"
                    R"("this is sim-flag:violence, really","two sim-flag:hate and )"
                    R"(sim-flag:self-harm/intent and again sim-flag:hate",)"
                    R"("made up sim-flag:my_own-cat/sub.","SIM-FLAG:violence sim-flag: x"]})");
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "application/json");
  CHECK_FALSE(r->callback_in_start);
  auto d = parse(r->body);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["id"].GetString()).rfind("modr-sim-", 0) == 0);
  CHECK(std::string(d["model"].GetString()) == "tcsim-moderation (simulated, test double)");
  const auto& results = d["results"];
  REQUIRE(results.Size() == 5);

  // Not flagged: every standard category false at 0.01.
  CHECK_FALSE(results[0]["flagged"].GetBool());
  for (const char* name : {"harassment", "hate", "self-harm/intent", "sexual/minors", "violence",
                           "violence/graphic", "illicit/violent"}) {
    CHECK_MESSAGE(!category(results[0], name), name);
    CHECK(score(results[0], name) == doctest::Approx(0.01));
  }
  CHECK(results[0]["categories"].MemberCount() == 13);

  CHECK(results[1]["flagged"].GetBool());
  CHECK(category(results[1], "violence"));
  CHECK(score(results[1], "violence") == doctest::Approx(0.99));
  CHECK_FALSE(category(results[1], "violence/graphic"));
  CHECK_FALSE(category(results[1], "hate"));

  CHECK(results[2]["flagged"].GetBool());
  CHECK(category(results[2], "hate"));
  CHECK(category(results[2], "self-harm/intent"));
  CHECK_FALSE(category(results[2], "self-harm"));
  CHECK(score(results[2], "self-harm/intent") == doctest::Approx(0.99));
  CHECK(results[2]["categories"].MemberCount() == 13);

  // A category outside OpenAI's list is added; the run stops at the first other character.
  CHECK(results[3]["flagged"].GetBool());
  CHECK(category(results[3], "my_own-cat/sub"));
  CHECK(score(results[3], "my_own-cat/sub") == doctest::Approx(0.99));
  CHECK(results[3]["categories"].MemberCount() == 14);

  // The marker is case-sensitive and needs a category right after the colon.
  CHECK_FALSE(results[4]["flagged"].GetBool());
  CHECK(results[4]["categories"].MemberCount() == 13);
}

TEST_CASE("moderations: a string input, no model, determinism") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  auto a = moderate(f, p, R"({"input":"sim-flag:sexual/minors"})");
  REQUIRE(a->status == 200);
  auto d = parse(a->body);
  REQUIRE(d["results"].Size() == 1);
  CHECK(category(d["results"][0], "sexual/minors"));
  CHECK_FALSE(category(d["results"][0], "sexual"));
  // The same input gets the same answer but for the id, which differs per call.
  auto b = moderate(f, p, R"({"input":"sim-flag:sexual/minors"})");
  auto db = parse(b->body);
  CHECK(std::string(d["id"].GetString()) != std::string(db["id"].GetString()));
  const auto from_model = [](const std::string& body) {
    return body.substr(body.find("\"model\""));
  };
  CHECK(from_model(a->body) == from_model(b->body));
  // CJK text around a marker.
  auto c = moderate(f, p, R"({"input":["这里有sim-flag:violence内容","普通文本"]})");
  auto dc = parse(c->body);
  CHECK(category(dc["results"][0], "violence"));
  CHECK_FALSE(dc["results"][1]["flagged"].GetBool());
}

TEST_CASE("moderations: other input shapes and bad bodies get the 400 error envelope") {
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  struct bad_case {
    std::string body;
    std::string param;  // empty: null
  };
  const std::vector<bad_case> cases = {
      {R"({"model":"m"})", "input"},
      {R"({"input":null})", "input"},
      {R"({"input":[]})", "input"},
      {R"({"input":42})", "input"},
      {R"({"input":{"text":"a"}})", "input"},
      {R"({"input":["a",1]})", "input"},
      {R"({"input":["a",["b"]]})", "input"},
      {R"({"input":[{"type":"text","text":"a"}]})", "input"},
      {R"({"input":[[1,2,3]]})", "input"},
      {R"({"input":"a","model":7})", "model"},
      {"not json", ""},
      {"[\"a\"]", ""},
      {"{\"input\":\"\xFF\"}", ""},  // invalid UTF-8
      {"", ""},
  };
  for (const bad_case& c : cases) {
    auto r = moderate(f, p, c.body);
    CHECK_MESSAGE(r->status == 400, c.body);
    auto d = parse(r->body);
    REQUIRE_MESSAGE(!d.HasParseError(), c.body);
    REQUIRE(d.IsObject());
    REQUIRE(d.HasMember("error"));
    const auto& e = d["error"];
    CHECK(std::string(e["type"].GetString()) == "invalid_request_error");
    CHECK(e["message"].IsString());
    if (c.param.empty()) {
      CHECK_MESSAGE(e["param"].IsNull(), c.body);
    } else {
      REQUIRE_MESSAGE(e["param"].IsString(), c.body);
      CHECK(std::string(e["param"].GetString()) == c.param);
    }
    CHECK(e["code"].IsNull());
  }
  // GET is not allowed on the endpoint.
  auto g = start_call(p, "GET", path, "");
  REQUIRE(f.run_until([&] { return g->done; }));
  CHECK(g->status == 405);
}

TEST_CASE("moderations: injected errors and outages apply") {
  loop_fixture f;
  auto s = instant_settings();
  s.error_rate = 1.0;
  s.error_status = 503;
  provider p(&f.loop, s);
  auto r = moderate(f, p, R"({"input":"hello"})");
  CHECK(r->status == 503);
  CHECK(r->header("retry-after") == "1");
  CHECK(p.stats().errors == 1);
  // Validation comes first: a bad body is still a 400.
  auto bad = moderate(f, p, R"({"input":7})");
  CHECK(bad->status == 400);

  s.error_rate = 0;
  s.outages.push_back({0, 3600});
  p.update(s);
  auto o = moderate(f, p, R"({"input":"hello"})");
  CHECK(o->status == 503);
  s.outages.clear();
  p.update(s);
  auto ok = moderate(f, p, R"({"input":"hello"})");
  CHECK(ok->status == 200);
}

TEST_CASE("moderations: the openai moderation engine reads the sim's answers") {
  using namespace tc::moderation;
  loop_fixture f;
  provider p(&f.loop, instant_settings());
  const std::vector<std::string> texts = {"fine", "sim-flag:harassment here",
                                          "and sim-flag:violence/graphic"};
  auto r = moderate(f, p, openai_moderation_body("omni-moderation-latest", texts));
  REQUIRE(r->status == 200);
  remote_verdict v;
  std::string err;
  const std::map<std::string, action> actions = {{"harassment", action::flag},
                                                 {"violence/graphic", action::block}};
  REQUIRE_MESSAGE(parse_openai_moderation(r->body, texts.size(), actions, action::block, v, err),
                  err);
  CHECK(v.act == action::block);
  CHECK(v.category == "violence/graphic");

  auto clean = moderate(f, p, openai_moderation_body("", {"nothing to see"}));
  REQUIRE(parse_openai_moderation(clean->body, 1, actions, action::block, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.category.empty());
}
