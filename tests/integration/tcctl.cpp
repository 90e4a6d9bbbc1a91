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

bool contains(const std::string& text, std::string_view needle) {
  return text.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("tcctl manages tenants, projects and keys, and reports usage") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());

  tcctl_result r =
      run_tcctl(node, {"tenants", "create", "acme", "--name", "Acme Corp", "--rpm", "50"});
  REQUIRE_MESSAGE(r.code == 0, r.out);
  r = run_tcctl(node, {"tenants", "list"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "acme"));
  CHECK(contains(r.out, "Acme Corp"));
  r = run_tcctl(node, {"--json", "tenants", "show", "acme"});
  CHECK(r.code == 0);
  auto t = parse_json(r.out);
  REQUIRE_FALSE(t.HasParseError());
  CHECK(t["limits"]["rpm"].GetUint64() == 50);

  CHECK(run_tcctl(node, {"projects", "create", "acme", "web", "--name", "Web"}).code == 0);
  r = run_tcctl(node, {"--json", "keys", "create", "--tenant", "acme", "--project", "web", "--name",
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

  r = run_tcctl(node, {"keys", "list", "--tenant", "acme"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, id));
  CHECK_FALSE(contains(r.out, secret));
  CHECK(run_tcctl(node, {"keys", "revoke", id}).code == 0);
  CHECK(post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", "hi"),
                  {{"Authorization", "Bearer " + secret}})
            .status == 401);

  // The usage report counts the one answered request.
  REQUIRE(eventually(
      [&] {
        tcctl_result u = run_tcctl(node, {"--json", "usage", "--tenant", "acme"});
        auto d = parse_json(u.out);
        return u.code == 0 && !d.HasParseError() && d["totals"]["requests"].GetUint64() == 1;
      },
      10000ms));
  r = run_tcctl(node, {"usage", "--tenant", "acme", "--group-by", "model"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "sim-chat"));
  r = run_tcctl(node, {"usage", "records", "--tenant", "acme", "--format", "csv"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "sim-chat"));

  // Errors: the server's message, exit 1.
  r = run_tcctl(node, {"tenants", "show", "nope"});
  CHECK(r.code == 1);
  response missing = get(node.admin_port(), "/v1/tenants/nope");
  CHECK(missing.status == 404);
  CHECK(error_of(missing.body).message == "No tenant 'nope'.");
  r = run_tcctl(node, {"tenants", "create", "acme"});
  CHECK(r.code == 1);
}

TEST_CASE("tcctl uses the admin token from the environment and the cache calls") {
  node_process node;
  REQUIRE_MESSAGE(node.start(server_toml() + sim_provider_toml(1, 20000)), node.error());
  tcctl_result r =
      run_tcctl(node, {"--json", "tokens", "create", "--name", "root", "--role", "owner"});
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string root = str_of(parse_json(r.out), "secret");
  REQUIRE(root.rfind("tc-adm-", 0) == 0);
  CHECK(run_tcctl(node, {"tenants", "list"}).code == 1);  // a token exists now: 401
  CHECK(run_tcctl(node, {"tenants", "list"}, {"TC_ADMIN_TOKEN=" + root}).code == 0);
  CHECK(run_tcctl(node, {"--token", root, "cache", "stats"}).code == 0);
  r = run_tcctl(node, {"--token", root, "--json", "cache", "invalidate", "--tenant", "acme"});
  CHECK(r.code == 0);
  CHECK(contains(r.out, "removed"));
  // An unreachable admin port is exit 2.
  process p;
  REQUIRE(p.start(bin_path("tcctl"), {"--admin", "http://127.0.0.1:1", "tenants", "list"}));
  REQUIRE(p.wait_exit(20000ms));
  CHECK(p.status()->code == 2);
}
