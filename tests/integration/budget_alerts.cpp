// Budget alerts (issue 4): at 50, 80 and 100% of a budget the node logs, counts and POSTs the
// alert to the configured webhook.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

TEST_CASE("budget alerts at 50, 80 and 100% are logged, counted and POSTed to the webhook") {
  http_catcher hook;
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
