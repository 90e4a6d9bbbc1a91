// `tcctl audit verify|export|search` as a process against a real admin port (node/admin's
// server and node/admin_api) over a real audit_writer in this test, on an in-memory store: the
// summary line and exit codes, JSON lines to stdout or a file, the search view, bad command
// lines (exit 2 before any call), and a node without an audit trail. The node does not spawn
// the audit writer yet; the test through a whole tcnode comes with that wiring.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <caf/all.hpp>

#include "actors/accounts.hpp"
#include "actors/audit_writer.hpp"
#include "actors/store.hpp"
#include "node/admin.hpp"
#include "node/admin_api.hpp"
#include "node/metrics.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/messages.hpp"
#include "tests/integration/harness.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc;
using namespace tc::test;
using namespace std::chrono_literals;

namespace {

constexpr int64_t k1203_235959 = 1796342399000;  // 2026-12-03T23:59:59Z
constexpr int64_t k1204_000000 = 1796342400000;  // 2026-12-04T00:00:00Z
constexpr int64_t k1204_100000 = 1796378400000;  // 2026-12-04T10:00:00Z
constexpr int64_t k1205_000000 = 1796428800000;  // 2026-12-05T00:00:00Z

using tc::test::quiet_config;

audit::audit_record make_record(std::string request_id, int64_t ts_ms, std::string tenant) {
  audit::audit_record r;
  r.request_id = std::move(request_id);
  r.ts_ms = ts_ms;
  r.tenant = std::move(tenant);
  r.model = "sim-chat";
  r.provider = "sim";
  r.status = 200;
  return r;
}

/// An admin port on 127.0.0.1 answering with handle_admin(deps), open (no admin token).
struct admin_port {
  node::metrics m;
  node::admin_server server{m};
  node::admin_api_deps deps;
  int port = -1;

  admin_port(caf::actor_system& sys, caf::actor audit) {
    deps.system = &sys;
    deps.directory = std::make_shared<actors::directory_cell>();
    deps.audit = std::move(audit);
    node::admin_hooks hooks;
    hooks.api = [this](const node::admin_call& c) { return node::handle_admin(deps, c); };
    server.set_hooks(std::move(hooks));
    port = server.bind("127.0.0.1", 0);
    REQUIRE(port > 0);
    server.start();
  }
  ~admin_port() { server.stop(); }  // before deps go
};

/// A store, an audit_writer on it holding six records over three days, and an admin port.
struct audit_node {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  std::shared_ptr<actors::store> db;
  caf::actor writer;
  std::unique_ptr<admin_port> admin;

  audit_node() {
    actors::store::status st;
    db = actors::store::open("", false, st);
    REQUIRE_MESSAGE(db != nullptr, st.message);
    auto settings = std::make_shared<actors::audit_settings>();
    settings->node = "node-t";
    writer = sys.spawn<caf::detached>(actors::audit_writer, db,
                                      std::shared_ptr<const actors::audit_settings>(settings),
                                      std::shared_ptr<const actors::audit_hooks>(),
                                      std::shared_ptr<const actors::audit_ledger>());
    caf::scoped_actor self{sys};
    for (auto r :
         {make_record("req-1", k1203_235959, "acme"), make_record("req-2", k1204_000000, "acme"),
          make_record("req-3", k1204_100000, "beta"),
          make_record("req-4", k1204_100000 + 1, "acme"),
          make_record("req-5", k1205_000000, "beta"),
          make_record("req-3", k1205_000000 + 1, "beta")})
      self->send(writer, std::move(r));
    bool synced = false;
    self->request(writer, std::chrono::seconds(10), actors::audit_sync_atom::value)
        .receive([&](bool b) { synced = b; }, [&](const caf::error&) {});
    REQUIRE(synced);
    admin = std::make_unique<admin_port>(sys, writer);
  }
  ~audit_node() {
    admin.reset();  // no call reaches the writer after this
    caf::scoped_actor self{sys};
    self->send_exit(writer, caf::exit_reason::user_shutdown);
    self->wait_for(writer);
  }
};

struct run_result {
  int code = -1;
  std::string out;
  std::string err;
};

/// Runs tcctl with `args` against 127.0.0.1:port; stdout and stderr captured.
run_result run(int port, std::vector<std::string> args) {
  temp_dir dir;
  std::vector<std::string> all = {"--admin", "http://127.0.0.1:" + std::to_string(port)};
  all.insert(all.end(), args.begin(), args.end());
  process p;
  process::options o;
  o.stderr_path = dir.path() + "/stderr";
  run_result r;
  if (!p.start(bin_path("tcctl"), all, o)) return r;
  p.wait_exit(20000ms);
  p.drain_stdout(2000ms);
  for (const auto& l : p.stdout_lines()) r.out += l + "\n";
  if (auto st = p.status(); st && st->exited) r.code = st->code;
  r.err = read_file(o.stderr_path);
  return r;
}

size_t lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n' ? 1 : 0;
  return n;
}

