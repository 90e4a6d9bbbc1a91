// tcnode as its users see it: a real process on port 0, spoken to over HTTP. Covers the ready
// line, health, models, chat (plain and streamed), completions, embeddings, errors, keep-alive,
// graceful shutdown, an openai-type provider backed by a tcsim process, upstream failures, and
// the admin port's metrics.
#include <doctest/doctest.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

const std::string basic_config = server_toml() + sim_provider_toml();

// Every chat.completion.chunk of a stream, checked for shape; returns the joined content.
std::string check_chunks(const std::vector<rapidjson::Document>& chunks, bool expect_usage) {
  std::string content;
  int usage_chunks = 0;
  int finish_reasons = 0;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    REQUIRE(c.IsObject());
    CHECK(str_of(c, "object") == "chat.completion.chunk");
    CHECK(!str_of(c, "id").empty());
    CHECK(str_of(c, "model") == "sim-chat");
    REQUIRE(c.HasMember("choices"));
    REQUIRE(c["choices"].IsArray());
    bool has_usage = c.HasMember("usage") && c["usage"].IsObject();
    if (has_usage) {
      ++usage_chunks;
      // The usage chunk is the last one and carries no choices.
      CHECK(i + 1 == chunks.size());
      CHECK(c["choices"].Size() == 0);
    }
    for (const auto& ch : c["choices"].GetArray()) {
      REQUIRE(ch.HasMember("delta"));
      content += str_of(ch["delta"], "content");
      if (ch.HasMember("finish_reason") && ch["finish_reason"].IsString()) ++finish_reasons;
    }
  }
  CHECK(finish_reasons == 1);
  CHECK(usage_chunks == (expect_usage ? 1 : 0));
  return content;
}

}  // namespace

TEST_CASE("tcnode prints one ready line, serves health, and exits 0 on SIGTERM") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  auto kv = parse_kv(node.ready_line());
  CHECK(node.ready_line().rfind("ready data=", 0) == 0);
  CHECK(kv.count("data") == 1);
  CHECK(kv.count("admin") == 1);
  CHECK(parse_endpoint(kv["data"]).value_or(endpoint{}).host == "127.0.0.1");
  CHECK(node.data_port() != node.admin_port());

  for (const char* path : {"/healthz", "/readyz"}) {
    auto r = get(node.data_port(), path);
    INFO(path, " ", r.error, " ", r.body);
    CHECK(r.status == 200);
    CHECK(r.complete);
  }
  auto admin_health = get(node.admin_port(), "/healthz");
  CHECK(admin_health.status == 200);

  auto st = node.proc().stop(10s);
  INFO("stderr: ", node.log_tail());
  CHECK(st.exited);
  CHECK(st.code == 0);
  node.proc().drain_stdout(2s);
  CHECK(node.proc().stdout_lines().size() == 1);  // exactly one line on stdout
}

TEST_CASE("tcnode sent SIGTERM the moment it prints its ready line exits 0 at once") {
  // The admin port's thread may not have reached its accept loop yet: a node stopped then once
  // waited there for good (in CI once, here in about 1 of 50 starts in the allocator case below;
  // tests/node/admin.cpp reproduces the race itself). Both allocators, as that case has them.
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    node_process node;
    if (round % 2 == 1) node.set_env({"TC_ALLOCATOR=system"});
    REQUIRE_MESSAGE(node.start(basic_config), node.error());
    const exit_status st = node.proc().stop(5s);
    INFO("stderr: ", node.log_tail());
    CHECK(st.exited);
    REQUIRE(st.code == 0);
  }
}

