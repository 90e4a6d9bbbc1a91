// Two-way moderation (issue 5, DESIGN §2 steps 4 and 11): the configured engines, compiled into
// an immutable rule set that every connection actor and I/O loop reads lock-free, and the
// moderator actor that owns it and reloads changed lexicon files.
//
// The engines run where the text is, all of a check's engines at once: the local ones (keywords,
// pii) take microseconds and run inline; the remote ones (http, openai) are HTTP calls made
// concurrently by the I/O loop's client. Requests are checked by the connection actor (step 4),
// answers by the I/O loop that relays them (step 11, streams window by window).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/published.hpp"
#include "config/settings.hpp"
#include "protocol/audit/record.hpp"
#include "protocol/messages.hpp"
#include "protocol/moderation/keywords.hpp"
#include "protocol/moderation/moderation.hpp"
#include "protocol/moderation/pii.hpp"
#include "protocol/moderation/remote.hpp"

namespace tc::actors {

using reload_atom = caf::atom_constant<caf::atom("mod_reload")>;

/// Which text a check is for.
enum class moderation_dir : uint8_t { input, output };

/// One configured engine, ready to run.
struct moderation_engine {
  enum class kind_t : uint8_t { keywords, pii, http, openai };
  std::string name;
  kind_t kind = kind_t::keywords;
  bool input = true;   ///< checks requests
  bool output = true;  ///< checks answers
  uint32_t timeout_ms = 200;
  bool fail_closed = false;  ///< a failure counts as block (else it is left out of the vote)
  double weight = 1.0;
  moderation::action fallback = moderation::action::block;     ///< default_action
  std::map<std::string, moderation::action> actions;           ///< category (or pii kind) -> action
  std::shared_ptr<const moderation::keyword_matcher> matcher;  ///< keywords
  std::vector<moderation::pii_kind> kinds;                     ///< pii
  std::string url;          ///< http: the webhook; openai: …/moderations
  std::string auth_header;  ///< "Authorization: Bearer …" or ""
  std::string model;        ///< openai
  bool remote() const { return kind == kind_t::http || kind == kind_t::openai; }
  bool applies(moderation_dir d) const { return d == moderation_dir::input ? input : output; }
};

/// The whole configuration, compiled. Immutable: a reload publishes a new one.
struct moderation_rules {
  bool input = false;   ///< step 4 runs
  bool output = false;  ///< step 11 runs
  moderation::policy policy = moderation::policy::any_block;
  double block_threshold = 0.5;
  uint32_t hold_back = 64;  ///< stream bytes withheld: max(configured, longest term)
  std::vector<moderation_engine> engines;
  bool remote_input = false;   ///< a remote engine checks requests
  bool remote_output = false;  ///< a remote engine checks answers
};

/// Where the current rules are published (no engines at first); read from any thread.
using moderation_cell = published<moderation_rules>;

/// Compiles the [moderation] settings (reading lexicon files). nullptr with `error` set ("engine
/// 'x': lexicon FILE line N: why") when a file cannot be read or parsed. Start-up and reload.
std::shared_ptr<const moderation_rules> compile_rules(const config::moderation_settings& cfg,
                                                      std::string& error);

/// A direction's verdict: what the engines found, combined by the policy.
struct moderation_result {
  moderation::action act = moderation::action::allow;  ///< the policy's decision
  std::string category;                                ///< the deciding finding's category
  std::vector<audit::engine_verdict> verdicts;         ///< one per engine that ran
  std::vector<moderation::engine_result> votes;        ///< same order, for aggregate()
  std::vector<std::vector<moderation::hit>> masks;     ///< per text: mask findings to apply
  bool blocked() const { return act == moderation::action::block; }
};

/// Runs the local engines (keywords, pii) of direction `d` over `texts` and appends their
/// verdicts to `out` (not aggregated: call finish_moderation once remote verdicts are in).
/// Any thread.
void moderate_local(const moderation_rules& rules, moderation_dir d,
                    const std::vector<std::string>& texts, moderation_result& out);

/// A remote engine's call for direction `d` over `texts`: its body and headers.
std::string remote_body(const moderation_engine& e, moderation_dir d, std::string_view request_id,
                        std::string_view tenant, std::string_view model,
                        const std::vector<std::string>& texts);
std::vector<std::string> remote_headers(const moderation_engine& e);

/// Appends remote engine `e`'s verdict to `out` from its HTTP answer (status 0 and `failure`
/// when the call failed). A failure, a non-2xx status or an answer that does not parse is a
/// failed vote (error or timeout in the audit verdict), counted as the engine's on_failure says.
void add_remote_verdict(const moderation_engine& e, int status, std::string_view body,
                        std::string_view failure, const std::vector<std::string>& texts,
                        uint32_t latency_us, moderation_result& out);

/// Combines the votes in `out` by the rules' policy into out.act and out.category.
void finish_moderation(const moderation_rules& rules, moderation_result& out);

/// The texts with every mask finding applied (texts without findings unchanged).
std::vector<std::string> masked_texts(const std::vector<std::string>& texts,
                                      const moderation_result& r);

/// Step 11 for one stream (I/O loop): content events wait until the text after them has been
/// scanned too, so no blocked term, and no unmasked one, is ever released, even when it is split
/// over several chunks. Every choice of the stream is its own text. Not thread-safe (one loop).
class stream_guard {
 public:
  /// `hold_all`: nothing is released before scan(true) (remote output engines check the whole
  /// text once it is complete).
  explicit stream_guard(std::shared_ptr<const moderation_rules> rules, bool hold_all = false);

