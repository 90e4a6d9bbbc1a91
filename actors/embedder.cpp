// embedder: see embedder.hpp. Asks gather in one batch; pump() closes it when full, sends what
// is ready while call slots are free, and arms the wait timer for the rest.
#include "actors/embedder.hpp"

#include <algorithm>
#include <chrono>

#include "actors/connection.hpp"
#include "protocol/openai/embeddings.hpp"

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<embedder_state>*;

/// The actor's own watchdog fires this long after a call's timeout, if the port has not
/// answered by then (it should have: it sends exactly one side_answer, timeouts included).
constexpr uint32_t watchdog_slack_ms = 500;

/// The largest answer read: a float prints in at most ~16 characters, plus the envelope.
uint32_t answer_limit(const embedder_config& c) {
  const uint64_t per_text = uint64_t{c.dimension} * 24 + 256;
  return static_cast<uint32_t>(
      std::min<uint64_t>(64ull << 20, 64 * 1024 + per_text * std::max(1u, c.batch_max)));
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void report_pending(embedder_state& st) {
  if (st.cfg->metrics) st.cfg->metrics->pending(st.pending);
}

void answer_error(embedder_state::ask& a, std::string error) {
  embed_answer out;
  out.error = std::move(error);
  a.promise.deliver(std::move(out));
}

/// Starts a new gathering batch (the flush timer of the old one becomes stale).
embedder_state::batch take_gathering(embedder_state& st) {
  embedder_state::batch b = std::move(st.gathering);
  st.gathering = {};
  st.gathering_index.clear();
  st.gathering_due = false;
  st.timer_armed = false;
  ++st.epoch;
  return b;
}

/// One /v1/embeddings call for batch `b`, through the next port.
void send(self_ptr self, embedder_state::batch&& b) {
  auto& st = self->state;
  const embedder_config& cfg = *st.cfg;
  side_call c;
  c.reply_to = caf::actor_cast<caf::actor>(self);
  c.id = ++st.next_id;
  c.provider = cfg.provider;
  c.url = cfg.url;
  c.headers = {"Content-Type: application/json", "x-request-id: tc-embed-" + std::to_string(c.id)};
  c.body = openai::embeddings_body(cfg.model, b.texts, cfg.send_dimensions ? cfg.dimension : 0);
  c.timeout_ms = cfg.timeout_ms;
  c.max_answer_bytes = answer_limit(cfg);
  b.started_us = now_us();
  st.calls.emplace(c.id, std::move(b));
  self->delayed_send(self, std::chrono::milliseconds(cfg.timeout_ms + watchdog_slack_ms),
                     embed_expire_atom::value, c.id);
  io_port* port = cfg.ports[st.next_port++ % cfg.ports.size()];
  port->call(std::move(c));
}

/// Closes a full gathering batch, sends ready batches while call slots are free (a due
/// gathering batch too), and arms the wait timer for a gathering batch that is not due yet.
void pump(self_ptr self) {
  auto& st = self->state;
  const embedder_config& cfg = *st.cfg;
  if (st.gathering.texts.size() >= std::max(1u, cfg.batch_max))
    st.ready.push_back(take_gathering(st));
  while (!st.ready.empty() && st.calls.size() < cfg.max_calls) {
    embedder_state::batch b = std::move(st.ready.front());
    st.ready.pop_front();
    send(self, std::move(b));
  }
  if (st.gathering.texts.empty()) return;
  if (cfg.batch_wait_ms == 0 || st.gathering_due) {
    // Due: it goes when a slot is free; until then it keeps growing (to full).
    if (st.calls.size() < cfg.max_calls) send(self, take_gathering(st));
    return;
  }
  if (!st.timer_armed) {
    st.timer_armed = true;
    self->delayed_send(self, std::chrono::milliseconds(cfg.batch_wait_ms), embed_flush_atom::value,
                       st.epoch);
  }
}

/// How a call ended, with the vectors by input when it is ok.
embed_outcome judge(const embedder_config& cfg, const side_answer& a, size_t texts,
                    std::vector<std::vector<float>>& vectors, std::string& error) {
  if (a.status == 0) {
    const bool timeout = a.failure.size() >= 7 && a.failure.ends_with("timeout");
    error = timeout ? "timeout" : "transport_" + (a.failure.empty() ? "failed" : a.failure);
    return timeout ? embed_outcome::timeout : embed_outcome::transport;
  }
  if (a.status != 200) {
    error = "status_" + std::to_string(a.status);
    return embed_outcome::status;
  }
  std::string why;
  if (!openai::parse_embeddings(a.body, texts, cfg.dimension, vectors, why)) {
    error = "bad_answer_" + why;
    return embed_outcome::bad_answer;
  }
  for (auto& v : vectors) {
    if (!openai::l2_normalize(v)) {
      error = "bad_answer_value";
      return embed_outcome::bad_answer;
    }
  }
  return embed_outcome::ok;
}

/// The call `id` ended (answered, or overdue when `a` is null): every ask of its batch is
/// answered, then whatever waited for the slot goes.
void finish(self_ptr self, uint64_t id, const side_answer* a) {
  auto& st = self->state;
  auto it = st.calls.find(id);
  if (it == st.calls.end()) return;  // answered already (a late answer, or a stale watchdog)
  embedder_state::batch b = std::move(it->second);
  st.calls.erase(it);
  std::vector<std::vector<float>> vectors;
  std::string error = "timeout";
  const embed_outcome outcome =
      a != nullptr ? judge(*st.cfg, *a, b.texts.size(), vectors, error) : embed_outcome::timeout;
  if (st.cfg->metrics) {
    const double seconds = static_cast<double>(std::max<int64_t>(0, now_us() - b.started_us)) / 1e6;
    st.cfg->metrics->call(outcome, b.texts.size(), seconds);
  }
  for (auto& ask : b.asks) {
    if (outcome != embed_outcome::ok) {
      answer_error(ask, error);
      continue;
    }
    embed_answer out;
    out.embedding = vectors[ask.input];  // a copy: identical texts share one vector
    ask.promise.deliver(std::move(out));
  }
  st.pending -= std::min(st.pending, b.asks.size());
  report_pending(st);
  pump(self);
}

}  // namespace