TEST_CASE("tcnode with the default config lists its models") {
  node_process node;
  REQUIRE_MESSAGE(node.start_file(source_dir() + "/config/tokenschain.toml",
                                  {"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}),
                  node.error());
  auto r = get(node.data_port(), "/v1/models");
  INFO(r.error, " ", r.body);
  REQUIRE(r.status == 200);
  auto d = parse_json(r.body);
  REQUIRE(!d.HasParseError());
  CHECK(str_of(d, "object") == "list");
  REQUIRE(d["data"].IsArray());
  std::set<std::string> ids;
  for (const auto& m : d["data"].GetArray()) {
    CHECK(str_of(m, "object") == "model");
    ids.insert(str_of(m, "id"));
  }
  CHECK(ids.count("sim-chat") == 1);
  CHECK(ids.count("sim-chat-large") == 1);
  CHECK(ids.count("sim-embed") == 1);

  auto chat = post_json(node.data_port(), "/v1/chat/completions",
                        chat_body("sim-chat-large", "hello", "\"max_tokens\":4"), {}, 30s);
  CHECK(chat.status == 200);
}

TEST_CASE("tcnode --check-config accepts a good file and rejects a bad one with file:line:col") {
  temp_dir dir;
  std::string good = dir.write("good.toml", basic_config);
  std::string bad = dir.write("bad.toml",
                              "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = "
                              "\"lots\"\n");
  {
    process p;
    REQUIRE(p.start(bin_path("tcnode"), {"--check-config", good}));
    REQUIRE(p.wait_exit(15s));
    CHECK(p.status()->exited);
    CHECK(p.status()->code == 0);
  }
  {
    process p;
    process::options o;
    o.stderr_path = dir.path() + "/err.txt";
    REQUIRE(p.start(bin_path("tcnode"), {"--check-config", bad}, o));
    REQUIRE(p.wait_exit(15s));
    CHECK(p.status()->exited);
    CHECK(p.status()->code == 1);
    std::string err = read_file(o.stderr_path);
    INFO("stderr: ", err);
    CHECK(err.find(bad + ":3:") != std::string::npos);
  }
}

TEST_CASE("models endpoint lists the configured models") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  auto r = get(node.data_port(), "/v1/models");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").find("application/json") == 0);
  auto d = parse_json(r.body);
  REQUIRE(!d.HasParseError());
  std::set<std::string> ids;
  for (const auto& m : d["data"].GetArray()) ids.insert(str_of(m, "id"));
  CHECK(ids == std::set<std::string>{"sim-chat", "sim-embed"});
}

TEST_CASE("chat non-stream returns a chat.completion with usage and x-request-id") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  auto r = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "Say hello to the gateway."));
  INFO(r.error, " ", r.raw.substr(0, 2000));
  REQUIRE(r.status == 200);
  CHECK(r.complete);
  // req_ + the millisecond (12 hex digits) + 64 random bits (16): ids sort by time.
  const std::string id = r.header("x-request-id");
  CHECK(id.size() == 4 + 12 + 16);
  CHECK(id.rfind("req_", 0) == 0);
  CHECK(id.find_first_not_of("0123456789abcdef", 4) == std::string::npos);
  auto again = post_json(node.data_port(), "/v1/chat/completions",
                         chat_body("sim-chat", "Say hello to the gateway once more."));
  const std::string later = again.header("x-request-id");
  CHECK(later.substr(0, 16) >= id.substr(0, 16));
  CHECK(later != id);
  CHECK(r.header("content-type").find("application/json") == 0);
  auto d = parse_json(r.body);
  REQUIRE(!d.HasParseError());
  CHECK(str_of(d, "object") == "chat.completion");
  CHECK(!str_of(d, "id").empty());
  CHECK(str_of(d, "model") == "sim-chat");
  CHECK(d["created"].IsNumber());
  REQUIRE(d["choices"].IsArray());
  REQUIRE(d["choices"].Size() == 1);
  const auto& c = d["choices"][0];
  CHECK(c["index"].GetInt() == 0);
  CHECK(str_of(c["message"], "role") == "assistant");
  CHECK(!str_of(c["message"], "content").empty());
  CHECK(!str_of(c, "finish_reason").empty());
  REQUIRE(d["usage"].IsObject());
  int prompt = d["usage"]["prompt_tokens"].GetInt();
  int completion = d["usage"]["completion_tokens"].GetInt();
  CHECK(prompt > 0);
  CHECK(completion > 0);
  CHECK(d["usage"]["total_tokens"].GetInt() == prompt + completion);

  // Every response gets its own request id.
  auto r2 = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "again"));
  CHECK(r2.status == 200);
  CHECK(r2.header("x-request-id") != r.header("x-request-id"));

  // max_tokens bounds the completion and is reported as finish_reason "length".
  auto r3 = post_json(node.data_port(), "/v1/chat/completions",
                      chat_body("sim-chat", "Write a very long story.", "\"max_tokens\":3"));
  REQUIRE(r3.status == 200);
  auto d3 = parse_json(r3.body);
  REQUIRE(!d3.HasParseError());
  CHECK(d3["usage"]["completion_tokens"].GetInt() <= 3);
  CHECK(str_of(d3["choices"][0], "finish_reason") == "length");
}

