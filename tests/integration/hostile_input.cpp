// tcnode against clients that misbehave: bad JSON, wrong types, deep nesting, invalid UTF-8,
// oversized bodies and headers, slow and half-open clients, clients that vanish, connection
// storms and pipelining. Each case gets its documented answer and the node keeps serving.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

// Limits small enough to reach quickly; timeouts short enough for a test.
const std::string hostile_config =
    server_toml(
        "max_body_bytes = 65536\nmax_header_bytes = 8192\nheader_timeout_ms = 300\n"
        "body_timeout_ms = 300\nidle_timeout_ms = 2000\n") +
    sim_provider_toml();

// The node still answers a normal chat request, holds nothing in flight afterwards, and shuts
// down cleanly (exit 0: under sanitizers that also means no leak and no memory error).
void check_still_serves(node_process& node) {
  auto r = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "still there?", "\"max_tokens\":4"), {}, 10s);
  INFO("follow-up request: ", r.error, " ", r.body.substr(0, 300), " stderr: ", node.log_tail());
  CHECK(r.status == 200);
  REQUIRE(node.proc().running());
  std::string busy = wait_node_idle(node, 5s);
  CHECK_MESSAGE(busy.empty(), "still in flight: ", busy);
  auto st = node.stop();
  CHECK_MESSAGE((st.exited && st.code == 0), "node ended with ", st.describe());
}

void check_400(node_process& node, const std::string& body, const std::string& param = {}) {
  auto r = post_json(node.data_port(), "/v1/chat/completions", body, {}, 10s);
  INFO("request: ", body.substr(0, 200), " -> ", r.status, " ", r.error, " ",
       r.body.substr(0, 400));
  CHECK(r.status == 400);
  auto e = error_of(r.body);
  CHECK(e.valid);
  CHECK(e.type == "invalid_request_error");
  if (!param.empty()) CHECK(e.param == param);
}

}  // namespace

TEST_CASE("malformed JSON is 400 invalid_request_error") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  for (const char* body :
       {"{\"model\":", "not json at all", "{\"model\":\"sim-chat\",\"messages\":[}",
        "{\"model\":\"sim-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]} trailing",
        "{\"model\":\"sim-chat\" \"messages\":[]}", "{'model':'sim-chat'}", "", "null", "[]",
        "\"just a string\"",
        "{\"model\":\"sim-chat\",\"messages\":[{\"role\":\"user\",\"content\":"
        "\"\\x41\"}]}"}) {
    check_400(node, body);
  }
  check_still_serves(node);
}

TEST_CASE("wrong field types and missing fields are 400 naming the param") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  check_400(node, R"({"model":"sim-chat","messages":"hi"})", "messages");
  check_400(node, R"({"model":5,"messages":[{"role":"user","content":"hi"}]})", "model");
  check_400(node, R"({"messages":[{"role":"user","content":"hi"}]})", "model");
  check_400(node, R"({"model":"sim-chat"})", "messages");
  check_400(node, chat_body("sim-chat", "hi", "\"max_tokens\":\"ten\""), "max_tokens");
  check_400(node, chat_body("sim-chat", "hi", "\"stream\":\"yes\""), "stream");
  check_400(node, chat_body("sim-chat", "hi", "\"temperature\":\"hot\""), "temperature");
  check_400(node, chat_body("sim-chat", "hi", "\"max_tokens\":-5"), "max_tokens");
  check_400(node, R"({"model":"sim-chat","messages":[42]})");
  check_400(node, R"({"model":"sim-chat","messages":[{"role":"user","content":7}]})");
  check_400(node, R"({"model":"sim-chat","messages":[]})", "messages");
  check_400(node, R"({"model":"sim-chat","messages":[{"role":"robot","content":"hi"}]})");
  // Values out of range or beyond what a double holds are refused, never trusted.
  check_400(node, chat_body("sim-chat", "hi", "\"max_tokens\":4294967296"), "max_tokens");
  check_400(node, chat_body("sim-chat", "hi", "\"max_tokens\":1e400"));
  check_400(node, chat_body("sim-chat", "hi", "\"max_tokens\":2.5"), "max_tokens");
  check_400(node, chat_body("sim-chat", "hi", "\"n\":0"), "n");
  check_400(node, chat_body("sim-chat", "hi", "\"n\":100000,\"max_tokens\":1"), "n");
  check_400(node, chat_body("sim-chat", "hi", "\"temperature\":1e308"), "temperature");

  // Embeddings and completions validate their own fields.
  auto e = post_json(node.data_port(), "/v1/embeddings", R"({"model":"sim-embed","input":{}})");
  CHECK(e.status == 400);
  CHECK(error_of(e.body).param == "input");
  auto c = post_json(node.data_port(), "/v1/completions", R"({"model":"sim-chat","prompt":5})");
  CHECK(c.status == 400);
  CHECK(error_of(c.body).param == "prompt");
  check_still_serves(node);
}

