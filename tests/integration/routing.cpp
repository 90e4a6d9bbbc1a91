// Routing across the endpoints of one model (issue 6): failover before the first byte (a dead
// endpoint, 5xx answers), never after it; the breaker keeps requests away from a failing
// endpoint and its probes bring them back when it recovers.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// A port nothing listens on (bound, then closed).
uint16_t dead_port() {
  http_catcher c;
  const uint16_t p = c.port();
  return p;
}

/// The anonymous tenant's usage records once there are `count` of them (a store in memory holds
/// no answer for its record, so a record may land just after its answer); an empty array if
/// they never come.
rapidjson::Document anonymous_records(const node_process& node, size_t count) {
  rapidjson::Document records;
  const bool got = eventually(
      [&] {
        response rec = admin_call(node, "GET", "/v1/usage/records?tenant=anonymous&limit=1000");
        if (rec.status != 200) return false;
        records = parse_json(rec.body);
        return records.IsObject() && records["data"].IsArray() && records["data"].Size() >= count;
      },
      10000ms);
  if (!got) records.Parse(R"({"data":[]})");
  return records;
}

/// Two openai-type providers serving sim-chat: "cheap" (ranked first under cost_first) at
/// `cheap_port`, "dear" at `dear_port`.
std::string two_endpoints(uint16_t cheap_port, uint16_t dear_port, std::string_view routing) {
  std::string s = server_toml() + "[routing]\npolicy = \"cost_first\"\n" + std::string(routing);
  if (s.back() != '\n') s += '\n';
  s += "[[providers]]\nname = \"cheap\"\ntype = \"openai\"\n";
  s += "base_url = \"http://127.0.0.1:" + std::to_string(cheap_port) + "/v1\"\n";
  s += "[[providers.models]]\nname = \"sim-chat\"\nprice_input_per_m = 1.0\n";
  s += "price_output_per_m = 1.0\n";
  s += "[[providers]]\nname = \"dear\"\ntype = \"openai\"\n";
  s += "base_url = \"http://127.0.0.1:" + std::to_string(dear_port) + "/v1\"\n";
  s += "[[providers.models]]\nname = \"sim-chat\"\nprice_input_per_m = 9.0\n";
  s += "price_output_per_m = 9.0\n";
  return s;
}

response ask(const node_process& node, int i, bool stream) {
  const std::string extra = stream ? R"("stream":true)" : "";
  return post_json(node.data_port(), "/v1/chat/completions",
                   chat_body("sim-chat", "routing question " + std::to_string(i), extra),
                   {{"cache-control", "no-cache"}});
}

double failovers(const node_process& node) {
  return node_metric(node, "tc_upstream_failovers_total").value_or(0);
}

}  // namespace

TEST_CASE("routing: a dead endpoint is passed over before the first byte, then left alone") {
  sim_process dear;
  REQUIRE_MESSAGE(dear.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), dear.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(two_endpoints(dead_port(), dear.port(),
                                           "breaker_consecutive = 3\nbreaker_open_ms = 60000\n"
                                           "probe_interval_ms = 0\n")),
                  node.error());
  // Every request is answered, streamed or not, by the endpoint that works.
  for (int i = 0; i < 12; ++i) {
    const bool stream = i % 2 == 1;
    response r = ask(node, i, stream);
    INFO("request ", i, ": ", r.body, " node: ", node.log_tail());
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tc-provider") == "dear");
    if (stream) CHECK(r.body.find("[DONE]") != std::string::npos);
  }
  // The breaker opened after 3 failures in a row: later requests go straight to "dear".
  const double moved = failovers(node);
  CHECK(moved >= 3);
  CHECK(moved < 12);
  for (int i = 12; i < 16; ++i) REQUIRE(ask(node, i, false).status == 200);
  CHECK(failovers(node) == moved);
  CHECK(node.log().find("\"upstream_failover\"") != std::string::npos);
  // The dead endpoint's breaker is open (2), the other's closed (0).
  CHECK(node_metric(node, "tc_endpoint_breaker_state").value_or(-1) == 2);
  // Each answer is billed at the endpoint that gave it, at its price.
  auto records = anonymous_records(node, 16);
  CHECK(records["data"].Size() == 16);
  for (const auto& r : records["data"].GetArray()) CHECK(str_of(r, "provider") == "dear");
}

