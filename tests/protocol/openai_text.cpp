// protocol/openai/text.cpp: the texts moderation reads in requests, answers and stream chunks,
// their byte-surgical rewrites, the content_filter chunk and the filing-ID stamp.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "protocol/openai/text.hpp"

using namespace tc::openai;
using namespace std::string_literals;
using strings = std::vector<std::string>;

namespace {

/// Parses `text`; a failed check if it is not JSON.
bool parse(rapidjson::Document& doc, const std::string& text) {
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    FAIL_CHECK("not JSON: " << text);
    return false;
  }
  return true;
}

std::string dump(const rapidjson::Value& v, bool pretty = false) {
  rapidjson::StringBuffer sb;
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    v.Accept(w);
  }
  return std::string(sb.GetString(), sb.GetSize());
}

/// Semantic JSON equality (member order ignored).
void check_json_eq(const std::string& got, const std::string& want) {
  rapidjson::Document g, w;
  if (!parse(g, got) || !parse(w, want)) return;
  if (g != w) FAIL_CHECK("JSON differs\n got:  " << dump(g) << "\n want: " << dump(w));
}

/// Every function on `body`, as every endpoint: none may crash, throw or read out of bounds.
void exercise_all(const std::string& body) {
  for (endpoint k : {endpoint::chat_completions, endpoint::completions, endpoint::embeddings}) {
    const strings texts = input_texts(k, body);
    CHECK(with_input_texts(k, body, texts) == body);
    with_input_texts(k, body, strings(texts.size(), "x"));
  }
  const strings answers = answer_texts(body);
  with_answer_texts(body, answers, "content_filter");
  with_answer_texts(body, strings(answers.size()), "");
  const std::vector<delta_piece> pieces = delta_texts(body);
  with_delta_texts(body, pieces);
  with_delta_texts(body, {{0, "x"}, {1, ""}});
  content_filter_chunk(body, 2);
  with_top_field(body, "algorithm_filing_id", "id");
}

const std::string chat_body = R"({
  "model": "gpt-4o",
  "temperature": 0.70,
  "max_tokens": 1e2,
  "messages": [
    {"role": "system", "content": "You are terse.", "name": "sys"},
    {"role": "user", "name": "bob", "content": [
      {"type": "text", "text": "first part"},
      {"type": "image_url", "image_url": {"url": "https://x/y.png"}, "text": "not text"},
      {"text": "type comes after", "type": "text"}
    ]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\":\"a\"}"}},
      {"id": "c2", "type": "function", "function": {"arguments": "{}", "name": "g"}}
    ]},
    {"role": "tool", "tool_call_id": "c1", "content": "tool result"},
    {"role": "user", "content": "last"}
  ],
  "x_vendor": {"content": "not a message"}
})";

const strings chat_texts = {
    "You are terse.", "first part", "type comes after", "{\"q\":\"a\"}", "{}",
    "tool result",    "last"};

}  // namespace

TEST_CASE("chat: message contents, text parts and tool call arguments in document order") {
  CHECK(input_texts(endpoint::chat_completions, chat_body) == chat_texts);
  // The same body read as another endpoint has no prompt or input.
  CHECK(input_texts(endpoint::completions, chat_body).empty());
  CHECK(input_texts(endpoint::embeddings, chat_body).empty());
}

TEST_CASE("chat: with_input_texts replaces exactly those texts and keeps every other byte") {
  // Unchanged texts: the very same bytes (numbers such as 0.70 and 1e2 included).
  CHECK(with_input_texts(endpoint::chat_completions, chat_body, chat_texts) == chat_body);

  strings masked = chat_texts;
  masked[0] = "You are ***.";
  masked[2] = "quote \" backslash \\ newline \n tab \t";
  masked[3] = "{\"q\":\"*\"}";
  masked[6] = "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80";  // 你好 😀
  const std::string out = with_input_texts(endpoint::chat_completions, chat_body, masked);
  CHECK(input_texts(endpoint::chat_completions, out) == masked);
  CHECK(out.find("\"temperature\": 0.70") != std::string::npos);
  CHECK(out.find("\"max_tokens\": 1e2") != std::string::npos);
  CHECK(out.find("\"name\": \"bob\"") != std::string::npos);

  rapidjson::Document got, want;
  REQUIRE(parse(got, out));
  REQUIRE(parse(want, chat_body));
  auto& a = want.GetAllocator();
  auto& m = want["messages"];
  m[0]["content"].SetString(masked[0].c_str(), a);
  m[1]["content"][2]["text"].SetString(masked[2].c_str(), a);
  m[2]["tool_calls"][0]["function"]["arguments"].SetString(masked[3].c_str(), a);
  m[4]["content"].SetString(masked[6].c_str(), a);
  CHECK(got == want);

  // A count that does not match: the body as it was.
  strings short_list = chat_texts;
  short_list.pop_back();
  CHECK(with_input_texts(endpoint::chat_completions, chat_body, short_list) == chat_body);
  CHECK(with_input_texts(endpoint::chat_completions, chat_body, {}) == chat_body);
}

