// The response cache as a client sees it (issue 3), through a real tcnode in front of a real
// tcsim, whose request counter says how many calls reached the upstream.
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

/// tcnode in front of a tcsim: every cache miss is one tcsim request.
struct cached_node {
  sim_process sim;
  node_process node;

  explicit cached_node(std::string_view model_extra = {}) {
    REQUIRE_MESSAGE(sim.start({"--ttft-ms", "1", "--tokens-per-sec", "5000"}), sim.error());
    std::string provider = openai_provider_toml(sim.port());
    if (!model_extra.empty()) {
      // Applies to sim-chat: the provider's first [[providers.models]] entry.
      auto at = provider.find("name = \"sim-chat\"");
      REQUIRE(at != std::string::npos);
      provider.insert(provider.find('\n', at) + 1, std::string(model_extra) + "\n");
    }
    REQUIRE_MESSAGE(node.start(server_toml() + provider), node.error());
  }

  double upstream_calls() { return sim.metric("tcsim_requests_total").value_or(-1); }

  response chat(std::string_view content, std::string_view extra = "\"temperature\":0",
                const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return post_json(node.data_port(), "/v1/chat/completions",
                     chat_body("sim-chat", content, extra), headers);
  }
};

/// Waits until the node's cache holds `entries` records. A miss's answer is stored at step 13,
/// after its client got it, so a client that repeats at once can arrive first.
void await_stored(const node_process& node, double entries = 1) {
  REQUIRE(eventually([&] { return node_metric(node, "tc_cache_entries").value_or(0) >= entries; },
                     10000ms));
}

std::string content_of(const response& r) {
  auto d = parse_json(r.body);
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("choices")) return "<not a completion>";
  return str_of(d["choices"][0]["message"], "content");
}

/// The joined delta content of a stream, and whether it carried a usage chunk.
std::string stream_content(const response& r, bool* saw_usage = nullptr) {
  std::string content;
  if (saw_usage) *saw_usage = false;
  for (const auto& c : sse_json_chunks(r.body)) {
    if (c.HasMember("usage") && c["usage"].IsObject() && saw_usage) *saw_usage = true;
    if (!c.HasMember("choices")) continue;
    for (const auto& ch : c["choices"].GetArray()) content += str_of(ch["delta"], "content");
  }
  return content;
}

}  // namespace

TEST_CASE("a repeated deterministic request is answered from the cache without an upstream call") {
  cached_node n;
  auto first = n.chat("Cache me, exactly.");
  INFO(first.body, n.node.log_tail());
  REQUIRE(first.status == 200);
  CHECK(first.header("x-tc-cache") == "miss");
  const double calls = n.upstream_calls();

  await_stored(n.node);
  auto second = n.chat("Cache me, exactly.");
  REQUIRE(second.status == 200);
  CHECK(second.header("x-tc-cache") == "hit-exact");
  CHECK(content_of(second) == content_of(first));
  auto d = parse_json(second.body);
  REQUIRE(d.HasMember("usage"));
  CHECK(d["usage"]["completion_tokens"].GetInt() > 0);  // the original usage
  CHECK(n.upstream_calls() == calls);

  // The same question as a stream: SSE synthesized from the stored answer, usage when asked.
  auto s = n.chat("Cache me, exactly.",
                  "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}");
  REQUIRE(s.status == 200);
  CHECK(s.header("x-tc-cache") == "hit-exact");
  CHECK(s.header("content-type") == "text/event-stream");
  bool usage = false;
  CHECK(stream_content(s, &usage) == content_of(first));
  CHECK(usage);
  CHECK(parse_sse(s.body).back().data == "[DONE]");
  CHECK(n.upstream_calls() == calls);

  CHECK(node_metric(n.node, "tc_cache_hits_total").value_or(0) == 2);
  CHECK(node_metric(n.node, "tc_cache_misses_total").value_or(0) == 1);
  CHECK(node_metric(n.node, "tc_cache_saved_tokens_total").value_or(0) > 0);
}

