// protocol/moderation/remote.cpp: the `http` and `openai` engines' request bodies and answer
// parsers (answers come from outside: every malformed shape is refused with a clear error), and
// the aggregation policies.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <rapidjson/document.h>

#include "protocol/moderation/remote.hpp"

using namespace tc::moderation;

namespace {

rapidjson::Document parse_strict(const std::string& body) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  return d;
}

/// parse_http_verdict on a heap copy of exactly body.size() bytes, so ASan sees any over-read.
bool http_exact(const std::string& body, const std::vector<std::string>& texts, remote_verdict& out,
                std::string& error) {
  std::unique_ptr<char[]> buf(new char[body.size() + 1]);
  if (!body.empty()) std::memcpy(buf.get(), body.data(), body.size());
  return parse_http_verdict(std::string_view(buf.get(), body.size()), texts, out, error);
}

/// A verdict that no parser would produce, to see that failures leave `out` alone.
remote_verdict sentinel() {
  remote_verdict v;
  v.act = action::flag;
  v.category = "untouched";
  v.hits = {{hit{1, 2, "s", action::mask}}};
  return v;
}

bool same(const remote_verdict& a, const remote_verdict& b) {
  return a.act == b.act && a.category == b.category && a.hits == b.hits;
}

const std::vector<std::string> two_texts = {"call 13812345678 now", "炸弹 and more"};

std::string openai_result(bool flagged, const std::string& categories) {
  return R"({"flagged":)" + std::string(flagged ? "true" : "false") + R"(,"categories":{)" +
         categories + R"(},"category_scores":{"hate":0.01}})";
}

std::string openai_answer(const std::vector<std::string>& results) {
  std::string out = R"({"id":"modr-1","model":"omni-moderation-latest","results":[)";
  for (size_t i = 0; i < results.size(); ++i) {
    if (i) out += ',';
    out += results[i];
  }
  return out + "]}";
}

engine_result er(std::string engine, action a, std::string category, double weight = 1.0) {
  engine_result e;
  e.engine = std::move(engine);
  e.act = a;
  e.category = std::move(category);
  e.weight = weight;
  return e;
}

engine_result failed(std::string engine, bool closed, std::string category = "timeout") {
  engine_result e;
  e.engine = std::move(engine);
  e.act = action::allow;  // ignored for a failed engine
  e.category = std::move(category);
  e.failed = true;
  e.fail_closed = closed;
  return e;
}

}  // namespace

TEST_CASE("http_request_body: the documented shape, escaped, always valid JSON") {
  CHECK(http_request_body("input", "req-1", "acme", "qwen-max", {"hi", "炸弹"}) ==
        R"({"direction":"input","request_id":"req-1","tenant":"acme","model":"qwen-max",)"
        R"("texts":["hi","炸弹"]})");
  CHECK(http_request_body("output", "", "", "", {}) ==
        R"({"direction":"output","request_id":"","tenant":"","model":"","texts":[]})");

  const std::string tricky = std::string("q\"b\\s\n\r\t\x01\x1f end 😀 ") + '\0' + "z";
  const std::string body = http_request_body("input", "r\"1", "t\\", "m\n", {tricky, ""});
  auto d = parse_strict(body);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["direction"].GetString()) == "input");
  CHECK(std::string(d["request_id"].GetString()) == "r\"1");
  CHECK(std::string(d["tenant"].GetString()) == "t\\");
  CHECK(std::string(d["model"].GetString()) == "m\n");
  REQUIRE(d["texts"].Size() == 2);
  CHECK(std::string(d["texts"][0].GetString(), d["texts"][0].GetStringLength()) == tricky);
  CHECK(std::string(d["texts"][1].GetString()) == "");
  CHECK(body.find('\n') == std::string::npos);  // control bytes are escaped

  // Invalid UTF-8 (a lone continuation byte, a truncated sequence, an overlong form, a
  // surrogate) is sent as U+FFFD so the body still parses with encoding validation.
  const std::string bad =
      "a\x80"
      "b\xE4\xB8"
      "c\xC0\xAF"
      "d\xED\xA0\x80"
      "e";
  const std::string b2 = http_request_body("input", "\xFF", "t", "m", {bad});
  auto d2 = parse_strict(b2);
  REQUIRE_FALSE(d2.HasParseError());
  CHECK(std::string(d2["request_id"].GetString()) == "\xEF\xBF\xBD");
  const std::string got = d2["texts"][0].GetString();
  CHECK(got.rfind("a\xEF\xBF\xBD"
                  "b",
                  0) == 0);
  CHECK(got.find("c") != std::string::npos);
  CHECK(got.back() == 'e');
}