bool contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("tcctl audit: bad command lines exit 2 before calling the node") {
  const uint16_t port = unused_port();  // nothing listens: a call would say "cannot reach"
  const std::vector<std::vector<std::string>> bad = {
      {"audit"},
      {"audit", "nope"},
      {"audit", "verify", "--bogus"},
      {"audit", "export", "--from", "yesterday"},
      {"audit", "export", "--to", "2026-12-04 10:00"},
      {"audit", "export", "--limit", "-1"},
      {"audit", "export", "--limit", "ten"},
      {"audit", "export", "--out", ""},
      {"audit", "search"},
      {"audit", "search", "--request-id", ""},
      {"audit", "search", "--request-id", "r", "--limit", "1.5"},
  };
  for (const auto& args : bad) {
    CAPTURE(args.size() > 1 ? args[1] : args[0]);
    CAPTURE(args.back());
    run_result r = run(port, args);
    CHECK(r.code == 2);
    CHECK_FALSE(contains(r.err, "cannot reach"));
    CHECK(r.out.empty());
  }
  // A well-formed command does try the node: that is exit 2 too, but says so.
  run_result r = run(port, {"audit", "verify"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "cannot reach"));
}

TEST_CASE("tcctl audit verify, export and search against an admin port") {
  audit_node node;
  const int port = node.admin->port;

  run_result r = run(port, {"audit", "verify"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(r.out == "chain ok: 6 records, seq 1..6\n");
  r = run(port, {"--json", "audit", "verify"});
  CHECK(r.code == 0);
  auto d = parse_json(r.out);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(d["ok"].GetBool());
  CHECK(d["checked"].GetUint64() == 6);

  r = run(port, {"audit", "export"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(lines(r.out) == 6);
  CHECK(str_of(parse_json(r.out.substr(0, r.out.find('\n'))), "request_id") == "req-1");
  r = run(port, {"audit", "export", "--from", "2026-12-04", "--to", "2026-12-04"});
  CHECK(lines(r.out) == 3);
  // '+' is encoded on the way (an offset), the limit and tenant are sent.
  r = run(port, {"audit", "export", "--from", "2026-12-04T18:00:00+08:00"});
  CHECK(lines(r.out) == 4);
  r = run(port, {"--json", "audit", "export", "--tenant", "beta", "--limit", "2"});
  CHECK(r.code == 0);
  CHECK(lines(r.out) == 2);
  CHECK(contains(r.out, "\"req-3\""));
  CHECK_FALSE(contains(r.out, "acme"));
  r = run(port, {"audit", "export", "--from", std::to_string(k1204_100000)});
  CHECK(lines(r.out) == 4);

  temp_dir dir;
  const std::string file = dir.path() + "/audit.jsonl";
  r = run(port, {"audit", "export", "--out", file});
  CHECK(r.code == 0);
  CHECK(r.out == "wrote 6 records to " + file + "\n");
  const std::string written = read_file(file);
  CHECK(lines(written) == 6);
  CHECK(contains(written, "\"prev_hash\""));
  r = run(port, {"audit", "export", "--out", dir.path() + "/missing/audit.jsonl"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "cannot write"));
  // The server checks the calendar: exit 1 with its message, and no file.
  r = run(port, {"audit", "export", "--from", "2026-02-30", "--out", dir.path() + "/no.jsonl"});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "400"));
  CHECK(contains(r.err, "(param: from)"));
  CHECK(read_file(dir.path() + "/no.jsonl").empty());

  r = run(port, {"audit", "search", "--request-id", "req-3"});
  CHECK_MESSAGE(r.code == 0, r.err);
  CHECK(contains(r.out, "seq: 3\n"));
  CHECK(contains(r.out, "seq: 6\n"));
  CHECK(contains(r.out, "tenant: beta\n"));
  CHECK(contains(r.out, "ts_ms: 1796378400000\ntime: 2026-12-04T10:00:00.000Z\n"));
  CHECK(contains(r.out, "\n\nseq: 6\n"));  // a blank line between records
  r = run(port, {"--json", "audit", "search", "--request-id", "req-3", "--limit", "1"});
  CHECK(lines(r.out) == 1);
  CHECK(parse_json(r.out)["seq"].GetUint64() == 3);
  r = run(port, {"audit", "search", "--request-id", "req-404"});
  CHECK(r.code == 0);
  CHECK(r.out == "no audit records\n");

  // Record 2 rewritten in the store: verify names it and exits 1, with or without --json.
  std::string v;
  const std::string key = audit::record_key("node-t", 2);
  REQUIRE(node.db->get(actors::store::family::audit, key, v).ok());
  audit::audit_record rec;
  REQUIRE(audit::decode(v, rec));
  rec.status = 500;
  REQUIRE(node.db->put(actors::store::family::audit, key, audit::encode(rec)).ok());
  r = run(port, {"audit", "verify"});
  CHECK(r.code == 1);
  CHECK(r.out.rfind("chain BROKEN at seq 2: ", 0) == 0);
  r = run(port, {"--json", "audit", "verify"});
  CHECK(r.code == 1);
  d = parse_json(r.out);
  REQUIRE_FALSE(d.HasParseError());
  CHECK(d["first_broken_seq"].GetUint64() == 2);
}

TEST_CASE("tcctl audit: a node without an audit trail is exit 1 with the node's message") {
  quiet_config cfg;
  caf::actor_system sys{cfg};
  admin_port admin(sys, caf::actor{});
  for (const std::vector<std::string>& args : {std::vector<std::string>{"audit", "verify"},
                                               {"audit", "export"},
                                               {"audit", "search", "--request-id", "x"}}) {
    CAPTURE(args[1]);
    run_result r = run(admin.port, args);
    CHECK(r.code == 1);
    CHECK(contains(r.err, "503 service_unavailable: The audit trail is not enabled on this node."));
    CHECK(r.out.empty());
  }
}