namespace {

const int deep = 100000;

std::string deep_arrays() {
  return std::string(deep, '[') + std::string(deep, ']');
}

std::string deep_objects() {
  std::string s;
  for (int i = 0; i < deep; ++i) s += "{\"a\":";
  return s + "1" + std::string(deep, '}');
}

}  // namespace

TEST_CASE("100,000-deep nesting where the gateway reads is 400 and the node stays alive") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml()), node.error());
  check_400(node, deep_arrays());
  check_400(node, deep_objects());
  check_400(node, R"({"model":"sim-chat","messages":)" + deep_arrays() + "}");
  check_400(node,
            R"({"model":"sim-chat","messages":[{"role":"user","content":)" + deep_arrays() + "}]}");
  check_still_serves(node);
}

TEST_CASE("100,000-deep nesting in a field the gateway passes through is 400 too") {
  // The contract bounds nesting for the whole body: a field the gateway does not read would
  // otherwise carry the deep document to the upstream (and to anything that walks the body).
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml()), node.error());
  check_400(node, chat_body("sim-chat", "hi", "\"metadata\":" + deep_objects()));
  check_400(node, chat_body("sim-chat", "hi", "\"x_unknown\":" + deep_arrays()));
  check_still_serves(node);
}

TEST_CASE("invalid UTF-8 is 400") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  check_400(node, chat_body("sim-chat", "bad \xff\xfe bytes"));
  check_400(node, chat_body("sim-chat", "overlong \xc0\xaf slash"));
  check_400(node, chat_body("sim-chat", "truncated \xe2\x82"));
  check_400(node, chat_body("sim-chat", "surrogate \xed\xa0\x80 half"));
  check_still_serves(node);
}

TEST_CASE("a body over max_body_bytes is 413, by Content-Length and by chunks") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());

  SUBCASE("Content-Length over the limit") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string body = chat_body("sim-chat", std::string(1'000'000, 'a'));
    std::string req = make_request("POST", "/v1/chat/completions", body);
    c.send_until_answered(req, 16384, 20ms, 10s);
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.body);
    CHECK(r.status == 413);
    CHECK(error_of(r.body).code == "request_too_large");
  }
  SUBCASE("chunked body over the limit") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string req =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        "application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string piece = "{\"model\":\"sim-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"";
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
    req += size_line + piece + "\r\n";
    std::string filler(8192, 'b');
    for (int i = 0; i < 20; ++i) req += "2000\r\n" + filler + "\r\n";
    req += "4\r\n\"}]}\r\n0\r\n\r\n";
    c.send_until_answered(req, 8192, 20ms, 10s);
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.body);
    CHECK(r.status == 413);
    CHECK(error_of(r.body).code == "request_too_large");
  }
  SUBCASE("a body of exactly max_body_bytes is accepted") {
    std::string head = chat_body("sim-chat", "", "\"max_tokens\":2");
    std::string words;
    for (int i = 0; i < 100000 && words.size() + head.size() < 65536; ++i) words += "hello ";
    std::string body = chat_body("sim-chat", words, "\"max_tokens\":2");
    body = chat_body("sim-chat", words.substr(0, words.size() - (body.size() - 65536)),
                     "\"max_tokens\":2");
    REQUIRE(body.size() == 65536);
    auto r = post_json(node.data_port(), "/v1/chat/completions", body);
    INFO(r.error, " ", r.body.substr(0, 300));
    CHECK(r.status == 200);
  }
  check_still_serves(node);
}

