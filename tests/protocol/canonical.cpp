// protocol/canonical/canonical.cpp: canonical JSON, chunking, and the cache-key properties
// (every output-affecting field counts, nothing else does, formatting never does).
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/canonical/canonical.hpp"
#include "protocol/openai/request.hpp"

using namespace tc;
using canonical::digest;
using openai::endpoint;

namespace {

openai::request parsed(const std::string& body, endpoint kind = endpoint::chat_completions) {
  auto r = openai::parse_request(kind, body);
  if (auto* e = std::get_if<openai::api_error>(&r)) {
    FAIL("test body rejected: " << body << " -> " << e->param << ": " << e->message);
  }
  return std::get<openai::request>(std::move(r));
}

canonical::key key_of(const std::string& body, endpoint kind = endpoint::chat_completions,
                      std::string_view scope = "tenant-1", std::string_view version = "v1") {
  canonical::key k;
  std::string error;
  const bool ok = canonical::make_key(parsed(body, kind), scope, version, k, error);
  REQUIRE_MESSAGE(ok, error);
  return k;
}

digest full(const std::string& body, endpoint kind = endpoint::chat_completions) {
  return key_of(body, kind).full_hash;
}

canonical::blocks blocks_of(const std::string& body, endpoint kind = endpoint::chat_completions) {
  canonical::blocks b;
  std::string error;
  REQUIRE(canonical::chunk(parsed(body, kind), b, error));
  return b;
}

std::string canon(std::string_view json) {
  std::string out;
  REQUIRE_MESSAGE(canonical::canonical_json(json, out), json);
  return out;
}

const std::string tool_weather =
    R"({"type":"function","function":{"name":"get_weather","description":"Weather",)"
    R"("parameters":{"type":"object","properties":{"city":{"type":"string"},)"
    R"("unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}})";
const std::string tool_time =
    R"({"type":"function","function":{"name":"get_time","parameters":{"type":"object",)"
    R"("properties":{"tz":{"type":"string"}}}}})";

/// A chat body: system prompt, tools, one history turn, a query, and `extra` top-level members.
std::string chat(const std::string& extra = "", const std::string& query = "What now?") {
  std::string b = R"({"model":"gpt-4o","messages":[)"
                  R"({"role":"system","content":"You are terse."},)"
                  R"({"role":"user","content":"Hi"},)"
                  R"({"role":"assistant","content":"Hello."},)"
                  R"({"role":"user","content":")" +
                  query + R"("}],"tools":[)" + tool_weather + "," + tool_time + "]";
  if (!extra.empty()) b += "," + extra;
  return b + "}";
}

}  // namespace

TEST_CASE("canonical_json sorts keys at every depth, normalises numbers, drops whitespace") {
  CHECK(canon(R"( { "b" : [ 1.0 , { "d" : 1e2 , "c" : "x" } ] , "a" : null ,
                   "f" : false , "e" : true } )") ==
        R"({"a":null,"b":[1,{"c":"x","d":100}],"e":true,"f":false})");
  // Bytewise key order: upper case before lower case, a prefix before its extensions, UTF-8 last.
  CHECK(canon(R"({"b":1,"é":4,"aa":5,"a":3,"B":2})") == R"({"B":2,"a":3,"aa":5,"b":1,"é":4})");
  CHECK(canon("[]") == "[]");
  CHECK(canon("{}") == "{}");
  CHECK(canon(R"({"a":{},"b":[[],{}]})") == R"({"a":{},"b":[[],{}]})");
  // Equal keys keep their order (upstream parsers keep the last one).
  CHECK(canon(R"({"a":2,"a":1})") == R"({"a":2,"a":1})");
  CHECK(canon(R"({"a":2,"a":1})") != canon(R"({"a":1,"a":2})"));
}

TEST_CASE("canonical_json writes each number value one way") {
  for (const char* one : {"1", "1.0", "1e0", "1E0", "10e-1", "0.1e1", "1.000", "100e-2"}) {
    CHECK_MESSAGE(canon(one) == "1", one);
  }
  for (const char* zero : {"0", "-0", "0.0", "-0.0", "0e5"})
    CHECK_MESSAGE(canon(zero) == "0", zero);
  for (const char* x : {"0.7", "7e-1", "0.70", "70E-2", "0.07e1"}) {
    CHECK_MESSAGE(canon(x) == "0.7", x);
  }
  CHECK(canon("-2.5") == "-2.5");
  CHECK(canon("-25e-1") == "-2.5");
  CHECK(canon("1e2") == "100");
  CHECK(canon("9007199254740992.0") == "9007199254740992");  // 2^53: still an integer
  CHECK(canon("1e300") == canon("1.0e300"));
  CHECK(canon("1e300") == canon("10e299"));
  CHECK(canon("0.1") != canon("0.2"));
  // Integer literals are exact at any size: seeds 2^53 and 2^53 + 1 must not share a key.
  CHECK(canon("9007199254740993") == "9007199254740993");
  CHECK(canon("9007199254740993") != canon("9007199254740992"));
  CHECK(canon("123456789012345678901234567890") == "123456789012345678901234567890");
  CHECK(canon("-18446744073709551617") == "-18446744073709551617");
}

