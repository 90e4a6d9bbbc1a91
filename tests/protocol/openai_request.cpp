// protocol/openai/request.cpp: parsing, validation per endpoint, and the model rewrite.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "protocol/openai/request.hpp"

using namespace tc::openai;

namespace {

std::variant<request, api_error> parse(endpoint k, const std::string& body) {
  return parse_request(k, body);
}

request accept(endpoint k, const std::string& body) {
  auto r = parse(k, body);
  if (auto* e = std::get_if<api_error>(&r)) {
    FAIL_CHECK("rejected: " << body << " -> " << e->param << ": " << e->message);
    return {};
  }
  return std::get<request>(std::move(r));
}

api_error reject(endpoint k, const std::string& body) {
  auto r = parse(k, body);
  if (std::holds_alternative<request>(r)) {
    FAIL_CHECK("accepted: " << body);
    return {};
  }
  api_error e = std::get<api_error>(std::move(r));
  CHECK(e.status == 400);
  CHECK(e.type == "invalid_request_error");
  return e;
}

/// A valid chat body with `extra` members appended.
std::string chat(const std::string& extra = "") {
  std::string b = R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}])";
  if (!extra.empty()) b += "," + extra;
  return b + "}";
}

std::string chat_messages(const std::string& messages) {
  return R"({"model":"m","messages":)" + messages + "}";
}

std::string completion(const std::string& extra) {
  return R"({"model":"m",)" + extra + "}";
}

struct bad_case {
  std::string body;
  std::string param;
};

void check_rejects(endpoint k, const std::vector<bad_case>& cases) {
  for (const auto& c : cases) {
    CAPTURE(c.body);
    api_error e = reject(k, c.body);
    CHECK(e.param == c.param);
    CHECK(!e.message.empty());
  }
}

void check_accepts(endpoint k, const std::vector<std::string>& bodies) {
  for (const auto& b : bodies) {
    CAPTURE(b);
    accept(k, b);
  }
}

std::string deep_array(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE("path_of names each endpoint") {
  CHECK(path_of(endpoint::chat_completions) == "/v1/chat/completions");
  CHECK(path_of(endpoint::completions) == "/v1/completions");
  CHECK(path_of(endpoint::embeddings) == "/v1/embeddings");
}

TEST_CASE("a chat request is read into typed fields and the body kept byte for byte") {
  const std::string body =
      "{ \"model\" : \"gpt-4o\",\n \"messages\": [{\"role\":\"system\",\"content\":\"Be "
      "brief.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"h\\u00e9llo\"},"
      "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}],\n"
      "\"stream\": true, \"stream_options\": {\"include_usage\": true}, \"max_tokens\": 256,"
      " \"temperature\": 0.5, \"seed\": -7, \"n\": 2, \"user\": \"u-1\","
      " \"tools\": [{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
      " \"x_vendor\": {\"deep\": [1, 2, {\"model\": 3}]}}  ";
  request r = accept(endpoint::chat_completions, body);
  CHECK(r.kind == endpoint::chat_completions);
  CHECK(r.model == "gpt-4o");
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.max_tokens == 256);
  REQUIRE(r.temperature.has_value());
  CHECK(*r.temperature == doctest::Approx(0.5));
  REQUIRE(r.seed.has_value());
  CHECK(*r.seed == -7);
  CHECK(r.n == 2);
  CHECK(r.has_tools);
  CHECK(r.message_count == 2);
  CHECK(r.input_chars == std::string("Be brief.").size() + std::string("h\xC3\xA9llo").size());
  CHECK(r.user == "u-1");
  CHECK(r.body == body);
}

TEST_CASE("defaults when optional fields are absent or null") {
  request r = accept(endpoint::chat_completions, chat());
  CHECK_FALSE(r.stream);
  CHECK_FALSE(r.include_usage);
  CHECK(r.max_tokens == 0);
  CHECK_FALSE(r.temperature.has_value());
  CHECK_FALSE(r.seed.has_value());
  CHECK(r.n == 1);
  CHECK_FALSE(r.has_tools);
  CHECK(r.message_count == 1);
  CHECK(r.input_chars == 2);
  CHECK(r.user.empty());

  request nulls = accept(endpoint::chat_completions,
                         chat(R"("stream":null,"stream_options":null,"max_tokens":null,)"
                              R"("temperature":null,"seed":null,"n":null,"tools":null,)"
                              R"("stop":null,"user":null,"logit_bias":null,"top_p":null)"));
  CHECK(nulls.n == 1);
  CHECK_FALSE(nulls.temperature.has_value());
  CHECK_FALSE(nulls.has_tools);
}