TEST_CASE("parse_http_verdict: well-formed answers") {
  remote_verdict v;
  std::string err;

  REQUIRE(http_exact(R"({"verdict":"allow"})", two_texts, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.category.empty());
  REQUIRE(v.hits.size() == 2);
  CHECK(v.hits[0].empty());
  CHECK(v.hits[1].empty());

  REQUIRE(http_exact(R"({"verdict":"flag","category":"spam","hits":[]})", two_texts, v, err));
  CHECK(v.act == action::flag);
  CHECK(v.category == "spam");

  REQUIRE(http_exact(R"({"verdict":"block","category":"violence"})", {}, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "violence");
  CHECK(v.hits.empty());

  // Null category and hits count as absent; unknown members are ignored.
  REQUIRE(http_exact(R"({"verdict":"allow","category":null,"hits":null,"score":0.3,"x":{}})",
                     two_texts, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.category.empty());

  // Mask hits on both texts, out of order; CJK offsets on code point boundaries.
  const std::string body = R"({"verdict":"mask","category":"pii","hits":[
      {"text":1,"begin":0,"end":6,"category":"politics","action":"mask"},
      {"text":0,"begin":5,"end":16,"category":"pii.phone","action":"mask"},
      {"text":0,"begin":0,"end":4,"action":"flag"},
      {"text":1,"begin":3,"end":6}]})";
  REQUIRE(http_exact(body, two_texts, v, err));
  CHECK(err.empty());
  CHECK(v.act == action::mask);
  CHECK(v.category == "pii");
  REQUIRE(v.hits.size() == 2);
  CHECK(v.hits[0] ==
        std::vector<hit>{hit{0, 4, "pii", action::flag}, hit{5, 16, "pii.phone", action::mask}});
  // Sorted by (begin, end); missing category and action default to the verdict's.
  CHECK(v.hits[1] ==
        std::vector<hit>{hit{0, 6, "politics", action::mask}, hit{3, 6, "pii", action::mask}});
  CHECK(apply_masks(two_texts[0], v.hits[0]) == "call *********** now");
  CHECK(apply_masks(two_texts[1], v.hits[1]) == "** and more");

  // A hit may cover a whole text, and an empty text may be sent (but never hit).
  REQUIRE(http_exact(R"({"verdict":"mask","hits":[{"text":0,"begin":0,"end":3}]})", {"abc", ""}, v,
                     err));
  CHECK(v.hits[0] == std::vector<hit>{hit{0, 3, "", action::mask}});
  // Whitespace around the object is fine.
  CHECK(http_exact(" \n{\"verdict\":\"allow\"}\r\n ", two_texts, v, err));
  // A 256-byte category is the longest accepted.
  CHECK(
      http_exact(R"({"verdict":"flag","category":")" + std::string(256, 'c') + "\"}", {}, v, err));
  CHECK(v.category.size() == 256);
}