TEST_CASE(
    "routing: 5xx before the first byte fails over, and a recovered endpoint is probed back") {
  // "cheap" answers 503 for its first 2 s (an outage window), then recovers.
  sim_process cheap;
  REQUIRE_MESSAGE(cheap.start({"--ttft-ms", "1", "--tokens-per-sec", "5000", "--outage", "0:2"}),
                  cheap.error());
  sim_process dear;
  REQUIRE_MESSAGE(dear.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), dear.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(two_endpoints(cheap.port(), dear.port(),
                                           "breaker_consecutive = 2\nbreaker_open_ms = 300\n"
                                           "probe_interval_ms = 100\n")),
                  node.error());
  response first = ask(node, 0, true);
  REQUIRE(first.status == 200);
  CHECK(first.header("x-tc-provider") == "dear");
  CHECK(first.body.find("[DONE]") != std::string::npos);
  CHECK(failovers(node) >= 1);
  // Once the outage is over the breaker's probe succeeds and the cheap endpoint serves again.
  bool back = eventually(
      [&] {
        response r = ask(node, 1, false);
        return r.status == 200 && r.header("x-tc-provider") == "cheap";
      },
      10s, 100ms);
  INFO(node.log_tail());
  CHECK(back);
}

TEST_CASE("routing: no failover after the first byte: a stream cut mid-way ends with an error") {
  sim_process cheap;  // slow enough to be killed mid-stream
  REQUIRE_MESSAGE(cheap.start({"--ttft-ms", "1", "--tokens-per-sec", "20"}), cheap.error());
  sim_process dear;
  REQUIRE_MESSAGE(dear.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), dear.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(two_endpoints(cheap.port(), dear.port(), "")), node.error());
  http_connection c;
  REQUIRE(c.connect(node.data_port()));
  REQUIRE(c.send_all(
      make_request("POST", "/v1/chat/completions",
                   chat_body("sim-chat", "a long story", R"("stream":true,"max_tokens":200)"))));
  auto head = c.read_head(10s);
  INFO(head.error, " ", node.log_tail());
  REQUIRE(head.status == 200);
  CHECK(head.header("x-tc-provider") == "cheap");
  std::string body = c.read_body_until("\n\n", 10s);  // the first bytes are out
  REQUIRE(body.find("data: ") != std::string::npos);
  cheap.proc().kill9();
  body += c.read_body_until("event: error", 10s);
  for (int i = 0; i < 100 && !c.body_done() && !c.peer_closed(); ++i) body += c.read_body_some(5s);
  INFO("stream: ", body);
  CHECK(body.find("event: error") != std::string::npos);
  CHECK(body.find("[DONE]") == std::string::npos);
  CHECK(failovers(node) == 0);
}

TEST_CASE("routing: prefix affinity keeps one system prompt on one replica, others spread") {
  std::string config = server_toml() + "[cache]\nenabled = false\n";
  for (int r = 1; r <= 4; ++r) {
    config += "[[providers]]\nname = \"replica-" + std::to_string(r) + "\"\ntype = \"sim\"\n";
    config += "[[providers.models]]\nname = \"sim-chat\"\nprefix_affinity = true\n";
    config += "[providers.sim]\nttft_ms = 1\ntokens_per_sec = 5000\n";
  }
  node_process node;
  REQUIRE_MESSAGE(node.start(config), node.error());
  const auto ask_with = [&](const std::string& system, int i) {
    const std::string body =
        R"({"model":"sim-chat","max_tokens":4,"messages":[{"role":"system","content":")" + system +
        R"("},{"role":"user","content":"question )" + std::to_string(i) + R"("}]})";
    response r = post_json(node.data_port(), "/v1/chat/completions", body);
    REQUIRE(r.status == 200);
    return r.header("x-tc-provider");
  };
  // Requests one at a time: every replica is below the bound, so the prefix alone decides.
  const std::string home = ask_with("You are the ACME support assistant.", 0);
  for (int i = 1; i < 12; ++i) CHECK(ask_with("You are the ACME support assistant.", i) == home);
  std::set<std::string> used;
  for (int p = 0; p < 16; ++p) used.insert(ask_with("Assistant number " + std::to_string(p), p));
  CHECK(used.size() >= 3);  // 16 prompts over 4 replicas: spread, not piled on one
}

TEST_CASE("routing: an alias is served, billed and listed as the model it names") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + "[routing]\naliases = [\"gpt-4o=sim-chat\"]\n" +
                             sim_provider_toml()),
                  node.error());
  response r = post_json(node.data_port(), "/v1/chat/completions", chat_body("gpt-4o", "hello"));
  REQUIRE(r.status == 200);
  CHECK(r.header("x-tc-provider") == "sim");
  // The upstream is asked for the model itself (tcsim answers with the model it was sent).
  CHECK(str_of(parse_json(r.body), "model") == "sim-chat");
  response models = get(node.data_port(), "/v1/models");
  REQUIRE(models.status == 200);
  CHECK(models.body.find("\"gpt-4o\"") != std::string::npos);
  CHECK(get(node.data_port(), "/v1/models/gpt-4o").status == 200);
  auto records = anonymous_records(node, 1);
  REQUIRE(records["data"].Size() == 1);
  CHECK(str_of(records["data"][0], "model") == "sim-chat");
  CHECK(post_json(node.data_port(), "/v1/chat/completions", chat_body("gpt-5", "hi")).status ==
        404);
}