TEST_CASE("chat stream is SSE ending in [DONE], the usage chunk comes only when asked") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());

  SUBCASE("without include_usage") {
    auto r = post_json(node.data_port(), "/v1/chat/completions",
                       chat_body("sim-chat", "Stream to me.", "\"stream\":true"));
    INFO(r.error, " ", r.raw.substr(0, 3000));
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(r.header("content-type").find("text/event-stream") == 0);
    CHECK(!r.header("x-request-id").empty());
    auto events = parse_sse(r.body);
    REQUIRE(events.size() >= 2);
    CHECK(events.back().data == "[DONE]");
    for (const auto& e : events) CHECK(e.event.empty());
    auto chunks = sse_json_chunks(r.body);
    CHECK(chunks.size() + 1 == events.size());
    std::string content = check_chunks(chunks, false);
    CHECK(!content.empty());
    // The first delta carries the assistant role.
    CHECK(str_of(chunks.front()["choices"][0]["delta"], "role") == "assistant");
  }
  SUBCASE("with stream_options.include_usage") {
    auto r = post_json(
        node.data_port(), "/v1/chat/completions",
        chat_body("sim-chat", "Stream to me.",
                  "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":12"));
    INFO(r.error, " ", r.raw.substr(0, 3000));
    REQUIRE(r.status == 200);
    auto events = parse_sse(r.body);
    REQUIRE(!events.empty());
    CHECK(events.back().data == "[DONE]");
    auto chunks = sse_json_chunks(r.body);
    REQUIRE(chunks.size() >= 2);
    check_chunks(chunks, true);
    const auto& usage = chunks.back()["usage"];
    REQUIRE(usage.IsObject());
    int completion = usage["completion_tokens"].GetInt();
    CHECK(completion > 0);
    CHECK(completion <= 12);
    CHECK(usage["total_tokens"].GetInt() == usage["prompt_tokens"].GetInt() + completion);
  }
}

TEST_CASE("completions and embeddings") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());

  auto c = post_json(node.data_port(), "/v1/completions",
                     R"({"model":"sim-chat","prompt":"Once upon a time","max_tokens":8})");
  INFO(c.error, " ", c.body);
  REQUIRE(c.status == 200);
  auto cd = parse_json(c.body);
  REQUIRE(!cd.HasParseError());
  CHECK(str_of(cd, "object") == "text_completion");
  REQUIRE(cd["choices"].IsArray());
  REQUIRE(cd["choices"].Size() == 1);
  CHECK(!str_of(cd["choices"][0], "text").empty());
  CHECK(cd["usage"]["completion_tokens"].GetInt() > 0);

  auto e = post_json(node.data_port(), "/v1/embeddings",
                     R"({"model":"sim-embed","input":["first text","second text"]})");
  INFO(e.error, " ", e.body.substr(0, 500));
  REQUIRE(e.status == 200);
  auto ed = parse_json(e.body);
  REQUIRE(!ed.HasParseError());
  CHECK(str_of(ed, "object") == "list");
  REQUIRE(ed["data"].IsArray());
  REQUIRE(ed["data"].Size() == 2);
  for (rapidjson::SizeType i = 0; i < 2; ++i) {
    const auto& item = ed["data"][i];
    CHECK(str_of(item, "object") == "embedding");
    CHECK(item["index"].GetUint() == i);
    REQUIRE(item["embedding"].IsArray());
    CHECK(item["embedding"].Size() == 256);
    double norm = 0;
    for (const auto& x : item["embedding"].GetArray()) norm += x.GetDouble() * x.GetDouble();
    CHECK(std::sqrt(norm) == doctest::Approx(1.0).epsilon(0.01));
  }
  CHECK(ed["usage"]["prompt_tokens"].GetInt() > 0);

  auto dims = post_json(node.data_port(), "/v1/embeddings",
                        R"({"model":"sim-embed","input":"x","dimensions":64})");
  REQUIRE(dims.status == 200);
  auto dd = parse_json(dims.body);
  REQUIRE(!dd.HasParseError());
  CHECK(dd["data"][0]["embedding"].Size() == 64);
}

TEST_CASE("unknown model is 404 model_not_found in the OpenAI envelope") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  auto r = post_json(node.data_port(), "/v1/chat/completions", chat_body("no-such-model", "hi"));
  INFO(r.body);
  CHECK(r.status == 404);
  CHECK(!r.header("x-request-id").empty());
  auto e = error_of(r.body);
  CHECK(e.valid);
  CHECK(e.code == "model_not_found");
  CHECK(e.type == "invalid_request_error");

  // An embedding model asked for chat (or the reverse) is not a server error.
  auto wrong_kind =
      post_json(node.data_port(), "/v1/embeddings", R"({"model":"sim-chat","input":"x"})");
  CHECK(wrong_kind.status >= 400);
  CHECK(wrong_kind.status < 500);
  CHECK(error_of(wrong_kind.body).valid);
}

TEST_CASE("keep-alive: several requests on one connection") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  for (int i = 0; i < 5; ++i) {
    CAPTURE(i);
    std::string req = i % 2 == 0 ? make_request("POST", "/v1/chat/completions",
                                                chat_body("sim-chat", "hi", "\"max_tokens\":4"))
                                 : make_request("GET", "/v1/models");
    REQUIRE(c.send_all(req));
    auto r = c.read_response();
    INFO(r.error);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    CHECK(r.header("connection") != "close");
  }
  // A streamed response leaves the connection usable too.
  REQUIRE(
      c.send_all(make_request("POST", "/v1/chat/completions",
                              chat_body("sim-chat", "hi", "\"stream\":true,\"max_tokens\":4"))));
  auto s = c.read_response();
  REQUIRE(s.status == 200);
  CHECK(s.complete);
  REQUIRE(c.send_all(make_request("GET", "/healthz")));
  CHECK(c.read_response().status == 200);
  CHECK(!c.peer_closed());
}