TEST_CASE("canonical_json decodes and re-escapes strings minimally") {
  CHECK(canon(R"("\u0041\/\u00e9\t\"\\")") == "\"A/\xC3\xA9\\t\\\"\\\\\"");
  CHECK(canon("\"\xC3\xA9\"") == canon(R"("\u00E9")"));
  CHECK(canon(R"("\u0001\u001f\b\f\n\r")") == R"("\u0001\u001F\b\f\n\r")");
  CHECK(canon(R"("a\u0000b")") == R"("a\u0000b")");
  CHECK(canon(R"("\ud83d\ude00")") == "\"\xF0\x9F\x98\x80\"");
  // Words of 8 bytes and a padded tail word take the fast path; an escape at any offset of a
  // string of any length must still be found, and a clean string copied whole.
  for (std::size_t len = 0; len <= 20; ++len) {
    const std::string clean = "\"" + std::string(len, 'x') + "\"";
    CHECK(canon(clean) == clean);
    for (std::size_t at = 0; at < len; ++at) {
      for (const char* esc : {"\\\"", "\\\\", "\\n", "\\u0001", "\\u001F"}) {
        const std::string json =
            "\"" + std::string(at, 'x') + esc + std::string(len - at - 1, 'y') + "\"";
        CHECK_MESSAGE(canon(json) == json, json);
      }
    }
  }
  // Non-ASCII bytes (>= 0x80) are not escaped, whatever their position in a word.
  CHECK(canon("\"\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC!\"") ==
        "\"\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC!\"");
}

TEST_CASE("canonical_json refuses what is not one valid JSON value") {
  std::string out;
  for (std::string bad :
       {std::string(""), std::string("{"), std::string("[1,]"), std::string("1 2"),
        std::string("{\"a\"}"), std::string("nul"), std::string("01"), std::string("\"\xFF\""),
        std::string("\"a\0b\"", 5), std::string("1\0", 2)}) {
    CHECK_MESSAGE(!canonical::canonical_json(bad, out), bad);
  }
}

TEST_CASE("canonical_json handles deep nesting without recursion") {
  constexpr int depth = 100'000;
  const std::string deep = std::string(depth, '[') + "1.0" + std::string(depth, ']');
  std::string out;
  REQUIRE(canonical::canonical_json(deep, out));
  CHECK(out == std::string(depth, '[') + "1" + std::string(depth, ']'));
}

TEST_CASE("ignored_fields lists exactly the fields that cannot change the output") {
  const std::set<std::string_view> got(canonical::ignored_fields().begin(),
                                       canonical::ignored_fields().end());
  const std::set<std::string_view> want = {
      "stream",           "stream_options",   "user", "metadata", "store", "service_tier",
      "prompt_cache_key", "safety_identifier"};
  CHECK(got == want);
}

TEST_CASE("chunk splits and arranges a chat request") {
  const std::string body =
      R"({"temperature":0.5,"model":"m","stream":true,"user":"u","messages":[)"
      R"({"role":"developer","content":"D"},{"content":"S","role":"system"},)"
      R"({"role":"user","content":"Q1"},{"role":"system","content":"late"},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},)"
      R"({"type":"image_url","image_url":{"url":"http://x/y.png"}},{"type":"text","text":"b"}]}],)"
      R"("tools":[)" +
      tool_weather + "," + tool_time +
      R"(],"tool_choice":{"type":"function",)"
      R"("function":{"name":"get_time"}},"foo":{"z":1,"y":[2.0]}})";
  const canonical::blocks b = blocks_of(body);
  REQUIRE(b.system.size() == 2);
  CHECK(b.system[0] == R"({"content":"D","role":"developer"})");
  CHECK(b.system[1] == R"({"content":"S","role":"system"})");
  REQUIRE(b.tools.size() == 2);  // sorted by function name: get_time < get_weather
  CHECK(b.tools[0] ==
        R"({"function":{"name":"get_time","parameters":{"properties":{"tz":{"type":"string"}},)"
        R"("type":"object"}},"type":"function"})");
  CHECK(b.tools[1].find(R"("name":"get_weather")") != std::string::npos);
  REQUIRE(b.history.size() == 2);  // the late system message stays where it was
  CHECK(b.history[0] == R"({"content":"Q1","role":"user"})");
  CHECK(b.history[1] == R"({"content":"late","role":"system"})");
  CHECK(b.query_message ==
        R"({"content":[{"text":"a","type":"text"},{"image_url":{"url":"http://x/y.png"},)"
        R"("type":"image_url"},{"text":"b","type":"text"}],"role":"user"})");
  CHECK(b.query_text.empty());  // an image part: no query text for the text tiers
  // Everything else that counts, sorted; model, stream and user are not in it.
  CHECK(b.params == R"({"foo":{"y":[2],"z":1},"temperature":0.5,"tool_choice":{"function":)"
                    R"({"name":"get_time"},"type":"function"}})");
}

TEST_CASE("chunk: a single message is the query, and only a leading system run is the system") {
  canonical::blocks b = blocks_of(R"({"model":"m","messages":[{"role":"system","content":"S"}]})");
  CHECK(b.system.empty());
  CHECK(b.history.empty());
  CHECK(b.query_message == R"({"content":"S","role":"system"})");
  CHECK(b.query_text == "S");
  CHECK(b.params == "{}");

  b = blocks_of(R"({"model":"m","messages":[{"role":"user","content":"U"},)"
                R"({"role":"system","content":"S"},{"role":"user","content":"V"}]})");
  CHECK(b.system.empty());
  CHECK(b.history.size() == 2);
  CHECK(b.query_text == "V");
}