TEST_CASE("parse_http_verdict: mask needs a mask hit, hits can only raise the verdict") {
  remote_verdict v;
  std::string err;
  // mask with no hits at all: block.
  REQUIRE(http_exact(R"({"verdict":"mask","category":"pii"})", two_texts, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "pii");
  // mask whose hits are all flags: still nothing to mask, block.
  REQUIRE(http_exact(R"({"verdict":"mask","hits":[{"text":0,"begin":0,"end":4,"action":"flag"}]})",
                     two_texts, v, err));
  CHECK(v.act == action::block);
  REQUIRE(v.hits[0].size() == 1);
  CHECK(v.hits[0][0].act == action::flag);

  // A block hit under a flag verdict: block, with the first block hit's category.
  REQUIRE(http_exact(R"({"verdict":"flag","category":"spam","hits":[
      {"text":0,"begin":0,"end":4,"category":"a","action":"mask"},
      {"text":1,"begin":0,"end":3,"category":"terror","action":"block"},
      {"text":0,"begin":5,"end":6,"category":"later","action":"block"}]})",
                     two_texts, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "terror");

  // A mask hit under an allow verdict: mask, with that hit's category.
  REQUIRE(http_exact(
      R"({"verdict":"allow","hits":[{"text":0,"begin":5,"end":16,"category":"pii.phone","action":"mask"}]})",
      two_texts, v, err));
  CHECK(v.act == action::mask);
  CHECK(v.category == "pii.phone");

  // Weaker hits do not lower the verdict or change its category.
  REQUIRE(http_exact(
      R"({"verdict":"block","category":"c","hits":[{"text":0,"begin":5,"end":16,"category":"d","action":"mask"}]})",
      two_texts, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "c");
}

