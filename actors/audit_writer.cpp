// The audit_writer actor: digests and text mode at arrival, chaining and writing at flush.
//
// Contract notes beyond the header:
// - The chain head (head_seq, head_hash) advances only after a successful write. A flush chains
//   every pending record from the head, so a retry after a failure recomputes exactly the same
//   seq, prev_hash and hash (texts were sealed once, at arrival).
// - Nothing is written until the chain is resumed from the store: a read error at start would
//   otherwise restart the chain at seq 1 and overwrite stored evidence. A failed resume is a
//   failed write (on_write_failed, retry every 100 ms).
// - A newest record that does not decode cannot give its hash: the chain continues after its
//   seq from a zero hash, so verify names that record (it is broken anyway) and start_error
//   says why. Existing keys are never overwritten.
// - Sealed mode without a 16-byte key keeps no text (never plaintext); a text whose seal() fails
//   is dropped (its digest stays) and counted in seal_failures.
// - The anchor is stored in the meta family, read at start and rewritten only by prune, in the
//   batch that deletes the records before it. verify reports an anchor in the store that differs
//   from the writer's as broken at the writer's anchor seq.
// - Export/search emit a line {"seq","node","error"} for a stored value that does not decode
//   (evidence of tampering is shown, not skipped); it counts against the limit.
#include "actors/audit_writer.hpp"

#include <openssl/crypto.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <limits>
#include <utility>

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<audit_writer_state>*;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr auto retry_after = std::chrono::milliseconds(100);
constexpr std::size_t kHashSize = 32;
constexpr std::size_t kPruneChunk = 10000;  ///< deletes per batch while pruning
constexpr int64_t kDayMs = 86'400'000;

std::string zero_hash() {
  return std::string(kHashSize, '\0');
}

const std::string& or_zero(const std::string& h) {
  static const std::string zeros = zero_hash();
  return h.empty() ? zeros : h;
}

/// Keys of one node's records: [node 0x00, node 0x01).
std::string node_prefix(std::string_view node) {
  std::string p(node);
  p.push_back('\0');
  return p;
}

std::string node_end(std::string_view node) {
  std::string p(node);
  p.push_back('\x01');
  return p;
}

std::string encode_anchor(uint64_t seq, const std::string& hash) {
  std::string out;
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(seq >> (8 * i)));
  out += or_zero(hash);
  return out;
}

bool decode_anchor(std::string_view v, uint64_t& seq, std::string& hash) {
  if (v.size() != 8 + kHashSize) return false;
  uint64_t s = 0;
  for (std::size_t i = 0; i < 8; ++i) s = (s << 8) | static_cast<uint8_t>(v[i]);
  if (s == 0) return false;
  seq = s;
  hash.assign(v.substr(8));
  return true;
}

/// Finds the chain head and the anchor in the store. False (with start_error) if the store
/// could not be read: nothing may be written then.
bool resume(audit_writer_state& st) {
  const audit_settings& cfg = *st.settings;
  st.start_error.clear();
  std::string value;
  store::status s = st.db->get(store::family::meta, audit_anchor_key(cfg.node), value);
  uint64_t anchor_seq = 1;
  std::string anchor_hash;
  if (s.ok()) {
    if (!decode_anchor(value, anchor_seq, anchor_hash)) {
      anchor_seq = 1;
      anchor_hash.clear();
      st.start_error = "the retention anchor does not decode; verifying from seq 1";
    }
  } else if (!s.not_found()) {
    st.start_error = "cannot read the audit anchor: " + s.message;
    return false;
  }

  std::string key;
  s = st.db->last(store::family::audit, node_prefix(cfg.node), key, value);
  uint64_t head_seq = anchor_seq - 1;
  std::string head_hash = anchor_hash;
  if (s.ok()) {
    std::string node;
    uint64_t seq = 0;
    audit::audit_record r;
    if (!audit::parse_record_key(key, node, seq) || node != cfg.node) {
      st.start_error = "cannot read the audit chain head: malformed key";
      return false;  // our prefix only holds our keys; writing past an unknown one could overwrite
    }
    if (seq < head_seq) {
      st.start_error = "a record older than the retention anchor is the newest stored";
    } else if (!audit::decode(value, r) || r.hash.size() != kHashSize) {
      head_seq = seq;
      head_hash.clear();
      st.start_error = "the newest record (seq " + std::to_string(seq) +
                       ") does not decode; the chain continues after it";
    } else {
      head_seq = seq;
      head_hash = r.hash;
    }
  } else if (!s.not_found()) {
    st.start_error = "cannot read the audit chain head: " + s.message;
    return false;
  }
  st.anchor_seq = anchor_seq;
  st.anchor_hash = or_zero(anchor_hash);
  st.head_seq = head_seq;
  st.head_hash = or_zero(head_hash);
  st.resumed = true;
  return true;
}

