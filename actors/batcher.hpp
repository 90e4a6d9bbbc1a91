// batcher: one actor per model (DESIGN §2 step 8). It holds the model's upstream requests in
// its priority queue (protocol/scheduling/queue: P0 strict, token deficit round-robin over
// P1..P4 and tenants, aging) and releases them, in batches shaped by the model's batch window
// (protocol/scheduling/batch), only while one of the model's endpoints has capacity:
// - a concurrency cap per endpoint (providers[].max_concurrency: the sequences it runs at once);
// - a token bucket per endpoint (providers[].capacity_tokens_per_sec), reserved by the request's
//   estimate when it is released and settled to its actual usage when it ends.
// A request is granted at the first endpoint of its router order (step 9) that has capacity and
// whose breaker is not open; while some endpoint is healthy, an open one gets nothing. P0 may
// also take an endpoint's reserved slots (scheduling.p0_reserved), so a P0 request finds one
// free under a flood instead of waiting for the next finished call. A full queue sheds its
// newest request of the lowest priority for a request of a higher one; otherwise the newcomer
// is refused. Refusals, and requests held past scheduling.queue_timeout_ms, are answered 503
// with Retry-After (the time the queue takes to drain at the recent dispatch rate).
//
// The slot is held at the granted endpoint until the connection's sched_done, even when the
// request failed over to another endpoint (the loop then counts it there too).
//
// Direct grants (batcher_gate): the slots are counted in a gate the model's connection actors
// share with the batcher. While the batcher holds no request, and the model has no batch window
// and no token bucket, a connection actor takes a free slot itself, without the ask/grant round
// trip through this actor's mailbox; the batcher would have granted it at once. Anything else
// (a request held, every slot of its healthy endpoints taken, no healthy endpoint) asks here.
//
// prompt_array dispatch: at an endpoint whose provider takes a list of prompts
// (providers[].batch_dispatch = "prompt_array"), the requests of one released batch that can be
// merged (sched_ask::merge_key: single-prompt /v1/completions, equal but for the prompt) go
// upstream as one call, made by the batcher through an I/O loop (io_port::call). Its answer is
// split back (protocol/scheduling/prompt_array) and each request is granted with its part, which
// its connection relays as its upstream answer. Each request still holds its own slot and
// tokens: a list of k prompts is k sequences upstream. When the merged call fails, each request
// is granted plainly and makes its own call (with failover), so one bad prompt or a broken
// answer costs an extra attempt, never an error the request would not have had alone.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "actors/provider_health.hpp"
#include "protocol/messages.hpp"
#include "protocol/scheduling/batch.hpp"
#include "protocol/scheduling/bucket.hpp"
#include "protocol/scheduling/queue.hpp"

namespace tc::actors {

using sched_pump_atom = caf::atom_constant<caf::atom("s_pump")>;
/// A direct grant's slot was given back while the batcher held requests (batcher_gate).
using sched_freed_atom = caf::atom_constant<caf::atom("s_freed")>;

class io_port;

/// What a model's batcher reports, on its own thread (node/metrics implements it).
class batcher_metrics {
 public:
  virtual ~batcher_metrics() = default;
  /// Requests now held at `priority`.
  virtual void depth(int priority, size_t held) = 0;
  /// One request released after `waited_s` in the queue.
  virtual void dispatched(int priority, double waited_s) = 0;
  /// `n` requests released together.
  virtual void batch(size_t n) = 0;
  /// One request refused: sched_queue_full or sched_queue_timeout.
  virtual void refused(int priority, uint8_t why) = 0;
  /// One merged prompt_array call for `prompts` requests ended: split and answered (`ok`), or
  /// failed, its requests sent on alone.
  virtual void merged(size_t prompts, bool ok) = 0;
};

/// One endpoint of the model, as the batcher shapes it.
struct batcher_endpoint {
  uint32_t endpoint = 0;         ///< the pipeline's endpoint index (routing board)
  uint32_t max_concurrency = 0;  ///< requests granted and not done at once; 0 = unlimited
  double tokens_per_s = 0;       ///< token bucket rate (burst: one second); 0 = unlimited
  uint32_t p0_reserved = 0;      ///< P1-P4 in flight stay below max_concurrency minus this
  /// prompt_array: mergeable requests granted here together go as one call.
  bool prompt_array = false;
  std::string provider;        ///< its transport (io_port::call)
  std::string url;             ///< its /completions URL
  std::string upstream_model;  ///< the model name it expects
  uint32_t timeout_ms = 0;     ///< the whole merged call
};

/// The slot counts of one model's endpoints, shared by its batcher and its connection actors;
/// every member function may be called from any thread.
///
/// No request waits with a slot free: the batcher publishes how many requests it holds
/// (set_held) before it looks for slots, and give_back frees a slot before it reads that
/// count, both sequentially consistent. So either the batcher sees the freed slot, or the one
/// giving it back sees the held request and tells the batcher (sched_freed_atom).
class batcher_gate {
 public:
  /// `board`: breaker states (null: every endpoint healthy); `metrics`: direct grants are
  /// reported as released alone after no wait (null: none). Direct grants are possible only
  /// when the window never holds (batch.max_wait_us == 0) and no endpoint has a token bucket.
  batcher_gate(const std::vector<batcher_endpoint>& endpoints,
               const scheduling::batch_settings& batch, std::shared_ptr<routing_board> board,
               std::shared_ptr<batcher_metrics> metrics);

