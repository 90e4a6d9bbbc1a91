// Tenants, keys, quotas and the ledger as clients and operators see them (issue 4), through a
// real tcnode with the embedded sim provider and its admin API.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

using header_list = std::vector<std::pair<std::string, std::string>>;

std::string fast_sim() {
  return sim_provider_toml(1, 20000);
}

}  // namespace

TEST_CASE("with auth.required every endpoint needs a live key of ours") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + "[auth]\nrequired = true\n" + fast_sim()),
                  node.error());
  CHECK(get(node.data_port(), "/v1/models").status == 401);
  response anon = chat(node, "", "hello");
  CHECK(anon.status == 401);
  CHECK(error_of(anon.body).code == "missing_api_key");

  create_tenant(node, R"({"id":"acme","name":"Acme"})");
  const std::string key = create_key(node, "acme", R"("name":"ci","allowed_models":["sim-*"])");
  response ok = chat(node, key, "hello");
  CHECK_MESSAGE(ok.status == 200, ok.body);
  CHECK(chat(node, "sk-tc-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "hello").status == 401);
  CHECK(chat(node, "sk-someone-else", "hello").status == 401);

  // The key is listed without its secret; revoking it stops it at once.
  response list = admin_call(node, "GET", "/v1/keys?tenant=acme");
  REQUIRE(list.status == 200);
  CHECK(list.body.find(key) == std::string::npos);
  auto listed = parse_json(list.body);
  REQUIRE(listed["data"].Size() == 1);
  const std::string id = str_of(listed["data"][0], "id");
  CHECK(str_of(listed["data"][0], "status") == "active");
  CHECK(admin_call(node, "POST", "/v1/keys/" + id + "/revoke").status == 200);
  response revoked = chat(node, key, "hello");
  CHECK(revoked.status == 401);
  CHECK(revoked.body.find("revoked") != std::string::npos);
}

TEST_CASE("a key may only use its models and endpoints, rotation keeps the old key for a grace") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + fast_sim()), node.error());
  create_tenant(node, R"({"id":"acme"})");
  const std::string key =
      create_key(node, "acme", R"("allowed_models":["other-*"],"allowed_endpoints":["chat"])");
  response denied = chat(node, key, "hello");
  CHECK(denied.status == 403);
  CHECK(error_of(denied.body).type == "permission_error");

  const std::string chat_only = create_key(node, "acme", R"("allowed_endpoints":["chat"])");
  CHECK(chat(node, chat_only, "hello").status == 200);
  response emb =
      post_json(node.data_port(), "/v1/embeddings", R"({"model":"sim-embed","input":"x"})",
                {{"Authorization", "Bearer " + chat_only}});
  CHECK(emb.status == 403);

  // Without auth.required, a request with no key (or an SDK placeholder) is the anonymous tenant,
  // until an operator disables that tenant.
  CHECK(chat(node, "", "hello").status == 200);
  CHECK(chat(node, "sk-placeholder", "hello").status == 200);
  create_tenant(node, R"({"id":"anonymous","disabled":true})");
  CHECK(chat(node, "", "hello").status == 401);
  CHECK(chat(node, "sk-placeholder", "hello").status == 401);
  CHECK(get(node.data_port(), "/v1/models").status == 401);
  CHECK(chat(node, chat_only, "hello").status == 200);  // keys are unaffected

  auto keys = parse_json(admin_call(node, "GET", "/v1/keys").body);
  std::string id;
  for (const auto& k : keys["data"].GetArray())
    if (str_of(k, "prefix") == chat_only.substr(0, 12)) id = str_of(k, "id");
  REQUIRE(!id.empty());
  response bad_grace = admin_call(node, "POST", "/v1/keys/" + id + "/rotate", R"({"grace_s":-5})");
  CHECK(bad_grace.status == 400);
  CHECK(error_of(bad_grace.body).param == "grace_s");
  CHECK(admin_call(node, "POST", "/v1/keys/" + id + "/rotate", R"({"grace":1})").status == 400);
  response rotated = admin_call(node, "POST", "/v1/keys/" + id + "/rotate", R"({"grace_s":3600})");
  REQUIRE_MESSAGE(rotated.status == 201, rotated.body);
  const std::string fresh = str_of(parse_json(rotated.body), "secret");
  CHECK(fresh != chat_only);
  CHECK(chat(node, fresh, "hello").status == 200);
  CHECK(chat(node, chat_only, "hello").status == 200);  // in its grace period
  CHECK(str_of(parse_json(admin_call(node, "GET", "/v1/keys/" + id).body), "status") == "rotated");
}