TEST_CASE("chunk: completions and embeddings put the prompt or input in the query") {
  canonical::blocks b = blocks_of(R"({"model":"m","prompt":"Say hi","max_tokens":5,"echo":true})",
                                  endpoint::completions);
  CHECK(b.system.empty());
  CHECK(b.tools.empty());
  CHECK(b.history.empty());
  CHECK(b.query_message == R"("Say hi")");
  CHECK(b.query_text == "Say hi");
  CHECK(b.params == R"({"echo":true,"max_tokens":5})");

  b = blocks_of(R"({"model":"m","prompt":["a","b c"]})", endpoint::completions);
  CHECK(b.query_message == R"(["a","b c"])");
  CHECK(b.query_text == "a\nb c");

  b = blocks_of(R"({"model":"m","prompt":[1, 2 ,3]})", endpoint::completions);
  CHECK(b.query_message == "[1,2,3]");
  CHECK(b.query_text.empty());

  b = blocks_of(R"({"model":"e","input":["x","y"],"dimensions":256,"user":"u"})",
                endpoint::embeddings);
  CHECK(b.query_message == R"(["x","y"])");
  CHECK(b.query_text == "x\ny");
  CHECK(b.params == R"({"dimensions":256})");

  // Fields of another endpoint are unknown here, so they count as parameters.
  b = blocks_of(R"({"model":"m","prompt":"p","tools":[]})", endpoint::completions);
  CHECK(b.params == R"({"tools":[]})");
}

TEST_CASE("every counted field changes full_hash, params_hash and namespace_hash") {
  struct counted {
    const char* name;
    const char* a;
    const char* b;
  };
  const counted fields[] = {
      {"tool_choice", R"("auto")", R"("none")"},
      {"response_format", R"({"type":"json_object"})", R"({"type":"text"})"},
      {"temperature", "0.5", "0.7"},
      {"top_p", "0.9", "1"},
      {"max_tokens", "100", "101"},
      {"max_completion_tokens", "100", "101"},
      {"stop", R"("\n")", R"(["\n","END"])"},
      {"seed", "1", "2"},
      {"seed", "9007199254740992", "9007199254740993"},
      {"n", "1", "2"},
      {"logprobs", "true", "false"},
      {"top_logprobs", "1", "2"},
      {"presence_penalty", "0", "0.5"},
      {"frequency_penalty", "0.1", "-0.1"},
      {"logit_bias", R"({"50256":-100})", R"({"50256":100})"},
      {"parallel_tool_calls", "true", "false"},
      {"reasoning_effort", R"("low")", R"("high")"},
      {"verbosity", R"("low")", R"("medium")"},
      {"modalities", R"(["text"])", R"(["text","audio"])"},
      {"prediction", R"({"type":"content","content":"a"})", R"({"type":"content","content":"b"})"},
      {"web_search_options", "{}", R"({"search_context_size":"low"})"},
      {"foo", "1", "2"},
      {"foo", R"({"a":{"b":[1,2]}})", R"({"a":{"b":[2,1]}})"},
      {"foo", "null", "false"},
  };
  const canonical::key base = key_of(chat());
  for (const counted& f : fields) {
    CAPTURE(f.name);
    CAPTURE(f.b);
    const canonical::key a = key_of(chat(std::string("\"") + f.name + "\":" + f.a));
    const canonical::key b = key_of(chat(std::string("\"") + f.name + "\":" + f.b));
    CHECK(a.full_hash != b.full_hash);
    CHECK(a.full_hash != base.full_hash);  // absent and present differ (a safe miss)
    CHECK(a.params_hash != b.params_hash);
    CHECK(a.namespace_hash != b.namespace_hash);
    CHECK(a.prefix_hash == b.prefix_hash);
    CHECK(a.history_hash == b.history_hash);
    CHECK(key_of(chat(std::string("\"") + f.name + "\":" + f.a)).full_hash == a.full_hash);
  }
  // The two token limits are different fields even with the same value.
  CHECK(full(chat(R"("max_tokens":100)")) != full(chat(R"("max_completion_tokens":100)")));
  // An unknown field's name counts, not only its value.
  CHECK(full(chat(R"("foo":1)")) != full(chat(R"("bar":1)")));
  // So does the order of duplicate unknown keys (the last one wins upstream).
  CHECK(full(chat(R"("foo":1,"foo":2)")) != full(chat(R"("foo":2,"foo":1)")));
}

TEST_CASE("ignored fields never change the key") {
  const digest base = full(chat());
  const char* extras[] = {
      R"("stream":true)",
      R"("stream":false)",
      R"("stream":true,"stream_options":{"include_usage":true})",
      R"("user":"alice")",
      R"("user":"bob")",
      R"("metadata":{"run":"1"})",
      R"("metadata":{"run":"2"})",
      R"("store":true)",
      R"("service_tier":"flex")",
      R"("prompt_cache_key":"k1")",
      R"("safety_identifier":"h1")",
      R"("stream":true,"user":"x","metadata":{},"store":false,"service_tier":"auto",)"
      R"("prompt_cache_key":"k","safety_identifier":"s")",
  };
  for (const char* e : extras) {
    CAPTURE(e);
    CHECK(full(chat(e)) == base);
    CHECK(key_of(chat(e)).namespace_hash == key_of(chat()).namespace_hash);
  }
}