TEST_CASE("parse_http_verdict: malformed answers are refused with a clear error") {
  struct bad_case {
    std::string body;
    std::string error_part;
  };
  const std::string long_cat(257, 'c');
  const std::vector<bad_case> cases = {
      {"", "not valid JSON"},
      {"   ", "not valid JSON"},
      {"{", "not valid JSON"},
      {R"({"verdict":"allow"} x)", "not valid JSON"},
      {R"({"verdict":"allow",})", "not valid JSON"},
      {"{\"verdict\":\"allow\",\"category\":\"a\xFF\"}", "not valid JSON"},  // raw invalid UTF-8
      {"[]", "an array, not a JSON object"},
      {"null", "null, not a JSON object"},
      {"42", "a number, not a JSON object"},
      {R"("allow")", "a string, not a JSON object"},
      {"{}", "verdict: missing"},
      {R"({"verdict":null})", "verdict: missing"},
      {R"({"verdict":1})", "verdict: expected a string, got a number"},
      {R"({"verdict":true})", "verdict: expected a string, got a boolean"},
      {R"({"verdict":["block"]})", "verdict: expected a string, got an array"},
      {R"({"verdict":"deny"})", "verdict: unknown action \"deny\""},
      {R"({"verdict":"Block"})", "unknown action \"Block\""},
      {R"({"verdict":""})", "unknown action \"\""},
      {R"({"verdict":"block "})", "unknown action"},
      {R"({"verdict":"allow","category":5})", "category: expected a string, got a number"},
      {R"({"verdict":"allow","category":{}})", "category: expected a string, got an object"},
      {R"({"verdict":"flag","category":")" + long_cat + "\"}", "category: longer than 256"},
      {R"({"verdict":"flag","category":"\udc00"})", "category: not valid UTF-8"},
      {R"({"verdict":"flag","hits":{}})", "hits: expected an array, got an object"},
      {R"({"verdict":"flag","hits":"none"})", "hits: expected an array, got a string"},
      {R"({"verdict":"flag","hits":[1]})", "hits[0]: expected an object, got a number"},
      {R"({"verdict":"flag","hits":[null]})", "hits[0]: expected an object, got null"},
      {R"({"verdict":"flag","hits":[{"begin":0,"end":1}]})", "hits[0].text: missing"},
      {R"({"verdict":"flag","hits":[{"text":"0","begin":0,"end":1}]})",
       "hits[0].text: expected a non-negative integer, got a string"},
      {R"({"verdict":"flag","hits":[{"text":-1,"begin":0,"end":1}]})",
       "hits[0].text: expected a non-negative integer, got a negative"},
      {R"({"verdict":"flag","hits":[{"text":0.5,"begin":0,"end":1}]})", "hits[0].text: expected"},
      {R"({"verdict":"flag","hits":[{"text":1.0,"begin":0,"end":1}]})", "hits[0].text: expected"},
      {R"({"verdict":"flag","hits":[{"text":1e300,"begin":0,"end":1}]})", "hits[0].text: expected"},
      {R"({"verdict":"flag","hits":[{"text":2,"begin":0,"end":1}]})",
       "hits[0].text: 2 is out of range (the request had 2 texts)"},
      {R"({"verdict":"flag","hits":[{"text":18446744073709551615,"begin":0,"end":1}]})",
       "is out of range"},
      {R"({"verdict":"flag","hits":[{"text":0,"end":1}]})", "hits[0].begin: missing"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0}]})", "hits[0].end: missing"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":null,"end":1}]})", "hits[0].begin: missing"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":-3,"end":1}]})", "hits[0].begin: expected"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":"0","end":1}]})",
       "hits[0].begin: expected a non-negative integer, got a string"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":2.5}]})", "hits[0].end: expected"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":3,"end":3}]})",
       "hits[0]: begin 3 is not before end 3"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":5,"end":2}]})",
       "begin 5 is not before end 2"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":21}]})",
       "hits[0].end: 21 is past the end of texts[0] (20 bytes)"},
      {R"({"verdict":"flag","hits":[{"text":1,"begin":0,"end":4294967296}]})",
       "is past the end of texts[1]"},
      {R"({"verdict":"flag","hits":[{"text":1,"begin":1,"end":3}]})",
       "hits[0]: [1, 3) splits a UTF-8 code point of texts[1]"},
      {R"({"verdict":"flag","hits":[{"text":1,"begin":0,"end":2}]})", "splits a UTF-8 code point"},
      {R"({"verdict":"flag","hits":[{"text":1,"begin":0,"end":5}]})", "splits a UTF-8 code point"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":1,"category":7}]})",
       "hits[0].category: expected a string, got a number"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":1,"category":")" + long_cat + "\"}]}",
       "hits[0].category: longer than 256"},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":1,"action":"redact"}]})",
       "hits[0].action: unknown action \"redact\""},
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":1,"action":3}]})",
       "hits[0].action: expected a string, got a number"},
      // The second hit is the bad one: the index in the error says so.
      {R"({"verdict":"flag","hits":[{"text":0,"begin":0,"end":1},{"text":0,"begin":0,"end":99}]})",
       "hits[1].end: 99 is past the end"},
  };
  for (const bad_case& c : cases) {
    remote_verdict v = sentinel();
    std::string err;
    CHECK_MESSAGE(!http_exact(c.body, two_texts, v, err), c.body);
    CHECK_MESSAGE(err.find(c.error_part) != std::string::npos, c.body, " -> ", err);
    CHECK_MESSAGE(same(v, sentinel()), c.body);
  }

  // A hit when the request had no texts at all.
  remote_verdict v = sentinel();
  std::string err;
  CHECK_FALSE(
      http_exact(R"({"verdict":"mask","hits":[{"text":0,"begin":0,"end":1}]})", {}, v, err));
  CHECK(err.find("out of range (the request had 0 texts)") != std::string::npos);

  // An unknown action is shown truncated on a code point boundary, control bytes replaced.
  CHECK_FALSE(http_exact(R"({"verdict":"a\nb)" + std::string(100, 'x') + "\"}", {}, v, err));
  CHECK(err == "verdict: unknown action \"a?b" + std::string(29, 'x') +
                   "\" (expected allow, flag, mask or block)");
  CHECK_FALSE(http_exact(R"({"verdict":")" + std::string(30, 'x') + "禁止\"}", {}, v, err));
  CHECK(err.find("\"" + std::string(30, 'x') + "\" (expected") != std::string::npos);
  CHECK_FALSE(http_exact(R"({"verdict":"禁止"})", {}, v, err));
  CHECK(err.find("\"禁止\"") != std::string::npos);
}