TEST_CASE("a streamed miss is cached once complete, and its usage reaches only clients that ask") {
  cached_node n;
  auto s = n.chat("Stream me into the cache.", "\"temperature\":0,\"stream\":true");
  REQUIRE(s.status == 200);
  CHECK(s.header("x-tc-cache") == "miss");
  bool usage = true;
  const std::string streamed = stream_content(s, &usage);
  CHECK(!streamed.empty());
  CHECK_FALSE(usage);  // the gateway asked upstream for usage; this client did not
  const double calls = n.upstream_calls();

  // The stored answer is complete: once the stream's settlement reached the shard, a
  // non-stream client gets the same text with the original usage.
  response hit;
  REQUIRE(eventually(
      [&] {
        hit = n.chat("Stream me into the cache.");
        return hit.header("x-tc-cache") == "hit-exact";
      },
      5s));
  CHECK(content_of(hit) == streamed);
  auto d = parse_json(hit.body);
  REQUIRE(d.HasMember("usage"));
  CHECK(d["usage"]["completion_tokens"].GetInt() > 0);
  CHECK(n.upstream_calls() == calls);
}

TEST_CASE("only deterministic requests are cached by default") {
  cached_node n;
  REQUIRE(n.chat("Not deterministic.", "\"temperature\":0.7").status == 200);
  auto again = n.chat("Not deterministic.", "\"temperature\":0.7");
  CHECK(again.header("x-tc-cache") == "miss");
  // A seed makes a request deterministic.
  REQUIRE(n.chat("Seeded.", "\"temperature\":0.7,\"seed\":42").status == 200);
  response seeded;
  CHECK(eventually(
      [&] {
        seeded = n.chat("Seeded.", "\"temperature\":0.7,\"seed\":42");
        return seeded.header("x-tc-cache") == "hit-exact";
      },
      5s));
  // A different seed is a different request.
  CHECK(n.chat("Seeded.", "\"temperature\":0.7,\"seed\":43").header("x-tc-cache") == "miss");
}

TEST_CASE("a shared cache scope serves across tenants only under the same data-residency rule") {
  // Two regions serve sim-chat; "us" is cheaper, so a tenant without a rule is answered there.
  node_process node;
  REQUIRE_MESSAGE(
      node.start(server_toml() + "[routing]\npolicy = \"cost_first\"\n" +
                 regional_sim_toml("cn", "cn-east", 9.0) + regional_sim_toml("us", "us-west", 1.0)),
      node.error());
  create_tenant(node, R"({"id":"open-a","cache_scope":"team"})");
  create_tenant(node, R"({"id":"open-b","cache_scope":"team"})");
  // The same rule written in another order is the same rule.
  create_tenant(node,
                R"({"id":"cn-c","cache_scope":"team","residency_regions":["cn-east","cn-north"]})");
  create_tenant(node,
                R"({"id":"cn-d","cache_scope":"team","residency_regions":["cn-north","cn-east"]})");
  const std::string a = create_key(node, "open-a");
  const std::string b = create_key(node, "open-b");
  const std::string c = create_key(node, "cn-c");
  const std::string d = create_key(node, "cn-d");
  const std::string q = "Which river is the longest?";
  const std::string extra = R"("temperature":0)";  // no max_tokens: a truncated answer is not kept

  response r = chat(node, a, q, extra);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.header("x-tc-provider") == "us");
  // Shared: another tenant of the scope gets that answer (once it is stored).
  CHECK(
      eventually([&] { return chat(node, b, q, extra).header("x-tc-cache") == "hit-exact"; }, 5s));
  // A tenant bound to cn-east never gets the answer made in us-west: it asks its own endpoint.
  r = chat(node, c, q, extra);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.header("x-tc-cache") == "miss");
  CHECK(r.header("x-tc-provider") == "cn");
  // Its answer is shared with the scope's tenants under the same rule.
  CHECK(
      eventually([&] { return chat(node, d, q, extra).header("x-tc-cache") == "hit-exact"; }, 5s));
  r = chat(node, d, q, extra);
  CHECK(r.header("x-tc-cache") == "hit-exact");
  CHECK(content_of(r) == content_of(chat(node, c, q, extra)));

  // A tenant's own scope follows its rule too: once the rule is lifted, what was made under it
  // is not what the tenant gets (the cheaper endpoint answers), and invalidation by tenant
  // finds its answers under any rule.
  create_tenant(node, R"({"id":"cn-e","residency_regions":["cn-east"]})");
  const std::string e = create_key(node, "cn-e");
  r = chat(node, e, q, extra);
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.header("x-tc-provider") == "cn");
  CHECK(
      eventually([&] { return chat(node, e, q, extra).header("x-tc-cache") == "hit-exact"; }, 5s));
  response patched = admin_call(node, "PATCH", "/v1/tenants/cn-e", R"({"residency_regions":[]})");
  REQUIRE_MESSAGE(patched.status == 200, patched.body);
  CHECK(eventually([&] { return chat(node, e, q, extra).header("x-tc-provider") == "us"; }, 5s));
  CHECK(
      eventually([&] { return chat(node, e, q, extra).header("x-tc-cache") == "hit-exact"; }, 5s));
  response dropped = post_json(node.admin_port(), "/v1/cache/invalidate", R"({"tenant":"cn-e"})");
  REQUIRE_MESSAGE(dropped.status == 200, dropped.body);
  // At least the answer made in cn-east and the one made in us-west (and their pointers).
  CHECK(parse_json(dropped.body)["removed"].GetUint64() >= 2);
  CHECK(chat(node, e, q, extra).header("x-tc-cache") == "miss");
}