TEST_CASE("routing: a tenant's data-residency rule keeps its requests on resident endpoints") {
  // "us" is cheaper, so cost_first would pick it for a tenant without a rule.
  const std::string toml = server_toml() + "[routing]\npolicy = \"cost_first\"\n" +
                           regional_sim_toml("cn", "cn-east", 9.0, "tags = [\"pipl\"]") +
                           regional_sim_toml("us", "us-west", 1.0);
  node_process node;
  REQUIRE_MESSAGE(node.start(toml), node.error());
  create_tenant(node, R"({"id":"free"})");
  create_tenant(node, R"({"id":"local","residency_regions":["cn-east"]})");
  create_tenant(node, R"({"id":"tagged","residency_tags":["pipl"]})");
  create_tenant(node, R"({"id":"eu","residency_regions":["eu-central"]})");
  const std::string free_key = create_key(node, "free");
  const std::string local_key = create_key(node, "local");
  const std::string tagged_key = create_key(node, "tagged");
  const std::string eu_key = create_key(node, "eu");
  for (int i = 0; i < 4; ++i) {
    const std::string q = "residency question " + std::to_string(i);
    response r = chat(node, local_key, q, R"("max_tokens":4)");
    REQUIRE_MESSAGE(r.status == 200, r.body);
    CHECK(r.header("x-tc-provider") == "cn");
    r = chat(node, tagged_key, q + " tagged", R"("max_tokens":4)");
    REQUIRE_MESSAGE(r.status == 200, r.body);
    CHECK(r.header("x-tc-provider") == "cn");
    r = chat(node, free_key, q + " free", R"("max_tokens":4)");
    REQUIRE_MESSAGE(r.status == 200, r.body);
    CHECK(r.header("x-tc-provider") == "us");  // no rule: the cheaper one
  }
  // No endpoint is resident: refused before anything is spent.
  response r = chat(node, eu_key, "nowhere to go", R"("max_tokens":4)");
  CHECK(r.status == 403);
  CHECK(error_of(r.body).type == "permission_error");
  CHECK(error_of(r.body).param == "model");
  CHECK(error_of(r.body).message.find("data-residency") != std::string::npos);
  // The rule can be lifted through the admin API.
  response patched = admin_call(node, "PATCH", "/v1/tenants/eu", R"({"residency_regions":[]})");
  REQUIRE_MESSAGE(patched.status == 200, patched.body);
  CHECK(eventually(
      [&] { return chat(node, eu_key, "somewhere now", R"("max_tokens":4)").status == 200; },
      5000ms));
}

namespace {

/// The model that answered `user`'s request for `id` (the answer's `model`).
std::string served(const node_process& node, std::string_view id, std::string_view user,
                   std::string_view content = "which model") {
  const std::string extra = "\"user\":\"" + std::string(user) + "\"";
  response r = post_json(node.data_port(), "/v1/chat/completions", chat_body(id, content, extra),
                         {{"cache-control", "no-cache"}});
  REQUIRE_MESSAGE(r.status == 200, r.body);
  return str_of(parse_json(r.body), "model");
}

std::string groups_toml(const std::string& store_dir) {
  std::string s = server_toml() + "[store]\npath = \"" + store_dir + "/db\"\n";
  s += "[routing]\ngroups = [\"chat=sim-a:50,sim-b:50\"]\nauto_model = \"auto\"\n";
  s += "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[providers.sim]\nttft_ms = 0\n";
  s += "tokens_per_sec = 0\n";
  s += "[[providers.models]]\nname = \"sim-a\"\nauto_tier = \"light\"\n";
  s += "price_input_per_m = 1.0\nprice_output_per_m = 1.0\n";
  s += "[[providers.models]]\nname = \"sim-b\"\nauto_tier = \"heavy\"\n";
  s += "price_input_per_m = 5.0\nprice_output_per_m = 5.0\n";
  return s;
}

}  // namespace