TEST_CASE("headers over max_header_bytes are 431") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  SUBCASE("one huge header") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string req =
        "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(64 * 1024, 'h') +
        "\r\n\r\n";
    c.send_until_answered(req, 4096, 20ms, 10s);
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.raw.substr(0, 300));
    CHECK(r.status == 431);
  }
  SUBCASE("many small headers") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string req = "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 2000; ++i) req += "X-H" + std::to_string(i) + ": v\r\n";
    req += "\r\n";
    c.send_until_answered(req, 4096, 20ms, 10s);
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.raw.substr(0, 300));
    CHECK(r.status == 431);
  }
  check_still_serves(node);
}

TEST_CASE("request smuggling shapes and bad framing are rejected") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  std::string body = chat_body("sim-chat", "hi");
  std::vector<std::string> reqs = {
      // Both Content-Length and Transfer-Encoding.
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      // Non-numeric Content-Length.
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" + body,
      // Not HTTP at all.
      "HELLO THERE\r\n\r\n",
      // Bad chunk size.
      "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  for (const auto& req : reqs) {
    CAPTURE(req);
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(req));
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.raw.substr(0, 300));
    // A 400 then a close; a server may also just close on bytes that are not HTTP.
    if (r.status != 0) {
      CHECK(r.status == 400);
    } else {
      CHECK(c.peer_closed());
    }
    CHECK(c.wait_closed(3s));
  }
  check_still_serves(node);
}

TEST_CASE("unknown paths and wrong methods get the error envelope") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  auto r = get(node.data_port(), "/v1/nothing-here");
  CHECK(r.status == 404);
  CHECK(error_of(r.body).valid);
  auto m = get(node.data_port(), "/v1/chat/completions");
  CHECK((m.status == 405 || m.status == 404));
  CHECK(error_of(m.body).valid);
  check_still_serves(node);
}

TEST_CASE("a client sending headers one byte at a time is cut off after header_timeout_ms") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  std::string req = make_request("POST", "/v1/chat/completions", chat_body("sim-chat", "slow"));
  auto t0 = clock_type::now();
  std::string got;
  std::size_t i = 0;
  // One byte every 50 ms: the whole head would take several seconds; the server must not wait.
  for (; i < req.size() && clock_type::now() - t0 < 4s; ++i) {
    if (!c.send_all(req.substr(i, 1), 1s)) break;
    got += c.read_raw(50ms);  // the pacing: returns early if the server answers or closes
    if (c.peer_closed() || !got.empty()) break;
  }
  if (!c.peer_closed()) c.wait_closed(3s, &got);
  auto took = clock_type::now() - t0;
  INFO("sent ", i, " of ", req.size(), " bytes; got: ", got.substr(0, 200));
  CHECK(c.peer_closed());
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  if (!got.empty()) CHECK(got.rfind("HTTP/1.1 408", 0) == 0);
  check_still_serves(node);
}

TEST_CASE("half-open connections are closed by the server within the timeouts") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  SUBCASE("part of the headers, then nothing") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConte"));
    auto t0 = clock_type::now();
    std::string got;
    CHECK(c.wait_closed(3s, &got));
    CHECK(clock_type::now() - t0 < 2s);
    if (!got.empty()) CHECK(got.rfind("HTTP/1.1 408", 0) == 0);
  }
  SUBCASE("headers and part of the body, then nothing") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    std::string body = chat_body("sim-chat", "half a body");
    std::string req = make_request("POST", "/v1/chat/completions", body);
    REQUIRE(c.send_all(req.substr(0, req.size() - body.size() / 2)));
    auto t0 = clock_type::now();
    std::string got;
    CHECK(c.wait_closed(3s, &got));
    CHECK(clock_type::now() - t0 < 2s);
    if (!got.empty()) CHECK(got.rfind("HTTP/1.1 408", 0) == 0);
  }
  SUBCASE("an idle keep-alive connection is closed after idle_timeout_ms") {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(make_request("GET", "/healthz")));
    REQUIRE(c.read_response().status == 200);
    auto t0 = clock_type::now();
    CHECK(c.wait_closed(6s));
    CHECK(clock_type::now() - t0 >= 1500ms);
  }
  check_still_serves(node);
}

