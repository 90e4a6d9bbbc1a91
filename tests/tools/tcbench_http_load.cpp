// tools/tcbench/http_load.cpp: the answer parsers, and the open-loop run against a real
// node/http server on its own loop thread (127.0.0.1, port 0): the schedule's request count per
// stream, the captured x-tc-queue-ms, usage and error codes, and the in-flight cap and drain.
#include "tools/tcbench/http_load.hpp"

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <uv.h>

#include "node/http/server.hpp"

using namespace tc::bench;

namespace {

/// A node/http server on its own loop thread; held responders are dropped at teardown.
class test_server {
 public:
  explicit test_server(tc::http::handler fn) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wake_, [](uv_async_t* a) {
      auto* self = static_cast<test_server*>(a->data);
      self->srv_->close_all();
      uv_close(reinterpret_cast<uv_handle_t*>(&self->wake_), nullptr);
    });
    wake_.data = this;
    srv_ = std::make_unique<tc::http::server>(&loop_, tc::http::limits{}, std::move(fn));
    port_ = srv_->listen("127.0.0.1", 0);
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  ~test_server() {
    uv_async_send(&wake_);
    thread_.join();
    srv_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/chat/completions";
  }
  int port() const { return port_; }

 private:
  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::unique_ptr<tc::http::server> srv_;
  int port_ = 0;
  std::thread thread_;
};

struct curl_scope {
  curl_scope() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~curl_scope() { curl_global_cleanup(); }
};

}  // namespace

TEST_CASE("tcbench: whole numbers, usage and error codes of answers") {
  CHECK(whole_number("12") == 12);
  CHECK(whole_number(" 0\r\n") == 0);
  CHECK(whole_number("") == -1);
  CHECK(whole_number("-3") == -1);
  CHECK(whole_number("1.5") == -1);
  CHECK(whole_number("99999999999999999") == -1);
  CHECK(completion_tokens_of(R"({"usage":{"prompt_tokens":3,"completion_tokens":40}})") == 40);
  CHECK(completion_tokens_of(R"({"usage":{"prompt_tokens":3}})") == -1);
  CHECK(completion_tokens_of("not json") == -1);
  CHECK(completion_tokens_of(R"({"usage":"x"})") == -1);
  CHECK(error_code_of(R"({"error":{"message":"m","type":"t","param":null,"code":"queue_full"}})") ==
        "queue_full");
  CHECK(error_code_of(R"({"error":{"message":"m","code":null}})").empty());
  CHECK(error_code_of(R"([1,2])").empty());
  CHECK(pct({}, 50) == -1);
  CHECK(pct({3, 1, 2}, 50) == 2);
  CHECK(pct({3, 1, 2}, 100) == 3);
}

TEST_CASE("tcbench: an open-loop run sends on schedule and reads each answer") {
  curl_scope curl;
  test_server srv([](tc::http::request&& req, tc::http::responder res) {
    if (req.body.find("full") != std::string::npos) {
      res.send(503, {{"content-type", "application/json"}, {"retry-after", "2"}},
               R"({"error":{"message":"full","type":"service_unavailable","param":null,)"
               R"("code":"queue_full"}})");
      return;
    }
    const bool keyed = req.header("authorization") == "Bearer k0";
    res.send(200, {{"content-type", "application/json"}, {"x-tc-queue-ms", keyed ? "7" : "9"}},
             R"({"object":"chat.completion","usage":{"prompt_tokens":4,"completion_tokens":5,)"
             R"("total_tokens":9}})");
  });
  REQUIRE(srv.port() > 0);
  open_loop_options o;
  o.url = srv.url();
  o.seconds = 0.5;
  o.drain_seconds = 5;
  o.timeout_ms = 5000;
  std::vector<open_loop_stream> streams(2);
  streams[0].rate = 100;
  streams[0].phase = 0.5;
  streams[0].headers = {"Authorization: Bearer k0"};
  streams[0].body = [](uint64_t n) { return R"({"n":)" + std::to_string(n) + "}"; };
  streams[1].rate = 50;
  streams[1].body = [](uint64_t n) { return R"({"full":)" + std::to_string(n) + "}"; };
  const open_loop_report r = run_open_loop(o, streams);
  // Due at (phase + n) / rate before 0.5 s: n = 0..49 and n = 0..24.
  REQUIRE(r.results.size() == 75);
  CHECK(r.skipped == std::vector<uint64_t>{0, 0});
  CHECK(r.ended_s < 10);
  size_t ok = 0, full = 0;
  double last_due = -1;
  for (const auto& x : r.results) {
    CHECK(x.due_s >= last_due);
    CHECK(x.due_s < 0.5);
    CHECK(x.end_s >= x.due_s - 0.002);
    CHECK_FALSE(x.aborted);
    last_due = x.due_s;
    if (x.stream == 0) {
      CHECK(x.status == 200);
      CHECK(x.queue_ms == 7);
      CHECK(x.retry_after == -1);
      CHECK(x.completion_tokens == 5);
      ok += x.status == 200;
    } else {
      CHECK(x.status == 503);
      CHECK(x.error_code == "queue_full");
      CHECK(x.retry_after == 2);
      CHECK(x.completion_tokens == -1);
      full += x.error_code == "queue_full";
    }
  }
  CHECK(ok == 50);
  CHECK(full == 25);
}

TEST_CASE("tcbench: an open-loop run skips at its in-flight cap and aborts after the drain") {
  curl_scope curl;
  auto held = std::make_shared<std::vector<tc::http::responder>>();  // loop thread only
  test_server srv([held](tc::http::request&&, tc::http::responder res) { held->push_back(res); });
  REQUIRE(srv.port() > 0);
  open_loop_options o;
  o.url = srv.url();
  o.seconds = 0.1;
  o.max_in_flight = 2;
  o.drain_seconds = 0.2;
  o.timeout_ms = 5000;
  std::vector<open_loop_stream> streams(1);
  streams[0].rate = 100;  // 10 due in 0.1 s
  streams[0].body = [](uint64_t) { return std::string("{}"); };
  const open_loop_report r = run_open_loop(o, streams);
  REQUIRE(r.results.size() == 2);
  CHECK(r.skipped == std::vector<uint64_t>{8});
  CHECK(r.peak_in_flight == 2);
  for (const auto& x : r.results) {
    CHECK(x.aborted);
    CHECK(x.status == 0);
  }
  CHECK(r.ended_s >= 0.3 - 0.01);
  CHECK(r.ended_s < 5);
}