/// Digests each text the sender sent no digest for, then keeps, seals or drops the texts as
/// configured.
void prepare(audit_writer_state& st, audit::audit_record& r) {
  const audit_settings& cfg = *st.settings;
  r.node = cfg.node;
  r.seq = 0;
  r.prev_hash.clear();
  r.hash.clear();
  if (r.input_digest.empty()) r.input_digest = audit::digest(cfg.algo, r.input_text);
  if (r.output_digest.empty()) r.output_digest = audit::digest(cfg.algo, r.output_text);
  r.text_encrypted = false;
  switch (cfg.text) {
    case audit_settings::text_mode::clear:
      return;
    case audit_settings::text_mode::sealed:
      if (cfg.sm4_key.size() == 16) {
        r.text_encrypted = true;
        for (std::string* text : {&r.input_text, &r.output_text}) {
          if (text->empty()) continue;
          std::string sealed = audit::seal(cfg.sm4_key, *text);
          if (sealed.empty()) ++st.seal_failures;
          *text = std::move(sealed);
        }
        return;
      }
      break;  // no valid key: keep no text at all
    case audit_settings::text_mode::none:
      break;
  }
  r.input_text.clear();
  r.output_text.clear();
}

/// Lets the I/O loops send the answers held for records in this batch.
void release_held(audit_writer_state& st) {
  if (st.held.empty()) return;
  if (st.hooks && st.hooks->on_durable) st.hooks->on_durable(st.held);
  st.held.clear();
}

void queue_flush(self_ptr self) {
  auto& st = self->state;
  if (st.flush_queued) return;
  // Behind whatever else is already in the mailbox: those records join this batch.
  st.flush_queued = true;
  self->send(self, audit_flush_atom::value);
}

/// A record (and the usage record that travels with it) for the next batch; `held`: an answer
/// waits for them, released at once while the store fails under release_on_failure.
void take(self_ptr self, audit::audit_record& r, billing::usage_record* usage,
          const reply_target* held) {
  auto& st = self->state;
  prepare(st, r);
  st.pending.push_back(std::move(r));
  if (usage != nullptr) st.usage.push_back(std::move(*usage));
  if (held == nullptr) {
    ++st.unwaited;
  } else {
    st.held.push_back(*held);
    if (st.failing && st.hooks && st.hooks->release_on_failure) return release_held(st);
  }
  queue_flush(self);
}

void write_failed(self_ptr self, const std::string& error) {
  auto& st = self->state;
  st.failing = true;
  if (st.hooks && st.hooks->on_write_failed) st.hooks->on_write_failed(error, st.pending.size());
  if (!st.usage.empty() && st.ledger && st.ledger->hooks && st.ledger->hooks->on_write_failed)
    st.ledger->hooks->on_write_failed(error, st.usage.size());
  if (st.hooks && st.hooks->release_on_failure) release_held(st);
  st.flush_queued = true;
  self->delayed_send(self, retry_after, audit_flush_atom::value);
}