TEST_CASE("a model may opt in to caching non-deterministic requests") {
  cached_node n("cache_nondeterministic = true");
  REQUIRE(n.chat("Sampled.", "\"temperature\":0.7").status == 200);
  // Hits, and the loop's exact-hit lane answers them: it looks at such requests only for such
  // models. (The first repeat may reach the actor before the answer is stored.)
  CHECK(eventually(
      [&] {
        return n.chat("Sampled.", "\"temperature\":0.7").header("x-tc-cache") == "hit-exact" &&
               node_metric(n.node, "tc_cache_loop_hits_total").value_or(0) >= 1;
      },
      5s));
}

TEST_CASE("every counted parameter is part of the key") {
  cached_node n;
  REQUIRE(n.chat("Parameters count.").status == 200);
  REQUIRE(eventually(
      [&] { return n.chat("Parameters count.").header("x-tc-cache") == "hit-exact"; }, 5s));
  for (std::string extra : {"\"temperature\":0,\"max_tokens\":7", "\"temperature\":0,\"top_p\":0.5",
                            "\"temperature\":0,\"stop\":[\"x\"]", "\"temperature\":0,\"n\":1",
                            "\"temperature\":0,\"x_vendor\":1",
                            "\"temperature\":0,\"response_format\":{\"type\":\"json_object\"}"}) {
    INFO(extra);
    CHECK(n.chat("Parameters count.", extra).header("x-tc-cache") == "miss");
  }
  // Fields that never count: user, metadata, stream_options on a non-stream request.
  CHECK(
      n.chat("Parameters count.", "\"temperature\":0,\"user\":\"someone\"").header("x-tc-cache") ==
      "hit-exact");
  CHECK(n.chat("Parameters count.", "\"temperature\":0,\"metadata\":{\"k\":\"v\"}")
            .header("x-tc-cache") == "hit-exact");
}

TEST_CASE("Cache-Control no-store and no-cache, and x-tc-cache-ttl") {
  cached_node n;
  // no-store: answered, never stored.
  REQUIRE(
      n.chat("Do not keep this.", "\"temperature\":0", {{"Cache-Control", "no-store"}}).status ==
      200);
  CHECK(n.chat("Do not keep this.", "\"temperature\":0", {{"Cache-Control", "no-store"}})
            .header("x-tc-cache") == "miss");

  // no-cache: a fresh answer even though one is stored.
  REQUIRE(n.chat("Keep this.").status == 200);
  REQUIRE(eventually([&] { return n.chat("Keep this.").header("x-tc-cache") == "hit-exact"; }, 5s));
  const double calls = n.upstream_calls();
  auto fresh = n.chat("Keep this.", "\"temperature\":0", {{"Cache-Control", "No-Cache"}});
  CHECK(fresh.header("x-tc-cache") == "miss");
  CHECK(n.upstream_calls() == calls + 1);

  // A bad TTL is the client's error; a 1 s TTL expires.
  auto bad = n.chat("ttl", "\"temperature\":0", {{"x-tc-cache-ttl", "soon"}});
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "x-tc-cache-ttl");
  REQUIRE(n.chat("Short lived.", "\"temperature\":0", {{"x-tc-cache-ttl", "1"}}).status == 200);
  REQUIRE(eventually(
      [&] {
        return n.chat("Short lived.", "\"temperature\":0", {{"Cache-Control", "no-store"}})
                   .header("x-tc-cache") == "hit-exact";
      },
      5s));
  // Polled with no-store, so the expiry is not undone by storing the answer again.
  CHECK(eventually(
      [&] {
        return n.chat("Short lived.", "\"temperature\":0", {{"Cache-Control", "no-store"}})
                   .header("x-tc-cache") == "miss";
      },
      10s, 100ms));
}