TEST_CASE("max_completion_tokens wins over max_tokens in either order") {
  CHECK(accept(endpoint::chat_completions, chat(R"("max_tokens":5,"max_completion_tokens":9)"))
            .max_tokens == 9);
  CHECK(accept(endpoint::chat_completions, chat(R"("max_completion_tokens":9,"max_tokens":5)"))
            .max_tokens == 9);
}

TEST_CASE("not JSON, not UTF-8, not an object") {
  SUBCASE("malformed JSON") {
    for (std::string body : {"", " ", "{", "{\"model\":}", "nul", "{\"a\":1,}", "{'a':1}",
                             "{\"model\":\"m\"} x", "{\"model\":\"m\"}{}", "{\"a\":01}"}) {
      CAPTURE(body);
      api_error e = reject(endpoint::chat_completions, body);
      CHECK(e.message.rfind("We could not parse the JSON body of your request.", 0) == 0);
      CHECK(e.param.empty());
    }
  }
  SUBCASE("trailing garbage after a complete object") {
    api_error e = reject(endpoint::chat_completions, chat() + "garbage");
    CHECK(e.message.rfind("We could not parse the JSON body", 0) == 0);
  }
  SUBCASE("a NUL byte, inside or after the object") {
    std::string after = chat();
    after += '\0';
    after += "junk";
    reject(endpoint::chat_completions, after);
    std::string inside = R"({"model":"m","messages":[{"role":"user","content":"a)";
    inside += '\0';
    inside += R"("}]})";
    reject(endpoint::chat_completions, inside);
  }
  SUBCASE("invalid UTF-8") {
    const std::vector<std::string> bad = {
        "{\"model\":\"m\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
        chat("\"x\":\"\xC0\xAF\""),          // overlong '/'
        chat("\"x\":\"\xED\xA0\x80\""),      // UTF-16 surrogate
        chat("\"x\":\"\xF4\x90\x80\x80\""),  // above U+10FFFF
        chat("\"x\":\"\xE4\xBD\""),          // truncated sequence
        chat("\"\xE4\xBD\":1"),              // in a key
        "{\"model\":\"m\"\xA0}",             // outside any string
    };
    for (const auto& body : bad) {
      CAPTURE(body);
      CHECK(reject(endpoint::chat_completions, body).message == "request body is not valid UTF-8");
    }
    accept(endpoint::chat_completions, chat("\"x\":\"\xE4\xBD\xA0\xF0\x9F\x98\x80\""));
    // Escapes that decode to a lone surrogate do not become invalid UTF-8 in typed fields.
    CHECK(reject(endpoint::chat_completions,
                 R"({"model":"a\udc00","messages":[{"role":"user","content":"x"}]})")
              .param == "model");
    CHECK(reject(endpoint::chat_completions, chat(R"("user":"\udfff")")).param == "user");
    CHECK(accept(endpoint::chat_completions,
                 R"({"model":"\ud83d\ude00","messages":[{"role":"user","content":"x"}]})")
              .model == "\xF0\x9F\x98\x80");
  }
  SUBCASE("not an object") {
    for (std::string body : {"[]", "\"s\"", "1", "null", "true", "[{\"model\":\"m\"}]"}) {
      CAPTURE(body);
      api_error e = reject(endpoint::chat_completions, body);
      CHECK(e.message == "request body must be a JSON object");
    }
  }
}

