// config/loader: the default file loads, and every kind of error names the right file:line:col.
#include "config/loader.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using tc::config::config_error;
using tc::config::load_string;
using tc::config::settings;

/// The smallest valid configuration: one sim provider with one model (5 lines).
const std::string sim_provider =
    "[[providers]]\n"
    "name = \"sim\"\n"
    "type = \"sim\"\n"
    "[[providers.models]]\n"
    "name = \"m\"\n";

/// The error text of loading `text`, or "" when it loads.
std::string errors_of(const std::string& text) {
  try {
    load_string(text, "t.toml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("the default config file loads and serves the three sim models") {
  settings s = tc::config::load_file(TC_SOURCE_DIR "/config/tokenschain.toml");
  CHECK(s.node_id == "node-1");
  CHECK(s.server.listen == "127.0.0.1:8080");
  CHECK(s.server.admin_listen == "127.0.0.1:9090");
  REQUIRE(s.providers.size() == 1);
  const auto& p = s.providers[0];
  CHECK(p.name == "sim");
  CHECK(p.type == "sim");
  CHECK(p.base_url.empty());
  CHECK(p.api_key_env.empty());
  REQUIRE(p.models.size() == 3);
  CHECK(p.models[0].name == "sim-chat");
  CHECK(p.models[0].upstream_name == "sim-chat");
  CHECK(p.models[0].kind == "chat");
  CHECK(p.models[0].context_window == 32768);
  CHECK(p.models[0].currency == "CNY");
  CHECK(p.models[1].name == "sim-chat-large");
  CHECK(p.models[1].context_window > p.models[0].context_window);
  CHECK(p.models[1].price_output_per_m > p.models[0].price_output_per_m);
  CHECK(p.models[2].name == "sim-embed");
  CHECK(p.models[2].kind == "embedding");
  CHECK(p.sim.ttft_ms == 50.0);
  CHECK(p.sim.tokens_per_sec == 60.0);
}

TEST_CASE("the commented-out openai example in the default file is valid once uncommented") {
  std::string text = read_file(TC_SOURCE_DIR "/config/tokenschain.toml");
  auto start = text.find("# [[providers]]\n# name = \"deepseek\"");
  REQUIRE(start != std::string::npos);
  std::string uncommented = text.substr(0, start);
  for (const std::string& line : lines_of(text.substr(start))) {
    if (line.rfind("# ", 0) == 0) {
      uncommented += line.substr(2) + "\n";
    } else if (line == "#") {
      uncommented += "\n";
    } else {
      uncommented += line + "\n";
    }
  }
  settings s = load_string(uncommented, "example.toml");
  REQUIRE(s.providers.size() == 2);
  const auto& p = s.providers[1];
  CHECK(p.name == "deepseek");
  CHECK(p.type == "openai");
  CHECK(p.base_url == "https://api.deepseek.com/v1");
  CHECK(p.api_key_env == "DEEPSEEK_API_KEY");
  REQUIRE(p.models.size() == 1);
  CHECK(p.models[0].name == "deepseek-chat");
}

TEST_CASE("load_file: a missing file names the path") {
  try {
    tc::config::load_file("/nonexistent/tc.toml");
    FAIL("no error");
  } catch (const config_error& e) {
    CHECK(std::string(e.what()).rfind("/nonexistent/tc.toml: cannot open", 0) == 0);
  }
}

TEST_CASE("values are stored, integers are accepted for floats, dotted keys work") {
  settings s = load_string(sim_provider +
                           "[providers.sim]\n"
                           "ttft_ms = 7\n"
                           "batch_contention = 0.25\n"
                           "seed = 42\n"
                           "[[providers.sim.outages]]\n"
                           "start_s = 1\n"
                           "end_s = 2.5\n"
                           "[server]\n"
                           "listen = \"[::1]:0\"\n"
                           "io_threads = 4\n"
                           "[log]\n"
                           "level = \"debug\"\n"
                           "access_log = true\n"
                           "[actors]\n"
                           "scheduler_threads = 3\n");
  CHECK(s.server.listen == "[::1]:0");
  CHECK(s.server.io_threads == 4);
  CHECK(s.log.level == "debug");
  CHECK(s.log.access_log);
  CHECK(s.actors.scheduler_threads == 3);
  const auto& sim = s.providers.at(0).sim;
  CHECK(sim.ttft_ms == 7.0);
  CHECK(sim.batch_contention == 0.25);
  CHECK(sim.seed == 42);
  REQUIRE(sim.outages.size() == 1);
  CHECK(sim.outages[0].start_s == 1.0);
  CHECK(sim.outages[0].end_s == 2.5);

  settings dotted = load_string("server.io_threads = 2\n" + sim_provider);
  CHECK(dotted.server.io_threads == 2);
}

TEST_CASE("a TOML syntax error gives file:line:col") {
  std::string e = errors_of("node_id = \"a\"\nb = = 2\n");
  CHECK(e.rfind("t.toml:2:5: ", 0) == 0);
  CHECK(lines_of(e).size() == 1);
}

TEST_CASE("an unknown key is reported at the key, with a suggestion when one is close") {
  CHECK(errors_of("node_id = \"x\"\n  bogus = 1\n" + sim_provider) ==
        "t.toml:2:3: unknown key 'bogus' at top level");
  CHECK(errors_of(sim_provider + "[server]\nio_thread = 2\n") ==
        "t.toml:7:1: unknown key 'io_thread' in [server]; did you mean 'io_threads'?");
  // A key declared in another table says where it belongs.
  CHECK(errors_of("io_threads = 2\n" + sim_provider) ==
        "t.toml:1:1: unknown key 'io_threads' at top level; 'io_threads' belongs in [server]");
  // An unknown table is an unknown key too (at the key inside the header).
  CHECK(errors_of(sim_provider + "[servre]\nx = 1\n") ==
        "t.toml:6:2: unknown key 'servre' at top level; did you mean 'server'?");
}

TEST_CASE("unknown keys in nested tables get suggestions from that table") {
  CHECK(errors_of(sim_provider + "contex_window = 5\n") ==
        "t.toml:6:1: unknown key 'contex_window' in [[providers.models]]; did you mean "
        "'context_window'?");
  CHECK(errors_of(sim_provider + "[providers.sim]\nttft_sm = 3\n") ==
        "t.toml:7:1: unknown key 'ttft_sm' in [providers.sim]; did you mean 'ttft_ms'?");
  CHECK(errors_of(sim_provider + "[[providers.sim.outages]]\nend_s = 2\nstrat_s = 1\n") ==
        "t.toml:8:1: unknown key 'strat_s' in [[providers.sim.outages]]; did you mean "
        "'start_s'?");
  CHECK(errors_of("[[providers]]\nname = \"sim\"\ntype = \"sim\"\nmodel = 1\n"
                  "[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:4:1: unknown key 'model' in [[providers]]; did you mean 'models'?");
}

TEST_CASE("a wrong type names what was expected and what was found") {
  CHECK(errors_of(sim_provider + "[server]\nio_threads = \"2\"\n") ==
        "t.toml:7:14: expected an integer, got a string");
  CHECK(errors_of(sim_provider + "[server]\nio_threads = 2.0\n") ==
        "t.toml:7:14: expected an integer, got a float");
  CHECK(errors_of(sim_provider + "[log]\naccess_log = 1\n") ==
        "t.toml:7:14: expected a boolean, got an integer");
  CHECK(errors_of(sim_provider + "[providers.sim]\nttft_ms = \"fast\"\n") ==
        "t.toml:7:11: expected a number, got a string");
  CHECK(errors_of(sim_provider + "[providers.sim]\nttft_ms = inf\n") ==
        "t.toml:7:11: expected a finite number, got inf");
  CHECK(errors_of("server = 3\n" + sim_provider) ==
        "t.toml:1:10: expected a table, got an integer");
  CHECK(errors_of("[providers]\nname = \"x\"\n") ==
        "t.toml:1:1: expected an array of tables [[providers]], got a table (write "
        "[[providers]] as the header)\nt.toml:1:1: nothing to serve: no model is configured; add "
        "a [[providers]] table with at least one [[providers.models]] (see "
        "config/tokenschain.toml)");
  // Each bad element of a string array is reported where it is.
  CHECK(errors_of("[[providers]]\nname = \"sim\"\ntype = \"sim\"\ntags = [\"a\", 1, true]\n"
                  "[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:4:14: expected a string, got an integer\n"
        "t.toml:4:17: expected a string, got a boolean");
}

TEST_CASE("out-of-bounds values name the bounds") {
  CHECK(errors_of(sim_provider + "[server]\nio_threads = 100\n") ==
        "t.toml:7:14: expected 1..64, got 100");
  CHECK(errors_of(sim_provider + "[server]\nio_threads = 0\n") ==
        "t.toml:7:14: expected 1..64, got 0");
  CHECK(errors_of(sim_provider + "[providers.sim]\nerror_rate = 1.5\n") ==
        "t.toml:7:14: expected 0..1, got 1.5");
  CHECK(errors_of(sim_provider + "price_output_per_m = -1\n") ==
        "t.toml:6:22: expected >= 0, got -1");
  CHECK(errors_of(sim_provider + "[providers.sim]\nseed = -5\n") ==
        "t.toml:7:8: expected >= 0, got -5");
  CHECK(errors_of(sim_provider + "[providers.sim]\nerror_status = 200\n") ==
        "t.toml:7:16: expected 400..599, got 200");
  // A signed setting: both of its bounds hold.
  CHECK(errors_of(sim_provider + "[server]\nio_nice = -21\n") ==
        "t.toml:7:11: expected -20..19, got -21");
  CHECK(errors_of(sim_provider + "[server]\nio_nice = 20\n") ==
        "t.toml:7:11: expected -20..19, got 20");
  CHECK(errors_of(sim_provider + "[server]\nio_nice = -20\n").empty());
}

TEST_CASE("restricted strings name their choices") {
  CHECK(errors_of("[[providers]]\nname = \"p\"\ntype = \"vllm\"\n[[providers.models]]\n"
                  "name = \"m\"\n") ==
        "t.toml:3:8: expected one of: openai, anthropic, sim; got \"vllm\"");
  CHECK(errors_of(sim_provider + "kind = \"image\"\n") ==
        "t.toml:6:8: expected one of: chat, embedding; got \"image\"");
  CHECK(errors_of(sim_provider + "[log]\nlevel = \"verbose\"\n") ==
        "t.toml:7:9: expected one of: debug, info, warn, error; got \"verbose\"");
}

TEST_CASE("missing required keys are reported at the enclosing table") {
  CHECK(errors_of("[[providers]]\ntype = \"sim\"\n[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:1:1: missing required key 'name' in [[providers]]");
  CHECK(errors_of(sim_provider + "[[providers.models]]\nkind = \"chat\"\n") ==
        "t.toml:6:1: missing required key 'name' in [[providers.models]]");
  CHECK(errors_of(sim_provider + "[[providers.sim.outages]]\nstart_s = 1\n") ==
        "t.toml:6:1: missing required key 'end_s' in [[providers.sim.outages]]");
}

TEST_CASE("all errors are collected, in file order, one per line") {
  std::string e = errors_of(
      "node_id = \"\"\n"        // 1: bad form
      "[server]\n"              // 2
      "io_threads = 0\n"        // 3: bounds
      "listen = 8080\n"         // 4: type
      "[[providers]]\n"         // 5: missing name
      "type = \"sim\"\n"        // 6
      "[[providers.models]]\n"  // 7
      "name = \"m\"\n"          // 8
      "kind = \"img\"\n"        // 9: choice
      "[providers.sim]\n"       // 10
      "max_bacth = 3\n");       // 11: unknown
  std::vector<std::string> lines = lines_of(e);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0].rfind("t.toml:1:11: expected 1..64 characters", 0) == 0);
  CHECK(lines[1] == "t.toml:3:14: expected 1..64, got 0");
  CHECK(lines[2] == "t.toml:4:10: expected a string, got an integer");
  CHECK(lines[3] == "t.toml:5:1: missing required key 'name' in [[providers]]");
  CHECK(lines[4] == "t.toml:9:8: expected one of: chat, embedding; got \"img\"");
  CHECK(lines[5] ==
        "t.toml:11:1: unknown key 'max_bacth' in [providers.sim]; did you mean 'max_batch'?");
}

TEST_CASE("sim and openai providers are checked against each other's keys") {
  // sim: no base_url.
  CHECK(errors_of("[[providers]]\nname = \"s\"\ntype = \"sim\"\nbase_url = \"http://x\"\n"
                  "[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:4:12: base_url is not allowed for a provider of type \"sim\" (it runs "
        "in-process)");
  // openai (also the default type): base_url required, no [providers.sim].
  CHECK(errors_of("[[providers]]\nname = \"o\"\n[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:1:1: missing required key 'base_url' in [[providers]] (required for type "
        "\"openai\")");
  CHECK(errors_of("[[providers]]\nname = \"o\"\nbase_url = \"https://h/v1\"\n"
                  "[[providers.models]]\nname = \"m\"\n[providers.sim]\nttft_ms = 1\n") ==
        "t.toml:6:1: [providers.sim] is only allowed for a provider of type \"sim\"");
  CHECK(errors_of("[[providers]]\nname = \"o\"\nbase_url = \"ftp://h\"\n"
                  "[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:3:12: expected a URL starting with http:// or https://, got \"ftp://h\"");
  // A bad type reports only itself, not the checks that depend on it.
  CHECK(lines_of(errors_of("[[providers]]\nname = \"o\"\ntype = 1\n[[providers.models]]\n"
                           "name = \"m\"\n"))
            .size() == 1);
  settings s = load_string(
      "[[providers]]\nname = \"o\"\nbase_url = \"https://api.example.com/v1\"\n"
      "api_key_env = \"EXAMPLE_KEY\"\n[[providers.models]]\nname = \"m\"\n"
      "upstream_name = \"vendor/m-7b\"\n");
  CHECK(s.providers.at(0).type == "openai");
  CHECK(s.providers.at(0).api_key_env == "EXAMPLE_KEY");
  CHECK(s.providers.at(0).models.at(0).upstream_name == "vendor/m-7b");
}

TEST_CASE("an API key in the file is rejected") {
  std::string e = errors_of(
      "[[providers]]\nname = \"o\"\nbase_url = \"https://h/v1\"\n"
      "api_key_env = \"sk-1234567890abcdef\"\n[[providers.models]]\n"
      "name = \"m\"\n");
  CHECK(e.rfind("t.toml:4:15: this looks like an API key: keys never go in the file", 0) == 0);
  CHECK(e.find("sk-1234567890abcdef") == std::string::npos);  // the key is not echoed
  CHECK(errors_of("[[providers]]\nname = \"o\"\nbase_url = \"https://h/v1\"\n"
                  "api_key = \"abc\"\n[[providers.models]]\nname = \"m\"\n")
            .rfind("t.toml:4:1: unknown key 'api_key' in [[providers]]: keys never go in the "
                   "file",
                   0) == 0);
  CHECK(errors_of("[[providers]]\nname = \"o\"\nbase_url = \"https://h/v1\"\n"
                  "api_key_env = \"deepseek key\"\n[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:4:15: expected an environment variable name matching [A-Z_][A-Z0-9_]*, got "
        "\"deepseek key\"");
}

TEST_CASE("provider names are unique, a model appears once per provider") {
  CHECK(errors_of(sim_provider + "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n") ==
        "t.toml:7:8: duplicate provider name \"sim\" (first defined at line 2)");
  CHECK(errors_of(sim_provider + "[[providers.models]]\nname = \"m\"\n") ==
        "t.toml:7:8: duplicate model name \"m\" in this provider (first defined at line 5)");
  CHECK(errors_of("[[providers]]\nname = \"Sim\"\ntype = \"sim\"\n[[providers.models]]\n"
                  "name = \"m\"\n") == "t.toml:2:8: expected a name of [a-z0-9_-]+, got \"Sim\"");
}

TEST_CASE("a model served by several providers: endpoints that agree on what clients see") {
  const std::string second =
      "[[providers]]\nname = \"other\"\ntype = \"sim\"\n"
      "[[providers.models]]\nname = \"m\"\n";
  auto s = load_string(sim_provider + second + "upstream_name = \"m-2\"\nprice_input_per_m = 3.0\n",
                       "t.toml");
  REQUIRE(s.providers.size() == 2);
  CHECK(s.providers[1].models[0].upstream_name == "m-2");
  CHECK(errors_of(sim_provider + second + "kind = \"embedding\"\n") ==
        "t.toml:10:8: model \"m\" is also served at line 5 with another kind (\"chat\" vs "
        "\"embedding\"); the endpoints of one model must agree on it");
  CHECK(errors_of(sim_provider + second + "version = \"2\"\n").find("another version") !=
        std::string::npos);
  CHECK(errors_of(sim_provider + second + "filing_id = \"X-1\"\n").find("another filing_id") !=
        std::string::npos);
  CHECK(errors_of(sim_provider + second + "cache_ttl_s = 5\n").find("another cache_ttl_s") !=
        std::string::npos);
  CHECK(errors_of(sim_provider + second + "prefix_affinity = true\n")
            .find("another prefix_affinity setting") != std::string::npos);
  // One batcher per model: its window is the model's, the same at every endpoint.
  CHECK(errors_of(sim_provider + second + "batch_strategy = \"time\"\n")
            .find("another batch_strategy") != std::string::npos);
  CHECK(errors_of(sim_provider + second + "batch_max_wait_ms = 5\n")
            .find("another batch_max_wait_ms") != std::string::npos);
  CHECK(errors_of(sim_provider + second + "batch_max_size = 8\n").find("another batch_max_size") !=
        std::string::npos);
}

TEST_CASE("routing.groups and routing.auto_model: new ids over served models") {
  const std::string two = sim_provider + "[[providers.models]]\nname = \"m2\"\n";
  auto s = load_string(
      "[routing]\ngroups = [\"g=m:90,m2:10\", \"h=m2\"]\nauto_model = "
      "\"auto\"\n" +
          two,
      "t.toml");
  REQUIRE(s.routing.groups.size() == 2);
  CHECK(s.routing.auto_model == "auto");
  CHECK(tc::config::parse_group("m:90,m2:10") ==
        std::vector<std::pair<std::string, uint32_t>>{{"m", 90}, {"m2", 10}});
  CHECK(tc::config::parse_group("m2") == std::vector<std::pair<std::string, uint32_t>>{{"m2", 1}});
  CHECK(tc::config::parse_group("m:").empty());
  CHECK(tc::config::parse_group("m:x").empty());
  CHECK(tc::config::parse_group(",m").empty());
  CHECK(tc::config::parse_group("m:1000001").empty());
  auto err = [&](const std::string& routing) { return errors_of("[routing]\n" + routing + two); };
  CHECK(err("groups = [\"g\"]\n").find("expected \"group=model:weight") != std::string::npos);
  CHECK(err("groups = [\"g=m:a\"]\n").find("expected \"group=model:weight") != std::string::npos);
  CHECK(err("groups = [\"m=m2\"]\n").find("already a model's, alias's or group's id") !=
        std::string::npos);
  CHECK(err("groups = [\"g=m\", \"g=m2\"]\n").find("already a model's, alias's or group's id") !=
        std::string::npos);
  CHECK(err("aliases = [\"g=m\"]\ngroups = [\"g=m2\"]\n").find("already") != std::string::npos);
  CHECK(err("groups = [\"g=m,nope\"]\n").find("which no provider serves") != std::string::npos);
  CHECK(err("groups = [\"g=m,m\"]\n").find("twice") != std::string::npos);
  CHECK(err("groups = [\"g=m:0,m2:0\"]\n").find("no model a weight above 0") != std::string::npos);
  CHECK(err("auto_model = \"m\"\n").find("auto_model \"m\" is already") != std::string::npos);
  CHECK(err("auto_model = \"g\"\ngroups = [\"g=m\"]\n").find("already") != std::string::npos);
  CHECK(errors_of(sim_provider + "[[providers.models]]\nname = \"e\"\nkind = \"embedding\"\n" +
                  "[routing]\ngroups = [\"g=m,e\"]\n")
            .find("mixes chat and embedding") != std::string::npos);
  CHECK(errors_of(sim_provider + "auto_tier = \"medium\"\n").find("expected one of: none") !=
        std::string::npos);
}

TEST_CASE("scheduling settings and the per-model batch settings") {
  auto s = load_string(sim_provider +
                           "batch_strategy = \"priority\"\nbatch_max_wait_ms = 7\n"
                           "batch_max_size = 16\n[scheduling]\nenabled = false\n"
                           "max_queue_depth = 50\nqueue_timeout_ms = 900\naging_ms = 0\n"
                           "weight_p1 = 16\n",
                       "t.toml");
  CHECK_FALSE(s.scheduling.enabled);
  CHECK(s.scheduling.max_queue_depth == 50);
  CHECK(s.scheduling.queue_timeout_ms == 900);
  CHECK(s.scheduling.aging_ms == 0);
  CHECK(s.scheduling.weight_p1 == 16);
  CHECK(s.scheduling.weight_p4 == 1);
  CHECK(s.providers[0].models[0].batch_strategy == "priority");
  CHECK(s.providers[0].models[0].batch_max_wait_ms == 7);
  CHECK(s.providers[0].models[0].batch_max_size == 16);
  CHECK(errors_of(sim_provider + "batch_strategy = \"fifo\"\n")
            .find("expected one of: time, size, adaptive, priority") != std::string::npos);
  CHECK(errors_of(sim_provider + "batch_max_size = 0\n").find("expected 1..4096") !=
        std::string::npos);
  CHECK(errors_of(sim_provider + "[scheduling]\nweight_p3 = 0\n").find("expected 1..1024") !=
        std::string::npos);
}

TEST_CASE("routing.aliases name a served model, are not model names, and are unique") {
  auto s = load_string(sim_provider + "[routing]\naliases = [\"gpt-4o=m\"]\n", "t.toml");
  REQUIRE(s.routing.aliases.size() == 1);
  CHECK(s.routing.aliases[0] == "gpt-4o=m");
  CHECK(errors_of(sim_provider + "[routing]\naliases = [\"gpt-4o\"]\n")
            .find("expected \"alias=model\"") != std::string::npos);
  CHECK(errors_of(sim_provider + "[routing]\naliases = [\"gpt-4o=nope\"]\n")
            .find("which no provider serves") != std::string::npos);
  CHECK(
      errors_of(sim_provider + "[routing]\naliases = [\"m=m\"]\n").find("already a model's name") !=
      std::string::npos);
  CHECK(errors_of(sim_provider + "[routing]\naliases = [\"a=m\", \"a=m\"]\n").find("given twice") !=
        std::string::npos);
}

TEST_CASE("a configuration without a model has nothing to serve") {
  const std::string nothing = "t.toml:1:1: nothing to serve: no model is configured";
  CHECK(errors_of("").rfind(nothing, 0) == 0);
  CHECK(errors_of("[[providers]]\nname = \"sim\"\ntype = \"sim\"\n").rfind(nothing, 0) == 0);
}

TEST_CASE("listen addresses are HOST:PORT and the two ports differ") {
  CHECK(errors_of(sim_provider + "[server]\nlisten = \"localhost\"\n") ==
        "t.toml:7:10: expected HOST:PORT with PORT 0..65535 (e.g. \"127.0.0.1:8080\"), got "
        "\"localhost\"");
  CHECK(errors_of(sim_provider + "[server]\nlisten = \"127.0.0.1:70000\"\n") ==
        "t.toml:7:10: expected HOST:PORT with PORT 0..65535 (e.g. \"127.0.0.1:8080\"), got "
        "\"127.0.0.1:70000\"");
  CHECK(errors_of(sim_provider + "[server]\nlisten = \":80\"\n") != "");
  CHECK(errors_of(sim_provider + "[server]\nadmin_listen = \"127.0.0.1:8080\"\n") ==
        "t.toml:7:16: admin_listen must differ from listen (both are \"127.0.0.1:8080\")");
  // Port 0 twice is fine (tests), and so are names and IPv6.
  CHECK(errors_of(sim_provider + "[server]\nlisten = \"127.0.0.1:0\"\n"
                                 "admin_listen = \"127.0.0.1:0\"\n") == "");
  CHECK(errors_of(sim_provider + "[server]\nlisten = \"gw.example.com:443\"\n"
                                 "admin_listen = \"[::1]:9090\"\n") == "");
}

TEST_CASE("an outage ends after it starts") {
  CHECK(errors_of(sim_provider + "[[providers.sim.outages]]\nstart_s = 5\nend_s = 5\n") ==
        "t.toml:8:9: expected end_s > start_s (5), got 5");
  CHECK(errors_of(sim_provider + "[[providers.sim.outages]]\nstart_s = 5\nend_s = 6\n") == "");
}

TEST_CASE("tokenizer_file: resolved from the config file's directory, checked to build") {
  // A relative path is from the directory of the file named in errors (the config file).
  const std::string source = TC_SOURCE_DIR "/tests/protocol/t.toml";
  auto s = load_string(sim_provider + "tokenizer_file = \"data/bpe_split.json\"\n", source);
  const std::string resolved = TC_SOURCE_DIR "/tests/protocol/data/bpe_split.json";
  CHECK(s.providers[0].models[0].tokenizer_file == resolved);
  CHECK(load_string(sim_provider, "t.toml").providers[0].models[0].tokenizer_file.empty());
  std::string error;
  auto counter = tc::config::load_tokenizer(resolved, error);
  REQUIRE(counter != nullptr);
  CHECK(error.empty());
  CHECK(counter->count("Hello world") == 5);  // HuggingFace's count (tests/protocol)
  // A file that is not there, or not a tokenizer this counter implements, fails at the key.
  CHECK(errors_of(sim_provider + "tokenizer_file = \"/nonexistent/tokenizer.json\"\n") ==
        "t.toml:6:18: tokenizer_file: cannot open /nonexistent/tokenizer.json (No such file or "
        "directory)");
  const std::string not_a_tokenizer = TC_SOURCE_DIR "/config/tokenschain.toml";
  CHECK(errors_of(sim_provider + "tokenizer_file = \"" + not_a_tokenizer + "\"\n")
            .find("tokenizer_file: " + not_a_tokenizer + " cannot be used: not JSON") !=
        std::string::npos);
  // The endpoints of one model count alike.
  const std::string second =
      "[[providers]]\nname = \"other\"\ntype = \"sim\"\n"
      "[[providers.models]]\nname = \"m\"\n";
  CHECK(errors_of(sim_provider + "tokenizer_file = \"" + resolved + "\"\n" + second)
            .find("another tokenizer_file") != std::string::npos);
  CHECK(errors_of(sim_provider + "tokenizer_file = \"" + resolved + "\"\n" + second +
                  "tokenizer_file = \"" + resolved + "\"\n") == "");
}

TEST_CASE("the openai embedder names a configured provider and a model") {
  const std::string cache =
      "[cache]\n"                          // line 6
      "embedder = \"openai\"\n"            // line 7
      "embedder_provider = \"sim\"\n"      // line 8
      "embedder_model = \"text-embed\"\n"  // line 9
      "embedder_batch_max = 16\n"
      "embedder_batch_wait_ms = 0\n"
      "embedder_send_dimensions = true\n";
  auto s = load_string(sim_provider + cache, "t.toml");
  CHECK(s.cache.embedder == "openai");
  CHECK(s.cache.embedder_provider == "sim");
  CHECK(s.cache.embedder_model == "text-embed");
  CHECK(s.cache.embedder_batch_max == 16);
  CHECK(s.cache.embedder_batch_wait_ms == 0);
  CHECK(s.cache.embedder_send_dimensions);
  CHECK(s.cache.embedder_timeout_ms == 2000);  // the default

  CHECK(errors_of(sim_provider + "[cache]\nembedder = \"openai\"\nembedder_provider = \"nope\"\n"
                                 "embedder_model = \"e\"\n") ==
        "t.toml:8:21: embedder_provider \"nope\" names no [[providers]] entry");
  CHECK(errors_of(sim_provider + "[cache]\nembedder = \"openai\"\nembedder_model = \"e\"\n") ==
        "t.toml:7:12: embedder \"openai\" needs cache.embedder_provider (a [[providers]] name)");
  CHECK(errors_of(sim_provider + "[cache]\nembedder = \"openai\"\nembedder_provider = \"sim\"\n") ==
        "t.toml:7:12: embedder \"openai\" needs cache.embedder_model (the model name to send)");
  CHECK(errors_of(sim_provider + "[cache]\nembedder = \"other\"\n").find("builtin") !=
        std::string::npos);
  // The builtin embedder ignores the openai settings.
  CHECK(errors_of(sim_provider + "[cache]\nembedder_provider = \"nope\"\n").empty());
  // Anthropic's API has no embeddings: every call would fail.
  const std::string claude =
      "[[providers]]\nname = \"claude\"\ntype = \"anthropic\"\n"
      "base_url = \"https://api.anthropic.com/v1\"\n[[providers.models]]\nname = \"c\"\n";
  CHECK(errors_of(sim_provider + claude +
                  "[cache]\nembedder = \"openai\"\nembedder_provider = \"claude\"\n"
                  "embedder_model = \"e\"\n") ==
        "t.toml:14:21: embedder_provider \"claude\" is an anthropic provider, which has no "
        "/v1/embeddings");
}

TEST_CASE("an anthropic provider needs a base_url and serves chat models only") {
  const std::string head = "[[providers]]\nname = \"claude\"\ntype = \"anthropic\"\n";  // lines 1-3
  auto s = load_string(head +
                           "base_url = \"https://api.anthropic.com/v1\"\n"
                           "cache_control = \"none\"\nanthropic_max_tokens = 1024\n"
                           "[[providers.models]]\nname = \"c\"\n",
                       "t.toml");
  CHECK(s.providers[0].type == "anthropic");
  CHECK(s.providers[0].cache_control == "none");
  CHECK(s.providers[0].anthropic_max_tokens == 1024);
  CHECK(s.providers[0].anthropic_version == "2023-06-01");
  CHECK(errors_of(head + "[[providers.models]]\nname = \"c\"\n").find("'base_url'") !=
        std::string::npos);
  CHECK(errors_of(head + "base_url = \"https://api.anthropic.com/v1\"\n"
                         "[[providers.models]]\nname = \"e\"\nkind = \"embedding\"\n")
            .find("chat models only") != std::string::npos);
  CHECK(errors_of(head + "base_url = \"https://x/v1\"\ncache_control = \"all\"\n"
                         "[[providers.models]]\nname = \"c\"\n") ==
        "t.toml:5:17: expected one of: none, system_and_tools; got \"all\"");
}