TEST_CASE("chat: escaped keys and duplicate keys are read as a parser would, all of them") {
  // "\u0063ontent" is "content" to every JSON parser.
  const std::string escaped =
      R"({"model":"m","messages":[{"role":"user","\u0063ontent":"hidden"}]})";
  CHECK(input_texts(endpoint::chat_completions, escaped) == strings{"hidden"});
  CHECK(input_texts(endpoint::chat_completions,
                    with_input_texts(endpoint::chat_completions, escaped, {"***"})) ==
        strings{"***"});

  // Parsers disagree on which duplicate wins: moderation sees both.
  const std::string dup =
      R"({"model":"m","messages":[{"role":"user","content":"benign","content":"evil"}]})";
  CHECK(input_texts(endpoint::chat_completions, dup) == strings{"benign", "evil"});
  const std::string part_dup =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","type":"text","text":"t"}]}]})";
  CHECK(input_texts(endpoint::chat_completions, part_dup) == strings{"t"});
  const std::string part_dup2 =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","type":"image_url","text":"t"}]}]})";
  CHECK(input_texts(endpoint::chat_completions, part_dup2) == strings{"t"});
}

TEST_CASE("completions: prompt string or strings, token arrays skipped") {
  CHECK(input_texts(endpoint::completions, R"({"model":"m","prompt":"once upon"})") ==
        strings{"once upon"});
  const std::string arr = R"({"prompt":["a",[1,2],"b\u00e9",3],"model":"m","suffix":"s"})";
  CHECK(input_texts(endpoint::completions, arr) == strings{"a", "b\xC3\xA9"});
  const std::string out = with_input_texts(endpoint::completions, arr, {"A", "B"});
  CHECK(out == R"({"prompt":["A",[1,2],"B",3],"model":"m","suffix":"s"})");
  CHECK(input_texts(endpoint::completions, R"({"model":"m","prompt":[1,2,3]})").empty());
  CHECK(input_texts(endpoint::completions, R"({"model":"m","prompt":[[1],[2]]})").empty());
}

TEST_CASE("embeddings: input string or strings") {
  CHECK(input_texts(endpoint::embeddings, R"({"input":"hello","model":"e"})") == strings{"hello"});
  const std::string arr = R"({"model":"e","input":["x","y","z"],"dimensions":256})";
  CHECK(input_texts(endpoint::embeddings, arr) == strings{"x", "y", "z"});
  CHECK(with_input_texts(endpoint::embeddings, arr, {"x", "*", "z"}) ==
        R"({"model":"e","input":["x","*","z"],"dimensions":256})");
  CHECK(input_texts(endpoint::embeddings, R"({"model":"e","input":[[1,2]]})").empty());
}

