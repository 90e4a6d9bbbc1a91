// actors/moderator: rules compiled from settings, the local engines and their aggregation, and
// the stream guard that never releases a blocked (or unmasked) term, however it is split.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/moderator.hpp"
#include "protocol/messages.hpp"
#include "tests/support/actor_system.hpp"

using namespace tc::actors;

namespace {

/// A lexicon file in a fresh temp directory, removed at the end.
struct lexicon_file {
  std::string dir;
  std::string path;
  explicit lexicon_file(const std::string& text) {
    char tmpl[] = "/tmp/tc-moderator-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    dir = d;
    path = dir + "/words.txt";
    std::ofstream(path) << text;
  }
  ~lexicon_file() {
    std::remove(path.c_str());
    ::rmdir(dir.c_str());
  }
};

tc::config::moderation_settings keyword_settings(const std::string& lexicon) {
  tc::config::moderation_settings m;
  m.enabled = true;
  m.stream_hold_back_bytes = 8;
  tc::config::moderation_engine_settings e;
  e.name = "words";
  e.type = "keywords";
  e.lexicons = {lexicon};
  e.actions = {"violence=block", "brand=mask", "watch=flag"};
  m.engines.push_back(e);
  return m;
}

std::shared_ptr<const moderation_rules> compile(const tc::config::moderation_settings& m) {
  std::string error;
  auto rules = compile_rules(m, error);
  REQUIRE_MESSAGE(rules, error);
  return rules;
}

/// A chat.completion.chunk carrying `text` as choice 0's delta.
std::string chunk(const std::string& text) {
  return R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":")" +
         text + R"("},"finish_reason":null}]})";
}

/// Everything the guard releases now, data payloads concatenated.
std::string drain(stream_guard& g) {
  std::string name, data, out;
  while (g.pop(name, data)) out += data + "\n";
  return out;
}

/// True when `text` (input) is blocked by the rules published in `cell`.
bool blocks(const moderation_cell& cell, const std::string& text) {
  moderation_result r;
  const auto rules = cell.get();
  moderate_local(*rules, moderation_dir::input, {text}, r);
  finish_moderation(*rules, r);
  return r.blocked();
}

using tc::test::quiet_config;

}  // namespace

TEST_CASE("moderator: a changed lexicon is read once it held still, a broken one keeps the rules") {
  lexicon_file lex("[violence]\nbadword\n");
  auto settings = keyword_settings(lex.path);
  settings.engines[0].reload_interval_ms = 3'600'000;  // the test drives every check itself
  auto cell = std::make_shared<moderation_cell>();
  cell->set(compile(settings));
  std::mutex mutex;
  std::vector<std::string> reloads;  // each attempt's error ("" = success)
  quiet_config cfg;
  caf::actor_system sys{cfg};
  auto mod = sys.spawn(moderator, cell, settings, [&](const std::string& error) {
    std::lock_guard<std::mutex> lock(mutex);
    reloads.push_back(error);
  });
  struct stopper {  // a failed REQUIRE must not leave the system waiting for the actor
    caf::actor actor;
    ~stopper() { caf::anon_send_exit(actor, caf::exit_reason::user_shutdown); }
  } stop{mod};
  caf::scoped_actor self{sys};
  const auto check = [&] {  // one check, answered once the handler ran
    self->request(mod, caf::infinite, reload_atom::value).receive([] {}, [](caf::error&) {});
    std::lock_guard<std::mutex> lock(mutex);
    return reloads;
  };
  CHECK(check().empty());  // nothing changed
  CHECK(blocks(*cell, "a badword"));

  // Written in place in two steps, each seen by a check: neither half is compiled.
  { std::ofstream(lex.path) << "[violence]\nbad"; }
  CHECK(check().empty());
  { std::ofstream(lex.path) << "[violence]\nbadword\nworseword\n"; }
  CHECK(check().empty());
  CHECK(!blocks(*cell, "a worseword"));
  auto seen = check();  // held still: read now
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].empty());
  CHECK(blocks(*cell, "a worseword"));
  CHECK(blocks(*cell, "a badword"));
  CHECK(check().size() == 1);  // one reload per change

  // A broken file is reported once and the working rules stay.
  { std::ofstream(lex.path) << "[violence\nbroken header\n"; }
  check();
  seen = check();
  REQUIRE(seen.size() == 2);
  CHECK(!seen[1].empty());
  CHECK(check().size() == 2);
  CHECK(blocks(*cell, "a worseword"));
}