TEST_CASE("100,000-deep nesting neither overflows the stack nor is accepted") {
  const std::string deep = deep_array(100'000);
  const std::string too_deep = "The JSON body nests deeper than 128 levels.";
  SUBCASE("as the body") {
    CHECK(reject(endpoint::chat_completions, deep).message == too_deep);
  }
  SUBCASE("as an unknown field the gateway would only forward") {
    CHECK(reject(endpoint::chat_completions, chat("\"x_deep\":" + deep)).message == too_deep);
  }
  SUBCASE("as a message content") {
    api_error e = reject(endpoint::chat_completions,
                         chat_messages(R"([{"role":"user","content":[)" + deep + "]}]"));
    CHECK(e.message == too_deep);
  }
  SUBCASE("unbalanced") {
    reject(endpoint::chat_completions, chat("\"x\":" + std::string(100'000, '[')));
  }
  SUBCASE("128 levels are accepted and forwarded untouched, 129 are not") {
    // chat() puts the field at depth 1, so the value may nest 127 more levels.
    const std::string ok_body = chat("\"x_deep\":" + deep_array(127));
    CHECK(accept(endpoint::chat_completions, ok_body).body == ok_body);
    CHECK(reject(endpoint::chat_completions, chat("\"x_deep\":" + deep_array(128))).message ==
          too_deep);
  }
}

TEST_CASE("chat: required fields") {
  check_rejects(
      endpoint::chat_completions,
      {
          {R"({"messages":[{"role":"user","content":"x"}]})", "model"},
          {R"({"model":null,"messages":[{"role":"user","content":"x"}]})", "model"},
          {R"({"model":"","messages":[{"role":"user","content":"x"}]})", "model"},
          {R"({"model":7,"messages":[{"role":"user","content":"x"}]})", "model"},
          {R"({"model":"m"})", "messages"},
          {R"({"model":"m","messages":null})", "messages"},
          {R"({"model":"m","messages":[]})", "messages"},
          {R"({"model":"m","messages":{"role":"user"}})", "messages"},
          {R"({"model":"m","model":"n","messages":[{"role":"user","content":"x"}]})", "model"},
      });
  CHECK(reject(endpoint::chat_completions, R"({"messages":[{"role":"user","content":"x"}]})")
            .message == "Missing required parameter: 'model'.");
  CHECK(reject(endpoint::chat_completions, R"({"model":"m"})").message ==
        "Missing required parameter: 'messages'.");
}

TEST_CASE("chat: messages") {
  check_accepts(endpoint::chat_completions,
                {
                    chat_messages(R"([{"role":"system","content":"s"},{"role":"developer",)"
                                  R"("content":"d"},{"role":"user","content":"u"},)"
                                  R"({"role":"assistant","content":"a"},)"
                                  R"({"role":"tool","content":"t","tool_call_id":"1"},)"
                                  R"({"role":"function","name":"f","content":"r"}])"),
                    chat_messages(R"([{"role":"assistant","content":null,"tool_calls":[]}])"),
                    chat_messages(R"([{"role":"assistant","tool_calls":[{"id":"1"}]}])"),
                    chat_messages(R"([{"role":"assistant","content":null,"function_call":{}}])"),
                    chat_messages(R"([{"role":"user","content":[]}])"),
                    chat_messages(R"([{"role":"user","content":[{"type":"image_url",)"
                                  R"("image_url":{"url":"u"}}]}])"),
                    chat_messages(R"([{"role":"user","content":"","name":"x","extra":[1]}])"),
                });
  check_rejects(
      endpoint::chat_completions,
      {
          {chat_messages(R"([{"role":"user","content":"x"},{"role":"user","content":"y"},7])"),
           "messages[2]"},
          {chat_messages(R"([{"content":"x"}])"), "messages[0].role"},
          {chat_messages(R"([{"role":1,"content":"x"}])"), "messages[0].role"},
          {chat_messages(R"([{"role":"User","content":"x"}])"), "messages[0].role"},
          {chat_messages(R"([{"role":"robot","content":"x"}])"), "messages[0].role"},
          {chat_messages(R"([{"role":"user"}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"user","content":null}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"assistant","content":null}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"assistant"}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"assistant","content":null,"tool_calls":null}])"),
           "messages[0].content"},
          {chat_messages(R"([{"role":"user","content":"x"},{"role":"user","content":"y"},)"
                         R"({"role":"user","content":5}])"),
           "messages[2].content"},
          {chat_messages(R"([{"role":"user","content":{"text":"x"}}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"user","content":true}])"), "messages[0].content"},
          {chat_messages(R"([{"role":"user","content":["x"]}])"), "messages[0].content[0]"},
          {chat_messages(R"([{"role":"user","content":[{"text":"x"}]}])"),
           "messages[0].content[0].type"},
          {chat_messages(R"([{"role":"user","content":[{"type":3}]}])"),
           "messages[0].content[0].type"},
          {chat_messages(R"([{"role":"user","content":[{"type":"text"}]}])"),
           "messages[0].content[0].text"},
          {chat_messages(R"([{"role":"user","content":[{"type":"text","text":"a"},)"
                         R"({"type":"text","text":1}]}])"),
           "messages[0].content[1].text"},
      });
  CHECK(reject(endpoint::chat_completions, chat_messages(R"([{"role":"user","content":5}])"))
            .message ==
        "Invalid type for 'messages[0].content': expected a string, an array of parts, or null.");
  CHECK(reject(endpoint::chat_completions, chat_messages(R"([{"role":"robot","content":"x"}])"))
            .message ==
        "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', 'function', "
        "'tool', and 'developer'.");
}

TEST_CASE("chat: sampling and option fields") {
  check_accepts(endpoint::chat_completions,
                {
                    chat(R"("stream":false)"),
                    chat(R"("stream":true,"stream_options":{"include_usage":false})"),
                    chat(R"("stream":true,"stream_options":{})"),
                    chat(R"("stream":true,"stream_options":{"include_usage":null})"),
                    chat(R"("max_tokens":1)"),
                    chat(R"("max_tokens":10000000)"),
                    chat(R"("max_completion_tokens":4096)"),
                    chat(R"("temperature":0)"),
                    chat(R"("temperature":2)"),
                    chat(R"("temperature":1.25)"),
                    chat(R"("top_p":0)"),
                    chat(R"("top_p":1)"),
                    chat(R"("top_p":0.9)"),
                    chat(R"("n":1)"),
                    chat(R"("n":128)"),
                    chat(R"("seed":0)"),
                    chat(R"("seed":-9223372036854775808)"),
                    chat(R"("seed":9223372036854775807)"),
                    chat(R"("tools":[])"),
                    chat(R"("tools":[{"type":"function","function":{"name":"f","parameters":{}}},)"
                         R"({"type":"code_interpreter"}])"),
                    chat(R"("tool_choice":"auto")"),
                    chat(R"("tool_choice":{"type":"function","function":{"name":"f"}})"),
                    chat(R"("user":"")"),
                    chat(R"("stop":"\n")"),
                    chat(R"("stop":[])"),
                    chat(R"("stop":["a","b","c","d"])"),
                    chat(R"("presence_penalty":-2)"),
                    chat(R"("frequency_penalty":2)"),
                    chat(R"("frequency_penalty":0.1)"),
                    chat(R"("logit_bias":{"50256":-100})"),
                    chat(R"("logprobs":true,"top_logprobs":5)"),
                    chat(R"("response_format":{"type":"json_object"},"metadata":{"k":"v"})"),
                    chat(R"("unknown":[1,{"a":null}],"input":5,"prompt":false)"),
                });
  check_rejects(
      endpoint::chat_completions,
      {
          {chat(R"("stream":"yes")"), "stream"},
          {chat(R"("stream":1)"), "stream"},
          {chat(R"("stream_options":{"include_usage":true})"), "stream_options"},
          {chat(R"("stream":false,"stream_options":{"include_usage":true})"), "stream_options"},
          {chat(R"("stream":true,"stream_options":true)"), "stream_options"},
          {chat(R"("stream":true,"stream_options":{"include_usage":"yes"})"),
           "stream_options.include_usage"},
          {chat(R"("max_tokens":0)"), "max_tokens"},
          {chat(R"("max_tokens":-1)"), "max_tokens"},
          {chat(R"("max_tokens":10000001)"), "max_tokens"},
          {chat(R"("max_tokens":1.5)"), "max_tokens"},
          {chat(R"("max_tokens":100.0)"), "max_tokens"},
          {chat(R"("max_tokens":"100")"), "max_tokens"},
          {chat(R"("max_tokens":18446744073709551615)"), "max_tokens"},
          {chat(R"("max_completion_tokens":0)"), "max_completion_tokens"},
          {chat(R"("temperature":-0.1)"), "temperature"},
          {chat(R"("temperature":2.0001)"), "temperature"},
          {chat(R"("temperature":"1")"), "temperature"},
          {chat(R"("top_p":1.1)"), "top_p"},
          {chat(R"("top_p":-1)"), "top_p"},
          {chat(R"("n":0)"), "n"},
          {chat(R"("n":129)"), "n"},
          {chat(R"("n":2.5)"), "n"},
          {chat(R"("seed":1.5)"), "seed"},
          {chat(R"("seed":"1")"), "seed"},
          {chat(R"("seed":9223372036854775808)"), "seed"},
          {chat(R"("tools":{})"), "tools"},
          {chat(R"("tools":[1])"), "tools[0]"},
          {chat(R"("tools":[{"function":{"name":"f"}}])"), "tools[0].type"},
          {chat(R"("tools":[{"type":1}])"), "tools[0].type"},
          {chat(R"("tools":[{"type":"function","function":{"name":"f"}},{"type":"function"}])"),
           "tools[1].function"},
          {chat(R"("tools":[{"type":"function","function":"f"}])"), "tools[0].function"},
          {chat(R"("tools":[{"type":"function","function":{}}])"), "tools[0].function.name"},
          {chat(R"("tools":[{"type":"function","function":{"name":7}}])"),
           "tools[0].function.name"},
          {chat(R"("tool_choice":1)"), "tool_choice"},
          {chat(R"("tool_choice":[])"), "tool_choice"},
          {chat(R"("user":5)"), "user"},
          {chat(R"("stop":5)"), "stop"},
          {chat(R"("stop":["a","b","c","d","e"])"), "stop"},
          {chat(R"("stop":["a",1])"), "stop[1]"},
          {chat(R"("presence_penalty":-2.5)"), "presence_penalty"},
          {chat(R"("frequency_penalty":3)"), "frequency_penalty"},
          {chat(R"("frequency_penalty":"0")"), "frequency_penalty"},
          {chat(R"("logit_bias":[])"), "logit_bias"},
          {chat(R"("logprobs":1)"), "logprobs"},
          {chat(R"("top_logprobs":21)"), "top_logprobs"},
          {chat(R"("stream":true,"stream":false)"), "stream"},
      });
  CHECK(reject(endpoint::chat_completions, chat(R"("stream_options":{"include_usage":true})"))
            .message == "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  CHECK(reject(endpoint::chat_completions, chat(R"("temperature":3)")).message ==
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 "
        "instead.");
  CHECK(reject(endpoint::chat_completions, chat(R"("n":0)")).message ==
        "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.");
}

TEST_CASE("completions: prompt forms and fields") {
  const auto k = endpoint::completions;
  request one = accept(k, completion(R"("prompt":"Say hi")"));
  CHECK(one.message_count == 1);
  CHECK(one.input_chars == 6);
  CHECK(one.kind == endpoint::completions);
  request many = accept(k, completion(R"("prompt":["ab","cde",""])"));
  CHECK(many.message_count == 3);
  CHECK(many.input_chars == 5);
  request ids = accept(k, completion(R"("prompt":[1,2,3])"));
  CHECK(ids.message_count == 1);
  CHECK(ids.input_chars == 12);  // 4 per token id
  request id_lists = accept(k, completion(R"("prompt":[[1,2],[3]])"));
  CHECK(id_lists.message_count == 2);
  CHECK(accept(k, completion(R"("prompt":"")")).message_count == 1);
  check_accepts(k, {
                       completion(R"("prompt":"x","echo":true,"best_of":3,"logprobs":5)"),
                       completion(R"("prompt":"x","suffix":"y","stream":true,)"
                                  R"("stream_options":{"include_usage":true})"),
                       completion(R"("prompt":"x","max_tokens":16,"temperature":1,"stop":"z")"),
                       completion(R"("prompt":"x","messages":5,"tools":7)"),
                   });
  CHECK(accept(k, completion(R"("prompt":"x","stream":true,)"
                             R"("stream_options":{"include_usage":true})"))
            .include_usage);
  check_rejects(k, {
                       {R"({"model":"m"})", "prompt"},
                       {R"({"prompt":"x"})", "model"},
                       {completion(R"("prompt":null)"), "prompt"},
                       {completion(R"("prompt":5)"), "prompt"},
                       {completion(R"("prompt":{})"), "prompt"},
                       {completion(R"("prompt":[])"), "prompt"},
                       {completion(R"("prompt":[true])"), "prompt"},
                       {completion(R"("prompt":["a",1])"), "prompt[1]"},
                       {completion(R"("prompt":[1,"a"])"), "prompt[1]"},
                       {completion(R"("prompt":[1,-2])"), "prompt[1]"},
                       {completion(R"("prompt":[1,2.5])"), "prompt[1]"},
                       {completion(R"("prompt":[[1],2])"), "prompt[1]"},
                       {completion(R"("prompt":[[1],[]])"), "prompt[1]"},
                       {completion(R"("prompt":[[1],["a"]])"), "prompt[1][0]"},
                       {completion(R"("prompt":"x","echo":1)"), "echo"},
                       {completion(R"("prompt":"x","best_of":0)"), "best_of"},
                       {completion(R"("prompt":"x","logprobs":true)"), "logprobs"},
                       {completion(R"("prompt":"x","logprobs":-1)"), "logprobs"},
                       {completion(R"("prompt":"x","suffix":1)"), "suffix"},
                       {completion(R"("prompt":"x","temperature":5)"), "temperature"},
                       {completion(R"("prompt":"x","stream_options":{})"), "stream_options"},
                   });
  CHECK(reject(k, R"({"model":"m"})").message == "Missing required parameter: 'prompt'.");
}

TEST_CASE("embeddings: input forms and fields") {
  const auto k = endpoint::embeddings;
  request one = accept(k, completion(R"("input":"hello")"));
  CHECK(one.kind == endpoint::embeddings);
  CHECK(one.message_count == 1);
  CHECK(one.input_chars == 5);
  request many = accept(k, completion(R"("input":["a","bc"],"encoding_format":"base64")"));
  CHECK(many.message_count == 2);
  CHECK(many.input_chars == 3);
  CHECK(accept(k, completion(R"("input":[5,6])")).message_count == 1);
  CHECK(accept(k, completion(R"("input":[[5],[6],[7]])")).message_count == 3);
  check_accepts(k, {
                       completion(R"("input":"x","dimensions":256,"encoding_format":"float")"),
                       completion(R"("input":"x","user":"u","encoding_format":null)"),
                       // chat-only fields mean nothing here and are forwarded untouched
                       completion(R"("input":"x","stream":"whatever","temperature":9)"),
                   });
  check_rejects(k, {
                       {R"({"model":"m"})", "input"},
                       {R"({"input":"x"})", "model"},
                       {completion(R"("input":"")"), "input"},
                       {completion(R"("input":[])"), "input"},
                       {completion(R"("input":["a",""])"), "input[1]"},
                       {completion(R"("input":["a",2])"), "input[1]"},
                       {completion(R"("input":[[]])"), "input[0]"},
                       {completion(R"("input":{})"), "input"},
                       {completion(R"("input":7)"), "input"},
                       {completion(R"("input":"x","dimensions":0)"), "dimensions"},
                       {completion(R"("input":"x","dimensions":"8")"), "dimensions"},
                       {completion(R"("input":"x","encoding_format":"int8")"), "encoding_format"},
                       {completion(R"("input":"x","encoding_format":1)"), "encoding_format"},
                       {completion(R"("input":"x","user":1)"), "user"},
                   });
}

TEST_CASE("with_model rewrites only the top-level model value") {
  SUBCASE("plain") {
    CHECK(with_model(R"({"model":"a","messages":[]})", "b") == R"({"model":"b","messages":[]})");
  }
  SUBCASE("whitespace kept") {
    const std::string body = "\n{ \"stream\" : true ,\r\n\t\"model\"\t:  \"gpt\" ,\"n\":1 }\n";
    CHECK(with_model(body, "qwen-max") ==
          "\n{ \"stream\" : true ,\r\n\t\"model\"\t:  \"qwen-max\" ,\"n\":1 }\n");
  }
  SUBCASE("nested model keys are not touched") {
    const std::string body =
        R"({"messages":[{"role":"user","content":"{\"model\":\"a\"}","model":"a"}],)"
        R"("metadata":{"model":"a","x":["model","a"]},"model":"a","tail":{"model":"a"}})";
    const std::string want =
        R"({"messages":[{"role":"user","content":"{\"model\":\"a\"}","model":"a"}],)"
        R"("metadata":{"model":"a","x":["model","a"]},"model":"Z","tail":{"model":"a"}})";
    CHECK(with_model(body, "Z") == want);
  }
  SUBCASE("escapes in the old value, in other strings and in the new value") {
    CHECK(with_model(R"({"x":"a\\","y":"\"}{[","model":"o\"ld\\"})", "new") ==
          R"({"x":"a\\","y":"\"}{[","model":"new"})");
    CHECK(with_model(R"({"model":"a"})", "q\"w\\e\n\x01/") ==
          "{\"model\":\"q\\\"w\\\\e\\n\\u0001/\"}");
    CHECK(with_model(R"({"model":"a"})", "\xE4\xBD\xA0") == "{\"model\":\"\xE4\xBD\xA0\"}");
  }
  SUBCASE("an escaped key still names the model") {
    CHECK(with_model(R"({"mod\u0065l":"a","n":1})", "b") == R"({"mod\u0065l":"b","n":1})");
  }
  SUBCASE("unchanged when equal, also through escapes") {
    const std::string body = R"({"model" : "gpt-4o", "messages":[]})";
    CHECK(with_model(body, "gpt-4o") == body);
    CHECK(with_model(R"({"model":"g\u0070t\/4"})", "gpt/4") == R"({"model":"g\u0070t\/4"})");
    CHECK(with_model(R"({"model":"\ud83d\ude00"})", "\xF0\x9F\x98\x80") ==
          R"({"model":"\ud83d\ude00"})");
  }
  SUBCASE("no string model, or malformed: body unchanged") {
    for (std::string body : {R"({"messages":[]})", R"({"model":5})", R"({"model":null})", "[]",
                             "{}", "", R"({"model":"a")", R"({"model" "a"})",
                             R"({"x":[1,2,"model":"a"})", R"(  {"model":"a"  )"}) {
      CAPTURE(body);
      CHECK(with_model(body, "b") == body);
    }
  }
  SUBCASE("deeply nested neighbours") {
    const std::string deep = deep_array(100'000);
    const std::string body = R"({"x":)" + deep + R"(,"model":"a"})";
    CHECK(with_model(body, "b") == R"({"x":)" + deep + R"(,"model":"b"})");
  }
  SUBCASE("the result parses and names the new model") {
    const std::string body = R"({"model":"a","messages":[{"role":"user","content":"x"}]})";
    auto r = parse_request(endpoint::chat_completions, with_model(body, "b\"c"));
    REQUIRE(std::holds_alternative<request>(r));
    CHECK(std::get<request>(r).model == "b\"c");
  }
}