TEST_CASE("openai-type provider backed by a tcsim process works end to end") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "2000"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());

  auto before = sim.metric("tcsim_requests_total");
  REQUIRE(before.has_value());

  auto r = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "Through a real upstream."));
  INFO(r.error, " ", r.body, " node: ", node.log_tail(), " sim: ", sim.log_tail());
  REQUIRE(r.status == 200);
  auto d = parse_json(r.body);
  REQUIRE(!d.HasParseError());
  CHECK(str_of(d, "object") == "chat.completion");
  CHECK(!str_of(d["choices"][0]["message"], "content").empty());
  CHECK(d["usage"]["completion_tokens"].GetInt() > 0);
  CHECK(!r.header("x-request-id").empty());

  auto s = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "Stream through a real upstream.",
                               "\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
  INFO(s.error, " ", s.body.substr(0, 2000));
  REQUIRE(s.status == 200);
  auto events = parse_sse(s.body);
  REQUIRE(!events.empty());
  CHECK(events.back().data == "[DONE]");
  check_chunks(sse_json_chunks(s.body), true);

  // Fields the gateway does not act on still make a good request (they are forwarded).
  auto x = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "extras",
                               "\"user\":\"u-1\",\"logit_bias\":{\"50256\":-100},"
                               "\"x_vendor_option\":{\"deep\":[1,2,{\"a\":null}]},\"seed\":7"));
  INFO(x.body);
  CHECK(x.status == 200);

  auto e = post_json(node.data_port(), "/v1/embeddings", R"({"model":"sim-embed","input":"x"})");
  CHECK(e.status == 200);

  auto after = sim.metric("tcsim_requests_total");
  REQUIRE(after.has_value());
  CHECK(*after >= *before + 4);
}

TEST_CASE("an upstream killed mid-stream ends the client's stream with an error event") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "10"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());

  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  REQUIRE(c.send_all(make_request(
      "POST", "/v1/chat/completions",
      chat_body("sim-chat", "A slow answer please.", "\"stream\":true,\"max_tokens\":200"))));
  auto head = c.read_head(10s);
  INFO(head.error, " ", node.log_tail());
  REQUIRE(head.status == 200);
  std::string body = c.read_body_until("\n\n", 10s);
  REQUIRE(body.find("data: ") != std::string::npos);

  sim.proc().kill9();
  body += c.read_body_until("event: error", 10s);
  // Whatever follows the error event (end of stream or a close) must arrive promptly.
  for (int i = 0; i < 100 && !c.body_done() && !c.peer_closed(); ++i) body += c.read_body_some(5s);
  INFO("stream: ", body);
  CHECK(body.find("event: error") != std::string::npos);
  CHECK(body.find("[DONE]") == std::string::npos);
  CHECK((c.body_done() || c.peer_closed()));
  bool error_event_is_envelope = false;
  for (const auto& ev : parse_sse(body))
    if (ev.event == "error") error_event_is_envelope = error_of(ev.data).valid;
  CHECK(error_event_is_envelope);
  auto m = get(node.admin_port(), "/metrics");
  CHECK(metric_sum(m.body, "tc_streams_cut_total").value_or(0) >= 1);

  // The node survives and reports the dead upstream to the next caller (502, or 503 once a
  // circuit breaker has marked every upstream down).
  auto next = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"));
  CHECK((next.status == 502 || next.status == 503));
  CHECK(error_of(next.body).valid);
  CHECK(node.proc().running());
}

TEST_CASE("an unreachable upstream is 502 quickly, a silent one is 504") {
  SUBCASE("connection refused -> 502") {
    uint16_t dead = unused_port();
    REQUIRE(dead != 0);
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(dead)), node.error());
    auto t0 = std::chrono::steady_clock::now();
    auto r = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"));
    auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.error, " ", r.body);
    CHECK(r.status == 502);
    auto e = error_of(r.body);
    CHECK(e.valid);
    CHECK((e.code == "upstream_error" || e.type == "upstream_error"));
    CHECK(took < 3s);
    // A stream that fails before its first byte is a plain 502, not a broken stream.
    auto s = post_json(node.data_port(), "/v1/chat/completions",
                       chat_body("sim-chat", "hi", "\"stream\":true"));
    CHECK(s.status == 502);
  }
  SUBCASE("no first byte within first_byte_timeout_ms -> 504") {
    sim_process sim;
    REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5000", "--tokens-per-sec", "100"}), sim.error());
    node_process node;
    REQUIRE_MESSAGE(
        node.start(server_toml() + openai_provider_toml(sim.port(), "first_byte_timeout_ms = 300")),
        node.error());
    auto t0 = std::chrono::steady_clock::now();
    auto r = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"));
    auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.error, " ", r.body);
    CHECK(r.status == 504);
    CHECK(error_of(r.body).valid);
    CHECK(took < 3s);
  }
}