TEST_CASE("errors and truncated answers are never cached") {
  cached_node n;
  REQUIRE(post_json(n.sim.port(), "/sim/settings", R"({"error_rate":1.0})").status == 200);
  CHECK(n.chat("Fails first.").status == 502);
  REQUIRE(post_json(n.sim.port(), "/sim/settings", R"({"error_rate":0.0})").status == 200);
  auto ok = n.chat("Fails first.");
  CHECK(ok.status == 200);
  CHECK(ok.header("x-tc-cache") == "miss");

  // finish_reason "length": answered, not stored.
  REQUIRE(n.chat("Cut short.", "\"temperature\":0,\"max_tokens\":2").status == 200);
  auto again = n.chat("Cut short.", "\"temperature\":0,\"max_tokens\":2");
  CHECK(again.header("x-tc-cache") == "miss");
}

TEST_CASE("the template tier answers the same question written differently, never other values") {
  cached_node n;
  REQUIRE(n.chat("What is 2+3?").status == 200);
  auto same = n.chat("what   is 2+3");
  REQUIRE(eventually(
      [&] {
        same = n.chat("what   is 2+3");
        return same.header("x-tc-cache") == "hit-template";
      },
      5s));
  CHECK(n.chat("What is 2+4?").header("x-tc-cache") == "miss");
  CHECK(n.chat("What is 3+2?").header("x-tc-cache") == "miss");
}

TEST_CASE("the admin API invalidates by model and reports the cache's size") {
  cached_node n;
  REQUIRE(n.chat("Invalidate me.").status == 200);
  REQUIRE(
      eventually([&] { return n.chat("Invalidate me.").header("x-tc-cache") == "hit-exact"; }, 5s));
  auto stats = get(n.node.admin_port(), "/v1/cache");
  REQUIRE(stats.status == 200);
  auto s = parse_json(stats.body);
  REQUIRE(s.IsObject());
  CHECK(s["entries"].GetUint64() >= 1);

  auto bad = post_json(n.node.admin_port(), "/v1/cache/invalidate", R"({"colour":"red"})");
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "colour");

  auto other = post_json(n.node.admin_port(), "/v1/cache/invalidate", R"({"model":"other"})");
  REQUIRE(other.status == 200);
  CHECK(parse_json(other.body)["removed"].GetUint64() == 0);
  CHECK(n.chat("Invalidate me.").header("x-tc-cache") == "hit-exact");

  auto gone = post_json(n.node.admin_port(), "/v1/cache/invalidate", R"({"model":"sim-chat"})");
  REQUIRE(gone.status == 200);
  CHECK(parse_json(gone.body)["removed"].GetUint64() >= 1);
  CHECK(n.chat("Invalidate me.", "\"temperature\":0", {{"Cache-Control", "no-store"}})
            .header("x-tc-cache") == "miss");
  CHECK(node_metric(n.node, "tc_cache_entries").has_value());
}