TEST_CASE(
    "200 concurrent clients against a key allowed 100 requests per minute: exactly 100 pass") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + fast_sim()), node.error());
  create_tenant(node, R"({"id":"acme"})");
  const std::string key = create_key(node, "acme", R"("limits":{"rpm":100})");

  constexpr int clients = 200;
  std::vector<response> answers(clients);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      http_connection c;
      const bool connected = c.connect(node.data_port(), 5000ms);
      ++ready;
      for (int spin = 0; !go.load() && spin < 1'000'000; ++spin) std::this_thread::yield();
      if (!connected) return;
      std::string body = chat_body("sim-chat", "request " + std::to_string(i));
      c.send_all(make_request(
          "POST", "/v1/chat/completions", body,
          {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + key}}, false));
      answers[i] = c.read_response(20000ms);
    });
  }
  REQUIRE(eventually([&] { return ready.load() == clients; }, 20000ms, 1ms));
  go = true;
  for (auto& t : threads) t.join();

  int ok = 0, limited = 0, other = 0;
  for (const auto& r : answers) {
    if (r.status == 200) {
      ++ok;
      CHECK(r.header("x-ratelimit-limit-requests") == "100");
    } else if (r.status == 429) {
      ++limited;
      CHECK(!r.header("retry-after").empty());
      CHECK(r.header("x-ratelimit-remaining-requests") == "0");
      CHECK(error_of(r.body).code == "rate_limit_exceeded");
    } else {
      ++other;
      MESSAGE("unexpected answer " << r.status << " " << r.error << " " << r.body);
    }
  }
  CHECK(ok == 100);
  CHECK(limited == 100);
  CHECK(other == 0);
}

TEST_CASE("the ledger records every answered request and the usage report adds up") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + fast_sim()), node.error());
  create_tenant(node, R"({"id":"acme","currency":"CNY"})");
  const std::string key = create_key(node, "acme");
  uint64_t prompt = 0, completion = 0;
  for (int i = 0; i < 5; ++i) {
    response r = chat(node, key, "count me " + std::to_string(i));
    REQUIRE(r.status == 200);
    auto d = parse_json(r.body);
    prompt += d["usage"]["prompt_tokens"].GetUint64();
    completion += d["usage"]["completion_tokens"].GetUint64();
  }
  // A client that reuses its own x-request-id is billed for every request, not the first only.
  for (int i = 0; i < 2; ++i) {
    response r = post_json(node.data_port(), "/v1/chat/completions",
                           chat_body("sim-chat", "same id " + std::to_string(i)),
                           {{"Authorization", "Bearer " + key}, {"x-request-id", "client-id-1"}});
    REQUIRE(r.status == 200);
    CHECK(r.header("x-request-id") == "client-id-1");
    auto d = parse_json(r.body);
    prompt += d["usage"]["prompt_tokens"].GetUint64();
    completion += d["usage"]["completion_tokens"].GetUint64();
  }
  // Streamed, with usage asked for: counted on the client side from the usage chunk.
  response s =
      chat(node, key, "a stream", R"("stream":true,"stream_options":{"include_usage":true})");
  REQUIRE(s.status == 200);
  bool saw = false;
  for (const auto& c : sse_json_chunks(s.body)) {
    if (c.HasMember("usage") && c["usage"].IsObject()) {
      prompt += c["usage"]["prompt_tokens"].GetUint64();
      completion += c["usage"]["completion_tokens"].GetUint64();
      saw = true;
    }
  }
  REQUIRE(saw);

  rapidjson::Document report;
  REQUIRE(eventually(
      [&] {
        response r = admin_call(node, "GET", "/v1/usage?tenant=acme&group_by=tenant,model");
        if (r.status != 200) return false;
        report = parse_json(r.body);
        return !report.HasParseError() && report["totals"]["requests"].GetUint64() == 8;
      },
      10000ms));
  CHECK(report["totals"]["prompt_tokens"].GetUint64() == prompt);
  CHECK(report["totals"]["completion_tokens"].GetUint64() == completion);
  REQUIRE(report["rows"].Size() == 1);
  CHECK(str_of(report["rows"][0]["group"], "model") == "sim-chat");

  response csv = admin_call(node, "GET", "/v1/usage/records?tenant=acme&format=csv");
  REQUIRE(csv.status == 200);
  size_t lines = 0;
  for (char c : csv.body) lines += c == '\n';
  CHECK(lines == 9);  // header + 8 records
}