TEST_CASE("admin /metrics counts requests") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  for (int i = 0; i < 3; ++i)
    REQUIRE(post_json(node.data_port(), "/v1/chat/completions",
                      chat_body("sim-chat", "count me", "\"max_tokens\":2"))
                .status == 200);
  REQUIRE(post_json(node.data_port(), "/v1/chat/completions", chat_body("nope", "x")).status ==
          404);
  auto m = get(node.admin_port(), "/metrics");
  INFO(m.error, " ", m.body.substr(0, 4000));
  REQUIRE(m.status == 200);
  CHECK(m.header("content-type").find("text/plain") == 0);
  auto total = metric_sum(m.body, "tc_requests_total");
  REQUIRE_MESSAGE(total.has_value(), "no tc_requests_total on /metrics");
  CHECK(*total >= 4);
  CHECK(metric_sum(m.body, "tc_requests_total", "model=\"sim-chat\"").value_or(0) == 3);
  // A made-up model name never becomes a label value: it is counted as "other".
  CHECK(m.body.find("nope") == std::string::npos);
  CHECK(metric_sum(m.body, "tc_requests_total", "model=\"other\"").value_or(0) == 1);
}

TEST_CASE("admin /metrics counts the tokens upstreams report, cached prompt tokens included") {
  node_process node;
  REQUIRE_MESSAGE(
      node.start(server_toml() + sim_provider_toml(1, 2000, "prefix_cache_entries = 16\n")),
      node.error());
  auto ask = [&](const std::string& user) {
    const std::string body =
        R"({"model":"sim-chat","max_tokens":3,"messages":[)"
        R"({"role":"system","content":"You answer questions about the weather."},)"
        R"({"role":"user","content":")" +
        user + R"("}]})";
    response r = post_json(node.data_port(), "/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    auto d = parse_json(r.body);
    REQUIRE(d.IsObject());
    return std::pair<uint32_t, uint32_t>{
        d["usage"]["prompt_tokens"].GetUint(),
        d["usage"]["prompt_tokens_details"]["cached_tokens"].GetUint()};
  };
  const auto [p1, c1] = ask("Will it rain?");
  const auto [p2, c2] = ask("Is it windy today?");
  CHECK(c1 == 0);  // the upstream's prefix cache saw the system prompt for the first time
  CHECK(c2 > 0);
  auto m = get(node.admin_port(), "/metrics");
  REQUIRE(m.status == 200);
  INFO(m.body.substr(0, 3000));
  CHECK(metric_sum(m.body, "tc_upstream_tokens_total", "kind=\"prompt\"").value_or(0) == p1 + p2);
  CHECK(metric_sum(m.body, "tc_upstream_tokens_total", "kind=\"cached\"").value_or(0) == c2);
  CHECK(metric_sum(m.body, "tc_upstream_tokens_total", "kind=\"completion\"").value_or(0) == 6);
}

TEST_CASE("SIGTERM lets an in-flight stream finish, stops accepting, and exits 0") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(5, 100)), node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  REQUIRE(c.send_all(
      make_request("POST", "/v1/chat/completions",
                   chat_body("sim-chat", "finish me", "\"stream\":true,\"max_tokens\":40"))));
  REQUIRE(c.read_head(10s).status == 200);
  std::string body = c.read_body_until("\n\n", 10s);
  REQUIRE(body.find("data: ") != std::string::npos);

  node.proc().signal(SIGTERM);
  body += c.read_body_until("[DONE]", 10s);
  for (int i = 0; i < 10 && !c.body_done() && !c.peer_closed(); ++i) body += c.read_body_some(2s);
  INFO("stream: ", body.substr(body.size() > 1500 ? body.size() - 1500 : 0));
  CHECK(body.find("data: [DONE]") != std::string::npos);
  CHECK(body.find("event: error") == std::string::npos);
  CHECK(c.body_done());

  bool refused = eventually(
      [&] {
        http_connection probe;
        return !probe.connect(node.data_port(), 500ms) ||
               !probe.send_all(make_request("GET", "/healthz")) ||
               probe.read_response(2s).status != 200;
      },
      5s, 20ms);
  CHECK_MESSAGE(refused, "the data port still served after SIGTERM");
  REQUIRE(node.proc().wait_exit(15s));
  INFO("stderr: ", node.log_tail());
  CHECK(node.proc().status()->exited);
  CHECK(node.proc().status()->code == 0);
}