TEST_CASE("timing: parse+validate of a typical 2 KB chat body (prints, never asserts)") {
  std::string body =
      R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful )"
      R"(assistant for an online store. Answer briefly and politely. If you do not know, say )"
      R"(so. Never invent order numbers or prices."},)";
  for (int i = 0; i < 6; ++i) {
    body += R"({"role":"user","content":"I ordered a pair of running shoes last week and the )"
            R"(tracking page still says label created. Can you tell me what is going on?"},)"
            R"({"role":"assistant","content":"I am sorry about the delay. Labels are sometimes )"
            R"(created before the parcel is handed over; it usually moves within two days."},)";
  }
  body += R"({"role":"user","content":[{"type":"text","text":"Thanks, and can I change size?"}]}],)"
          R"("temperature":0.7,"top_p":0.95,"max_tokens":512,"stream":true,)"
          R"("stream_options":{"include_usage":true},"user":"user-1234","seed":42,)"
          R"("tools":[{"type":"function","function":{"name":"lookup_order","description":)"
          R"("Find an order by id","parameters":{"type":"object","properties":{"id":{"type":)"
          R"("string"}},"required":["id"]}}}]})";
  CHECK(body.size() > 1800);
  CHECK(body.size() < 2600);
  REQUIRE(std::holds_alternative<request>(parse_request(endpoint::chat_completions, body)));

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::size_t runs = 0;
  uint32_t sink = 0;
  const auto start = std::chrono::steady_clock::now();
  for (; runs < 200'000; ++runs) {
    auto r = parse_request(endpoint::chat_completions, body);
    sink += std::get<request>(r).input_chars;
    if ((runs & 1023) == 0 && std::chrono::steady_clock::now() > deadline) break;
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("parse_request, " << body.size() << "-byte chat body: " << us / static_cast<double>(runs)
                            << " us per parse (" << runs << " runs, sink " << sink << ")");
}