TEST_CASE("formatting, key order, tool order and number spelling do not change the key") {
  const canonical::key base = key_of(chat(R"("temperature":0.7,"top_p":1,"response_format":)"
                                          R"({"type":"json_schema","json_schema":{"name":"r",)"
                                          R"("schema":{"type":"object","properties":{"a":)"
                                          R"({"type":"number"}}}}})"));
  // Same request: keys reordered at every depth (messages, tool schemas, response_format),
  // tools reversed, whitespace everywhere, 7e-1 for 0.7, 1.0 for 1, \u escapes for letters.
  const std::string same =
      "{\n  \"response_format\" : { \"json_schema\" : { \"schema\" : { \"properties\" : "
      "{ \"a\" : { \"type\" : \"number\" } } , \"type\" : \"object\" } , \"name\" : \"r\" } , "
      "\"type\" : \"json_schema\" } ,\n  \"top_p\" : 1.0 , \"temperature\" : 7e-1 ,\n"
      "  \"tools\" : [ {\"function\":{\"parameters\":{\"properties\":{\"tz\":{\"type\":"
      "\"string\"}},\"type\":\"object\"},\"name\":\"get_time\"},\"type\":\"function\"} , "
      "{\"function\":{\"parameters\":{\"required\":[\"city\"],\"properties\":{\"unit\":"
      "{\"enum\":[\"c\",\"f\"],\"type\":\"string\"},\"city\":{\"type\":\"string\"}},\"type\":"
      "\"object\"},\"description\":\"Weather\",\"name\":\"get_weather\"},\"type\":\"function\"}"
      " ] ,\n  \"messages\" : [ {\"content\":\"You are terse.\",\"role\":\"system\"} ,"
      " {\"content\":\"Hi\",\"role\":\"user\"}, {\"content\":\"Hello.\",\"role\":\"assistant\"},"
      " {\"content\":\"What \\u006eow?\",\"role\":\"user\"} ] , \"model\" : \"gpt-4o\"\n}\n";
  const canonical::key k = key_of(same);
  CHECK(k.full_hash == base.full_hash);
  CHECK(k.prefix_hash == base.prefix_hash);
  CHECK(k.params_hash == base.params_hash);
  CHECK(k.history_hash == base.history_hash);
  CHECK(k.namespace_hash == base.namespace_hash);
  CHECK(k.query_text == "What now?");

  CHECK(full(chat(R"("temperature":0.7)")) == full(chat(R"("temperature":7e-1)")));
  CHECK(full(chat(R"("foo":1)")) == full(chat(R"("foo":1.0)")));
  CHECK(full(chat(R"("top_p":1)")) == full(chat(R"("top_p":1.0)")));
}

TEST_CASE("message text counts to the byte, in every block") {
  const digest base = full(chat());
  CHECK(full(chat("", "What now!")) != base);
  CHECK(full(chat("", "What now? ")) != base);
  std::string sys = chat();
  sys.replace(sys.find("terse."), 6, "terse!");
  CHECK(full(sys) != base);
  std::string hist = chat();
  hist.replace(hist.find("Hello."), 6, "Hello!");
  CHECK(full(hist) != base);
  CHECK(key_of(hist).history_hash != key_of(chat()).history_hash);
  std::string role = chat();
  role.replace(role.find(R"("role":"assistant")"), 18, R"("role":"user")");
  CHECK(full(role) != base);
}

TEST_CASE("scope, model version and model separate keys") {
  const std::string body = chat();
  const canonical::key a = key_of(body, endpoint::chat_completions, "tenant-1", "v1");
  const canonical::key scope = key_of(body, endpoint::chat_completions, "tenant-2", "v1");
  const canonical::key version = key_of(body, endpoint::chat_completions, "tenant-1", "v2");
  std::string other_model = body;
  other_model.replace(other_model.find("gpt-4o"), 6, "gpt-4.1");
  const canonical::key model = key_of(other_model);
  for (const canonical::key* k : {&scope, &version, &model}) {
    CHECK(k->full_hash != a.full_hash);
    CHECK(k->namespace_hash != a.namespace_hash);
  }
  // The prefix is scope- and version-free (provider prefix affinity) but model-specific.
  CHECK(scope.prefix_hash == a.prefix_hash);
  CHECK(version.prefix_hash == a.prefix_hash);
  CHECK(model.prefix_hash != a.prefix_hash);
  CHECK(scope.params_hash == a.params_hash);
  CHECK(version.params_hash != a.params_hash);
  // Scope and version are length-prefixed: moving a byte across the boundary changes the key.
  CHECK(key_of(body, endpoint::chat_completions, "ab", "c").full_hash !=
        key_of(body, endpoint::chat_completions, "a", "bc").full_hash);
}

/// make_key on a thread of its own: no earlier call's memo can answer it.
canonical::key fresh_key(const openai::request& req, std::string_view scope,
                         std::string_view version) {
  canonical::key k;
  std::string error;
  bool ok = false;
  std::thread([&] { ok = canonical::make_key(req, scope, version, k, error); }).join();
  REQUIRE_MESSAGE(ok, error);
  return k;
}

void check_same_key(const canonical::key& a, const canonical::key& b) {
  CHECK(a.full_hash == b.full_hash);
  CHECK(a.prefix_hash == b.prefix_hash);
  CHECK(a.params_hash == b.params_hash);
  CHECK(a.history_hash == b.history_hash);
  CHECK(a.namespace_hash == b.namespace_hash);
  CHECK(a.query_text == b.query_text);
  CHECK(a.single_turn == b.single_turn);
  CHECK(a.deterministic == b.deterministic);
}