TEST_CASE("a client vanishing mid-request does not hurt the node") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  std::string body = chat_body("sim-chat", "going away");
  std::string req = make_request("POST", "/v1/chat/completions", body);
  for (bool reset : {false, true}) {
    for (int i = 0; i < 20; ++i) {
      http_connection c;
      REQUIRE(c.connect(node.data_port()));
      REQUIRE(c.send_all(req.substr(0, req.size() - body.size() / 2)));
      c.close(reset);
    }
  }
  // Whole requests whose client leaves before the answer.
  for (int i = 0; i < 20; ++i) {
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(req));
    c.close(i % 2 == 0);
  }
  check_still_serves(node);
}

TEST_CASE("a client vanishing mid-stream releases the upstream call") {
  SUBCASE("in-process sim: in-flight gauges return to 0") {
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(5, 20)), node.error());
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(make_request(
        "POST", "/v1/chat/completions",
        chat_body("sim-chat", "long and slow", "\"stream\":true,\"max_tokens\":200"))));
    auto head = c.read_head(10s);
    REQUIRE(head.status == 200);
    REQUIRE(c.read_body_until("\n\n", 10s).find("data: ") != std::string::npos);

    auto m = get(node.admin_port(), "/metrics");
    REQUIRE(m.status == 200);
    INFO("metrics: ", m.body.substr(0, 3000));
    for (const char* gauge : {"tc_upstream_in_flight", "tc_requests_in_flight"}) {
      CAPTURE(gauge);
      CHECK(metric_sum(m.body, gauge).value_or(0) >= 1);
    }
    auto disconnects_before = metric_sum(m.body, "tc_client_disconnects_total").value_or(0);

    c.close(true);
    bool drained = eventually(
        [&] {
          auto mm = get(node.admin_port(), "/metrics", 2s);
          return mm.status == 200 && metric_sum(mm.body, "tc_upstream_in_flight") == 0.0 &&
                 metric_sum(mm.body, "tc_requests_in_flight") == 0.0;
        },
        5s, 50ms);
    CHECK_MESSAGE(drained, "in-flight gauges did not return to 0 after the client left");
    auto after = get(node.admin_port(), "/metrics");
    CHECK(metric_sum(after.body, "tc_client_disconnects_total").value_or(0) >=
          disconnects_before + 1);
    check_still_serves(node);
  }
  SUBCASE("openai provider: tcsim sees the call cancelled") {
    sim_process sim;
    REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "20"}), sim.error());
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());
    auto before = sim.metric("tcsim_cancelled_total");
    REQUIRE(before.has_value());
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(make_request(
        "POST", "/v1/chat/completions",
        chat_body("sim-chat", "long and slow", "\"stream\":true,\"max_tokens\":200"))));
    auto head = c.read_head(10s);
    REQUIRE(head.status == 200);
    REQUIRE(c.read_body_until("\n\n", 10s).find("data: ") != std::string::npos);
    c.close();
    bool cancelled = eventually(
        [&] { return sim.metric("tcsim_cancelled_total").value_or(0) >= *before + 1; }, 5s, 50ms);
    INFO("node: ", node.log_tail(), " sim: ", sim.log_tail());
    CHECK_MESSAGE(cancelled, "tcsim_cancelled_total did not increase after the client left");
    check_still_serves(node);
  }
}

TEST_CASE("1,000 rapid connect/close cycles leave the node serving") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  auto t0 = clock_type::now();
  int connected = 0;
  for (int i = 0; i < 1000 && clock_type::now() - t0 < 30s; ++i) {
    http_connection c;
    if (c.connect(node.data_port(), 2s)) ++connected;
    if (i % 3 == 1) c.send_all("GET /heal");
    c.close(i % 2 == 0);
  }
  CHECK(connected == 1000);
  check_still_serves(node);  // also waits for tc_http_connections_open to drain to 0
}