TEST_CASE("parse_http_verdict: deep nesting and random corruption never crash") {
  remote_verdict v;
  std::string err;
  // 100,000 levels of nesting in an ignored member: the iterative parser takes it.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(http_exact(R"({"verdict":"flag","x":)" + deep + "}", two_texts, v, err));
  CHECK(v.act == action::flag);
  CHECK_FALSE(
      http_exact(R"({"verdict":"flag","x":)" + std::string(100000, '['), two_texts, v, err));

  const std::string good =
      R"({"verdict":"mask","category":"pii","hits":[)"
      R"({"text":0,"begin":5,"end":16,"category":"pii.phone","action":"mask"},)"
      R"({"text":1,"begin":0,"end":6,"action":"block"}]})";
  REQUIRE(http_exact(good, two_texts, v, err));
  std::mt19937 rng(5);
  const std::string alphabet = "{}[]\":,0123456789-. tx\\u";
  int accepted = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string s = good;
    const int edits = 1 + iter % 4;
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 4) {
        case 0:
          s[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          s[at] = static_cast<char>(rng() % 256);
          break;
        case 2:
          s.erase(at, 1 + rng() % 4);
          break;
        default:
          s.resize(at);
          break;
      }
      if (s.empty()) s.push_back('{');
    }
    remote_verdict out = sentinel();
    std::string e;
    if (!http_exact(s, two_texts, out, e)) {
      CHECK_FALSE(e.empty());
      CHECK(same(out, sentinel()));
      continue;
    }
    ++accepted;
    REQUIRE(out.hits.size() == two_texts.size());
    for (size_t t = 0; t < out.hits.size(); ++t) {
      for (const hit& h : out.hits[t]) {
        CHECK(h.begin < h.end);
        CHECK(h.end <= two_texts[t].size());
      }
    }
    if (out.act == action::mask) {
      bool any_mask = false;
      for (const auto& per : out.hits) {
        for (const hit& h : per) any_mask = any_mask || h.act == action::mask;
      }
      CHECK(any_mask);
    }
  }
  CHECK(accepted > 0);  // some edits (inside strings, digits) keep it valid
}

TEST_CASE("openai_moderation_body: model optional, inputs in order") {
  CHECK(openai_moderation_body("omni-moderation-latest", {"a", "炸弹"}) ==
        R"({"model":"omni-moderation-latest","input":["a","炸弹"]})");
  CHECK(openai_moderation_body("", {"x\"y"}) == R"({"input":["x\"y"]})");
  CHECK(openai_moderation_body("", {}) == R"({"input":[]})");
  auto d = parse_strict(openai_moderation_body("m", {"a\x80", "\n"}));
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string(d["input"][0].GetString()) == "a\xEF\xBF\xBD");
  CHECK(std::string(d["input"][1].GetString()) == "\n");
}