TEST_CASE("repeated calls on one thread give what a first call gives, for every input") {
  // The same body bytes under another scope, version, model name or endpoint, interleaved so
  // that each call follows one with the same body: a memo keyed on the body alone would answer
  // them with the previous key.
  const std::string body =
      R"({"model":"m1","messages":[{"role":"user","content":"What is 2+3?"}],"prompt":"p",)"
      R"("temperature":0})";
  const openai::request chat_req = parsed(body);
  const openai::request completion_req = parsed(body, endpoint::completions);
  openai::request renamed = chat_req;  // an alias resolved: the model hashed is not the body's
  renamed.model = "m2";
  openai::request warm = chat_req;  // the same bytes, no longer deterministic
  warm.temperature = 0.5;
  struct input {
    const openai::request* req;
    std::string_view scope;
    std::string_view version;
  };
  const std::vector<input> inputs = {
      {&chat_req, "tenant-1", "v1"},       {&chat_req, "tenant-2", "v1"},
      {&chat_req, "tenant-1", "v2"},       {&renamed, "tenant-1", "v1"},
      {&completion_req, "tenant-1", "v1"}, {&warm, "tenant-1", "v1"}};
  std::set<digest> distinct;
  for (int round = 0; round < 3; ++round) {
    for (const input& in : inputs) {
      canonical::key k;
      std::string error;
      REQUIRE(canonical::make_key(*in.req, in.scope, in.version, k, error));
      check_same_key(k, fresh_key(*in.req, in.scope, in.version));
      distinct.insert(k.full_hash);
    }
  }
  CHECK(distinct.size() == inputs.size() - 1);  // temperature aside, every input has its key
  // A one-byte change to the body, and more bodies than the memo keeps, then the first again.
  std::string edited = body;
  edited[edited.find("2+3")] = '4';
  check_same_key(key_of(edited), fresh_key(parsed(edited), "tenant-1", "v1"));
  CHECK(key_of(edited).full_hash != key_of(body).full_hash);
  std::set<digest> questions;
  for (int i = 0; i < 200; ++i) questions.insert(full(chat("", "question " + std::to_string(i))));
  CHECK(questions.size() == 200);
  check_same_key(key_of(body), fresh_key(chat_req, "tenant-1", "v1"));
  // Many scopes, versions and model names for one body: more than the memo has slots, so some
  // share a slot with another holding the same bytes; each still gets a key of its own.
  for (int part = 0; part < 3; ++part) {
    std::set<digest> keys;
    for (int i = 0; i < 300; ++i) {
      const std::string n = std::to_string(i);
      openai::request r = chat_req;
      if (part == 2) r.model = "m-" + n;
      canonical::key k;
      std::string error;
      REQUIRE(canonical::make_key(r, part == 0 ? "tenant-" + n : "tenant-1",
                                  part == 1 ? "v-" + n : "v1", k, error));
      keys.insert(k.full_hash);
    }
    CHECK(keys.size() == 300);
  }
}

TEST_CASE("the system block and tools drive prefix and namespace, the query does not") {
  const canonical::key base = key_of(chat());
  std::string sys = chat();
  sys.replace(sys.find("You are terse."), 14, "You are verbose.");
  const canonical::key s = key_of(sys);
  CHECK(s.prefix_hash != base.prefix_hash);
  CHECK(s.namespace_hash != base.namespace_hash);
  CHECK(s.history_hash == base.history_hash);

  const canonical::key q = key_of(chat("", "Something else?"));
  CHECK(q.full_hash != base.full_hash);
  CHECK(q.prefix_hash == base.prefix_hash);
  CHECK(q.namespace_hash == base.namespace_hash);
  CHECK(q.history_hash == base.history_hash);
  CHECK(q.params_hash == base.params_hash);
  CHECK(q.query_text == "Something else?");

  std::string one_tool = chat();
  one_tool.erase(one_tool.find("," + tool_time), tool_time.size() + 1);
  CHECK(key_of(one_tool).prefix_hash != base.prefix_hash);
  CHECK(key_of(one_tool).full_hash != base.full_hash);

  // The five digests of one request are all different (distinct domain tags).
  const std::set<digest> all = {base.full_hash, base.prefix_hash, base.params_hash,
                                base.history_hash, base.namespace_hash};
  CHECK(all.size() == 5);
  for (const digest& d : all) CHECK(!d.empty());
}

TEST_CASE("a late system message stays in history") {
  const std::string late = R"({"model":"m","messages":[{"role":"system","content":"S1"},)"
                           R"({"role":"user","content":"U1"},{"role":"system","content":"S2"},)"
                           R"({"role":"user","content":"U2"}]})";
  const std::string early = R"({"model":"m","messages":[{"role":"system","content":"S1"},)"
                            R"({"role":"system","content":"S2"},{"role":"user","content":"U1"},)"
                            R"({"role":"user","content":"U2"}]})";
  const canonical::key a = key_of(late);
  const canonical::key b = key_of(early);
  CHECK(a.full_hash != b.full_hash);
  CHECK(a.prefix_hash != b.prefix_hash);
  CHECK(a.history_hash != b.history_hash);
  CHECK(blocks_of(late).system.size() == 1);
  CHECK(blocks_of(early).system.size() == 2);
  // History order matters too.
  const std::string swapped = R"({"model":"m","messages":[{"role":"system","content":"S1"},)"
                              R"({"role":"system","content":"S2"},{"role":"user","content":"U1"},)"
                              R"({"role":"assistant","content":"A"},)"
                              R"({"role":"user","content":"U2"}]})";
  const std::string u1 = R"({"role":"user","content":"U1"},)";
  std::string swapped2 = swapped;
  swapped2.erase(swapped2.find(u1), u1.size());
  swapped2.insert(swapped2.find(R"({"role":"user","content":"U2"})"), u1);
  CHECK(full(swapped) != full(swapped2));
}