TEST_CASE("request shapes real clients send are accepted") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  auto ok = [&](const std::string& body) {
    auto r = post_json(node.data_port(), "/v1/chat/completions", body);
    INFO("request: ", body.substr(0, 300), " -> ", r.error, " ", r.body.substr(0, 300));
    CHECK(r.status == 200);
    return r;
  };
  // Content as an array of parts.
  ok(R"({"model":"sim-chat","messages":[{"role":"user","content":[{"type":"text","text":"hi"},)"
     R"({"type":"text","text":"there"}]}],"max_tokens":3})");
  // Non-ASCII text, raw and escaped (with a surrogate pair).
  ok(chat_body("sim-chat", "你好，世界 😀 \\u4f60\\ud83d\\ude00", "\"max_tokens\":3"));
  // Optional fields sent as null, as some SDKs do.
  ok(chat_body("sim-chat", "hi",
               "\"max_tokens\":null,\"stream\":null,\"temperature\":null,\"tools\":null,"
               "\"stop\":null,\"user\":null"));
  // A whole conversation with system, developer, assistant turns and a name.
  ok(R"({"model":"sim-chat","messages":[{"role":"system","content":"be brief"},)"
     R"({"role":"developer","content":"really"},{"role":"user","name":"ann","content":"q1"},)"
     R"({"role":"assistant","content":"a1"},{"role":"user","content":"q2"}],"max_tokens":3})");
  // A query string on the path (as Azure-style clients add).
  {
    auto r = post_json(node.data_port(), "/v1/chat/completions?api-version=2024-01-01",
                       chat_body("sim-chat", "hi", "\"max_tokens\":2"));
    CHECK(r.status == 200);
  }
  // A chunked request body.
  {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string body = chat_body("sim-chat", "chunked upload", "\"max_tokens\":2");
    std::string req =
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: "
        "application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    std::size_t half = body.size() / 2;
    char line[32];
    std::snprintf(line, sizeof line, "%zx\r\n", half);
    req += line + body.substr(0, half) + "\r\n";
    std::snprintf(line, sizeof line, "%zx\r\n", body.size() - half);
    req += line + body.substr(half) + "\r\n0\r\n\r\n";
    REQUIRE(c.send_all(req));
    auto r = c.read_response();
    INFO(r.error, " ", r.body);
    CHECK(r.status == 200);
  }
  // Expect: 100-continue (curl sends it for large bodies): 100 first, then the answer.
  {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string body = chat_body("sim-chat", "expecting", "\"max_tokens\":2");
    std::string req =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nExpect: 100-continue\r\nContent-Length: " +
        std::to_string(body.size()) + "\r\n\r\n";
    REQUIRE(c.send_all(req));
    auto interim = c.read_head(2s);
    INFO(interim.error);
    CHECK(interim.status == 100);
    REQUIRE(c.send_all(body));
    auto r = c.read_response();
    CHECK(r.status == 200);
  }
  // HTTP/1.0 without keep-alive: an answer, then the server closes.
  {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all("GET /v1/models HTTP/1.0\r\n\r\n"));
    auto r = c.read_response();
    CHECK(r.status == 200);
    CHECK(r.complete);
    CHECK(c.wait_closed(3s));
  }
}

TEST_CASE("upstream answers: errors map to 502, client errors pass through") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "2000"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());

  // A request only the upstream can judge: its 400 reaches the client as a 400.
  auto bad = post_json(node.data_port(), "/v1/chat/completions",
                       chat_body("sim-chat", "hi",
                                 R"("tools":[{"type":"function","function":{"name":"f"}}],)"
                                 R"("tool_choice":{"type":"function","function":{"name":"g"}})"));
  INFO(bad.body);
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "tool_choice");

  // Every upstream call fails with 503: the client gets 502 upstream_error, stream or not.
  auto set = post_json(sim.port(), "/sim/settings", R"({"error_rate":1.0})");
  REQUIRE(set.status == 200);
  auto r = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"));
  INFO(r.body);
  CHECK(r.status == 502);
  CHECK(error_of(r.body).code == "upstream_error");
  auto s = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "hi", "\"stream\":true"));
  CHECK(s.status == 502);
  CHECK(error_of(s.body).valid);

  // The upstream recovers: so does the gateway.
  REQUIRE(post_json(sim.port(), "/sim/settings", R"({"error_rate":0.0})").status == 200);
  bool recovered = eventually(
      [&] {
        return post_json(node.data_port(), "/v1/chat/completions",
                         chat_body("sim-chat", "hi", "\"max_tokens\":2"))
                   .status == 200;
      },
      10s, 100ms);
  CHECK(recovered);
}

TEST_CASE("an upstream killed during a non-streamed call gives 502") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "10"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  REQUIRE(c.send_all(make_request("POST", "/v1/chat/completions",
                                  chat_body("sim-chat", "slow", "\"max_tokens\":100"))));
  REQUIRE(eventually([&] { return sim.metric("tcsim_active_sequences").value_or(0) >= 1; }, 5s));
  sim.proc().kill9();
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.read_response(10s);
  INFO(r.error, " ", r.body, " node: ", node.log_tail());
  CHECK(r.status == 502);
  CHECK(error_of(r.body).code == "upstream_error");
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("concurrent streams each get their own complete answer") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(5, 500)), node.error());
  const int n = 24;
  std::vector<http_connection> conns(n);
  for (int i = 0; i < n; ++i) {
    REQUIRE(conns[i].connect(node.data_port()));
    REQUIRE(conns[i].send_all(make_request(
        "POST", "/v1/chat/completions",
        chat_body(
            "sim-chat", "stream number " + std::to_string(i),
            "\"stream\":true,\"max_tokens\":20,\"stream_options\":{\"include_usage\":true}"))));
  }
  std::set<std::string> ids;
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    auto r = conns[i].read_response(20s);
    REQUIRE(r.status == 200);
    CHECK(r.complete);
    auto events = parse_sse(r.body);
    REQUIRE(!events.empty());
    CHECK(events.back().data == "[DONE]");
    auto chunks = sse_json_chunks(r.body);
    REQUIRE(!chunks.empty());
    std::string id = str_of(chunks.front(), "id");
    for (const auto& ch : chunks) CHECK(str_of(ch, "id") == id);  // no cross-talk
    ids.insert(id);
    CHECK(chunks.back()["usage"]["completion_tokens"].GetInt() > 0);
  }
  CHECK(ids.size() == static_cast<std::size_t>(n));
}

