// The admin API's audit calls (node/admin_api.cpp) over a real audit_writer on an in-memory
// store: verify, export and search answers, time bounds in their three forms, 400s naming the
// parameter, roles, 503 without a writer or when it is gone, and a tampered record named by
// verify.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <rapidjson/document.h>

#include <caf/all.hpp>

#include "actors/accounts.hpp"
#include "actors/audit_writer.hpp"
#include "actors/store.hpp"
#include "node/admin_api.hpp"
#include "protocol/accounts/accounts.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/messages.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc;

namespace {

constexpr auto kTimeout = std::chrono::seconds(10);
const std::string kOwner = "tc-adm-owner-secret-for-tests";
const std::string kViewer = "tc-adm-viewer-secret-for-tests";

// The records' times (unix ms), computed independently of the server's parser.
constexpr int64_t k1203_235959_999 = 1796342399999;  // 2026-12-03T23:59:59.999Z
constexpr int64_t k1204_000000 = 1796342400000;      // 2026-12-04T00:00:00Z
constexpr int64_t k1204_100000 = 1796378400000;      // 2026-12-04T10:00:00Z
constexpr int64_t k1204_235959_999 = 1796428799999;  // 2026-12-04T23:59:59.999Z
constexpr int64_t k1205_000000 = 1796428800000;      // 2026-12-05T00:00:00Z
constexpr int64_t k1205_080000 = 1796457600000;      // 2026-12-05T08:00:00Z

using tc::test::quiet_config;

audit::audit_record make_record(std::string request_id, int64_t ts_ms, std::string tenant) {
  audit::audit_record r;
  r.request_id = std::move(request_id);
  r.ts_ms = ts_ms;
  r.tenant = std::move(tenant);
  r.project = "web";
  r.key_id = "key_1";
  r.model = "sim-chat";
  r.provider = "sim";
  r.endpoint = "/v1/chat/completions";
  r.status = 200;
  r.prompt_tokens = 10;
  r.completion_tokens = 20;
  r.cost_currency = "CNY";
  r.input_text = "question";
  r.output_text = "answer";
  return r;
}

/// A viewer admin token in an otherwise empty directory.
std::shared_ptr<actors::directory_cell> directory_with_viewer() {
  auto dir = std::make_shared<actors::directory>();
  accounts::admin_token t;
  t.id = "adm_0000000000000001";
  t.name = "auditor";
  t.level = accounts::role::viewer;
  t.hash = accounts::secret_hash(kViewer);
  dir->admin_by_hash[t.hash] = t.id;
  dir->admin_tokens[t.id] = t;
  auto cell = std::make_shared<actors::directory_cell>();
  cell->set(dir);
  return cell;
}

/// An actor system, an in-memory store, an audit_writer over it and the admin deps using it.
struct audit_fixture {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<actors::store> db;
  std::shared_ptr<actors::audit_settings> settings = std::make_shared<actors::audit_settings>();
  caf::actor writer;
  node::admin_api_deps deps;

  audit_fixture() {
    actors::store::status st;
    db = actors::store::open("", false, st);
    REQUIRE_MESSAGE(db != nullptr, st.message);
    settings->node = "node-t";
    settings->text = actors::audit_settings::text_mode::clear;
    writer = sys.spawn<caf::detached>(actors::audit_writer, db,
                                      std::shared_ptr<const actors::audit_settings>(settings),
                                      std::shared_ptr<const actors::audit_hooks>(),
                                      std::shared_ptr<const actors::audit_ledger>());
    deps.system = &sys;
    deps.directory = directory_with_viewer();
    deps.bootstrap_hash = accounts::secret_hash(kOwner);
    deps.audit = writer;
  }
  ~audit_fixture() { stop_writer(); }

  void stop_writer() {
    if (!writer) return;
    caf::scoped_actor self{sys};
    self->send_exit(writer, caf::exit_reason::user_shutdown);
    self->wait_for(writer);
    writer = nullptr;
  }

  /// Appends the records and waits until they are stored.
  void append(std::vector<audit::audit_record> records) {
    caf::scoped_actor self{sys};
    for (auto& r : records) self->send(writer, std::move(r));
    bool synced = false;
    self->request(writer, kTimeout, actors::audit_sync_atom::value)
        .receive([&](bool b) { synced = b; }, [&](const caf::error& e) { FAIL(sys.render(e)); });
    REQUIRE(synced);
  }