/// Chains and writes what is pending in one batch. On failure keeps it and tries again shortly.
void flush(self_ptr self) {
  auto& st = self->state;
  st.flush_queued = false;
  if (st.pending.empty()) return release_held(st);
  if (!st.resumed && !resume(st)) return write_failed(self, st.start_error);
  const audit_settings& cfg = *st.settings;
  audit::chain next(cfg.algo, st.head_seq, st.head_hash);  // the head moves only on success
  store::batch b;
  for (audit::audit_record& r : st.pending) {
    next.append(r);
    if (r.hash.empty())
      return write_failed(
          self, std::string("cannot compute ") + std::string(audit::hash_algo_name(cfg.algo)));
    b.put(store::family::audit, audit::record_key(cfg.node, r.seq), audit::encode(r));
  }
  store::status s;
  size_t usage_added = 0;
  if (st.usage.empty()) {
    s = st.db->write(b);
  } else if (!st.ledger || !st.ledger->book) {
    return write_failed(self, "usage records sent to an audit writer without the ledger's book");
  } else {
    s = st.ledger->book->append(st.usage, &usage_added, &b);
  }
  // invalid: the batch was written except usage records that never can be (the ledger's rule).
  const bool refused = s.value == store::status::code::invalid;
  if (!s.ok() && !refused) return write_failed(self, s.message);
  st.head_seq = next.last_seq();
  st.head_hash = next.last_hash();
  st.failing = false;
  if (st.hooks && st.hooks->on_written) st.hooks->on_written(st.pending.size());
  st.pending.clear();
  count_down(st.hooks ? st.hooks->records_behind : nullptr, st.unwaited);
  if (!st.usage.empty() && st.ledger->hooks) {
    const ledger_hooks& h = *st.ledger->hooks;
    if (refused && h.on_write_failed) h.on_write_failed(s.message, 0);
    if (h.on_written) h.on_written(refused ? usage_added : st.usage.size());  // as the ledger
  }
  st.usage.clear();
  release_held(st);
}

// ---- JSON ----

/// `s` with every invalid UTF-8 sequence replaced by U+FFFD, so the JSON output stays valid
/// whatever bytes a client or provider sent.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    std::size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    bool ok = s.size() - i > n;  // the continuation bytes are there
    for (std::size_t k = 1; ok && k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
    if (ok && ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
               (cp >= 0xd800 && cp <= 0xdfff)))
      ok = false;
    if (!ok) {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    out.append(s.data() + i, n + 1);
    i += n + 1;
  }
  return out;
}

void put_string(json_writer& w, std::string_view s) {
  const std::string clean = valid_utf8(s);
  w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
}

void put_key(json_writer& w, const char* k) {
  w.Key(k);
}

/// 1234567 -> "1.234567", -5 -> "-0.000005".
std::string micros_text(int64_t micros) {
  const bool negative = micros < 0;
  const uint64_t m =
      negative ? uint64_t{0} - static_cast<uint64_t>(micros) : static_cast<uint64_t>(micros);
  std::string frac = std::to_string(m % 1'000'000);
  frac.insert(0, 6 - frac.size(), '0');
  return (negative ? "-" : "") + std::to_string(m / 1'000'000) + "." + frac;
}

void put_verdicts(json_writer& w, const char* key, const std::vector<audit::engine_verdict>& vs) {
  put_key(w, key);
  w.StartArray();
  for (const audit::engine_verdict& v : vs) {
    w.StartObject();
    put_key(w, "engine");
    put_string(w, v.engine);
    put_key(w, "verdict");
    put_string(w, v.verdict);
    put_key(w, "category");
    put_string(w, v.category);
    put_key(w, "latency_us");
    w.Uint(v.latency_us);
    w.EndObject();
  }
  w.EndArray();
}

