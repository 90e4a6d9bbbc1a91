// tcctl against a real tcnode's admin API: every area is reachable, people get tables, scripts
// get JSON, and errors exit non-zero with the server's message.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/harness.hpp"

using namespace tc::test;
using namespace std::chrono_literals;

namespace {

struct run_result {
  int code = -1;
  std::string out;
};

/// Runs tcctl against `node` with `args`; stdout and the exit code.
run_result tcctl(const node_process& node, std::vector<std::string> args,
                 const std::vector<std::string>& env = {}) {
  std::vector<std::string> all = {"--admin",
                                  "http://127.0.0.1:" + std::to_string(node.admin_port())};
  all.insert(all.end(), args.begin(), args.end());
  process p;
  process::options o;
  o.env = env;
  run_result r;
  if (!p.start(bin_path("tcctl"), all, o)) return r;
  p.wait_exit(20000ms);
  p.drain_stdout(2000ms);
  for (const auto& l : p.stdout_lines()) r.out += l + "\n";
  if (auto st = p.status(); st && st->exited) r.code = st->code;
  return r;
}

bool contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("tcctl manages tenants, projects and keys, and reports usage") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());

  run_result r = tcctl(node, {"tenants", "create", "acme", "--name", "Acme Corp", "--rpm", "50"});
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = tcctl(node, {"tenants", "list"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "acme"));
  CHECK(contains(r.out, "Acme Corp"));
  r = tcctl(node, {"--json", "tenants", "show", "acme"});
  CHECK(r.code == 0);
  auto t = parse_json(r.out);
  REQUIRE_FALSE(t.HasParseError());
  CHECK(t["limits"]["rpm"].GetUint64() == 50);

  CHECK(tcctl(node, {"projects", "create", "acme", "web", "--name", "Web"}).code == 0);
  r = tcctl(node, {"--json", "keys", "create", "--tenant", "acme", "--project", "web", "--name",
                   "ci", "--models", "sim-*"});
  REQUIRE_MESSAGE(r.code == 0, r.out);
  auto k = parse_json(r.out);
  REQUIRE_FALSE(k.HasParseError());
  const std::string secret = str_of(k, "secret");
  const std::string id = str_of(k, "id");
  REQUIRE(secret.rfind("sk-tc-", 0) == 0);

  response chat = post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"),
                            {{"Authorization", "Bearer " + secret}});
  REQUIRE(chat.status == 200);

  r = tcctl(node, {"keys", "list", "--tenant", "acme"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, id));
  CHECK_FALSE(contains(r.out, secret));
  CHECK(tcctl(node, {"keys", "revoke", id}).code == 0);
  CHECK(post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"),
                  {{"Authorization", "Bearer " + secret}})
            .status == 401);

  // The usage report counts the one answered request.
  REQUIRE(eventually(
      [&] {
        run_result u = tcctl(node, {"--json", "usage", "--tenant", "acme"});
        auto d = parse_json(u.out);
        return u.code == 0 && !d.HasParseError() && d["totals"]["requests"].GetUint64() == 1;
      },
      10000ms));
  r = tcctl(node, {"usage", "--tenant", "acme", "--group-by", "model"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "sim-chat"));
  r = tcctl(node, {"usage", "records", "--tenant", "acme", "--format", "csv"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "sim-chat"));

  // Errors: the server's message, exit 1.
  r = tcctl(node, {"tenants", "show", "nope"});
  CHECK(r.code == 1);
  response missing = get(node.admin_port(), "/v1/tenants/nope");
  CHECK(missing.status == 404);
  CHECK(error_of(missing.body).message == "No tenant 'nope'.");
  r = tcctl(node, {"tenants", "create", "acme"});
  CHECK(r.code == 1);
}

TEST_CASE("tcctl uses the admin token from the environment and the cache calls") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());
  run_result r = tcctl(node, {"--json", "tokens", "create", "--name", "root", "--role", "owner"});
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string root = str_of(parse_json(r.out), "secret");
  REQUIRE(root.rfind("tc-adm-", 0) == 0);
  CHECK(tcctl(node, {"tenants", "list"}).code == 1);  // a token exists now: 401
  CHECK(tcctl(node, {"tenants", "list"}, {"TC_ADMIN_TOKEN=" + root}).code == 0);
  CHECK(tcctl(node, {"--token", root, "cache", "stats"}).code == 0);
  r = tcctl(node, {"--token", root, "--json", "cache", "invalidate", "--tenant", "acme"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "removed"));
  // An unreachable admin port is exit 2.
  process p;
  REQUIRE(p.start(bin_path("tcctl"), {"--admin", "http://127.0.0.1:1", "tenants", "list"}));
  REQUIRE(p.wait_exit(20000ms));
  CHECK(p.status()->code == 2);
}
