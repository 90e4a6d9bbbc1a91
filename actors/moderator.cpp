#include "actors/moderator.hpp"

#include "protocol/openai/text.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<moderator_state>*;

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

/// mtime and size of a file, as one number that changes when either does; -1 if unreadable.
int64_t file_stamp(const std::string& path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0) return -1;
  return static_cast<int64_t>(sb.st_mtim.tv_sec) * 1'000'000'000 + sb.st_mtim.tv_nsec +
         static_cast<int64_t>(sb.st_size) * 7919;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return false;
  out = text.str();
  return true;
}

/// "category=action" entries into a map (the config loader validated their form).
std::map<std::string, moderation::action> parse_actions(const std::vector<std::string>& entries) {
  std::map<std::string, moderation::action> out;
  for (const auto& e : entries) {
    auto eq = e.find('=');
    moderation::action a = moderation::action::block;
    if (eq == std::string::npos || !moderation::parse_action(e.substr(eq + 1), a)) continue;
    out[e.substr(0, eq)] = a;
  }
  return out;
}

moderation::action action_for(const moderation_engine& e, const std::string& category) {
  auto it = e.actions.find(category);
  return it != e.actions.end() ? it->second : e.fallback;
}

/// One engine's verdict for the audit record and its vote.
void add_verdict(moderation_result& out, const moderation_engine& e, moderation::action act,
                 std::string category, uint64_t started_ns) {
  audit::engine_verdict v;
  v.engine = e.name;
  v.verdict = std::string(moderation::action_name(act));
  v.category = category;
  v.latency_us = static_cast<uint32_t>((now_ns() - started_ns) / 1000);
  out.verdicts.push_back(std::move(v));
  moderation::engine_result r;
  r.engine = e.name;
  r.act = act;
  r.category = std::move(category);
  r.weight = e.weight;
  r.fail_closed = e.fail_closed;
  out.votes.push_back(std::move(r));
}

/// Keeps the mask findings of `hits` for text `i`, and returns the strongest finding.
moderation::action collect(moderation_result& out, size_t i, std::vector<moderation::hit>& hits,
                           std::string& category) {
  moderation::action strongest = moderation::action::allow;
  for (auto& h : hits) {
    if (static_cast<uint8_t>(h.act) > static_cast<uint8_t>(strongest) ||
        (h.act == strongest && category.empty())) {
      strongest = h.act;
      category = h.category;
    }
    if (h.act == moderation::action::mask) out.masks[i].push_back(std::move(h));
  }
  return strongest;
}

}  // namespace