/// One JSON line (with its newline) for a stored record.
void append_record_line(const audit_settings& cfg, const audit::audit_record& r, std::string& out) {
  rapidjson::StringBuffer buf;
  json_writer w(buf);
  w.StartObject();
  put_key(w, "seq");
  w.Uint64(r.seq);
  put_key(w, "node");
  put_string(w, r.node);
  put_key(w, "request_id");
  put_string(w, r.request_id);
  put_key(w, "ts_ms");
  w.Int64(r.ts_ms);
  put_key(w, "tenant");
  put_string(w, r.tenant);
  put_key(w, "project");
  put_string(w, r.project);
  put_key(w, "key_id");
  put_string(w, r.key_id);
  put_key(w, "model");
  put_string(w, r.model);
  put_key(w, "provider");
  put_string(w, r.provider);
  put_key(w, "endpoint");
  put_string(w, r.endpoint);
  put_key(w, "status");
  w.Int(r.status);
  put_key(w, "prompt_tokens");
  w.Uint(r.prompt_tokens);
  put_key(w, "completion_tokens");
  w.Uint(r.completion_tokens);
  put_key(w, "cost");
  put_string(w, micros_text(r.cost_micros));
  put_key(w, "cost_currency");
  put_string(w, r.cost_currency);
  put_key(w, "latency_ms");
  w.Uint(r.latency_ms);
  put_verdicts(w, "input_verdicts", r.input_verdicts);
  put_verdicts(w, "output_verdicts", r.output_verdicts);
  put_key(w, "input_digest");
  put_string(w, audit::to_hex(r.input_digest));
  put_key(w, "output_digest");
  put_string(w, audit::to_hex(r.output_digest));
  put_key(w, "text_encrypted");
  w.Bool(r.text_encrypted);
  if (!r.input_text.empty() || !r.output_text.empty()) {
    std::string input = r.input_text;
    std::string output = r.output_text;
    bool readable = true;
    if (r.text_encrypted) {
      // open() leaves its output untouched on failure: start from empty texts.
      std::string in_plain;
      std::string out_plain;
      readable = (r.input_text.empty() || audit::open(cfg.sm4_key, r.input_text, in_plain)) &&
                 (r.output_text.empty() || audit::open(cfg.sm4_key, r.output_text, out_plain));
      input = std::move(in_plain);
      output = std::move(out_plain);
    }
    put_key(w, "text_readable");
    w.Bool(readable);
    if (readable) {
      put_key(w, "input_text");
      put_string(w, input);
      put_key(w, "output_text");
      put_string(w, output);
    }
  }
  put_key(w, "hash");
  put_string(w, audit::to_hex(r.hash));
  put_key(w, "prev_hash");
  put_string(w, audit::to_hex(r.prev_hash));
  w.EndObject();
  out.append(buf.GetString(), buf.GetSize());
  out.push_back('\n');
}

void append_undecodable_line(std::string_view key, std::string& out) {
  std::string node;
  uint64_t seq = 0;
  (void)audit::parse_record_key(key, node, seq);
  rapidjson::StringBuffer buf;
  json_writer w(buf);
  w.StartObject();
  put_key(w, "seq");
  w.Uint64(seq);
  put_key(w, "node");
  put_string(w, node);
  put_key(w, "error");
  w.String("stored value does not decode");
  w.EndObject();
  out.append(buf.GetString(), buf.GetSize());
  out.push_back('\n');
}

/// JSON lines of the node's records that `match` accepts, at most `limit` (0 = all).
template <class Match>
caf::result<std::string> list_records(audit_writer_state& st, uint64_t limit, Match match) {
  const audit_settings& cfg = *st.settings;
  std::string out;
  uint64_t n = 0;
  store::status s = st.db->scan(store::family::audit, node_prefix(cfg.node),
                                [&](std::string_view key, std::string_view value) {
                                  audit::audit_record r;
                                  if (!audit::decode(value, r)) {
                                    append_undecodable_line(key, out);
                                  } else if (match(r)) {
                                    append_record_line(cfg, r, out);
                                  } else {
                                    return true;
                                  }
                                  return limit == 0 || ++n < limit;
                                });
  if (!s.ok()) return caf::make_error(caf::sec::runtime_error, "audit store: " + s.message);
  return out;
}

struct verify_result {
  bool ok = true;
  uint64_t checked = 0;
  uint64_t first_seq = 1;
  uint64_t last_seq = 0;
  uint64_t broken = 0;
  std::string reason;
};