namespace {

/// `n` identical requests at once, each on its own thread and connection; `stream_of(i)` says
/// which are streamed (with include_usage when `i` is even).
std::vector<response> concurrent_identical(uint16_t port, std::string_view content, int n,
                                           bool (*stream_of)(int)) {
  std::vector<response> out(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(out.size());
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      std::string extra = "\"temperature\":0";
      if (stream_of(i)) {
        extra += ",\"stream\":true";
        if (i % 2 == 0) extra += ",\"stream_options\":{\"include_usage\":true}";
      }
      out[static_cast<std::size_t>(i)] =
          post_json(port, "/v1/chat/completions", chat_body("sim-chat", content, extra), {}, 30s);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace

TEST_CASE("100 identical concurrent requests, streamed and not, make one upstream call") {
  sim_process sim;
  // Slow enough that all 100 arrive while the first is still being answered.
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "800", "--tokens-per-sec", "400"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());
  const double before = sim.metric("tcsim_requests_total").value_or(-1);

  auto rs = concurrent_identical(node.data_port(), "One call for all of us.", 100,
                                 [](int i) { return i % 3 == 0; });
  CHECK(sim.metric("tcsim_requests_total").value_or(-1) == before + 1);

  std::string answer;
  int dedup = 0;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const response& r = rs[i];
    INFO("request ", i, ": ", r.error, " ", r.body.substr(0, 300));
    REQUIRE(r.status == 200);
    if (r.header("x-tc-cache") == "dedup") ++dedup;
    const bool streamed = i % 3 == 0;
    std::string text;
    if (streamed) {
      bool usage = false;
      text = stream_content(r, &usage);
      CHECK(usage == (i % 2 == 0));
      CHECK(parse_sse(r.body).back().data == "[DONE]");
    } else {
      text = content_of(r);
      auto d = parse_json(r.body);
      CHECK(d["usage"]["completion_tokens"].GetInt() > 0);
    }
    CHECK(!text.empty());
    if (answer.empty()) answer = text;
    CHECK(text == answer);  // the full answer, the same for everyone
  }
  CHECK(dedup == 99);
  CHECK(node_metric(node, "tc_cache_dedup_joins_total").value_or(0) == 99);
}

TEST_CASE("a dedup leader whose client leaves keeps calling for its followers") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "40"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());
  const std::string body = chat_body("sim-chat", "Lead, then leave.",
                                     "\"temperature\":0,\"stream\":true,"
                                     "\"max_tokens\":40");
  http_connection leader;
  REQUIRE(leader.connect(node.data_port()));
  REQUIRE(leader.send_all(make_request("POST", "/v1/chat/completions", body)));
  REQUIRE(leader.read_head(10s).status == 200);
  REQUIRE(leader.read_body_until("\n\n", 10s).find("data: ") != std::string::npos);

  // Followers join the stream in flight: a replay of the chunks so far, then the live ones.
  std::vector<response> followers(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < followers.size(); ++i) {
    threads.emplace_back([&, i] {
      followers[i] = post_json(node.data_port(), "/v1/chat/completions", body, {}, 30s);
    });
  }
  REQUIRE(eventually([&] { return node_metric(node, "tc_requests_in_flight") == 5.0; }, 10s));
  leader.close(true);
  for (auto& t : threads) t.join();
  for (const auto& f : followers) {
    INFO(f.error, " ", f.body.substr(0, 300));
    CHECK(f.status == 200);
    CHECK(f.header("x-tc-cache") == "dedup");
    CHECK(parse_sse(f.body).back().data == "[DONE]");
    CHECK(stream_content(f) == stream_content(followers[0]));
  }
  CHECK(!stream_content(followers[0]).empty());
  CHECK(sim.metric("tcsim_requests_total").value_or(-1) == 1);
}