TEST_CASE("admin tokens: once one exists every call needs one, and roles are enforced") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + fast_sim()), node.error());
  response owner =
      admin_call(node, "POST", "/v1/admin-tokens", R"({"name":"root","role":"owner"})");
  REQUIRE_MESSAGE(owner.status == 201, owner.body);
  const std::string root = str_of(parse_json(owner.body), "secret");
  REQUIRE(root.rfind("tc-adm-", 0) == 0);

  CHECK(admin_call(node, "GET", "/v1/tenants").status == 401);
  CHECK(admin_call(node, "GET", "/v1/tenants", {}, "tc-adm-wrong").status == 401);
  CHECK(admin_call(node, "GET", "/v1/tenants", {}, root).status == 200);

  response viewer =
      admin_call(node, "POST", "/v1/admin-tokens", R"({"name":"look","role":"viewer"})", root);
  REQUIRE(viewer.status == 201);
  const std::string look = str_of(parse_json(viewer.body), "secret");
  CHECK(admin_call(node, "GET", "/v1/tenants", {}, look).status == 200);
  response refused = admin_call(node, "POST", "/v1/tenants", R"({"id":"x"})", look);
  CHECK(refused.status == 403);
  CHECK(error_of(refused.body).type == "permission_error");
  CHECK(admin_call(node, "POST", "/v1/tenants", R"({"id":"x"})", root).status == 201);
  // Metrics stay open for scrapers.
  CHECK(get(node.admin_port(), "/metrics").status == 200);

  // Bad bodies are 400 naming the field; unknown ids are 404; duplicates 409.
  response bad = admin_call(node, "POST", "/v1/tenants", R"({"id":"y","limits":{"rpm":-1}})", root);
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "limits.rpm");
  CHECK(admin_call(node, "GET", "/v1/tenants/nope", {}, root).status == 404);
  CHECK(admin_call(node, "POST", "/v1/tenants", R"({"id":"x"})", root).status == 409);
}

TEST_CASE("tenants, keys and usage survive a restart on the same store") {
  temp_dir dir;
  const std::string store = "[store]\npath = \"" + dir.path() + "/db\"\n";
  std::string key;
  uint64_t tokens = 0;
  {
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + store + fast_sim()), node.error());
    create_tenant(node, R"({"id":"acme"})");
    key = create_key(node, "acme");
    response r = chat(node, key, "remember me");
    REQUIRE(r.status == 200);
    tokens = parse_json(r.body)["usage"]["total_tokens"].GetUint64();
    CHECK(node.stop().code == 0);
  }
  node_process again;
  REQUIRE_MESSAGE(again.start(server_toml() + store + fast_sim()), again.error());
  CHECK(chat(again, key, "still here").status == 200);
  response r = admin_call(again, "GET", "/v1/usage?tenant=acme");
  REQUIRE(r.status == 200);
  auto d = parse_json(r.body);
  CHECK(d["totals"]["requests"].GetUint64() >= 1);
  CHECK(d["totals"]["prompt_tokens"].GetUint64() + d["totals"]["completion_tokens"].GetUint64() >=
        tokens);
}

TEST_CASE("a spent budget stays spent across a restart: the ledger re-seeds it") {
  temp_dir dir;
  const std::string store = "[store]\npath = \"" + dir.path() + "/db\"\n";
  std::string key;
  // One unit of money per token: a request spends ~10 units, its estimate (max_tokens 1) ~5.
  auto ask = [&](const node_process& n) {
    return chat(n, key, "budget please", R"("max_tokens":1)");
  };
  {
    node_process node;
    REQUIRE_MESSAGE(node.start(server_toml() + store + fast_sim()), node.error());
    REQUIRE(admin_call(node, "PUT", "/v1/prices/sim/sim-chat",
                       R"({"input_per_m":1000000,"output_per_m":1000000})")
                .status == 200);
    create_tenant(node, R"({"id":"acme","limits":{"daily_budget":60}})");
    key = create_key(node, "acme");
    int ok = 0;
    response last;
    for (int i = 0; i < 50; ++i) {
      last = ask(node);
      if (last.status != 200) break;
      ++ok;
    }
    CHECK(ok >= 3);
    CHECK(last.status == 429);
    CHECK(error_of(last.body).code == "insufficient_quota");
    CHECK(node.stop().code == 0);
  }
  node_process again;
  REQUIRE_MESSAGE(again.start(server_toml() + store + fast_sim()), again.error());
  response r = ask(again);
  CHECK(r.status == 429);
  CHECK(error_of(r.body).code == "insufficient_quota");
  CHECK(!r.header("retry-after").empty());
}