TEST_CASE("SIGTERM does not wait for connections that have no request in progress") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  http_connection kept;  // keep-alive, after one answered request
  REQUIRE(kept.connect(node.data_port()));
  REQUIRE(kept.send_all(make_request("GET", "/healthz")));
  REQUIRE(kept.read_response().status == 200);
  http_connection silent;  // connected, never sent a byte
  REQUIRE(silent.connect(node.data_port()));
  REQUIRE(eventually([&] { return node_metric(node, "tc_http_connections_open") == 2.0; }, 5s));

  auto t0 = std::chrono::steady_clock::now();
  node.proc().signal(SIGTERM);
  CHECK(kept.wait_closed(5s));
  CHECK(silent.wait_closed(5s));
  REQUIRE(node.proc().wait_exit(15s));
  auto took = std::chrono::steady_clock::now() - t0;
  INFO("shutdown took ", std::chrono::duration_cast<std::chrono::milliseconds>(took).count(),
       " ms; stderr: ", node.log_tail());
  CHECK(node.proc().status()->code == 0);
  CHECK(took < 3s);  // not the 10 s grace, nor the 10 s header timeout
}

TEST_CASE("start-up failures exit 1 with no ready line and a clear message") {
  temp_dir dir;
  auto run = [&](const std::vector<std::string>& args, const std::string& name) {
    process p;
    process::options o;
    o.stderr_path = dir.path() + "/" + name + ".stderr";
    REQUIRE(p.start(bin_path("tcnode"), args, o));
    CHECK(!p.wait_for_line("ready ", 15s).has_value());
    REQUIRE(p.wait_exit(15s));
    CHECK(p.status()->exited);
    CHECK(p.status()->code == 1);
    std::string err = read_file(o.stderr_path);
    CHECK_MESSAGE(err.find("Sanitizer") == std::string::npos, "sanitizer report: ", err);
    return err;
  };
  SUBCASE("the data port is taken") {
    uint16_t port = 0;
    int fd = listen_loopback(port, 1);
    REQUIRE(fd >= 0);
    std::string addr = "127.0.0.1:" + std::to_string(port);
    std::string cfg = dir.write("ok.toml", basic_config);
    std::string err = run({"--config", cfg, "--listen", addr}, "busy");
    ::close(fd);
    CHECK(err.find(addr) != std::string::npos);
  }
  SUBCASE("the config has an unknown key") {
    std::string cfg = dir.write("bad.toml", server_toml("bogus_key = 1") + sim_provider_toml());
    std::string err = run({"--config", cfg}, "bad");
    CHECK(err.find(cfg + ":4:") != std::string::npos);
    CHECK(err.find("bogus_key") != std::string::npos);
  }
  SUBCASE("the config file does not exist") {
    std::string err = run({"--config", dir.path() + "/missing.toml"}, "missing");
    CHECK(err.find("missing.toml") != std::string::npos);
  }
}

namespace {

/// User plus system CPU time of a process so far, in clock ticks (/proc/PID/stat).
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {  // fields 14 and 15: utime, stime
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

}  // namespace

TEST_CASE("the loops' low-load polling stops after the last request: an idle node uses no CPU") {
  node_process node;
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  for (int i = 0; i < 20; ++i)
    REQUIRE(post_json(node.data_port(), "/v1/chat/completions",
                      chat_body("sim-chat", "one at a time " + std::to_string(i)))
                .status == 200);
  // Polling stops server.poll_spin_us (100 us) after the last event; 100 ms is a wide margin.
  std::this_thread::sleep_for(100ms);
  const long before = cpu_ticks(node.proc().pid());
  REQUIRE(before >= 0);
  std::this_thread::sleep_for(1000ms);  // the window measured, not a wait for readiness
  const long used = cpu_ticks(node.proc().pid()) - before;
  // A loop that kept polling would use ~100 ticks (a core) here; an idle node a few at most
  // (the 1 s gauge timer, the actor scheduler's clock).
  CHECK(used < 20);
}

namespace {

struct thread_info {
  std::string name;
  int policy = 0;  ///< SCHED_OTHER, SCHED_BATCH ...
  int nice = 0;
};

/// Each thread of process `pid`: its name, Linux scheduling policy and nice value.
std::vector<thread_info> node_threads(pid_t pid) {
  std::vector<thread_info> out;
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(task_dir)) {
    std::ifstream comm(entry.path() / "comm");
    thread_info t;
    std::getline(comm, t.name);
    const auto tid = static_cast<pid_t>(std::stol(entry.path().filename()));
    t.policy = sched_getscheduler(tid);
    errno = 0;
    t.nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    // A thread that ended meanwhile: skipped.
    if (t.policy >= 0 && !(t.nice == -1 && errno != 0)) out.push_back(std::move(t));
  }
  return out;
}

}  // namespace