TEST_CASE("an upstream failure reaches every follower") {
  sim_process sim;
  REQUIRE_MESSAGE(sim.start({"--ttft-ms", "5", "--tokens-per-sec", "20"}), sim.error());
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + openai_provider_toml(sim.port())), node.error());
  const std::string stream_body = chat_body("sim-chat", "This call will die.",
                                            "\"temperature\":0,\"stream\":true,\"max_tokens\":200");
  const std::string plain_body =
      chat_body("sim-chat", "This call will die.", "\"temperature\":0,\"max_tokens\":200");
  http_connection leader;
  REQUIRE(leader.connect(node.data_port()));
  REQUIRE(leader.send_all(make_request("POST", "/v1/chat/completions", stream_body)));
  REQUIRE(leader.read_head(10s).status == 200);

  std::vector<response> followers(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < followers.size(); ++i) {
    threads.emplace_back([&, i] {
      followers[i] = post_json(node.data_port(), "/v1/chat/completions",
                               i % 2 ? plain_body : stream_body, {}, 30s);
    });
  }
  REQUIRE(eventually([&] { return node_metric(node, "tc_requests_in_flight") == 5.0; }, 10s));
  sim.proc().kill9();
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < followers.size(); ++i) {
    const response& f = followers[i];
    INFO(i, ": ", f.error, " ", f.body.substr(0, 400));
    if (i % 2) {  // non-stream: the leader's error
      CHECK(f.status == 502);
      CHECK(error_of(f.body).valid);
    } else {  // stream: started live, then the error event and no [DONE]
      CHECK(f.status == 200);
      CHECK(f.body.find("event: error") != std::string::npos);
      CHECK(f.body.find("[DONE]") == std::string::npos);
    }
  }
  // One upstream call failed, not five.
  CHECK(node_metric(node, "tc_upstream_failures_total").value_or(0) == 1);
}

TEST_CASE("the I/O loop answers a plain exact hit itself, billed and audited like any hit") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());
  create_tenant(node, R"({"id":"acme"})");
  const std::string key = create_key(node, "acme");
  const std::string det = "\"temperature\":0";
  REQUIRE(chat(node, key, "Answer me from the loop.", det).status == 200);  // the miss
  await_stored(node);
  response hit = chat(node, key, "Answer me from the loop.", det);
  REQUIRE(hit.status == 200);
  CHECK(hit.header("x-tc-cache") == "hit-exact");
  response streamed = chat(node, key, "Answer me from the loop.", det + ",\"stream\":true");
  REQUIRE(streamed.status == 200);
  CHECK(streamed.header("x-tc-cache") == "hit-exact");
  CHECK(parse_sse(streamed.body).back().data == "[DONE]");
  CHECK(node_metric(node, "tc_cache_loop_hits_total").value_or(-1) == 2);
  CHECK(node_metric(node, "tc_cache_hits_total").value_or(-1) == 2);

  // Step 13 as on the actor way: a usage record per hit (tenant, key, result) and an audit
  // record naming the cache.
  rapidjson::Document report;
  REQUIRE(eventually(
      [&] {
        response r = admin_call(node, "GET", "/v1/usage?tenant=acme&group_by=tenant");
        if (r.status != 200) return false;
        report = parse_json(r.body);
        return !report.HasParseError() && report["totals"]["requests"].GetUint64() == 3;
      },
      10000ms));
  CHECK(report["totals"]["cache_hits"].GetUint64() == 2);
  // No answer waited for these records (the store is in memory); the writers counted each down.
  CHECK(eventually([&] { return node_metric(node, "tc_records_behind").value_or(-1) == 0; },
                   10000ms));
  tcctl_result found = run_tcctl(
      node, {"--json", "audit", "search", "--request-id", std::string(hit.header("x-request-id"))});
  REQUIRE_MESSAGE(found.code == 0, found.out);
  auto rec = parse_json(found.out.substr(0, found.out.find('\n')));
  REQUIRE(rec.IsObject());
  CHECK(rec["status"].GetInt() == 200);
  CHECK(str_of(rec, "tenant") == "acme");
  CHECK(str_of(rec, "provider") == "cache");
  CHECK(rec["completion_tokens"].GetUint() > 0);
}