  /// Seqs 1-6 over three days and two tenants; req-3 is asked twice (seqs 3 and 6).
  void append_six() {
    append(
        {make_record("req-1", k1203_235959_999, "acme"), make_record("req-2", k1204_000000, "acme"),
         make_record("req-3", k1204_100000, "beta"), make_record("req-4", k1204_235959_999, "acme"),
         make_record("req-5", k1205_000000, "beta"), make_record("req-3", k1205_080000, "beta")});
  }

  node::admin_answer call(std::string path,
                          std::vector<std::pair<std::string, std::string>> query = {},
                          std::string method = "GET", const std::string& token = kOwner) {
    node::admin_call c;
    c.method = std::move(method);
    c.path = std::move(path);
    c.query = std::move(query);
    if (!token.empty()) c.authorization = "Bearer " + token;
    return node::handle_admin(deps, c);
  }
};

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  REQUIRE_MESSAGE(!d.HasParseError(), text);
  REQUIRE(d.IsObject());
  return d;
}

/// The seqs of a JSON lines answer, in order; every line must be a JSON object ending in '\n'.
std::vector<uint64_t> seqs(const node::admin_answer& a) {
  REQUIRE_MESSAGE(a.status == 200, a.body);
  CHECK(a.content_type == "application/x-ndjson");
  std::vector<uint64_t> out;
  size_t start = 0;
  while (start < a.body.size()) {
    const size_t nl = a.body.find('\n', start);
    REQUIRE(nl != std::string::npos);
    out.push_back(parse(a.body.substr(start, nl - start))["seq"].GetUint64());
    start = nl + 1;
  }
  return out;
}

using seq_list = std::vector<uint64_t>;

/// A 4xx/5xx answer's envelope: checks status, type and param.
void check_error(const node::admin_answer& a, int status, const std::string& type,
                 const std::string& param = {}) {
  CHECK_MESSAGE(a.status == status, a.body);
  auto d = parse(a.body);
  REQUIRE(d.HasMember("error"));
  CHECK(std::string(d["error"]["type"].GetString()) == type);
  if (!param.empty()) {
    REQUIRE(d["error"]["param"].IsString());
    CHECK(std::string(d["error"]["param"].GetString()) == param);
  }
}

}  // namespace

TEST_CASE("admin audit: verify answers the writer's JSON, ok or broken, with 200") {
  audit_fixture f;
  f.append_six();
  node::admin_answer a = f.call("/v1/audit/verify");
  REQUIRE_MESSAGE(a.status == 200, a.body);
  CHECK(a.content_type == "application/json");
  auto d = parse(a.body);
  CHECK(d["ok"].GetBool());
  CHECK(std::string(d["node"].GetString()) == "node-t");
  CHECK(d["checked"].GetUint64() == 6);
  CHECK(d["first_seq"].GetUint64() == 1);
  CHECK(d["last_seq"].GetUint64() == 6);
  CHECK(d["first_broken_seq"].GetUint64() == 0);

  // Someone rewrites record 4's tenant in the store: verify names seq 4, still with 200.
  std::string v;
  const std::string key = audit::record_key("node-t", 4);
  REQUIRE(f.db->get(actors::store::family::audit, key, v).ok());
  audit::audit_record r;
  REQUIRE(audit::decode(v, r));
  r.tenant = "acmf";
  REQUIRE(f.db->put(actors::store::family::audit, key, audit::encode(r)).ok());
  a = f.call("/v1/audit/verify");
  REQUIRE_MESSAGE(a.status == 200, a.body);
  d = parse(a.body);
  CHECK_FALSE(d["ok"].GetBool());
  CHECK(d["first_broken_seq"].GetUint64() == 4);
  CHECK(d["last_seq"].GetUint64() == 3);
  CHECK_FALSE(std::string(d["reason"].GetString()).empty());
  // The export still shows the tampered record as stored.
  CHECK(seqs(f.call("/v1/audit/export", {{"tenant", "acmf"}})) == seq_list{4});
}