TEST_CASE("parse_openai_moderation: per-category actions, flagged fallback, strongest wins") {
  const std::map<std::string, action> actions = {{"violence", action::block},
                                                 {"harassment", action::flag},
                                                 {"self-harm", action::mask},
                                                 {"sexual", action::allow}};
  remote_verdict v;
  std::string err;

  // A real-shaped answer: nothing flagged.
  const std::string clean = openai_answer(
      {R"({"flagged":false,"categories":{"harassment":false,"harassment/threatening":false,)"
       R"("hate":false,"sexual/minors":false,"violence":false,"violence/graphic":false},)"
       R"("category_scores":{"harassment":0.0001,"violence":0.0002},)"
       R"("category_applied_input_types":{"violence":["text"]}})"});
  REQUIRE(parse_openai_moderation(clean, 1, actions, action::block, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.category.empty());
  REQUIRE(v.hits.size() == 1);
  CHECK(v.hits[0].empty());

  // A configured category decides.
  REQUIRE(parse_openai_moderation(
      openai_answer({openai_result(true, R"("harassment":true,"violence":false)")}), 1, actions,
      action::block, v, err));
  CHECK(v.act == action::flag);
  CHECK(v.category == "harassment");

  // Two true categories: the stronger wins.
  REQUIRE(parse_openai_moderation(
      openai_answer({openai_result(true, R"("harassment":true,"violence":true)")}), 1, actions,
      action::flag, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "violence");

  // An unconfigured true category takes flagged_action.
  REQUIRE(parse_openai_moderation(
      openai_answer({openai_result(true, R"("harassment":true,"sexual/minors":true)")}), 1, actions,
      action::block, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "sexual/minors");

  // flagged with no true category: flagged_action, no category.
  REQUIRE(parse_openai_moderation(openai_answer({openai_result(true, R"("hate":false)")}), 1,
                                  actions, action::flag, v, err));
  CHECK(v.act == action::flag);
  CHECK(v.category.empty());

  // A category configured as allow is ignored, even when flagged says true.
  REQUIRE(parse_openai_moderation(openai_answer({openai_result(true, R"("sexual":true)")}), 1,
                                  actions, action::block, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.category.empty());

  // A true category with flagged false still counts.
  REQUIRE(parse_openai_moderation(openai_answer({openai_result(false, R"("violence":true)")}), 1,
                                  actions, action::flag, v, err));
  CHECK(v.act == action::block);

  // Mask has no offsets to apply: it becomes block, the category is kept.
  REQUIRE(parse_openai_moderation(openai_answer({openai_result(true, R"("self-harm":true)")}), 1,
                                  actions, action::flag, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "self-harm");
  CHECK(v.hits == std::vector<std::vector<hit>>{{}});

  // Equal actions: the first name in byte order decides, whatever the answer's member order.
  REQUIRE(parse_openai_moderation(
      openai_answer({openai_result(true, R"("violence/graphic":true,"hate":true,"illicit":true)")}),
      1, {}, action::block, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "hate");
}

TEST_CASE("parse_openai_moderation: several inputs, the first deciding result names it") {
  const std::map<std::string, action> actions = {{"violence", action::block},
                                                 {"harassment", action::flag}};
  remote_verdict v;
  std::string err;
  const std::string body = openai_answer(
      {openai_result(false, R"("violence":false)"), openai_result(true, R"("harassment":true)"),
       openai_result(true, R"("violence":true)"), openai_result(true, R"("hate":true)")});
  REQUIRE(parse_openai_moderation(body, 4, actions, action::block, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category == "violence");  // results[2] comes before results[3] ("hate")
  CHECK(v.hits.size() == 4);

  // A bare flagged result before a categorised one of the same action: no category.
  REQUIRE(parse_openai_moderation(
      openai_answer({openai_result(true, ""), openai_result(true, R"("violence":true)")}), 2,
      actions, action::block, v, err));
  CHECK(v.act == action::block);
  CHECK(v.category.empty());

  // Zero inputs, zero results.
  REQUIRE(parse_openai_moderation(R"({"results":[]})", 0, actions, action::block, v, err));
  CHECK(v.act == action::allow);
  CHECK(v.hits.empty());
}

TEST_CASE("parse_openai_moderation: malformed answers are refused") {
  struct bad_case {
    std::string body;
    size_t texts;
    std::string error_part;
  };
  const std::string ok = openai_result(false, R"("hate":false)");
  const std::vector<bad_case> cases = {
      {"", 1, "not valid JSON"},
      {"<html>502 Bad Gateway</html>", 1, "not valid JSON"},
      {"[]", 0, "not a JSON object"},
      {"{}", 1, "results: missing"},
      {R"({"results":null})", 1, "results: missing"},
      {R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}})", 1,
       "the service answered an error: Incorrect API key provided"},
      {R"({"error":{"message":"bad\nkey \udc00!"}})", 1,
       "the service answered an error: bad?key ???"},
      {R"({"error":"boom"})", 1, "results: missing"},
      {R"({"results":{}})", 1, "results: expected an array, got an object"},
      {openai_answer({ok}), 2, "results: 1 results for 2 inputs"},
      {openai_answer({ok, ok}), 1, "results: 2 results for 1 inputs"},
      {openai_answer({}), 1, "results: 0 results for 1 inputs"},
      {openai_answer({"7"}), 1, "results[0]: expected an object, got a number"},
      {openai_answer({ok, R"({"categories":{}})"}), 2, "results[1].flagged: missing"},
      {openai_answer({R"({"flagged":"true","categories":{}})"}), 1,
       "results[0].flagged: expected a boolean, got a string"},
      {openai_answer({R"({"flagged":1,"categories":{}})"}), 1, "expected a boolean, got a number"},
      {openai_answer({R"({"flagged":true})"}), 1, "results[0].categories: missing"},
      {openai_answer({R"({"flagged":true,"categories":["violence"]})"}), 1,
       "results[0].categories: expected an object, got an array"},
      {openai_answer({R"({"flagged":true,"categories":{"violence":0.9}})"}), 1,
       "results[0].categories[\"violence\"]: expected a boolean, got a number"},
      {openai_answer({R"({"flagged":true,"categories":{"violence":null}})"}), 1,
       "expected a boolean, got null"},
      {openai_answer({R"({"flagged":true,"categories":{"violence":"true"}})"}), 1,
       "expected a boolean, got a string"},
      {openai_answer({R"({"flagged":true,"categories":{"\udc00":true}})"}), 1,
       "a category name is not UTF-8"},
      {openai_answer(
           {R"({"flagged":true,"categories":{")" + std::string(300, 'v') + R"(":true}})"}),
       1, "longer than 256 bytes"},
  };
  for (const bad_case& c : cases) {
    remote_verdict v = sentinel();
    std::string err;
    CHECK_MESSAGE(!parse_openai_moderation(c.body, c.texts, {}, action::block, v, err), c.body);
    CHECK_MESSAGE(err.find(c.error_part) != std::string::npos, c.body, " -> ", err);
    CHECK_MESSAGE(same(v, sentinel()), c.body);
  }
}

TEST_CASE("policy names round trip, unknown names are refused") {
  for (policy p : {policy::any_block, policy::majority, policy::weighted}) {
    policy back = policy::any_block;
    REQUIRE(parse_policy(policy_name(p), back));
    CHECK(back == p);
  }
  policy p = policy::majority;
  CHECK_FALSE(parse_policy("", p));
  CHECK_FALSE(parse_policy("any-block", p));
  CHECK_FALSE(parse_policy("Majority", p));
  CHECK_FALSE(parse_policy("weighted ", p));
  CHECK(p == policy::majority);
}

TEST_CASE("aggregate: any_block takes the strongest, failures count only when fail_closed") {
  std::string cat = "stale";
  CHECK(aggregate(policy::any_block, {}, 0.5, cat) == action::allow);
  CHECK(cat.empty());

  const std::vector<engine_result> r = {er("kw", action::flag, "spam"),
                                        er("pii", action::mask, "pii.phone"),
                                        er("remote", action::allow, "")};
  CHECK(aggregate(policy::any_block, r, 0.5, cat) == action::mask);
  CHECK(cat == "pii.phone");

  auto with_block = r;
  with_block.push_back(er("openai", action::block, "violence"));
  with_block.push_back(er("http", action::block, "terror"));
  CHECK(aggregate(policy::any_block, with_block, 0.5, cat) == action::block);
  CHECK(cat == "violence");  // the first engine with the final action

  // A failed engine: left out when fail-open, a block when fail-closed.
  auto open = r;
  open.push_back(failed("http", false));
  CHECK(aggregate(policy::any_block, open, 0.5, cat) == action::mask);
  auto closed = r;
  closed.push_back(failed("http", true, "engine_timeout"));
  CHECK(aggregate(policy::any_block, closed, 0.5, cat) == action::block);
  CHECK(cat == "engine_timeout");

  // A failed engine's own act is ignored, even when it says block.
  engine_result lying = failed("http", false);
  lying.act = action::block;
  CHECK(aggregate(policy::any_block, {lying}, 0.5, cat) == action::allow);
  CHECK(cat.empty());
  // Only fail-open failures: nothing counted, allow.
  CHECK(aggregate(policy::majority, {failed("a", false), failed("b", false)}, 0.5, cat) ==
        action::allow);
  CHECK(aggregate(policy::weighted, {failed("a", false)}, 0.5, cat) == action::allow);
}

TEST_CASE("aggregate: majority needs more than half, otherwise the strongest non-block") {
  std::string cat;
  // 1 of 2 is not more than half: the strongest of the rest.
  CHECK(aggregate(policy::majority, {er("a", action::block, "x"), er("b", action::flag, "spam")},
                  0.5, cat) == action::flag);
  CHECK(cat == "spam");
  // 2 of 3 blocks.
  CHECK(aggregate(
            policy::majority,
            {er("a", action::block, "x"), er("b", action::allow, ""), er("c", action::block, "y")},
            0.5, cat) == action::block);
  CHECK(cat == "x");
  // Mask beats flag among the non-block actions.
  CHECK(aggregate(policy::majority,
                  {er("a", action::flag, "f"), er("b", action::block, "b"),
                   er("c", action::mask, "m"), er("d", action::allow, "")},
                  0.5, cat) == action::mask);
  CHECK(cat == "m");
  // 2 of 4 is a tie: not a majority.
  CHECK(aggregate(policy::majority,
                  {er("a", action::block, "b1"), er("b", action::block, "b2"),
                   er("c", action::allow, ""), er("d", action::allow, "")},
                  0.5, cat) == action::allow);
  // A single engine decides alone.
  CHECK(aggregate(policy::majority, {er("a", action::block, "b")}, 0.5, cat) == action::block);
  // Fail-closed failures vote block; fail-open ones are not counted at all.
  CHECK(
      aggregate(policy::majority,
                {er("a", action::allow, ""), failed("b", true, "down"), failed("c", true, "down")},
                0.5, cat) == action::block);
  CHECK(cat == "down");
  CHECK(aggregate(policy::majority,
                  {er("a", action::block, "x"), failed("b", false), failed("c", false)}, 0.5,
                  cat) == action::block);
  // Weights do not matter to majority.
  CHECK(aggregate(policy::majority,
                  {er("a", action::block, "x", 100), er("b", action::allow, "", 1),
                   er("c", action::allow, "", 1)},
                  0.5, cat) == action::allow);
}

TEST_CASE("aggregate: weighted blocks at the threshold share of counted weight") {
  std::string cat;
  const std::vector<engine_result> r = {er("big", action::block, "violence", 3),
                                        er("small", action::flag, "spam", 1),
                                        er("mid", action::mask, "pii", 2)};
  // Block weight 3 of 6 = 0.5.
  CHECK(aggregate(policy::weighted, r, 0.5, cat) == action::block);  // >= is inclusive
  CHECK(cat == "violence");
  CHECK(aggregate(policy::weighted, r, 0.51, cat) == action::mask);
  CHECK(cat == "pii");
  CHECK(aggregate(policy::weighted, r, 1.0, cat) == action::mask);
  // One heavy block voter outweighs two others, where majority would not block.
  const std::vector<engine_result> heavy = {
      er("a", action::block, "x", 5), er("b", action::allow, "", 1), er("c", action::allow, "", 1)};
  CHECK(aggregate(policy::weighted, heavy, 0.6, cat) == action::block);
  CHECK(aggregate(policy::majority, heavy, 0.6, cat) == action::allow);
  // Fail-closed failures vote with their weight.
  engine_result down = failed("d", true, "down");
  down.weight = 4;
  CHECK(aggregate(policy::weighted, {er("a", action::allow, "", 1), down}, 0.8, cat) ==
        action::block);
  CHECK(cat == "down");
  // Negative, NaN and infinite weights count as 0; so does a zero-weight block voter.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double w : {0.0, -1.0, nan, inf, -inf}) {
    CHECK_MESSAGE(
        aggregate(policy::weighted, {er("a", action::block, "x", w), er("b", action::flag, "f", 1)},
                  0.1, cat) == action::flag,
        w);
  }
  // All weights zero: no block by weight, even at threshold 0.
  CHECK(aggregate(policy::weighted, {er("a", action::block, "x", 0)}, 0.0, cat) == action::allow);
  // A NaN threshold never blocks.
  CHECK(aggregate(policy::weighted, {er("a", action::block, "x", 1)}, nan, cat) == action::allow);
  // Block weight that is all of it.
  CHECK(aggregate(policy::weighted, {er("a", action::block, "x", 0.25)}, 1.0, cat) ==
        action::block);
}