  /// Queues one SSE event (its name, "" for data-only, and its data payload, "[DONE]" too).
  void push(std::string name, std::string data);

  /// Scans the text queued since the last scan. `final`: no more text follows (everything
  /// queued may go once scanned). False if the text is blocked: nothing more may be released.
  bool scan(bool final);

  /// The next releasable event, in order, its text masked where a mask finding covers it.
  /// False when the next event must wait (or none is queued).
  bool pop(std::string& name, std::string& data);

  /// The text of each choice so far, by choice index (for remote engines).
  std::vector<std::string> texts() const;
  /// Folds in the remote engines' part of `r` (its verdicts, mask findings by text, as texts()
  /// ordered them) and blocks if `r` is blocked. Call before scan(true).
  void add_remote(const moderation_result& r);

  /// Each output engine's strongest verdict so far (latencies summed over the scans).
  const std::vector<audit::engine_verdict>& verdicts() const { return verdicts_; }
  /// The finding that blocked the stream ("" if none).
  const std::string& category() const { return category_; }
  size_t queued() const { return queue_.size(); }
  size_t choices() const { return choices_.size(); }
  bool hold_all() const { return hold_all_; }

 private:
  struct piece_range {
    uint32_t choice;
    size_t begin;
    size_t end;
  };
  struct event {
    std::string name;
    std::string data;
    std::vector<piece_range> ranges;
  };
  struct choice_text {
    std::string text;
    size_t scanned = 0;                  ///< bytes scanned so far
    size_t safe = 0;                     ///< bytes that may be released
    std::vector<moderation::hit> masks;  ///< offsets in `text`
  };
  void merge(const std::vector<audit::engine_verdict>& vs);

  std::shared_ptr<const moderation_rules> rules_;
  std::deque<event> queue_;
  std::map<uint32_t, choice_text> choices_;
  std::vector<audit::engine_verdict> verdicts_;
  std::string category_;
  bool blocked_ = false;
  bool hold_all_ = false;
};

struct moderator_state {
  std::shared_ptr<moderation_cell> cell;
  config::moderation_settings settings;
  std::map<std::string, int64_t> mtimes;  ///< lexicon file -> stamp the rules were built from
  std::map<std::string, int64_t> seen;    ///< lexicon file -> stamp at the last check
  std::function<void(const std::string& error)> on_reload;  ///< after a reload ("" = success)
  static inline const char* name = "moderator";
};

/// Owns the published rules after start-up:
///   (reload_atom)   re-reads the lexicon files when one changed (mtime or size) and then held
///                   still for one check (a file being written in place is not read half
///                   written), and publishes new rules; a file that cannot be read or parsed
///                   keeps the old rules and logs why. Re-armed every smallest
///                   reload_interval_ms of the keywords engines (none: never).
/// `on_reload` runs on the actor's thread after each reload attempt.
caf::behavior moderator(caf::stateful_actor<moderator_state>* self,
                        std::shared_ptr<moderation_cell> cell, config::moderation_settings settings,
                        std::function<void(const std::string& error)> on_reload);

}  // namespace tc::actors