TEST_CASE(
    "routing: a model group splits users by weight, sticky per user, with an instant, kept "
    "rollback") {
  temp_dir dir;
  node_process node;
  REQUIRE_MESSAGE(node.start(groups_toml(dir.path())), node.error());
  // 50/50: over 40 users both models serve, and each user keeps its model.
  std::map<std::string, std::string> first;
  std::set<std::string> seen;
  for (int u = 0; u < 40; ++u) {
    const std::string user = "user-" + std::to_string(u);
    first[user] = served(node, "chat", user);
    seen.insert(first[user]);
  }
  CHECK(seen == std::set<std::string>{"sim-a", "sim-b"});
  for (int u = 0; u < 40; u += 3) {
    const std::string user = "user-" + std::to_string(u);
    CHECK(served(node, "chat", user, "again") == first[user]);
  }
  CHECK(get(node.data_port(), "/v1/models/chat").status == 200);
  // Rollback through tcctl: every user on the stable (first) model at once.
  tcctl_result rb = run_tcctl(node, {"models", "rollback", "chat"});
  INFO(rb.out);
  REQUIRE(rb.code == 0);
  CHECK(rb.out.find("stored") != std::string::npos);
  for (int u = 0; u < 40; u += 2)
    CHECK(served(node, "chat", "user-" + std::to_string(u)) == "sim-a");
  // The stored weights survive a restart.
  REQUIRE(node.stop().code == 0);
  node_process again;
  REQUIRE_MESSAGE(again.start(groups_toml(dir.path())), again.error());
  for (int u = 1; u < 40; u += 2)
    CHECK(served(again, "chat", "user-" + std::to_string(u)) == "sim-a");
  // Weights set through the admin API; a model outside the group is refused.
  response put = admin_call(again, "PUT", "/v1/routing/groups/chat", R"({"weights":{"sim-b":1}})");
  REQUIRE_MESSAGE(put.status == 200, put.body);
  for (int u = 0; u < 10; ++u) CHECK(served(again, "chat", "user-" + std::to_string(u)) == "sim-b");
  CHECK(admin_call(again, "PUT", "/v1/routing/groups/chat", R"({"weights":{"gpt":1}})").status ==
        400);
  CHECK(admin_call(again, "PUT", "/v1/routing/groups/chat", R"({"weights":{"sim-a":0}})").status ==
        400);
  CHECK(admin_call(again, "GET", "/v1/routing/groups/nope").status == 404);
  // Reset: the configured 50/50 again, so users land where they first did.
  REQUIRE(admin_call(again, "DELETE", "/v1/routing/groups/chat").status == 200);
  for (int u = 0; u < 40; u += 5) {
    const std::string user = "user-" + std::to_string(u);
    CHECK(served(again, "chat", user) == first[user]);
  }
}

TEST_CASE("routing: the auto model picks the cheapest model that fits the request") {
  temp_dir dir;
  node_process node;
  REQUIRE_MESSAGE(node.start(groups_toml(dir.path())), node.error());
  CHECK(served(node, "auto", "u", "What is the capital of France?") == "sim-a");         // light
  CHECK(served(node, "auto", "u", "Fix it: ```int main() { return 0 }```") == "sim-b");  // code
  const std::string tools =
      R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])";
  response r = post_json(node.data_port(), "/v1/chat/completions",
                         chat_body("auto", "call a tool", tools), {{"cache-control", "no-cache"}});
  REQUIRE(r.status == 200);
  CHECK(str_of(parse_json(r.body), "model") == "sim-b");  // tools: heavy
  // Billed as the model that served it.
  response rec = admin_call(node, "GET", "/v1/usage/records?tenant=anonymous&limit=10");
  REQUIRE(rec.status == 200);
  CHECK(rec.body.find("\"model\":\"auto\"") == std::string::npos);
  CHECK(get(node.data_port(), "/v1/models/auto").status == 200);
}

TEST_CASE(
    "routing: an endpoint that refuses the gateway's key is failed over, never blamed on "
    "the client") {
  sim_process refusing;
  REQUIRE_MESSAGE(refusing.start({"--ttft-ms", "1", "--tokens-per-sec", "5000", "--error-rate", "1",
                                  "--error-status", "401"}),
                  refusing.error());
  sim_process dear;
  REQUIRE_MESSAGE(dear.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), dear.error());
  {
    // Alone, its 401 is the gateway's problem: 502 upstream_error, not the provider's message.
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(refusing.port())),
                    node.error());
    response r = ask(node, 0, false);
    INFO(r.body);
    CHECK(r.status == 502);
    CHECK(error_of(r.body).code == "upstream_error");
    CHECK(r.body.find("refused the gateway's credentials (401)") != std::string::npos);
    response s = ask(node, 1, true);
    CHECK(s.status == 502);
    CHECK(node.log().find("\"upstream_refused_key\"") != std::string::npos);
  }
  // With another endpoint, the request moves on to it before the client sees anything.
  node_process node;
  REQUIRE_MESSAGE(node.start(two_endpoints(refusing.port(), dear.port(), "")), node.error());
  for (int i = 0; i < 4; ++i) {
    response r = ask(node, i, i % 2 == 1);
    INFO("request ", i, ": ", r.body);
    REQUIRE(r.status == 200);
    CHECK(r.header("x-tc-provider") == "dear");
  }
  CHECK(failovers(node) >= 1);
}