TEST_CASE("input_texts agrees with a RapidJSON DOM on generated bodies, compact and pretty") {
  std::mt19937 rng(20240531);
  const std::vector<std::string> alphabet = {
      "a",       "Z",  " ",        "\"",           "\\",
      "/",       "\n", "\t",       "\x01",         "\x1f",
      "{",       "]",  "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80",
      "\\u0041", ":"};
  auto random_text = [&] {
    std::string s;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  for (int round = 0; round < 300; ++round) {
    rapidjson::Document doc(rapidjson::kObjectType);
    auto& a = doc.GetAllocator();
    strings want;
    auto str = [&](const std::string& s) { return rapidjson::Value(s.c_str(), s.size(), a); };
    doc.AddMember("model", "m", a);
    rapidjson::Value messages(rapidjson::kArrayType);
    const int count = 1 + static_cast<int>(rng() % 6);
    for (int i = 0; i < count; ++i) {
      rapidjson::Value msg(rapidjson::kObjectType);
      msg.AddMember("role", "user", a);
      const unsigned form = rng() % 3;
      if (form == 0) {
        const std::string t = random_text();
        want.push_back(t);
        msg.AddMember("content", str(t), a);
      } else if (form == 1) {
        rapidjson::Value parts(rapidjson::kArrayType);
        const int np = static_cast<int>(rng() % 4);
        for (int p = 0; p < np; ++p) {
          rapidjson::Value part(rapidjson::kObjectType);
          const bool text = rng() % 3 != 0;
          part.AddMember("type", rapidjson::StringRef(text ? "text" : "image_url"), a);
          const std::string t = random_text();
          if (text) want.push_back(t);
          part.AddMember("text", str(t), a);
          parts.PushBack(part, a);
        }
        msg.AddMember("content", parts, a);
      } else {
        msg.AddMember("content", rapidjson::Value(), a);
        rapidjson::Value calls(rapidjson::kArrayType);
        rapidjson::Value call(rapidjson::kObjectType), fn(rapidjson::kObjectType);
        const std::string t = random_text();
        want.push_back(t);
        fn.AddMember("name", str(random_text()), a);
        fn.AddMember("arguments", str(t), a);
        call.AddMember("function", fn, a);
        calls.PushBack(call, a);
        msg.AddMember("tool_calls", calls, a);
      }
      msg.AddMember("name", str(random_text()), a);
      messages.PushBack(msg, a);
    }
    doc.AddMember("messages", messages, a);
    doc.AddMember("stop", str(random_text()), a);
    for (const bool pretty : {false, true}) {
      const std::string body = dump(doc, pretty);
      CAPTURE(body);
      REQUIRE(input_texts(endpoint::chat_completions, body) == want);
      strings masked;
      for (std::size_t i = 0; i < want.size(); ++i) masked.push_back(random_text());
      const std::string out = with_input_texts(endpoint::chat_completions, body, masked);
      rapidjson::Document back;
      REQUIRE(parse(back, out));
      CHECK(input_texts(endpoint::chat_completions, out) == masked);
      // Everything but the texts is as it was.
      CHECK(back["stop"] == doc["stop"]);
      CHECK(back["messages"].Size() == doc["messages"].Size());
    }
  }
}

TEST_CASE("answers: text per choice, null content as empty, text completions") {
  const std::string chat = R"({"id":"c","object":"chat.completion","created":1,"model":"m",
    "choices":[
      {"index":0,"message":{"role":"assistant","content":"one"},"finish_reason":"stop"},
      {"index":1,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"secret\":1}"}}]},"finish_reason":"tool_calls"},
      {"index":2,"message":{"role":"assistant"},"finish_reason":"stop"},
      {"index":3,"message":{"role":"assistant","content":"\u4f60\u597d \ud83d\ude00"},"finish_reason":"stop"}
    ],
    "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})";
  CHECK(answer_texts(chat) == strings{"one", "", "", "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80"});

  const std::string text =
      R"({"object":"text_completion","choices":[{"text":"a","index":0,"finish_reason":"stop"},{"text":"b","index":1,"finish_reason":"length"}]})";
  CHECK(answer_texts(text) == strings{"a", "b"});
  // Without "object", the shape of each choice decides.
  CHECK(answer_texts(R"({"choices":[{"text":"t"},{"message":{"content":"c"}}]})") ==
        strings{"t", "c"});
  CHECK(answer_texts(R"({"object":"list","data":[{"embedding":[0.1]}]})").empty());
  CHECK(answer_texts(R"({"choices":[1,{"message":{"content":"x"}}]})") == strings{"", "x"});
}

TEST_CASE("answers: with_answer_texts masks or blocks every choice and keeps usage") {
  const std::string body =
      R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"call 555-0100"},"logprobs":null,"finish_reason":"stop"},{"index":1,"message":{"role":"assistant","content":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})";
  CHECK(with_answer_texts(body, {"call 555-0100", ""}, "") == body);

  const std::string masked = with_answer_texts(body, {"call ********", ""}, "");
  check_json_eq(masked, std::string(body).replace(body.find("555-0100"), 8, "********"));

  // Blocked: content "" and finish_reason content_filter everywhere; null content stays null.
  const std::string blocked = with_answer_texts(body, {"", ""}, "content_filter");
  check_json_eq(
      blocked,
      R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"logprobs":null,"finish_reason":"content_filter"},{"index":1,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");

  // A null content given text is set; a missing finish_reason and message are inserted.
  check_json_eq(with_answer_texts(body, {"call 555-0100", "now text"}, ""),
                std::string(body).replace(body.find("null},"), 4, "\"now text\""));
  check_json_eq(
      with_answer_texts(R"({"object":"chat.completion","choices":[{},{"index":1,"message":{}}]})",
                        {"x", "y"}, "content_filter"),
      R"({"object":"chat.completion","choices":[{"message":{"role":"assistant","content":"x"},"finish_reason":"content_filter"},{"index":1,"message":{"content":"y"},"finish_reason":"content_filter"}]})");

  const std::string text =
      R"({"object":"text_completion","choices":[{"text":"a","index":0,"finish_reason":"stop"},{"index":1}]})";
  check_json_eq(
      with_answer_texts(text, {"", "B"}, "content_filter"),
      R"({"object":"text_completion","choices":[{"text":"","index":0,"finish_reason":"content_filter"},{"text":"B","index":1,"finish_reason":"content_filter"}]})");

  // Wrong count: unchanged.
  CHECK(with_answer_texts(body, {""}, "content_filter") == body);
  CHECK(with_answer_texts(body, {"", "", ""}, "content_filter") == body);
}