TEST_CASE("admin audit: export filters by time (day, RFC 3339, unix ms), tenant and limit") {
  audit_fixture f;
  f.append_six();
  CHECK(seqs(f.call("/v1/audit/export")) == seq_list{1, 2, 3, 4, 5, 6});
  const std::string body = f.call("/v1/audit/export").body;
  const auto first = parse(body.substr(0, body.find('\n')));
  CHECK(std::string(first["request_id"].GetString()) == "req-1");
  CHECK(first["ts_ms"].GetInt64() == k1203_235959_999);
  CHECK(std::string(first["input_text"].GetString()) == "question");

  // A day: from its start; `to` includes the whole day.
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04"}, {"to", "2026-12-04"}})) ==
        seq_list{2, 3, 4});
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04"}})) == seq_list{2, 3, 4, 5, 6});
  CHECK(seqs(f.call("/v1/audit/export", {{"to", "2026-12-03"}})) == seq_list{1});
  // RFC 3339: Z, an offset, a fraction; `to` is exclusive.
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04T10:00:00Z"}})) ==
        seq_list{3, 4, 5, 6});
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04T18:00:00+08:00"}})) ==
        seq_list{3, 4, 5, 6});
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04T05:00:00-05:00"}})) ==
        seq_list{3, 4, 5, 6});
  // An unencoded '+' arrives decoded as a space.
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04T18:00:00 08:00"}})) ==
        seq_list{3, 4, 5, 6});
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-03t23:59:59.999z"},
                                         {"to", "2026-12-04T10:00:00.000000001Z"}})) ==
        seq_list{1, 2, 3});
  CHECK(seqs(f.call("/v1/audit/export", {{"to", "2026-12-04T10:00:00Z"}})) == seq_list{1, 2});
  // Unix milliseconds.
  CHECK(seqs(f.call("/v1/audit/export", {{"from", std::to_string(k1204_000000)},
                                         {"to", std::to_string(k1204_235959_999)}})) ==
        seq_list{2, 3});
  // An empty range is empty, also at 0 (which would mean "no end" to the writer).
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-04"}, {"to", "2026-12-04T00:00:00Z"}}))
            .empty());
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "0"}, {"to", "0"}})).empty());
  CHECK(seqs(f.call("/v1/audit/export", {{"to", "1970-01-01T00:00:00Z"}})).empty());

  CHECK(seqs(f.call("/v1/audit/export", {{"tenant", "beta"}})) == seq_list{3, 5, 6});
  CHECK(seqs(f.call("/v1/audit/export", {{"tenant", "nobody"}})).empty());
  CHECK(seqs(f.call("/v1/audit/export", {{"limit", "2"}})) == seq_list{1, 2});
  CHECK(seqs(f.call("/v1/audit/export", {{"limit", ""}, {"from", ""}})).size() == 6);
  CHECK(seqs(f.call("/v1/audit/export", {{"tenant", "beta"}, {"limit", "0"}})) ==
        seq_list{3, 5, 6});
}

TEST_CASE("admin audit: bad export parameters are 400 naming the parameter") {
  audit_fixture f;
  f.append_six();
  for (const char* bad :
       {"2026-13-01", "2026-02-30", "26-12-04", "2026-12-04T25:00:00Z", "2026-12-04T10:00:00",
        "2026-12-04T10:00Z", "2026-12-04T10:00:00.Z", "2026-12-04T10:00:00+8:00",
        "2026-12-04T10:00:00+08:00x", "2026-12-04 10:00:00Z", "-5", "1e3", "0x10", " 5",
        "1969-12-30", "1970-01-01T07:00:00+08:00", "253402300800001", "tomorrow"}) {
    const std::string value = bad;
    CAPTURE(value);
    check_error(f.call("/v1/audit/export", {{"from", bad}}), 400, "invalid_request_error", "from");
    check_error(f.call("/v1/audit/export", {{"to", bad}}), 400, "invalid_request_error", "to");
  }
  // The end of 1969-12-31 is 1970-01-01T00:00:00Z: a valid (empty) end, not a valid start.
  check_error(f.call("/v1/audit/export", {{"from", "1969-12-31"}}), 400, "invalid_request_error",
              "from");
  CHECK(seqs(f.call("/v1/audit/export", {{"to", "1969-12-31"}})).empty());
  check_error(
      f.call("/v1/audit/export", {{"from", "2026-12-05T00:00:00.001Z"}, {"to", "2026-12-04"}}), 400,
      "invalid_request_error", "from");
  // A `to` day ends where the next day starts: from that start it is an empty range.
  CHECK(seqs(f.call("/v1/audit/export", {{"from", "2026-12-05"}, {"to", "2026-12-04"}})).empty());
  for (const char* bad : {"abc", "-1", "+1", "1.5", " 1", "0x10", "99999999999999999999"}) {
    const std::string value = bad;
    CAPTURE(value);
    check_error(f.call("/v1/audit/export", {{"limit", bad}}), 400, "invalid_request_error",
                "limit");
    check_error(f.call("/v1/audit/search", {{"request_id", "req-3"}, {"limit", bad}}), 400,
                "invalid_request_error", "limit");
  }
}