verify_result verify_chain(audit_writer_state& st) {
  const audit_settings& cfg = *st.settings;
  verify_result out;
  const auto broken = [&](uint64_t seq, std::string why) {
    out.ok = false;
    out.broken = seq;
    out.reason = std::move(why);
    return out;
  };
  if (!st.resumed && !resume(st)) return broken(0, st.start_error);
  out.first_seq = st.anchor_seq;
  out.last_seq = st.anchor_seq - 1;

  std::string value;
  store::status s = st.db->get(store::family::meta, audit_anchor_key(cfg.node), value);
  uint64_t stored_seq = 1;
  std::string stored_hash = zero_hash();
  if (s.ok()) {
    if (!decode_anchor(value, stored_seq, stored_hash))
      return broken(st.anchor_seq, "the stored retention anchor does not decode");
  } else if (!s.not_found()) {
    return broken(0, "cannot read the audit anchor: " + s.message);
  }
  if (stored_seq != st.anchor_seq || stored_hash != or_zero(st.anchor_hash))
    return broken(st.anchor_seq, "the stored retention anchor (seq " + std::to_string(stored_seq) +
                                     ") differs from the writer's (seq " +
                                     std::to_string(st.anchor_seq) + ")");

  audit::verifier v(cfg.algo, st.anchor_seq, st.anchor_hash);
  s = st.db->scan_range(
      store::family::audit, audit::record_key(cfg.node, st.anchor_seq), node_end(cfg.node),
      [&](std::string_view key, std::string_view val) { return v.feed(key, val); });
  if (!s.ok()) return broken(0, "cannot read the audit chain: " + s.message);
  out.checked = v.checked();
  out.last_seq = st.anchor_seq - 1 + v.checked();
  if (!v.ok()) return broken(v.first_broken_seq(), v.reason());
  // The stored chain verifies on its own; its end must also be the writer's head, or the newest
  // records were deleted (or some were added behind the writer's back).
  if (out.last_seq < st.head_seq)
    return broken(out.last_seq + 1, "seq " + std::to_string(out.last_seq + 1) +
                                        " is missing (the writer's chain ends at seq " +
                                        std::to_string(st.head_seq) + ")");
  if (out.last_seq > st.head_seq)
    return broken(st.head_seq + 1,
                  "records after the writer's head (seq " + std::to_string(st.head_seq) + ")");
  if (v.last_hash() != or_zero(st.head_hash))
    return broken(out.last_seq, "the newest record's hash differs from the writer's head");
  return out;
}