TEST_CASE("completions and embeddings keys") {
  const canonical::key a =
      key_of(R"({"model":"m","prompt":"Say hi","max_tokens":5})", endpoint::completions);
  const canonical::key b =
      key_of(R"({ "max_tokens" : 5, "prompt":"Say hi","model":"m"})", endpoint::completions);
  CHECK(a.full_hash == b.full_hash);
  CHECK(a.query_text == "Say hi");
  CHECK(a.single_turn);
  CHECK(full(R"({"model":"m","prompt":"Say ho","max_tokens":5})", endpoint::completions) !=
        a.full_hash);
  CHECK(full(R"({"model":"m","prompt":["Say hi"],"max_tokens":5})", endpoint::completions) !=
        a.full_hash);
  CHECK(full(R"({"model":"m","prompt":"Say hi","max_tokens":6})", endpoint::completions) !=
        a.full_hash);
  CHECK(full(R"({"model":"m","prompt":"Say hi","max_tokens":5,"suffix":"x"})",
             endpoint::completions) != a.full_hash);
  // Same prompt, other parameters: the namespace follows the parameters, not the prompt.
  CHECK(key_of(R"({"model":"m","prompt":"other","max_tokens":5})", endpoint::completions)
            .namespace_hash == a.namespace_hash);
  CHECK(key_of(R"({"model":"m","prompt":"Say hi","max_tokens":9})", endpoint::completions)
            .namespace_hash != a.namespace_hash);

  const canonical::key e =
      key_of(R"({"model":"e","input":"hello","user":"u"})", endpoint::embeddings);
  CHECK(e.full_hash == full(R"({"input":"hello","model":"e"})", endpoint::embeddings));
  CHECK(e.full_hash != full(R"({"input":"hellO","model":"e"})", endpoint::embeddings));
  CHECK(e.full_hash !=
        full(R"({"input":"hello","model":"e","dimensions":64})", endpoint::embeddings));
  CHECK(e.full_hash !=
        full(R"({"input":"hello","model":"e","encoding_format":"base64"})", endpoint::embeddings));
  CHECK(full(R"({"input":[1,2,3],"model":"e"})", endpoint::embeddings) !=
        full(R"({"input":[[1,2,3]],"model":"e"})", endpoint::embeddings));
  CHECK(e.query_text == "hello");

  // One body valid for two endpoints hashes differently under each.
  const std::string both =
      R"({"model":"m","prompt":"p","messages":[{"role":"user","content":"p"}]})";
  CHECK(full(both, endpoint::chat_completions) != full(both, endpoint::completions));
}

TEST_CASE("an empty tools array is a parameter, not the absence of tools") {
  const std::string none = R"({"model":"m","messages":[{"role":"user","content":"q"}]})";
  const std::string empty =
      R"({"model":"m","messages":[{"role":"user","content":"q"}],"tools":[]})";
  CHECK(full(none) != full(empty));
  CHECK(blocks_of(empty).tools.empty());
  CHECK(blocks_of(empty).params == R"({"tools":[]})");
}

TEST_CASE("history_hash: every single-turn request shares one, any history changes it") {
  const canonical::key a = key_of(R"({"model":"m","messages":[{"role":"user","content":"q"}]})");
  const canonical::key b = key_of(R"({"model":"n","messages":[{"role":"system","content":"s"},)"
                                  R"({"role":"user","content":"r"}]})",
                                  endpoint::chat_completions, "other", "v9");
  const canonical::key c = key_of(R"({"model":"m","prompt":"p"})", endpoint::completions);
  CHECK(a.history_hash == b.history_hash);
  CHECK(a.history_hash == c.history_hash);
  const canonical::key d = key_of(R"({"model":"m","messages":[{"role":"user","content":"q"},)"
                                  R"({"role":"user","content":"q"}]})");
  CHECK(d.history_hash != a.history_hash);
  CHECK(!d.history_hash.empty());
  CHECK(!a.history_hash.empty());
}

TEST_CASE("single_turn and deterministic") {
  CHECK(key_of(R"({"model":"m","messages":[{"role":"user","content":"q"}]})").single_turn);
  CHECK(key_of(R"({"model":"m","messages":[{"role":"system","content":"s"},)"
               R"({"role":"user","content":"q"}]})")
            .single_turn);
  CHECK(!key_of(chat()).single_turn);

  CHECK(!key_of(chat()).deterministic);
  CHECK(key_of(chat(R"("temperature":0)")).deterministic);
  CHECK(key_of(chat(R"("temperature":0.0)")).deterministic);
  CHECK(!key_of(chat(R"("temperature":0.2)")).deterministic);
  CHECK(key_of(chat(R"("temperature":1,"seed":7)")).deterministic);
  CHECK(!key_of(chat(R"("temperature":null)")).deterministic);
}