TEST_CASE("answers: a duplicated content key is read whole and emptied on rewrite") {
  const std::string dup =
      R"({"object":"chat.completion","choices":[{"message":{"content":"ok ","content":"evil"},"finish_reason":"stop"}]})";
  CHECK(answer_texts(dup) == strings{"ok evil"});
  const std::string out = with_answer_texts(dup, {"ok ***"}, "");
  CHECK(
      out ==
      R"({"object":"chat.completion","choices":[{"message":{"content":"ok ***","content":""},"finish_reason":"stop"}]})");
}

TEST_CASE("stream chunks: delta texts with their choice index") {
  const std::string role =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]})";
  CHECK(delta_texts(role).empty());
  const std::string two =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"world"},"finish_reason":null},{"index":0,"delta":{"content":"hel\"lo"},"finish_reason":null}]})";
  CHECK(delta_texts(two) == std::vector<delta_piece>{{1, "world"}, {0, "hel\"lo"}});
  const std::string finish =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})";
  CHECK(delta_texts(finish).empty());
  const std::string usage =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
  CHECK(delta_texts(usage).empty());
  CHECK(delta_texts("[DONE]").empty());
  CHECK(delta_texts("").empty());
  const std::string text =
      R"({"id":"cmpl","object":"text_completion","created":1,"choices":[{"text":"abc","index":2,"logprobs":null,"finish_reason":null}],"model":"m"})";
  CHECK(delta_texts(text) == std::vector<delta_piece>{{2, "abc"}});
  // Without an index, the array position.
  CHECK(delta_texts(R"({"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]})") ==
        std::vector<delta_piece>{{0, "a"}, {1, "b"}});
}

TEST_CASE("stream chunks: with_delta_texts rewrites the named choices only") {
  const std::string two =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"world"},"finish_reason":null},{"index":0,"delta":{"content":"hello"},"finish_reason":null}]})";
  CHECK(with_delta_texts(two, delta_texts(two)) == two);
  CHECK(with_delta_texts(two, {}) == two);
  std::string want = two;
  want.replace(want.find("hello"), 5, "h***o");
  CHECK(with_delta_texts(two, {{0, "h***o"}}) == want);
  CHECK(with_delta_texts(two, {{7, "nobody"}}) == two);
  // Pieces for one index are concatenated.
  CHECK(delta_texts(with_delta_texts(two, {{1, "a"}, {1, "b"}})) ==
        std::vector<delta_piece>{{1, "ab"}, {0, "hello"}});

  // Held-back text released on the finish chunk: the empty delta gets content.
  const std::string finish =
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})";
  const std::string released = with_delta_texts(finish, {{0, "tail \xE2\x82\xAC"}});
  check_json_eq(
      released,
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"tail €"},"finish_reason":"stop"}]})");
  CHECK(with_delta_texts(finish, {{0, ""}}) == finish);
  // Into the first of duplicated deltas, or a new one when there is none.
  CHECK(with_delta_texts(R"({"choices":[{"delta":{},"delta":{"role":"r"}}]})", {{0, "x"}}) ==
        R"({"choices":[{"delta":{"content":"x"},"delta":{"role":"r"}}]})");
  CHECK(with_delta_texts(R"({"choices":[{"finish_reason":"stop"}]})", {{0, "x"}}) ==
        R"({"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]})");

  const std::string text =
      R"({"object":"text_completion","choices":[{"text":"abc","index":0,"finish_reason":null}]})";
  CHECK(
      with_delta_texts(text, {{0, "a*c"}}) ==
      R"({"object":"text_completion","choices":[{"text":"a*c","index":0,"finish_reason":null}]})");
}