std::string verify_json(const audit_writer_state& st, const verify_result& r) {
  rapidjson::StringBuffer buf;
  json_writer w(buf);
  w.StartObject();
  put_key(w, "ok");
  w.Bool(r.ok);
  put_key(w, "node");
  put_string(w, st.settings->node);
  put_key(w, "algo");
  put_string(w, audit::hash_algo_name(st.settings->algo));
  put_key(w, "checked");
  w.Uint64(r.checked);
  put_key(w, "first_seq");
  w.Uint64(r.first_seq);
  put_key(w, "last_seq");
  w.Uint64(r.last_seq);
  put_key(w, "head_seq");
  w.Uint64(st.head_seq);
  put_key(w, "first_broken_seq");
  w.Uint64(r.broken);
  put_key(w, "reason");
  put_string(w, r.reason);
  if (!st.start_error.empty()) {
    put_key(w, "start_error");
    put_string(w, st.start_error);
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

/// Deletes, oldest first, the records older than the retention, in batches that also move the
/// anchor. Stops at the first record that is new enough or does not verify.
caf::result<uint64_t> prune(audit_writer_state& st, int64_t now_ms) {
  const audit_settings& cfg = *st.settings;
  if (cfg.retention_days == 0) return uint64_t{0};
  if (!st.resumed && !resume(st)) return caf::make_error(caf::sec::runtime_error, st.start_error);
  const int64_t keep_ms = static_cast<int64_t>(cfg.retention_days) * kDayMs;
  const int64_t cutoff = now_ms < std::numeric_limits<int64_t>::min() + keep_ms
                             ? std::numeric_limits<int64_t>::min()
                             : now_ms - keep_ms;
  audit::verifier v(cfg.algo, st.anchor_seq, st.anchor_hash);
  uint64_t deleted = 0;
  for (;;) {
    store::batch b;
    std::size_t n = 0;
    uint64_t next_seq = st.anchor_seq;
    std::string next_hash = st.anchor_hash;
    bool more = true;
    store::status s = st.db->scan_range(
        store::family::audit, audit::record_key(cfg.node, st.anchor_seq), node_end(cfg.node),
        [&](std::string_view key, std::string_view value) {
          audit::audit_record r;
          if (!v.feed(key, value) || !audit::decode(value, r) || r.ts_ms >= cutoff) {
            more = false;
            return false;
          }
          b.del(store::family::audit, key);
          next_seq = r.seq + 1;
          next_hash = r.hash;
          return ++n < kPruneChunk;
        });
    if (!s.ok() && deleted == 0)
      return caf::make_error(caf::sec::runtime_error, "audit store: " + s.message);
    if (!s.ok() || n == 0) break;
    b.put(store::family::meta, audit_anchor_key(cfg.node), encode_anchor(next_seq, next_hash));
    s = st.db->write(b);
    if (!s.ok()) {
      if (deleted == 0)
        return caf::make_error(caf::sec::runtime_error, "audit store: " + s.message);
      break;
    }
    st.anchor_seq = next_seq;
    st.anchor_hash = next_hash;
    deleted += n;
    if (!more || n < kPruneChunk) break;
  }
  return deleted;
}

}  // namespace

std::string audit_anchor_key(std::string_view node) {
  return "audit/anchor/" + std::string(node);
}

caf::behavior audit_writer(caf::stateful_actor<audit_writer_state>* self, std::shared_ptr<store> db,
                           std::shared_ptr<const audit_settings> settings,
                           std::shared_ptr<const audit_hooks> hooks,
                           std::shared_ptr<const audit_ledger> ledger) {
  auto& st = self->state;
  st.db = std::move(db);
  st.settings = settings ? std::move(settings) : std::make_shared<const audit_settings>();
  st.hooks = std::move(hooks);
  st.ledger = std::move(ledger);
  (void)resume(st);  // on failure the first flush tries again
  // CAF 0.17 does not join a detached actor's thread: the process may end before that thread's
  // destructors free OpenSSL's per-thread state (LeakSanitizer saw it once), so free it here,
  // on the actor's own thread, as it terminates.
  self->attach_functor([] { OPENSSL_thread_stop(); });
  return {
      [self](audit::audit_record& r) { take(self, r, nullptr, nullptr); },
      [self](audit::audit_record& r, reply_target held) { take(self, r, nullptr, &held); },
      [self](audit::audit_record& r, billing::usage_record& u) { take(self, r, &u, nullptr); },
      [self](audit::audit_record& r, billing::usage_record& u, reply_target held) {
        take(self, r, &u, &held);
      },
      [self](audit_flush_atom) { flush(self); },
      [self](audit_sync_atom) {
        flush(self);
        return self->state.pending.empty();
      },
      [self](audit_verify_atom) -> std::string {
        flush(self);
        const verify_result r = verify_chain(self->state);
        return verify_json(self->state, r);
      },
      [self](audit_export_atom, int64_t from_ms, int64_t to_ms, const std::string& tenant,
             uint64_t limit) -> caf::result<std::string> {
        flush(self);
        return list_records(self->state, limit, [&](const audit::audit_record& r) {
          return r.ts_ms >= from_ms && (to_ms == 0 || r.ts_ms < to_ms) &&
                 (tenant.empty() || r.tenant == tenant);
        });
      },
      [self](audit_search_atom, const std::string& request_id, const std::string& tenant,
             uint64_t limit) -> caf::result<std::string> {
        flush(self);
        return list_records(self->state, limit, [&](const audit::audit_record& r) {
          return r.request_id == request_id && (tenant.empty() || r.tenant == tenant);
        });
      },
      [self](audit_prune_atom, int64_t now_ms) -> caf::result<uint64_t> {
        return prune(self->state, now_ms);
      },
  };
}

}  // namespace tc::actors