std::shared_ptr<const moderation_rules> compile_rules(const config::moderation_settings& cfg,
                                                      std::string& error) {
  auto rules = std::make_shared<moderation_rules>();
  if (!cfg.enabled) return rules;
  rules->input = cfg.input;
  rules->output = cfg.output;
  if (!moderation::parse_policy(cfg.policy, rules->policy)) {
    error = "unknown moderation policy '" + cfg.policy + "'";
    return nullptr;
  }
  rules->block_threshold = cfg.block_threshold;
  size_t longest = 0;
  for (const auto& ec : cfg.engines) {
    moderation_engine e;
    e.name = ec.name;
    e.input = ec.direction != "output";
    e.output = ec.direction != "input";
    e.timeout_ms = ec.timeout_ms;
    e.fail_closed = ec.on_failure == "closed";
    e.weight = ec.weight;
    if (!moderation::parse_action(ec.default_action, e.fallback))
      e.fallback = moderation::action::block;
    e.actions = parse_actions(ec.actions);
    const std::string where = "engine '" + ec.name + "'";
    if (ec.type == "keywords") {
      e.kind = moderation_engine::kind_t::keywords;
      std::vector<moderation::lexicon_term> terms;
      for (const auto& file : ec.lexicons) {
        std::string text, why;
        if (!read_file(file, text)) {
          error = where + ": cannot read lexicon " + file;
          return nullptr;
        }
        if (!moderation::parse_lexicon(text, ec.default_category, terms, why)) {
          error = where + ": lexicon " + file + " " + why;
          return nullptr;
        }
      }
      std::string why;
      e.matcher = moderation::keyword_matcher::compile(terms, e.actions, e.fallback, why);
      if (!e.matcher) {
        error = where + ": " + why;
        return nullptr;
      }
      longest = std::max(longest, e.matcher->max_term_bytes());
    } else if (ec.type == "pii") {
      e.kind = moderation_engine::kind_t::pii;
      for (const auto& k : ec.kinds) {
        moderation::pii_kind kind{};
        if (moderation::parse_pii_kind(k, kind)) e.kinds.push_back(kind);
      }
      longest = std::max<size_t>(longest, 64);  // a long e-mail address; an ID card is 18
    } else if (ec.type == "http" || ec.type == "openai") {
      e.kind =
          ec.type == "http" ? moderation_engine::kind_t::http : moderation_engine::kind_t::openai;
      e.url = ec.type == "http" ? ec.url : ec.url + "/moderations";
      e.model = ec.model;
      if (!ec.api_key_env.empty()) {
        const char* key = std::getenv(ec.api_key_env.c_str());
        if (key == nullptr || *key == '\0') {
          error = where + ": the environment variable " + ec.api_key_env + " is not set";
          return nullptr;
        }
        e.auth_header = std::string("Authorization: Bearer ") + key;
      }
      if (e.input) rules->remote_input = true;
      if (e.output) rules->remote_output = true;
    } else {
      error = where + ": unknown type '" + ec.type + "'";
      return nullptr;
    }
    rules->engines.push_back(std::move(e));
  }
  rules->hold_back = static_cast<uint32_t>(std::max<size_t>(cfg.stream_hold_back_bytes, longest));
  if (rules->engines.empty()) rules->input = rules->output = false;
  return rules;
}

void moderate_local(const moderation_rules& rules, moderation_dir d,
                    const std::vector<std::string>& texts, moderation_result& out) {
  if (out.masks.size() < texts.size()) out.masks.resize(texts.size());
  for (const moderation_engine& e : rules.engines) {
    if (e.remote() || !e.applies(d)) continue;
    const uint64_t started = now_ns();
    moderation::action act = moderation::action::allow;
    std::string category;
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<moderation::hit> hits;
      if (e.kind == moderation_engine::kind_t::keywords) {
        hits = e.matcher->scan(texts[i]);
      } else {
        for (const auto& m : moderation::find_pii(texts[i])) {
          if (std::find(e.kinds.begin(), e.kinds.end(), m.kind) == e.kinds.end()) continue;
          const std::string kind(moderation::pii_kind_name(m.kind));
          moderation::hit h;
          h.begin = m.begin;
          h.end = m.end;
          h.category = "pii." + kind;
          h.act = action_for(e, kind);
          hits.push_back(std::move(h));
        }
      }
      std::string cat;
      moderation::action a = collect(out, i, hits, cat);
      if (static_cast<uint8_t>(a) > static_cast<uint8_t>(act)) {
        act = a;
        category = std::move(cat);
      }
    }
    add_verdict(out, e, act, std::move(category), started);
  }
}

std::string remote_body(const moderation_engine& e, moderation_dir d, std::string_view request_id,
                        std::string_view tenant, std::string_view model,
                        const std::vector<std::string>& texts) {
  if (e.kind == moderation_engine::kind_t::openai)
    return moderation::openai_moderation_body(e.model, texts);
  return moderation::http_request_body(d == moderation_dir::input ? "input" : "output", request_id,
                                       tenant, model, texts);
}

std::vector<std::string> remote_headers(const moderation_engine& e) {
  std::vector<std::string> hs{"Content-Type: application/json"};
  if (!e.auth_header.empty()) hs.push_back(e.auth_header);
  return hs;
}