TEST_CASE("content_filter_chunk copies the stream's identity and ends every choice") {
  const std::string chunk =
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1717000000,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"obfuscation":"zz"})";
  CHECK(
      content_filter_chunk(chunk, 2) ==
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":1717000000,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"finish_reason":"content_filter"},{"index":1,"delta":{},"finish_reason":"content_filter"}]})");

  const std::string text =
      R"({"id":"cmpl-1","object":"text_completion","created":5,"choices":[{"text":"a","index":0}],"model":"m"})";
  CHECK(
      content_filter_chunk(text, 1) ==
      R"({"id":"cmpl-1","object":"text_completion","created":5,"model":"m","choices":[{"index":0,"text":"","finish_reason":"content_filter"}]})");

  const std::string defaults =
      R"({"id":"","object":"chat.completion.chunk","created":0,"model":"","choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]})";
  CHECK(content_filter_chunk("not json", 1) == defaults);
  CHECK(content_filter_chunk("", 1) == defaults);
  // Odd values are not copied through: the output always parses.
  rapidjson::Document d;
  CHECK(parse(
      d, content_filter_chunk(
             R"({"id":"a\u0000\"b","created":"soon","model":7,"system_fingerprint":null})", 1)));
  CHECK(std::string(d["id"].GetString(), d["id"].GetStringLength()) == std::string("a\0\"b", 4));
  CHECK(d["created"].GetInt() == 0);
  CHECK(d["system_fingerprint"].IsNull());
  CHECK(parse(d, content_filter_chunk(R"({"created":-1e999})", 0)));
  CHECK(d["choices"].Empty());
  CHECK(parse(d, content_filter_chunk(chunk, 1'000'000)));
  CHECK(d["choices"].Size() == 128);
}

TEST_CASE("with_top_field inserts the first member without parsing") {
  CHECK(with_top_field(R"({"id":"x","choices":[]})", "algorithm_filing_id", "Beijing-123") ==
        R"({"algorithm_filing_id":"Beijing-123","id":"x","choices":[]})");
  CHECK(with_top_field("{}", "f", "v") == R"({"f":"v"})");
  CHECK(with_top_field("  { \n }\n", "f", "v") == "  {\"f\":\"v\" \n }\n");
  CHECK(with_top_field("\n{\"a\":1}", "f", "v") == "\n{\"f\":\"v\",\"a\":1}");
  CHECK(with_top_field("[1]", "f", "v") == "[1]");
  CHECK(with_top_field("[DONE]", "f", "v") == "[DONE]");
  CHECK(with_top_field("", "f", "v") == "");
  CHECK(with_top_field("  {  ", "f", "v") == "  {  ");
  CHECK(with_top_field("x{}", "f", "v") == "x{}");

  // Escaping: quotes, backslashes, control characters; UTF-8 kept; invalid bytes replaced.
  const std::string out =
      with_top_field(R"({"a":1})", "k\"ey",
                     "q\" b\\ nl\n nul" + std::string(1, '\0') + " \xE5\xA4\x87\xE6\xA1\x88 \xFF");
  CHECK(out ==
        "{\"k\\\"ey\":\"q\\\" b\\\\ nl\\n nul\\u0000 \xE5\xA4\x87\xE6\xA1\x88 \\ufffd\",\"a\":1}");
  rapidjson::Document d;
  REQUIRE(parse(d, out));
  CHECK(d["a"].GetInt() == 1);
}