TEST_CASE("compile_rules: disabled is empty, a missing or bad lexicon names engine and file") {
  tc::config::moderation_settings off;
  std::string error;
  auto rules = compile_rules(off, error);
  REQUIRE(rules);
  CHECK(!rules->input);
  CHECK(!rules->output);
  auto missing = keyword_settings("/nonexistent/words.txt");
  CHECK(compile_rules(missing, error) == nullptr);
  CHECK(error.find("engine 'words'") != std::string::npos);
  CHECK(error.find("/nonexistent/words.txt") != std::string::npos);
  lexicon_file bad("[violence\nx\n");
  CHECK(compile_rules(keyword_settings(bad.path), error) == nullptr);
  CHECK(error.find("line 1") != std::string::npos);
}

TEST_CASE("moderate_local: block, mask and flag findings, each engine's verdict") {
  lexicon_file lex("[violence]\nbadword\n[brand]\nacme\n[watch]\nhmm\n");
  auto rules = compile(keyword_settings(lex.path));
  CHECK(rules->hold_back >= 8);
  moderation_result r;
  moderate_local(*rules, moderation_dir::input, {"nothing here"}, r);
  finish_moderation(*rules, r);
  CHECK(r.act == tc::moderation::action::allow);
  REQUIRE(r.verdicts.size() == 1);
  CHECK(r.verdicts[0].verdict == "allow");

  moderation_result m;
  std::vector<std::string> texts{"hmm, buy ACME now", "plain"};
  moderate_local(*rules, moderation_dir::input, texts, m);
  finish_moderation(*rules, m);
  CHECK(m.act == tc::moderation::action::mask);
  CHECK(m.category == "brand");
  auto masked = masked_texts(texts, m);
  CHECK(masked[0] == "hmm, buy **** now");
  CHECK(masked[1] == "plain");

  moderation_result b;
  moderate_local(*rules, moderation_dir::output, {"acme and BadWord"}, b);
  finish_moderation(*rules, b);
  CHECK(b.blocked());
  CHECK(b.category == "violence");
  CHECK(b.verdicts[0].verdict == "block");
}

TEST_CASE("stream_guard: a blocked term split over chunks is never released") {
  lexicon_file lex("[violence]\nforbidden\n");
  auto rules = compile(keyword_settings(lex.path));
  stream_guard g(rules);
  g.push("", R"({"choices":[{"index":0,"delta":{"role":"assistant"}}]})");
  g.push("", chunk("a long harmless opening sentence, "));
  REQUIRE(g.scan(false));
  std::string released = drain(g);
  // The role chunk and the first text may go: the last hold_back bytes of text wait.
  CHECK(released.find("assistant") != std::string::npos);
  g.push("", chunk("and then forb"));
  REQUIRE(g.scan(false));
  std::string more = drain(g);
  CHECK(more.find("forb") == std::string::npos);  // too close to the end of the text so far
  g.push("", chunk("idden words"));
  CHECK(!g.scan(false));
  CHECK(g.category() == "violence");
  std::string name, data;
  CHECK(!g.pop(name, data));  // blocked: nothing more is ever released
  REQUIRE(g.verdicts().size() == 1);
  CHECK(g.verdicts()[0].verdict == "block");
}

TEST_CASE("stream_guard: mask findings across chunks are masked, the end releases everything") {
  lexicon_file lex("[brand]\nacmecorp\n");
  auto rules = compile(keyword_settings(lex.path));
  stream_guard g(rules);
  g.push("", chunk("we like acm"));
  g.push("", chunk("ecorp a lot"));
  g.push("", R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
  g.push("", "[DONE]");
  REQUIRE(g.scan(true));
  std::string out = drain(g);
  CHECK(out.find("acm") == std::string::npos);
  CHECK(out.find("we like ***") != std::string::npos);
  CHECK(out.find("*****") != std::string::npos);
  CHECK(out.find("\"finish_reason\":\"stop\"") != std::string::npos);
  CHECK(out.find("[DONE]") != std::string::npos);
  CHECK(g.queued() == 0);
  CHECK(g.verdicts()[0].verdict == "mask");
}

TEST_CASE("stream_guard: text within the hold-back waits until more text or the end") {
  lexicon_file lex("[violence]\nzzz\n");
  auto rules = compile(keyword_settings(lex.path));
  stream_guard g(rules);
  g.push("", chunk("short"));  // 5 bytes < hold_back
  REQUIRE(g.scan(false));
  std::string name, data;
  CHECK(!g.pop(name, data));
  g.push("", chunk(std::string(rules->hold_back, 'x')));
  REQUIRE(g.scan(false));
  CHECK(g.pop(name, data));  // "short" is now far enough from the end
  CHECK(data.find("short") != std::string::npos);
  CHECK(!g.pop(name, data));
  REQUIRE(g.scan(true));
  CHECK(g.pop(name, data));
}
