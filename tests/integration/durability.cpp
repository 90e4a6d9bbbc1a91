// The ledger and the audit trail across a crash (issues 4 and 5): kill -9 a node under load,
// restart it on the same store, and compare what the clients were sent with what the ledger,
// `tcctl usage` and `tcctl audit` say.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// One request as its client saw it.
struct attempt {
  std::string id;         ///< the client's x-request-id
  bool complete = false;  ///< the whole answer arrived, usage included
  uint64_t prompt = 0;
  uint64_t completion = 0;
};

/// Sends one chat request; complete only if the answer arrived whole with its usage.
attempt send_one(uint16_t port, const std::string& key, const std::string& id, bool stream,
                 int max_tokens) {
  attempt a;
  a.id = id;
  std::string extra = "\"max_tokens\":" + std::to_string(max_tokens);
  if (stream) extra += R"(,"stream":true,"stream_options":{"include_usage":true})";
  response r =
      post_json(port, "/v1/chat/completions", chat_body("sim-chat", "durable " + id, extra),
                {{"Authorization", "Bearer " + key}, {"x-request-id", id}}, 5000ms);
  if (r.status != 200 || !r.complete) return a;
  if (stream) {
    if (r.body.find("data: [DONE]") == std::string::npos) return a;
    for (const auto& c : sse_json_chunks(r.body)) {
      if (c.HasMember("usage") && c["usage"].IsObject()) {
        a.prompt = c["usage"]["prompt_tokens"].GetUint64();
        a.completion = c["usage"]["completion_tokens"].GetUint64();
        a.complete = true;
      }
    }
    return a;
  }
  auto d = parse_json(r.body);
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("usage")) return a;
  a.prompt = d["usage"]["prompt_tokens"].GetUint64();
  a.completion = d["usage"]["completion_tokens"].GetUint64();
  a.complete = true;
  return a;
}

}  // namespace