TEST_CASE("admin audit: search by request id, tenant and limit (default 100)") {
  audit_fixture f;
  f.append_six();
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-3"}})) == seq_list{3, 6});
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-3"}, {"tenant", "beta"}})) ==
        seq_list{3, 6});
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-3"}, {"tenant", "acme"}})).empty());
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-3"}, {"limit", "1"}})) == seq_list{3});
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-404"}})).empty());
  check_error(f.call("/v1/audit/search"), 400, "invalid_request_error", "request_id");
  check_error(f.call("/v1/audit/search", {{"request_id", ""}, {"tenant", "beta"}}), 400,
              "invalid_request_error", "request_id");

  std::vector<audit::audit_record> bulk;
  for (int i = 0; i < 105; ++i) bulk.push_back(make_record("bulk", k1205_080000 + i, "acme"));
  f.append(std::move(bulk));
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "bulk"}})).size() == 100);
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "bulk"}, {"limit", "0"}})).size() == 105);
}

TEST_CASE("admin audit: roles, methods and paths") {
  audit_fixture f;
  f.append_six();
  CHECK(f.call("/v1/audit/verify", {}, "GET", kViewer).status == 200);
  CHECK(seqs(f.call("/v1/audit/export", {}, "GET", kViewer)).size() == 6);
  CHECK(seqs(f.call("/v1/audit/search", {{"request_id", "req-1"}}, "GET", kViewer)).size() == 1);
  check_error(f.call("/v1/audit/verify", {}, "GET", ""), 401, "authentication_error");
  check_error(f.call("/v1/audit/verify", {}, "GET", "tc-adm-wrong"), 401, "authentication_error");
  check_error(f.call("/v1/audit/verify", {}, "POST", kViewer), 403, "permission_error");
  CHECK(f.call("/v1/audit/verify", {}, "POST").status == 405);
  CHECK(f.call("/v1/audit/export", {}, "DELETE").status == 405);
  CHECK(f.call("/v1/audit").status == 404);
  CHECK(f.call("/v1/audit/verify/now").status == 404);
  CHECK(f.call("/v1/audit/prune").status == 404);
}

TEST_CASE("admin audit: 503 without an audit writer, and when it is gone") {
  audit_fixture f;
  f.append_six();
  const caf::actor writer = f.deps.audit;
  f.deps.audit = caf::actor{};
  for (const char* path :
       {"/v1/audit/verify", "/v1/audit/export", "/v1/audit/search", "/v1/audit/nope"}) {
    CAPTURE(path);
    node::admin_answer a = f.call(path, {{"from", "bad"}});
    check_error(a, 503, "service_unavailable");
    CHECK(a.body.find("The audit trail is not enabled on this node.") != std::string::npos);
  }
  // Still authenticated first.
  check_error(f.call("/v1/audit/verify", {}, "GET", ""), 401, "authentication_error");

  f.deps.audit = writer;
  f.stop_writer();
  for (const char* path : {"/v1/audit/verify", "/v1/audit/export"}) {
    CAPTURE(path);
    node::admin_answer a = f.call(path);
    check_error(a, 503, "service_unavailable");
    CHECK(a.body.find("The audit trail did not answer") != std::string::npos);
  }
  check_error(f.call("/v1/audit/search", {{"request_id", "req-1"}}), 503, "service_unavailable");
}
