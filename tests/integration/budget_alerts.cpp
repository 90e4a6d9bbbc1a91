// Budget alerts (issue 4): at 50, 80 and 100% of a budget the node logs, counts and POSTs the
// alert to the configured webhook.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// A one-thread HTTP endpoint on 127.0.0.1:0 that answers 200 and keeps each request's body.
class webhook_catcher {
 public:
  webhook_catcher() {
    fd_ = listen_loopback(port_);
    REQUIRE(fd_ >= 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~webhook_catcher() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mx_);
    return bodies_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string in;
      char buf[4096];
      size_t need = std::string::npos;
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (std::chrono::steady_clock::now() < deadline) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 50) <= 0) continue;
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (need == std::string::npos) {
          size_t cl = in.find("Content-Length: ");
          if (cl == std::string::npos) cl = in.find("content-length: ");
          need = end + 4 + (cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16)));
        }
        if (in.size() >= need) break;
      }
      const std::string_view reply =
          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::write(c, reply.data(), reply.size());
      ::close(c);
      if (size_t end = in.find("\r\n\r\n"); end != std::string::npos) {
        std::lock_guard<std::mutex> lock(mx_);
        bodies_.push_back(in.substr(end + 4));
      }
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mx_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("budget alerts at 50, 80 and 100% are logged, counted and POSTed to the webhook") {
  webhook_catcher hook;
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + "[cache]\nenabled = false\n[billing]\n" +
                             "alert_webhook = \"http://127.0.0.1:" + std::to_string(hook.port()) +
                             "/alerts\"\n" + sim_provider_toml(1, 20000)),
                  node.error());
  // One unit of money per token; a request costs ~10 units of a 100-unit daily budget.
  REQUIRE(admin_call(node, "PUT", "/v1/prices/sim/sim-chat",
                     R"({"input_per_m":1000000,"output_per_m":1000000})")
              .status == 200);
  create_tenant(node, R"({"id":"acme","limits":{"daily_budget":100}})");
  const std::string key = create_key(node, "acme");
  int ok = 0;
  for (int i = 0; i < 40; ++i) {
    response r = chat(node, key, "spend " + std::to_string(i), R"("max_tokens":4)");
    if (r.status != 200) break;
    ++ok;
  }
  CHECK(ok >= 4);

  std::vector<rapidjson::Document> alerts;
  REQUIRE(eventually(
      [&] {
        alerts.clear();
        for (const auto& b : hook.bodies()) alerts.push_back(parse_json(b));
        return alerts.size() >= 2;
      },
      10000ms));
  bool saw50 = false, saw80 = false;
  for (const auto& a : alerts) {
    REQUIRE(a.IsObject());
    CHECK(str_of(a, "type") == "budget_alert");
    CHECK(str_of(a, "scope") == "t:acme");
    CHECK(a["budget_micros"].GetInt64() == 100'000'000);
    CHECK(a["spent_micros"].GetInt64() * 100 >=
          a["budget_micros"].GetInt64() * a["percent"].GetInt64());
    saw50 = saw50 || a["percent"].GetInt() == 50;
    saw80 = saw80 || a["percent"].GetInt() == 80;
  }
  CHECK(saw50);
  CHECK(saw80);
  CHECK(node.log().find("\"budget_alert\"") != std::string::npos);
  auto m = get(node.admin_port(), "/metrics");
  CHECK(metric_sum(m.body, "tc_budget_alerts_total").value_or(0) >= 2);
}