TEST_CASE(
    "actor threads run under SCHED_BATCH and the I/O loops do not, unless thread_policy is "
    "normal") {
  for (const char* policy : {"", "normal"}) {
    CAPTURE(policy);
    const std::string actors = *policy ? std::string("[actors]\nthread_policy = \"normal\"\n") : "";
    node_process node;
    REQUIRE_MESSAGE(node.start(basic_config + actors), node.error());
    // One request, so every kind of thread has started and run.
    REQUIRE(post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "policy"))
                .status == 200);
    int actor_threads = 0, loops = 0, other_threads = 0;
    for (const auto& t : node_threads(node.proc().pid())) {
      CAPTURE(t.name);
      if (t.name.rfind("caf.", 0) == 0) {
        ++actor_threads;
        CHECK(t.policy == (*policy ? SCHED_OTHER : SCHED_BATCH));
      } else if (t.name.rfind("tc.io.", 0) == 0) {
        ++loops;
        CHECK(t.policy == SCHED_OTHER);
      } else if (t.name == "tcnode") {
        ++other_threads;
        CHECK(t.policy == SCHED_OTHER);  // the main thread, the admin port's threads
      }
    }
    CHECK(actor_threads >= 3);  // a scheduler worker, its clock, the detached actors
    CHECK(loops == 1);          // server.io_threads
    CHECK(other_threads >= 1);  // at least the main thread
  }
}

TEST_CASE("server.io_nice sets the nice of the I/O loop threads and of no other thread") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml("io_threads = 2\nio_nice = 3") + sim_provider_toml()),
                  node.error());
  REQUIRE(
      post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "nice")).status ==
      200);
  int loops = 0;
  for (const auto& t : node_threads(node.proc().pid())) {
    CAPTURE(t.name);
    if (t.name.rfind("tc.io.", 0) == 0) {
      ++loops;
      CHECK(t.nice == 3);
    } else {
      CHECK(t.nice == 0);
    }
  }
  CHECK(loops == 2);
}

TEST_CASE("tcnode's small allocations come from its thread caches unless TC_ALLOCATOR=system") {
  for (const char* choice : {"", "system"}) {
    CAPTURE(choice);
    node_process node;
    if (*choice) node.set_env({std::string("TC_ALLOCATOR=") + choice});
    REQUIRE_MESSAGE(node.start(basic_config), node.error());
    for (int i = 0; i < 20; ++i)
      REQUIRE(post_json(node.data_port(), "/v1/chat/completions",
                        chat_body("sim-chat", "allocator " + std::to_string(i)))
                  .status == 200);
    const response m = get(node.admin_port(), "/metrics");
    REQUIRE(m.status == 200);
    const double slabs = metric_sum(m.body, "tc_allocator_bytes", "slabs").value_or(-1);
#if TC_TCNODE_MALLOC
    if (*choice)
      CHECK(slabs == 0);  // every block came from glibc
    else
      CHECK(slabs > 0);
#else
    CHECK(slabs == 0);  // a sanitizer build: the sanitizer's malloc, not ours
#endif
    const exit_status end = node.stop();  // threads exit and hand their caches back cleanly
    CHECK(end.exited);
    CHECK(end.code == 0);
  }
}

TEST_CASE("tcnode says in its log when its allocator is off without being asked") {
#if TC_TCNODE_MALLOC
  // 8 GiB of address space holds the node but not the allocator's 64 GiB range: glibc serves,
  // the node works, and the log says why once. (Not under a sanitizer: its shadow memory needs
  // terabytes of address space, and its build has no shim.)
  node_process node;
  node.set_address_space_limit(std::size_t{8} << 30);
  REQUIRE_MESSAGE(node.start(basic_config), node.error());
  CHECK(post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "no range"))
            .status == 200);
  const std::string log = node.log();
  CHECK(log.find("\"event\":\"allocator_fallback\"") != std::string::npos);
  CHECK(log.find("RLIMIT_AS") != std::string::npos);
  CHECK(node.stop().code == 0);
#endif

  node_process asked;  // TC_ALLOCATOR=system is a choice, not a fallback; a typo is named
  asked.set_env({"TC_ALLOCATOR=system"});
  REQUIRE_MESSAGE(asked.start(basic_config), asked.error());
  CHECK(asked.log().find("allocator_fallback") == std::string::npos);
  CHECK(asked.stop().code == 0);
#if TC_TCNODE_MALLOC
  node_process typo;
  typo.set_env({"TC_ALLOCATOR=glibc"});
  REQUIRE_MESSAGE(typo.start(basic_config), typo.error());
  CHECK(typo.log().find("\"event\":\"allocator_setting_unknown\"") != std::string::npos);
  CHECK(typo.stop().code == 0);
#endif
}