const char* to_string(embed_outcome o) {
  switch (o) {
    case embed_outcome::ok:
      return "ok";
    case embed_outcome::transport:
      return "transport";
    case embed_outcome::status:
      return "status";
    case embed_outcome::bad_answer:
      return "bad_answer";
    case embed_outcome::timeout:
      return "timeout";
  }
  return "unknown";
}

const char* to_string(embed_refusal r) {
  switch (r) {
    case embed_refusal::overloaded:
      return "overloaded";
    case embed_refusal::too_long:
      return "too_long";
  }
  return "unknown";
}

caf::behavior embedder(caf::stateful_actor<embedder_state>* self,
                       std::shared_ptr<const embedder_config> cfg) {
  self->state.cfg = std::move(cfg);
  return {
      [self](embed_ask& a) -> caf::typed_response_promise<embed_answer> {
        auto& st = self->state;
        const embedder_config& cfg = *st.cfg;
        auto promise = self->make_response_promise<embed_answer>();
        embedder_state::ask ask;
        ask.promise = promise;
        auto refuse = [&](embed_refusal why, const char* error) {
          if (cfg.metrics) cfg.metrics->refused(why);
          answer_error(ask, error);
          return promise;
        };
        if (a.text.empty() || a.text.size() > cfg.max_text_bytes)
          return refuse(embed_refusal::too_long, "too_long");
        if (st.pending >= cfg.max_pending || cfg.ports.empty())
          return refuse(embed_refusal::overloaded, cfg.ports.empty() ? "no_port" : "overloaded");
        auto [at, fresh] = st.gathering_index.try_emplace(
            a.text, static_cast<uint32_t>(st.gathering.texts.size()));
        if (fresh) st.gathering.texts.push_back(std::move(a.text));
        if (st.gathering.asks.empty()) st.gathering.started_us = now_us();
        ask.input = at->second;
        st.gathering.asks.push_back(std::move(ask));
        ++st.pending;
        report_pending(st);
        pump(self);
        return promise;
      },
      [self](side_answer& a) { finish(self, a.id, &a); },
      [self](embed_flush_atom, uint64_t epoch) {
        auto& st = self->state;
        if (epoch != st.epoch) return;  // that batch went already (it filled up)
        st.timer_armed = false;
        st.gathering_due = true;
        pump(self);
      },
      [self](embed_expire_atom, uint64_t id) { finish(self, id, nullptr); },
  };
}

}  // namespace tc::actors