TEST_CASE("what the loop cannot decide alone goes the actor way, with the same answers") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());
  create_tenant(node, R"({"id":"acme"})");
  const std::string plain = create_key(node, "acme");
  const std::string limited = create_key(node, "acme", R"("limits":{"rpm":1000})");
  const std::string det = "\"temperature\":0";
  REQUIRE(chat(node, plain, "Shared question.", det).status == 200);  // cached for acme
  await_stored(node);
  // A key with limits: step 2 reserves at its owner, so the actor answers the hit.
  response r = chat(node, limited, "Shared question.", det);
  REQUIRE(r.status == 200);
  CHECK(r.header("x-tc-cache") == "hit-exact");
  CHECK(!r.header("x-ratelimit-limit-requests").empty());
  CHECK(node_metric(node, "tc_cache_loop_hits_total").value_or(-1) == 0);
  // Cache-Control: no-cache is a miss whoever answers.
  response fresh = post_json(node.data_port(), "/v1/chat/completions",
                             chat_body("sim-chat", "Shared question.", det),
                             {{"Authorization", "Bearer " + plain}, {"Cache-Control", "no-cache"}});
  REQUIRE(fresh.status == 200);
  CHECK(fresh.header("x-tc-cache") == "miss");
  // A revoked key is refused even for a stored answer, by the actor (which audits the refusal).
  const std::string gone = create_key(node, "acme");
  REQUIRE(chat(node, gone, "Shared question.", det).header("x-tc-cache") == "hit-exact");
  CHECK(node_metric(node, "tc_cache_loop_hits_total").value_or(-1) == 1);
  response keys = admin_call(node, "GET", "/v1/keys?tenant=acme");
  REQUIRE(keys.status == 200);
  auto listed = parse_json(keys.body);
  std::string gone_id;
  for (const auto& k : listed["data"].GetArray())
    if (gone.rfind(str_of(k, "prefix"), 0) == 0) gone_id = str_of(k, "id");
  REQUIRE(!gone_id.empty());
  REQUIRE(admin_call(node, "POST", "/v1/keys/" + gone_id + "/revoke").status == 200);
  CHECK(chat(node, gone, "Shared question.", det).status == 401);
  // An unknown model is the actor's 404, never a hit.
  CHECK(post_json(node.data_port(), "/v1/chat/completions",
                  chat_body("no-such-model", "Shared question.", det))
            .status == 404);
  CHECK(node_metric(node, "tc_cache_loop_hits_total").value_or(-1) == 1);
}

TEST_CASE("cache.loop_hits = false sends every hit through the connection actor") {
  node_process node;
  REQUIRE_MESSAGE(
      node.start(server_toml() + "[cache]\nloop_hits = false\n" + sim_provider_toml(1, 20000)),
      node.error());
  REQUIRE(chat(node, "", "Through the actor.", "\"temperature\":0").status == 200);
  await_stored(node);
  response hit = chat(node, "", "Through the actor.", "\"temperature\":0");
  REQUIRE(hit.status == 200);
  CHECK(hit.header("x-tc-cache") == "hit-exact");
  CHECK(node_metric(node, "tc_cache_hits_total").value_or(-1) == 1);
  CHECK(node_metric(node, "tc_cache_loop_hits_total").value_or(-1) == 0);
}

TEST_CASE("over its semantic budget a node leaves semantic work out and keeps answering") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(0, 0) +
                             "[cache]\nsemantic_budget_pct = 1\n"),  // 10 ms of HNSW work a second
                  node.error());
  // Unique temperature-0 questions in one namespace: each is searched for, then inserted.
  auto skipped = [&](std::string_view op) {
    return metric_sum(get(node.admin_port(), "/metrics").body, "tc_cache_semantic_skipped", op)
        .value_or(0);
  };
  int sent = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (skipped("insert") == 0 && sent < 20000 && std::chrono::steady_clock::now() < deadline) {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          const std::string q = "Budget question " + std::to_string(sent + t * 50 + i) +
                                " about item " + std::to_string((sent + t * 50 + i) * 31 % 977);
          if (post_json(node.data_port(), "/v1/chat/completions",
                        chat_body("sim-chat", q, "\"temperature\":0"))
                  .status != 200)
            ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    sent += 200;
    REQUIRE(failures.load() == 0);
  }
  CHECK(skipped("insert") > 0);
  auto stats = parse_json(get(node.admin_port(), "/v1/cache").body);
  REQUIRE(stats.IsObject());
  CHECK(stats["semantic_skipped_inserts"].GetUint64() > 0);
  CHECK(stats["semantic_entries"].GetUint64() < static_cast<uint64_t>(sent));
  // Answers left out of the semantic index are still stored under their exact keys.
  const std::string again = "Budget question " + std::to_string(sent - 1) + " about item " +
                            std::to_string((sent - 1) * 31 % 977);
  REQUIRE(eventually(
      [&] {
        return post_json(node.data_port(), "/v1/chat/completions",
                         chat_body("sim-chat", again, "\"temperature\":0"))
                   .header("x-tc-cache") == "hit-exact";
      },
      10s));
}