void add_remote_verdict(const moderation_engine& e, int status, std::string_view body,
                        std::string_view failure, const std::vector<std::string>& texts,
                        uint32_t latency_us, moderation_result& out) {
  if (out.masks.size() < texts.size()) out.masks.resize(texts.size());
  moderation::remote_verdict v;
  std::string error;
  bool ok = false;
  if (failure.empty() && status >= 200 && status < 300) {
    ok = e.kind == moderation_engine::kind_t::openai
             ? moderation::parse_openai_moderation(body, texts.size(), e.actions, e.fallback, v,
                                                   error)
             : moderation::parse_http_verdict(body, texts, v, error);
  }
  audit::engine_verdict verdict;
  verdict.engine = e.name;
  verdict.latency_us = latency_us;
  moderation::engine_result vote;
  vote.engine = e.name;
  vote.weight = e.weight;
  vote.fail_closed = e.fail_closed;
  if (!ok) {
    const bool timed_out = failure.find("timeout") != std::string_view::npos;
    verdict.verdict = timed_out ? "timeout" : "error";
    verdict.category = !failure.empty() ? std::string(failure)
                       : status != 0 && (status < 200 || status >= 300)
                           ? "status " + std::to_string(status)
                           : error;
    vote.failed = true;
    vote.category = verdict.category;
  } else {
    verdict.verdict = std::string(moderation::action_name(v.act));
    verdict.category = v.category;
    vote.act = v.act;
    vote.category = v.category;
    for (size_t i = 0; i < v.hits.size() && i < texts.size(); ++i) {
      for (auto& h : v.hits[i]) {
        if (h.act == moderation::action::mask) out.masks[i].push_back(std::move(h));
      }
    }
  }
  out.verdicts.push_back(std::move(verdict));
  out.votes.push_back(std::move(vote));
}

void finish_moderation(const moderation_rules& rules, moderation_result& out) {
  std::string category;
  out.act = moderation::aggregate(rules.policy, out.votes, rules.block_threshold, category);
  out.category = std::move(category);
}

std::vector<std::string> masked_texts(const std::vector<std::string>& texts,
                                      const moderation_result& r) {
  std::vector<std::string> out;
  out.reserve(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i < r.masks.size() && !r.masks[i].empty())
      out.push_back(moderation::apply_masks(texts[i], r.masks[i]));
    else
      out.push_back(texts[i]);
  }
  return out;
}

stream_guard::stream_guard(std::shared_ptr<const moderation_rules> rules, bool hold_all)
    : rules_(std::move(rules)), hold_all_(hold_all) {}

std::vector<std::string> stream_guard::texts() const {
  std::vector<std::string> out;
  for (const auto& [index, c] : choices_) out.push_back(c.text);
  return out;
}

void stream_guard::add_remote(const moderation_result& r) {
  merge(r.verdicts);
  size_t i = 0;
  for (auto& [index, c] : choices_) {
    if (i < r.masks.size()) c.masks.insert(c.masks.end(), r.masks[i].begin(), r.masks[i].end());
    ++i;
  }
  if (r.blocked()) {
    blocked_ = true;
    category_ = r.category;
  }
}

void stream_guard::push(std::string name, std::string data) {
  event ev;
  ev.name = std::move(name);
  if (ev.name.empty() && data != "[DONE]") {
    for (auto& p : openai::delta_texts(data)) {
      if (p.text.empty()) continue;
      choice_text& c = choices_[p.index];
      ev.ranges.push_back({p.index, c.text.size(), c.text.size() + p.text.size()});
      c.text += p.text;
    }
  }
  ev.data = std::move(data);
  queue_.push_back(std::move(ev));
}

void stream_guard::merge(const std::vector<audit::engine_verdict>& vs) {
  for (const auto& v : vs) {
    auto it = std::find_if(verdicts_.begin(), verdicts_.end(),
                           [&](const audit::engine_verdict& x) { return x.engine == v.engine; });
    if (it == verdicts_.end()) {
      verdicts_.push_back(v);
      continue;
    }
    moderation::action have{}, now{};
    moderation::parse_action(it->verdict, have);
    moderation::parse_action(v.verdict, now);
    if (static_cast<uint8_t>(now) > static_cast<uint8_t>(have)) {
      it->verdict = v.verdict;
      it->category = v.category;
    }
    it->latency_us += v.latency_us;
  }
}