TEST_CASE(
    "unicode: escapes decoded, surrogate pairs joined, bad UTF-8 and lone surrogates as U+FFFD") {
  const std::string body =
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\\ud83d\\ude00 "
      "\xE4\xB8\xAD raw\"},{\"role\":\"user\",\"content\":\"bad \xFF\xC3 \\udc00 \\ud800x "
      "\xED\xA0\x80\"}]}";
  const strings texts = input_texts(endpoint::chat_completions, body);
  REQUIRE(texts.size() == 2);
  CHECK(texts[0] == "\xC3\xA9\xF0\x9F\x98\x80 \xE4\xB8\xAD raw");
  CHECK(texts[1] ==
        "bad \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBDx "
        "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Rewriting one text leaves the other's bytes, even invalid ones, as they were.
  const std::string out =
      with_input_texts(endpoint::chat_completions, body, {"\xE4\xB8\xAD", texts[1]});
  CHECK(out.find("\"content\":\"\xE4\xB8\xAD\"") != std::string::npos);
  CHECK(out.find("\"bad \xFF\xC3 \\udc00") != std::string::npos);
  // A replacement that is not UTF-8 is written as valid JSON.
  const std::string fixed =
      with_input_texts(endpoint::chat_completions, body, {"\xFF", "\xC0\xAF"});
  CHECK(input_texts(endpoint::chat_completions, fixed) ==
        strings{"\xEF\xBF\xBD", "\xEF\xBF\xBD\xEF\xBF\xBD"});
}

TEST_CASE("malformed input: best effort, never a crash") {
  const std::string truncated = R"({"model":"m","messages":[{"role":"user","content":"a"},{"ro)";
  // What comes before the cut is found, and rewritten.
  CHECK(input_texts(endpoint::chat_completions, truncated) == strings{"a"});
  CHECK(with_input_texts(endpoint::chat_completions, truncated, {"b"}) ==
        R"({"model":"m","messages":[{"role":"user","content":"b"},{"ro)");
  // A malformed member after the texts: what came before is found.
  const std::string tail = R"({"messages":[{"content":"a"}],"x":,"y":1})";
  CHECK(input_texts(endpoint::chat_completions, tail) == strings{"a"});
  CHECK(with_input_texts(endpoint::chat_completions, tail, {"b"}) ==
        R"({"messages":[{"content":"b"}],"x":,"y":1})");

  const std::vector<std::string> bad = {
      "",
      "{",
      "}",
      "\"",
      "[\"",
      "{\"messages\"",
      "{\"messages\":",
      "{\"messages\":[",
      "{\"messages\":[{\"content\":\"\\",
      "{\"messages\":[{\"content\":\"\\u12",
      "{\"messages\":[{\"content\":\"abc\\\"}]}",
      "{\"choices\":[{\"delta\":{\"content\":\"x\"}}",
      "{\"choices\":[{\"index\":99999999999,\"delta\":{\"content\":\"x\"}}]}",
      "{\"choices\":[{\"index\":-1,\"message\":{\"content\":\"x\"}}]}",
      "{\"messages\":[{\"content\":\"a\0b\"}]}"s,
      "\xFF\xFE{\"messages\":[]}",
      "{\"messages\":[{\"content\":\"\xC3\"}]}",
      "null",
      "{\"choices\":null}",
      "{\"messages\":{\"content\":\"x\"}}",
      "{\"prompt\":{\"a\":\"b\"},\"input\":7}",
  };
  for (const std::string& b : bad) {
    CAPTURE(b);
    exercise_all(b);
  }
  CHECK(delta_texts(R"({"choices":[{"index":99999999999,"delta":{"content":"x"}}]})") ==
        std::vector<delta_piece>{{0, "x"}});
}

TEST_CASE("100,000-deep nesting neither overflows the stack nor is read") {
  const std::string open(100'000, '[');
  const std::string deep = open + std::string(100'000, ']');
  for (const std::string& b :
       {open, deep, "{\"messages\":" + open, "{\"messages\":[{\"content\":" + deep + "}]}",
        "{\"choices\":[{\"delta\":" + deep + "}]}",
        "{\"x\":" + deep + ",\"messages\":[{\"content\":\"after\"}]}", std::string(100'000, '{')}) {
    exercise_all(b);
  }
  CHECK(input_texts(endpoint::chat_completions,
                    "{\"x\":" + deep + ",\"messages\":[{\"content\":\"after\"}]}") ==
        strings{"after"});
}

TEST_CASE("random mutations of valid bodies never crash") {
  const std::vector<std::string> seeds = {
      chat_body,
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a\u00e9\"b"},"finish_reason":null}]})",
      R"({"object":"chat.completion","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"total_tokens":1}})",
      R"({"model":"m","prompt":["a","b",[1,2]]})",
  };
  std::mt19937 rng(7);
  const std::string specials = "{}[]\":,\\ \x80\xC3\xFFu0";
  for (const std::string& seed : seeds) {
    for (int round = 0; round < 400; ++round) {
      std::string b = seed;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !b.empty(); ++e) {
        const std::size_t at = rng() % b.size();
        switch (rng() % 3) {
          case 0:
            b[at] = specials[rng() % specials.size()];
            break;
          case 1:
            b.erase(at, 1 + rng() % 8);
            break;
          default:
            b.insert(at, 1, specials[rng() % specials.size()]);
        }
      }
      if (rng() % 4 == 0) b.resize(rng() % (b.size() + 1));
      CAPTURE(b);
      exercise_all(b);
    }
  }
}