  /// A connection actor's direct grant for a request of `priority` whose router order is
  /// `order` (indexes in the model): the index of the endpoint whose slot it took, the first
  /// healthy one of the order with a slot free; -1: ask the batcher.
  int try_direct(const std::vector<uint16_t>& order, int priority);
  /// Frees a slot of endpoint `i` taken by take() or try_direct(). True when the batcher holds
  /// requests and must be told (sched_freed_atom).
  bool give_back(size_t i, bool p0);

  /// Endpoint `i` has a slot for `priority`: under max_concurrency, and P1-P4 leave the P0
  /// reserve free.
  bool has_slot(size_t i, int priority) const;
  /// Takes a slot of endpoint `i` if it has one for `priority` (the batcher's grants).
  bool take(size_t i, int priority);
  /// Its breaker lets requests through at `now_ms` (health_now_ms()).
  bool healthy(size_t i, int64_t now_ms) const;
  /// The batcher: it now holds `n` requests.
  void set_held(size_t n) { held_.store(n); }
  /// Requests the batcher holds, as it last said.
  size_t held() const { return held_.load(); }
  /// Direct grants so far (the batcher counts them in its dispatch rate).
  uint64_t direct_grants() const { return direct_grants_.load(std::memory_order_relaxed); }

 private:
  struct slots {
    std::atomic<uint64_t> taken{0};  ///< low 32 bits: in flight; high 32 bits: of which P0
    uint32_t max = 0;                ///< 0: unlimited
    uint32_t p0_reserved = 0;
    uint32_t board_index = 0;
  };
  std::unique_ptr<slots[]> slots_;
  size_t count_ = 0;
  bool direct_ = false;  ///< direct grants are possible (no window, no bucket)
  std::atomic<size_t> held_{0};
  std::atomic<uint64_t> direct_grants_{0};
  std::shared_ptr<routing_board> board_;
  std::shared_ptr<batcher_metrics> metrics_;
};

struct batcher_config {
  std::string model;
  scheduling::queue_settings queue;
  scheduling::batch_settings batch;
  std::vector<batcher_endpoint> endpoints;   ///< by index in the model (sched_ask::order)
  std::shared_ptr<routing_board> board;      ///< breaker states; null: every endpoint usable
  std::shared_ptr<batcher_metrics> metrics;  ///< null: none
  std::vector<io_port*> ports;               ///< where merged calls are made; empty: never merge
  /// The slots, shared with the model's connection actors; null: the batcher makes its own.
  std::shared_ptr<batcher_gate> gate;
};

/// The gate for a batcher of `cfg` (its endpoints, window, breaker board and metrics).
std::shared_ptr<batcher_gate> make_gate(const batcher_config& cfg);

struct batcher_state {
  /// A request in the queue.
  struct held {
    caf::typed_response_promise<sched_grant> promise;
    std::vector<uint16_t> order;
    int64_t enqueued_us = 0;
    uint32_t tokens = 0;
    uint8_t priority = 0;
    uint64_t merge_key = 0;  ///< sched_ask's
    std::string merge_body;
    std::string merge_prompt;
    uint32_t merge_weight = 1;
  };
  /// A merged prompt_array call on its way.
  struct merge_call {
    uint16_t endpoint = 0;  ///< index in the model
    int64_t started_us = 0;
    std::vector<std::pair<caf::typed_response_promise<sched_grant>, sched_grant>> members;
    std::vector<uint32_t> weights;
  };
  /// A request granted and not done.
  struct running {
    uint16_t endpoint = 0;  ///< index in the model
    uint32_t tokens = 0;    ///< reserved from its bucket
    bool p0 = false;
  };
  /// One endpoint's token bucket (its slots are counted in the gate).
  struct capacity {
    scheduling::token_bucket bucket{0, 0};
  };

  std::shared_ptr<const batcher_config> cfg;
  std::unique_ptr<scheduling::priority_queue> queue;
  std::unique_ptr<scheduling::batch_window> window;
  std::unordered_map<uint64_t, held> waiting;
  std::unordered_map<uint64_t, running> granted;
  std::vector<capacity> endpoints;
  std::shared_ptr<batcher_gate> gate;               ///< never null once started
  std::unordered_map<uint64_t, merge_call> merges;  ///< by side_call id
  uint64_t next_merge_id = 0;
  size_t next_port = 0;             ///< merged calls go round the ports
  int64_t timer_at_us = INT64_MAX;  ///< the earliest sched_pump already on its way
  // Dispatch rate, for Retry-After: requests released in the current and the last second.
  int64_t rate_second = 0;
  uint32_t rate_now = 0;
  uint32_t rate_last = 0;
  uint64_t direct_seen = 0;  ///< the gate's direct grants already counted in the rate
  static inline const char* name = "batcher";
};

/// Spawned by the node, one per model. Messages:
///   sched_ask  -> sched_grant   hold the request; answered when granted or refused
///   sched_done                  a granted request ended: its slot and tokens are settled
///   sched_cancel                a queued request's client left: it leaves the queue
///   sched_pump_atom             (its own timer) a window closed, tokens refilled, or a
///                               deadline passed
///   sched_freed_atom            a direct grant's slot is free again: release what it can
///   side_answer                 a merged prompt_array call ended
caf::behavior batcher(caf::stateful_actor<batcher_state>* self,
                      std::shared_ptr<const batcher_config> cfg);

}  // namespace tc::actors