TEST_CASE("make_key and chunk report a body that is not a JSON object") {
  openai::request r;
  r.model = "m";
  canonical::key k;
  canonical::blocks b;
  std::string error;
  for (const char* body : {"[1,2]", "not json", "", "\"s\""}) {
    r.body = body;
    error.clear();
    CHECK_FALSE(canonical::make_key(r, "s", "v", k, error));
    CHECK(!error.empty());
    error.clear();
    CHECK_FALSE(canonical::chunk(r, b, error));
    CHECK(!error.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// Randomised property: any serialisation of the same request gives the same key.

namespace {

/// A JSON value for generating requests; numbers are kept as mantissa * 10^-scale so that they
/// can be spelled several ways.
struct jv {
  enum class type { null_value, boolean, number, string, array, object } t = type::null_value;
  bool b = false;
  long mantissa = 0;
  int scale = 0;
  bool integer = false;  ///< a field that must be spelled as an integer literal
  std::string s;
  std::vector<jv> items;
  std::vector<std::pair<std::string, jv>> members;
};

jv str(std::string s) {
  jv v;
  v.t = jv::type::string;
  v.s = std::move(s);
  return v;
}

jv num(long mantissa, int scale = 0) {
  jv v;
  v.t = jv::type::number;
  v.mantissa = mantissa;
  v.scale = scale;
  return v;
}

jv obj(std::vector<std::pair<std::string, jv>> members) {
  jv v;
  v.t = jv::type::object;
  v.members = std::move(members);
  return v;
}

jv arr(std::vector<jv> items) {
  jv v;
  v.t = jv::type::array;
  v.items = std::move(items);
  return v;
}

class generator {
 public:
  explicit generator(uint32_t seed) : rng_(seed) {}

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  std::string text(int max_len) {
    static const std::vector<std::string> alphabet = {
        "a", "b", "z", " ", "\"", "\\", "/", "\n", "\t", "\xC3\xA9", "\xE2\x82\xAC", "Q", "7"};
    std::string s;
    const int n = pick(0, max_len);
    for (int i = 0; i < n; ++i) s += alphabet[static_cast<std::size_t>(pick(0, 12))];
    return s;
  }

  jv value(int depth) {
    switch (pick(0, depth > 0 ? 6 : 4)) {
      case 0: {
        jv v;
        return v;
      }
      case 1: {
        jv v;
        v.t = jv::type::boolean;
        v.b = pick(0, 1) == 1;
        return v;
      }
      case 2:
        return num(pick(-5000, 5000), pick(0, 3));
      case 3:
      case 4:
        return str(text(12));
      case 5: {
        std::vector<jv> items;
        for (int i = pick(0, 4); i > 0; --i) items.push_back(value(depth - 1));
        return arr(std::move(items));
      }
      default: {
        std::vector<std::pair<std::string, jv>> members;
        const int n = pick(0, 5);
        for (int i = 0; i < n; ++i)
          members.emplace_back("k" + std::to_string(i) + text(3), value(depth - 1));
        return obj(std::move(members));
      }
    }
  }

  /// A valid chat request.
  jv request() {
    std::vector<std::pair<std::string, jv>> top;
    top.emplace_back("model", str("model-" + std::to_string(pick(0, 3))));
    std::vector<jv> messages;
    for (int i = pick(0, 2); i > 0; --i) {
      messages.push_back(
          obj({{"role", str(pick(0, 1) ? "system" : "developer")}, {"content", str(text(20))}}));
    }
    for (int i = pick(0, 4); i > 0; --i) {
      const char* roles[] = {"user", "assistant", "system"};
      messages.push_back(obj({{"role", str(roles[pick(0, 2)])}, {"content", str(text(20))}}));
    }
    if (pick(0, 1)) {
      messages.push_back(obj({{"role", str("user")}, {"content", str(text(30))}}));
    } else {
      messages.push_back(
          obj({{"role", str("user")},
               {"content", arr({obj({{"type", str("text")}, {"text", str(text(9))}}),
                                obj({{"type", str("text")}, {"text", str("x")}})})}}));
    }
    top.emplace_back("messages", arr(std::move(messages)));
    std::vector<jv> tools;
    for (int i = pick(0, 4); i > 0; --i) {
      tools.push_back(obj({{"type", str("function")},
                           {"function", obj({{"name", str("tool_" + std::to_string(i))},
                                             {"description", str(text(10))},
                                             {"parameters", value(3)}})}}));
    }
    if (!tools.empty()) top.emplace_back("tools", arr(std::move(tools)));
    if (pick(0, 1)) top.emplace_back("temperature", num(pick(0, 20), 1));
    if (pick(0, 1)) top.emplace_back("top_p", num(pick(0, 100), 2));
    if (pick(0, 1)) top.emplace_back("max_tokens", integer(pick(1, 4000)));
    if (pick(0, 1)) top.emplace_back("seed", integer(pick(-100, 100)));
    if (pick(0, 1)) {
      jv stream;
      stream.t = jv::type::boolean;
      stream.b = pick(0, 1) == 1;
      top.emplace_back("stream", stream);
    }
    if (pick(0, 1)) top.emplace_back("user", str(text(5)));
    for (int i = pick(0, 3); i > 0; --i) top.emplace_back("x_" + std::to_string(i), value(3));
    return obj(std::move(top));
  }

  /// One of the many spellings of `v`: members and tools shuffled, whitespace sprinkled,
  /// numbers and string characters written in any equivalent form.
  void write(const jv& v, std::string& out, bool top_level = false) {
    ws(out);
    switch (v.t) {
      case jv::type::null_value:
        out += "null";
        break;
      case jv::type::boolean:
        out += v.b ? "true" : "false";
        break;
      case jv::type::number:
        number(v, out);
        break;
      case jv::type::string:
        string(v.s, out);
        break;
      case jv::type::array:
        out += '[';
        for (std::size_t i = 0; i < v.items.size(); ++i) {
          if (i) out += ',';
          write(v.items[i], out);
        }
        ws(out);
        out += ']';
        break;
      case jv::type::object: {
        std::vector<std::pair<std::string, jv>> m = v.members;
        std::shuffle(m.begin(), m.end(), rng_);
        out += '{';
        for (std::size_t i = 0; i < m.size(); ++i) {
          if (i) out += ',';
          ws(out);
          string(m[i].first, out);
          ws(out);
          out += ':';
          if (top_level && m[i].first == "tools") {
            jv tools = m[i].second;
            std::shuffle(tools.items.begin(), tools.items.end(), rng_);
            write(tools, out);
          } else {
            write(m[i].second, out);
          }
        }
        ws(out);
        out += '}';
        break;
      }
    }
    ws(out);
  }

 private:
  void ws(std::string& out) {
    static const char* spaces[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    out += spaces[pick(0, 6)];
  }

  static jv integer(long value) {
    jv v = num(value);
    v.integer = true;
    return v;
  }

  void number(const jv& v, std::string& out) {
    if (v.integer) {
      out += std::to_string(v.mantissa);
      return;
    }
    // v = mantissa * 10^-scale; write it as digits * 10^(extra - scale) with `extra` zeros.
    const int extra = v.mantissa == 0 ? 0 : pick(0, 2);  // no "00"
    std::string digits = std::to_string(v.mantissa < 0 ? -v.mantissa : v.mantissa);
    digits.append(static_cast<std::size_t>(extra), '0');
    const int exp10 = -(v.scale + extra);
    if (v.mantissa < 0) out += '-';
    if (exp10 == 0 && pick(0, 1)) {
      out += digits;
      return;
    }
    if (pick(0, 1)) {
      out += digits + (pick(0, 1) ? "e" : "E") + std::to_string(exp10);
      return;
    }
    // Fixed point: insert the decimal point |exp10| digits from the right.
    const std::size_t frac = static_cast<std::size_t>(-exp10);
    if (digits.size() <= frac) digits.insert(0, frac - digits.size() + 1, '0');
    out += digits.substr(0, digits.size() - frac);
    out += '.';
    out += frac == 0 ? std::string("0") : digits.substr(digits.size() - frac);
  }

  void string(const std::string& s, std::string& out) {
    out += '"';
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      const bool escape = pick(0, 3) == 0;
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += escape ? "\\u000a" : "\\n";
      } else if (c == '\t') {
        out += escape ? "\\u0009" : "\\t";
      } else if (c == '/') {
        out += escape ? "\\/" : "/";
      } else if (c == '\xC3' && escape) {  // é (C3 A9)
        out += "\\u00E9";
        ++i;
      } else if (c == 'a' && escape) {
        out += "\\u0061";
      } else {
        out += c;
      }
    }
    out += '"';
  }

  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("property: every spelling of a random request has the same key, a text edit changes it") {
  generator gen(20260121);
  int multi_turn = 0;
  for (int iteration = 0; iteration < 200; ++iteration) {
    const jv req = gen.request();
    std::string a, b;
    gen.write(req, a, true);
    gen.write(req, b, true);
    CAPTURE(a);
    CAPTURE(b);
    const canonical::key ka = key_of(a);
    const canonical::key kb = key_of(b);
    CHECK(ka.full_hash == kb.full_hash);
    CHECK(ka.prefix_hash == kb.prefix_hash);
    CHECK(ka.params_hash == kb.params_hash);
    CHECK(ka.history_hash == kb.history_hash);
    CHECK(ka.namespace_hash == kb.namespace_hash);
    CHECK(ka.query_text == kb.query_text);
    if (!ka.single_turn) ++multi_turn;

    // One more character in the query changes the full key but not the namespace.
    jv edited = req;
    for (auto& [k, v] : edited.members) {
      if (k != "messages") continue;
      jv& content = v.items.back().members.back().second;
      if (content.t == jv::type::string) {
        content.s += "!";
      } else {
        content.items.back().members.back().second.s += "!";
      }
    }
    std::string c;
    gen.write(edited, c, true);
    const canonical::key kc = key_of(c);
    CHECK(kc.full_hash != ka.full_hash);
    CHECK(kc.namespace_hash == ka.namespace_hash);
  }
  CHECK(multi_turn > 20);  // the generator does exercise the history block
}

TEST_CASE("a query with an image part has no query text: the template and semantic tiers skip it") {
  const std::string text_only =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"}]}]})";
  const std::string with_image =
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},)"
      R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]})";
  tc::canonical::key a, b;
  std::string error;
  REQUIRE(tc::canonical::make_key(parsed(text_only), "s", "1", a, error));
  REQUIRE(tc::canonical::make_key(parsed(with_image), "s", "1", b, error));
  CHECK(a.query_text == "What is this?");
  CHECK(b.query_text.empty());
  CHECK(a.full_hash != b.full_hash);
}