namespace {

/// parse_request on a thread of its own: no earlier parse's memo can answer it.
std::variant<request, api_error> fresh_parse(endpoint k, const std::string& body) {
  std::variant<request, api_error> out;
  std::thread([&] { out = parse_request(k, body); }).join();
  return out;
}

void check_same_parse(const std::variant<request, api_error>& a,
                      const std::variant<request, api_error>& b) {
  REQUIRE(a.index() == b.index());
  if (const auto* e = std::get_if<api_error>(&a)) {
    CHECK(e->message == std::get<api_error>(b).message);
    CHECK(e->param == std::get<api_error>(b).param);
    return;
  }
  const request& x = std::get<request>(a);
  const request& y = std::get<request>(b);
  CHECK(x.kind == y.kind);
  CHECK(x.model == y.model);
  CHECK(x.stream == y.stream);
  CHECK(x.include_usage == y.include_usage);
  CHECK(x.max_tokens == y.max_tokens);
  CHECK(x.temperature == y.temperature);
  CHECK(x.seed == y.seed);
  CHECK(x.n == y.n);
  CHECK(x.has_tools == y.has_tools);
  CHECK(x.message_count == y.message_count);
  CHECK(x.input_chars == y.input_chars);
  CHECK(x.user == y.user);
  CHECK(x.body == y.body);
}

}  // namespace