TEST_CASE("whitespace inside or before the colon of a header name is 400") {
  // RFC 9112 5.1: a server MUST reject such a request with 400. Accepting "Content-Length :"
  // as the body length lets a front proxy that reads it differently smuggle a request.
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  std::string body = chat_body("sim-chat", "hi", "\"max_tokens\":2");
  for (std::string req : {"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length : " +
                              std::to_string(body.size()) + "\r\n\r\n" + body,
                          std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"),
                          std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n")}) {
    CAPTURE(req);
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(req));
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.raw.substr(0, 200));
    CHECK(r.status == 400);
  }
  check_still_serves(node);
}

TEST_CASE("500 idle open connections do not stop a new client from being served") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  std::vector<http_connection> idle(500);
  int open = 0;
  for (auto& c : idle) open += c.connect(node.data_port(), 2s) ? 1 : 0;
  CHECK(open == 500);
  auto r = post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", "behind the crowd", "\"max_tokens\":2"), {}, 5s);
  CHECK(r.status == 200);
  for (auto& c : idle) c.close();
  check_still_serves(node);
}

TEST_CASE("headers with forbidden bytes are 400 and an absolute-form target is handled") {
  node_process node;
  REQUIRE_MESSAGE(node.start(hostile_config), node.error());
  for (std::string req :
       {std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a") + '\0' + "b\r\n\r\n",
        std::string("GET /heal th HTTP/1.1\r\nHost: x\r\n\r\n")}) {
    CAPTURE(req);
    http_connection c;
    REQUIRE(c.connect(node.data_port()));
    REQUIRE(c.send_all(req));
    auto r = c.read_response(5s);
    INFO(r.error, " ", r.raw.substr(0, 200));
    if (r.status != 0) CHECK(r.status == 400);
    CHECK(c.wait_closed(3s));
  }
  // Absolute-form (proxy style) request target: served or refused, never a crash or a hang.
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  REQUIRE(c.send_all("GET http://127.0.0.1/v1/models HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response(5s);
  CHECK((r.status == 200 || r.status == 400 || r.status == 404));
  check_still_serves(node);
}

TEST_CASE("pipelined requests are answered in order") {
  // A slow sim: the first (streamed) answer takes longest, so a server that answered in
  // completion order would put the later, quick answers first.
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml("header_timeout_ms = 2000") + sim_provider_toml(5, 200)),
                  node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  std::string batch =
      make_request("GET", "/v1/models") +
      make_request("POST", "/v1/chat/completions",
                   chat_body("sim-chat", "one", "\"max_tokens\":30")) +
      make_request("POST", "/v1/chat/completions",
                   chat_body("sim-chat", "two", "\"stream\":true,\"max_tokens\":20")) +
      make_request("POST", "/v1/chat/completions", chat_body("nope", "three")) +
      make_request("POST", "/v1/embeddings", R"({"model":"sim-embed","input":"four"})") +
      make_request("GET", "/healthz", {}, {}, false);
  REQUIRE(c.send_all(batch));
  auto r1 = c.read_response();
  CHECK(r1.status == 200);
  CHECK(str_of(parse_json(r1.body), "object") == "list");
  auto r2 = c.read_response();
  CHECK(r2.status == 200);
  CHECK(str_of(parse_json(r2.body), "object") == "chat.completion");
  auto r3 = c.read_response();
  CHECK(r3.status == 200);
  CHECK(r3.header("content-type").find("text/event-stream") == 0);
  CHECK(r3.body.find("[DONE]") != std::string::npos);
  auto r4 = c.read_response();
  CHECK(r4.status == 404);
  CHECK(error_of(r4.body).code == "model_not_found");
  auto r5 = c.read_response();
  CHECK(r5.status == 200);
  auto d5 = parse_json(r5.body);
  CHECK(str_of(d5, "object") == "list");
  CHECK((d5.HasMember("data") && d5["data"].IsArray() && d5["data"].Size() == 1 &&
         str_of(d5["data"][0], "object") == "embedding"));
  auto r6 = c.read_response();
  CHECK(r6.status == 200);
  CHECK(c.wait_closed(3s));  // the last request asked for Connection: close
  check_still_serves(node);
}
