// When the store fails (issue 4): fail_mode closed refuses billed requests and holds answers
// until their record is written; open serves under strict fallback limits and keeps the records
// until the store is back. The failure is injected through the debug admin call.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <string>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

/// A node whose store is on disk in `dir` (held answers wait only for a store that survives a
/// crash) and whose writes the debug call can fail.
std::string faulty_node(const temp_dir& dir, std::string_view store_extra) {
  return server_toml() + "[cache]\nenabled = false\n[debug]\nfault_injection = true\n[store]\n" +
         "path = \"" + dir.path() + "/db\"\n" + std::string(store_extra) +
         sim_provider_toml(1, 20000);
}

void set_store_writes(const node_process& node, std::string_view mode) {
  response r = admin_call(node, "POST", "/v1/debug/faults",
                          R"({"store_writes":")" + std::string(mode) + "\"}");
  REQUIRE_MESSAGE(r.status == 200, r.body);
}

uint64_t records_in_ledger(const node_process& node) {
  auto d = parse_json(admin_call(node, "GET", "/v1/usage").body);
  return d.IsObject() ? d["totals"]["requests"].GetUint64() : 0;
}

}  // namespace

TEST_CASE("the debug fault call exists only with debug.fault_injection, for owners") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml()), node.error());
  CHECK(admin_call(node, "POST", "/v1/debug/faults", R"({"store_writes":"fail"})").status == 404);

  temp_dir dir;
  node_process faulty;
  REQUIRE_MESSAGE(faulty.start(faulty_node(dir, "")), faulty.error());
  response bad = admin_call(faulty, "POST", "/v1/debug/faults", R"({"store_writes":"maybe"})");
  CHECK(bad.status == 400);
  CHECK(error_of(bad.body).param == "store_writes");
  response now = admin_call(faulty, "GET", "/v1/debug/faults");
  CHECK(now.status == 200);
  CHECK(str_of(parse_json(now.body), "store_writes") == "ok");
}

TEST_CASE(
    "fail_mode closed: an answer waits for its record, new requests get 503 until the "
    "store is back") {
  temp_dir dir;
  node_process node;
  REQUIRE_MESSAGE(node.start(faulty_node(dir, "fail_mode = \"closed\"\n")), node.error());
  REQUIRE(chat(node, "", "before").status == 200);
  set_store_writes(node, "fail");

  // This answer's record cannot be written: the client does not get it yet.
  auto held = std::async(std::launch::async, [&] { return chat(node, "", "held"); });
  // Once the ledger has seen the failure, billed requests are refused, not served unmetered.
  REQUIRE(eventually([&] { return node.log().find("ledger_write_failed") != std::string::npos; },
                     10000ms));
  response refused = chat(node, "", "refused");
  CHECK(refused.status == 503);
  CHECK(error_of(refused.body).type == "service_unavailable");
  CHECK(!refused.header("retry-after").empty());
  CHECK(held.wait_for(0ms) == std::future_status::timeout);

  set_store_writes(node, "ok");
  response r = held.get();  // released once the retried write succeeds
  CHECK(r.status == 200);
  REQUIRE(eventually([&] { return chat(node, "", "after").status == 200; }, 10000ms));
  CHECK(records_in_ledger(node) == 3);  // before, held, after: each once; the 503s are free
}

TEST_CASE(
    "fail_mode open: strict fallback limits while the store fails, records kept until it "
    "is back") {
  temp_dir dir;
  node_process node;
  REQUIRE_MESSAGE(node.start(faulty_node(dir, "fail_mode = \"open\"\nfallback_rpm = 3\n")),
                  node.error());
  set_store_writes(node, "fail");
  // The first record fails to write; its answer is released anyway (open) and the node is now
  // in fallback: 3 requests a minute for the tenant.
  REQUIRE(chat(node, "", "first").status == 200);
  REQUIRE(eventually([&] { return node.log().find("ledger_write_failed") != std::string::npos; },
                     10000ms));
  int ok = 0, limited = 0;
  for (int i = 0; i < 6; ++i) {
    response r = chat(node, "", "fallback " + std::to_string(i));
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      CHECK(error_of(r.body).code == "rate_limit_exceeded");
    }
  }
  CHECK(ok == 3);
  CHECK(limited == 3);

  // Back: every record kept in memory is written, and the fallback limit is gone.
  set_store_writes(node, "ok");
  REQUIRE(eventually([&] { return records_in_ledger(node) == 4; }, 10000ms));
  for (int i = 0; i < 5; ++i) CHECK(chat(node, "", "normal " + std::to_string(i)).status == 200);
}

TEST_CASE("fail_mode open: once store.max_pending_records wait, billed requests get 503") {
  temp_dir dir;
  node_process node;
  REQUIRE_MESSAGE(node.start(faulty_node(
                      dir, "fail_mode = \"open\"\nfallback_rpm = 1000\nmax_pending_records = 2\n")),
                  node.error());
  set_store_writes(node, "fail");
  REQUIRE(chat(node, "", "one").status == 200);
  response r;
  REQUIRE(eventually(
      [&] {
        r = chat(node, "", "more");
        return r.status == 503;
      },
      10000ms));
  CHECK(error_of(r.body).type == "service_unavailable");
  set_store_writes(node, "ok");
  REQUIRE(eventually([&] { return chat(node, "", "again").status == 200; }, 10000ms));
}