TEST_CASE(
    "kill -9 under load: every answer a client got is in the ledger, keys and budgets "
    "survive") {
  temp_dir dir;
  // Slow enough that requests are in flight when the kill lands (~30-150 ms an answer).
  const std::string config = server_toml() + "[store]\npath = \"" + dir.path() + "/db\"\n" +
                             "[cache]\nenabled = false\n" + sim_provider_toml(2, 400);
  std::string load_key, revoked_key, rotated_old, rotated_new;
  std::vector<attempt> attempts;
  {
    node_process node;
    REQUIRE_MESSAGE(node.start(config), node.error());
    // One unit of money per token, so charges are token counts.
    REQUIRE(admin_call(node, "PUT", "/v1/prices/sim/sim-chat",
                       R"({"input_per_m":1000000,"output_per_m":1000000})")
                .status == 200);
    create_tenant(node, R"({"id":"acme","limits":{"daily_budget":100000000}})");
    load_key = create_key(node, "acme");
    revoked_key = create_key(node, "acme");
    rotated_old = create_key(node, "acme");
    auto keys = parse_json(admin_call(node, "GET", "/v1/keys?tenant=acme").body);
    REQUIRE(keys["data"].Size() == 3);
    std::string revoked_id, rotated_id;
    for (const auto& k : keys["data"].GetArray()) {
      const std::string prefix = str_of(k, "prefix");
      if (revoked_key.rfind(prefix, 0) == 0) revoked_id = str_of(k, "id");
      if (rotated_old.rfind(prefix, 0) == 0) rotated_id = str_of(k, "id");
    }
    REQUIRE(admin_call(node, "POST", "/v1/keys/" + revoked_id + "/revoke").status == 200);
    response rot =
        admin_call(node, "POST", "/v1/keys/" + rotated_id + "/rotate", R"({"grace_s":3600})");
    REQUIRE_MESSAGE(rot.status == 201, rot.body);
    rotated_new = str_of(parse_json(rot.body), "secret");
    REQUIRE(rotated_new.rfind("sk-tc-", 0) == 0);

    // 12 clients, streams and plain answers mixed, until the node dies under them.
    constexpr int clients = 12;
    // The client that gets the 150th answer kills the node at once: the newest answers' records
    // would still be in flight without write-ahead.
    constexpr int kill_after = 150;
    std::atomic<int> completed{0};
    std::atomic<bool> killed{false};
    exit_status st;
    std::mutex mx;
    std::vector<std::thread> threads;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    for (int c = 0; c < clients; ++c) {
      threads.emplace_back([&, c] {
        std::vector<attempt> mine;
        for (int i = 0; i < 5000 && std::chrono::steady_clock::now() < give_up; ++i) {
          const bool after_kill = killed.load();
          attempt a = send_one(node.data_port(), load_key,
                               "dur-" + std::to_string(c) + "-" + std::to_string(i),
                               (i + c) % 2 == 0, 8 + (i * 7 + c) % 40);
          const bool ok = a.complete;
          mine.push_back(std::move(a));
          if (ok && completed.fetch_add(1) + 1 == kill_after) {
            st = node.proc().kill9();
            killed = true;
          }
          if (!ok || after_kill) break;  // the first failure ends this client
        }
        std::lock_guard<std::mutex> lock(mx);
        for (auto& a : mine) attempts.push_back(std::move(a));
      });
    }
    for (auto& t : threads) t.join();
    REQUIRE_MESSAGE(killed.load(), node.log_tail());
    CHECK(st.signal == 9);
  }

  // Every client ended with at most one request that did not complete: the one the kill cut.
  std::map<std::string, const attempt*> sent;
  uint64_t client_prompt = 0, client_completion = 0;
  size_t cut = 0;
  for (const auto& a : attempts) {
    sent[a.id] = &a;
    if (a.complete) {
      client_prompt += a.prompt;
      client_completion += a.completion;
    } else {
      ++cut;
    }
  }
  CHECK(cut <= 12);

  node_process again;
  REQUIRE_MESSAGE(again.start(config), again.error());
  response rec = admin_call(again, "GET", "/v1/usage/records?tenant=acme&limit=100000");
  REQUIRE(rec.status == 200);
  auto records = parse_json(rec.body);
  REQUIRE(records["data"].IsArray());
  std::map<std::string, std::pair<uint64_t, uint64_t>> ledger;  // client id -> tokens
  for (const auto& r : records["data"].GetArray()) {
    const std::string id = str_of(r, "client_request_id");
    CHECK_MESSAGE(sent.count(id) == 1, "a record for a request no client sent: " << id);
    CHECK_MESSAGE(ledger.count(id) == 0, "two records for one request: " << id);
    ledger[id] = {r["prompt_tokens"].GetUint64(), r["completion_tokens"].GetUint64()};
  }
  // Write-ahead: no answer reached a client before its record was durable. So every complete
  // answer has its record, to the token.
  size_t matched = 0;
  for (const auto& a : attempts) {
    if (!a.complete) continue;
    auto it = ledger.find(a.id);
    REQUIRE_MESSAGE(it != ledger.end(), "no record for an answer the client got: " << a.id);
    CHECK(it->second.first == a.prompt);
    CHECK(it->second.second == a.completion);
    ++matched;
  }
  // The one window write-ahead cannot close: a record written, then the kill before its held
  // bytes reached the socket. Such a record belongs to a request the kill cut, never to one
  // the client did not send; usually there is none.
  uint64_t extra_tokens = 0;
  size_t extra = 0;
  for (const auto& [id, tokens] : ledger) {
    auto it = sent.find(id);
    if (it == sent.end() || it->second->complete) continue;
    ++extra;
    extra_tokens += tokens.first + tokens.second;
  }
  CHECK(extra <= cut);
  CHECK(matched + extra == ledger.size());
  MESSAGE("complete answers: " << matched << ", cut by the kill: " << cut
                               << ", records of cut requests: " << extra);

  // `tcctl usage` agrees with the client-side count to the token (plus any such record).
  tcctl_result u = run_tcctl(again, {"--json", "usage", "--tenant", "acme"});
  REQUIRE_MESSAGE(u.code == 0, u.out);
  auto report = parse_json(u.out);
  REQUIRE(report.IsObject());
  CHECK(report["totals"]["prompt_tokens"].GetUint64() +
            report["totals"]["completion_tokens"].GetUint64() ==
        client_prompt + client_completion + extra_tokens);
  CHECK(report["totals"]["requests"].GetUint64() == matched + extra);

  // The audit trail (issue 5): every answer a client got has its audit record, under the
  // x-request-id it was given, and the chain across the crash verifies.
  tcctl_result verify = run_tcctl(again, {"audit", "verify"});
  CHECK_MESSAGE(verify.code == 0, verify.out);
  CHECK(verify.out.find("chain ok") != std::string::npos);
  const std::string export_path = dir.path() + "/audit.jsonl";
  tcctl_result ran =
      run_tcctl(again, {"audit", "export", "--tenant", "acme", "--out", export_path});
  REQUIRE_MESSAGE(ran.code == 0, ran.out);
  tcctl_result exported;
  {
    std::ifstream in(export_path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    exported.out = text.str();
  }
  std::map<std::string, int> audited;  // request id -> status
  size_t lines = 0;
  for (size_t at = 0; at < exported.out.size();) {
    size_t end = exported.out.find('\n', at);
    if (end == std::string::npos) end = exported.out.size();
    auto line = parse_json(std::string_view(exported.out).substr(at, end - at));
    at = end + 1;
    if (line.HasParseError() || !line.IsObject()) continue;
    ++lines;
    audited[str_of(line, "request_id")] = line["status"].GetInt();
  }
  size_t audited_answers = 0;
  for (const auto& a : attempts) {
    if (!a.complete) continue;
    auto it = audited.find(a.id);
    CHECK_MESSAGE(it != audited.end(), "no audit record for an answer the client got: " << a.id);
    if (it != audited.end() && it->second == 200) ++audited_answers;
  }
  CHECK(audited_answers == matched);
  MESSAGE("audit records of acme: " << lines);

  // Key states are intact: revoked stays revoked, the rotated key and its old secret (in its
  // grace) both work, the load key works.
  CHECK(chat(again, revoked_key, "still revoked?").status == 401);
  CHECK(chat(again, rotated_new, "new secret").status == 200);
  CHECK(chat(again, rotated_old, "old secret in grace").status == 200);
  CHECK(chat(again, load_key, "load key").status == 200);

  // The budget is intact: set it to what the ledger says was spent plus less than one request
  // costs; the next request must be refused, which it would not be had the spend been lost.
  auto spent_report = parse_json(admin_call(again, "GET", "/v1/usage?tenant=acme").body);
  const double spent = std::stod(str_of(spent_report["totals"], "charged"));
  response put = admin_call(again, "PATCH", "/v1/tenants/acme",
                            R"({"limits":{"daily_budget":)" + std::to_string(spent + 2) + "}}");
  REQUIRE_MESSAGE(put.status == 200, put.body);
  response refused = chat(again, load_key, "over budget now", R"("max_tokens":16)");
  CHECK(refused.status == 429);
  CHECK(error_of(refused.body).code == "insufficient_quota");
}