bool stream_guard::scan(bool final) {
  if (blocked_) return false;
  const size_t hold = rules_->hold_back;
  for (auto& [index, c] : choices_) {
    if (c.text.size() > c.scanned) {
      // From far enough back that a term ending in the new text is seen whole, on a UTF-8
      // boundary.
      size_t start = c.scanned > hold ? c.scanned - hold : 0;
      while (start > 0 && (static_cast<uint8_t>(c.text[start]) & 0xC0) == 0x80) --start;
      std::vector<std::string> window{c.text.substr(start)};
      moderation_result r;
      moderate_local(*rules_, moderation_dir::output, window, r);
      finish_moderation(*rules_, r);
      merge(r.verdicts);
      if (r.blocked()) {
        blocked_ = true;
        category_ = r.category;
        return false;
      }
      for (auto& h : r.masks[0]) {
        h.begin += static_cast<uint32_t>(start);
        h.end += static_cast<uint32_t>(start);
        c.masks.push_back(std::move(h));
      }
      c.scanned = c.text.size();
    }
    c.safe = final       ? c.text.size()
             : hold_all_ ? 0
                         : (c.text.size() > hold ? c.text.size() - hold : 0);
  }
  return true;
}

bool stream_guard::pop(std::string& name, std::string& data) {
  if (blocked_ || queue_.empty()) return false;
  event& ev = queue_.front();
  for (const auto& r : ev.ranges) {
    if (r.end > choices_[r.choice].safe) return false;
  }
  std::vector<openai::delta_piece> rewritten;
  for (const auto& r : ev.ranges) {
    const choice_text& c = choices_[r.choice];
    std::vector<moderation::hit> local;
    for (const auto& h : c.masks) {
      if (h.end <= r.begin || h.begin >= r.end) continue;
      moderation::hit m = h;
      m.begin = static_cast<uint32_t>(std::max<size_t>(h.begin, r.begin) - r.begin);
      m.end = static_cast<uint32_t>(std::min<size_t>(h.end, r.end) - r.begin);
      local.push_back(std::move(m));
    }
    if (local.empty()) continue;
    std::string_view piece(c.text.data() + r.begin, r.end - r.begin);
    rewritten.push_back({r.choice, moderation::apply_masks(piece, local)});
  }
  name = std::move(ev.name);
  data = rewritten.empty() ? std::move(ev.data) : openai::with_delta_texts(ev.data, rewritten);
  queue_.pop_front();
  return true;
}

caf::behavior moderator(caf::stateful_actor<moderator_state>* self,
                        std::shared_ptr<moderation_cell> cell, config::moderation_settings settings,
                        std::function<void(const std::string& error)> on_reload) {
  auto& st = self->state;
  st.cell = std::move(cell);
  st.on_reload = std::move(on_reload);
  st.settings = std::move(settings);
  uint32_t interval = 0;
  for (const auto& e : st.settings.engines) {
    if (e.type != "keywords" || e.reload_interval_ms == 0) continue;
    interval = interval == 0 ? e.reload_interval_ms : std::min(interval, e.reload_interval_ms);
    for (const auto& f : e.lexicons) st.mtimes[f] = file_stamp(f);
  }
  st.seen = st.mtimes;
  if (st.settings.enabled && interval != 0)
    self->delayed_send(self, std::chrono::milliseconds(interval), reload_atom::value);
  return {
      [self, interval](reload_atom) {
        auto& st = self->state;
        std::map<std::string, int64_t> now;
        for (const auto& [file, stamp] : st.mtimes) now[file] = file_stamp(file);
        // A change is read once it held still for one interval: an editor or `>` truncates,
        // then writes, and a check in between would compile a part of the file.
        const bool settled = now != st.mtimes && now == st.seen;
        st.seen = now;
        if (settled) {
          // Reported once per change: a broken file is not retried until it changes again.
          st.mtimes = std::move(now);
          std::string error;
          auto rules = compile_rules(st.settings, error);
          if (rules) st.cell->set(std::move(rules));
          if (st.on_reload) st.on_reload(error);
        }
        if (interval != 0)
          self->delayed_send(self, std::chrono::milliseconds(interval), reload_atom::value);
      },
  };
}

}  // namespace tc::actors