TEST_CASE("repeated parses on one thread give what a first parse gives") {
  // One body read as each endpoint (accepted by some, refused by others), interleaved with a
  // refused body, three times over: a memo keyed on the bytes alone would answer the wrong
  // endpoint, and one that kept errors or partial results would show here.
  const std::string both = R"({"model":"m","messages":[{"role":"user","content":"hi"}],)"
                           R"("prompt":"p","max_tokens":7,"seed":3,"user":"u"})";
  const std::string bad = R"({"model":"m","messages":"not a list"})";
  for (int round = 0; round < 3; ++round) {
    for (endpoint k : {endpoint::chat_completions, endpoint::completions, endpoint::embeddings}) {
      for (const std::string* body : {&both, &bad}) {
        const auto got = parse_request(k, *body);
        check_same_parse(got, fresh_parse(k, *body));
      }
    }
  }
  CHECK(accept(endpoint::chat_completions, both).message_count == 1);
  CHECK(accept(endpoint::completions, both).kind == endpoint::completions);
  // More bodies than the memo keeps: each parse still reads its own.
  std::set<uint32_t> seen;
  for (uint32_t i = 1; i <= 300; ++i) {
    const request r = accept(endpoint::chat_completions,
                             R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
                             R"("max_tokens":)" +
                                 std::to_string(i) + "}");
    seen.insert(r.max_tokens);
  }
  CHECK(seen.size() == 300);
  check_same_parse(parse_request(endpoint::chat_completions, both),
                   fresh_parse(endpoint::chat_completions, both));
}
