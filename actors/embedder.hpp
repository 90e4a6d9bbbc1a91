// embedder: one actor per node when cache.embedder = "openai" (issue 3). It turns the query
// texts of the semantic tier (DESIGN §2 step 6) into embeddings with a configured provider's
// /v1/embeddings, in batches:
// - asks are gathered for up to batch_wait_ms, or until batch_max distinct texts wait, then go
//   as ONE call (`input` = the list) through an I/O loop (io_port::call, round robin); identical
//   texts in a batch are sent once and each of their asks gets the vector;
// - at most max_calls calls are in flight; while they are, asks keep gathering (the batches grow
//   with the load instead of the calls);
// - the answer's vectors are matched by `index`, checked (count, dimension, finite values) and
//   L2-normalised; any failure (transport, non-200, bad JSON, wrong count or dimension, timeout)
//   answers every ask of the batch with an error;
// - bounded: beyond max_pending asks waiting (gathering or in a call), or for a text longer than
//   max_text_bytes, the ask is answered with an error at once, nothing is sent.
// An error never fails a request: its connection skips the semantic part of the lookup.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "protocol/messages.hpp"

namespace tc::actors {

class io_port;

/// (its own timer) the gathering batch of this epoch has waited batch_wait_ms.
using embed_flush_atom = caf::atom_constant<caf::atom("emb_flush")>;
/// (its own timer) the call with this id should have answered by now.
using embed_expire_atom = caf::atom_constant<caf::atom("emb_expire")>;

/// How one /v1/embeddings call ended.
enum class embed_outcome : uint8_t {
  ok,
  transport,   ///< connect, reset, too large ... (side_answer::failure)
  status,      ///< an HTTP status other than 200
  bad_answer,  ///< not JSON, wrong count, dimension or values
  timeout,     ///< the call's timeout (the port's or the actor's own watchdog)
};

/// Why an ask was answered with an error without being sent.
enum class embed_refusal : uint8_t {
  overloaded,  ///< max_pending asks were waiting
  too_long,    ///< the text is longer than max_text_bytes (or empty)
};

/// "ok", "transport", "status", "bad_answer", "timeout".
const char* to_string(embed_outcome o);
/// "overloaded", "too_long".
const char* to_string(embed_refusal r);

/// What the embedder reports, on its own thread (node/metrics implements it).
class embedder_metrics {
 public:
  virtual ~embedder_metrics() = default;
  /// One call for `texts` distinct texts ended with `outcome` after `seconds`.
  virtual void call(embed_outcome outcome, size_t texts, double seconds) = 0;
  /// One ask answered with an error at once, nothing sent.
  virtual void refused(embed_refusal why) = 0;
  /// Asks now waiting for an answer (gathering or in a call).
  virtual void pending(size_t asks) = 0;
};

struct embedder_config {
  std::string provider;          ///< its transport and key (io_port::call)
  std::string url;               ///< ".../v1/embeddings" (sim://<provider>/v1/embeddings for sim)
  std::string model;             ///< `model` sent
  uint32_t dimension = 256;      ///< the length every vector must have (cache.embedding_dim)
  bool send_dimensions = false;  ///< send `dimensions` = dimension
  uint32_t batch_max = 64;       ///< distinct texts in one call at most
  uint32_t batch_wait_ms = 2;    ///< longest the first ask of a batch waits for others; 0 none
  uint32_t timeout_ms = 2000;    ///< the whole call
  uint32_t max_calls = 8;        ///< calls in flight at most
  uint32_t max_pending = 4096;   ///< asks waiting at most; beyond, refused at once
  uint32_t max_text_bytes = 16384;
  std::vector<io_port*> ports;                ///< where calls are made; empty: every ask fails
  std::shared_ptr<embedder_metrics> metrics;  ///< null: none
};

struct embedder_state {
  /// Asks waiting for one input of a batch.
  struct ask {
    caf::typed_response_promise<embed_answer> promise;
    uint32_t input = 0;  ///< index in the batch's texts
  };
  struct batch {
    std::vector<std::string> texts;  ///< distinct
    std::vector<ask> asks;
    int64_t started_us = 0;  ///< gathering: the first ask; in a call: when it was sent
  };

  std::shared_ptr<const embedder_config> cfg;
  batch gathering;
  std::unordered_map<std::string, uint32_t> gathering_index;  ///< text -> input in `gathering`
  uint64_t epoch = 0;          ///< of the gathering batch (a flush timer of an older one is stale)
  bool timer_armed = false;    ///< a flush for this epoch is on its way
  bool gathering_due = false;  ///< it waited batch_wait_ms: it goes at the next free slot
  std::deque<batch> ready;     ///< full batches waiting for a call slot (max_calls in flight)
  std::unordered_map<uint64_t, batch> calls;  ///< in flight, by side_call id
  uint64_t next_id = 0;
  size_t next_port = 0;
  size_t pending = 0;  ///< asks in `gathering`, `ready` and `calls`
  static inline const char* name = "embedder";
};

/// Spawned by the node (node/node.cpp) when cache.embedder = "openai". Messages:
///   embed_ask -> embed_answer          an embedding, or an error
///   side_answer                        a call ended
///   (embed_flush_atom, uint64_t)       (its own timer) the batch of that epoch waited enough
///   (embed_expire_atom, uint64_t)      (its own timer) the call of that id is overdue
caf::behavior embedder(caf::stateful_actor<embedder_state>* self,
                       std::shared_ptr<const embedder_config> cfg);

}  // namespace tc::actors
