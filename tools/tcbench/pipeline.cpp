// tcbench pipeline: what steps 1 and 2 (auth, admission) add to a request, measured inside
// one process with no sockets and no load generator: a connection actor, the node's real
// accounts directory, tenant_quota shard and ledger (RocksDB in memory), and an io_port that
// only notes when the actor dispatched. Each request is sent, timed until its dispatch, then
// settled (so every request also pays step 13: the quota settle and the ledger record).
// Sequential: one request in flight; the modes are interleaved in rounds so that a slower
// minute of the shared machine hits them alike.
#include "tools/tcbench/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <caf/all.hpp>

#include "actors/accounts.hpp"
#include "actors/connection.hpp"
#include "actors/ledger.hpp"
#include "actors/store.hpp"
#include "actors/tenant_quota.hpp"
#include "protocol/accounts/json.hpp"
#include "protocol/messages.hpp"
#include "tools/tcbench/common.hpp"

namespace tc::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// Notes each dispatch and answers it at once with a 200 outcome (usage reported).
class timing_port : public actors::io_port {
 public:
  void dispatch(upstream_plan&& plan) override {
    const auto at = clock_type::now();
    // The outcome is queued before the next request can be: the actor settles in order.
    request_outcome o;
    o.status = 200;
    o.usage = {120, 40, 160, 0};
    o.usage_reported = true;
    caf::anon_send(actor_, std::move(o));
    {
      std::lock_guard<std::mutex> lock(mx_);
      dispatched_at_ = at;
      done_ = true;
    }
    cv_.notify_one();
  }
  void reject(reply_target, openai::api_error&& e, const rate_headers&) override {
    {
      std::lock_guard<std::mutex> lock(mx_);
      rejected_ = e.message;
      dispatched_at_ = clock_type::now();
      done_ = true;
    }
    cv_.notify_one();
  }
  void serve(cached_reply&&) override {}
  void attach(reply_target, caf::actor, canonical::digest) override {}
  void follow(follow_chunk&&) override {}
  void release(reply_target) override {}
  void call(actors::side_call&&) override {}

  void set_actor(caf::actor a) { actor_ = std::move(a); }
  /// Waits for the dispatch of the request sent at `t0`; its latency in µs (< 0: refused).
  double wait(clock_type::time_point t0) {
    std::unique_lock<std::mutex> lock(mx_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return done_; })) return -2;
    done_ = false;
    if (!rejected_.empty()) return -1;
    return std::chrono::duration<double, std::micro>(dispatched_at_ - t0).count();
  }
  const std::string& rejected() const { return rejected_; }

 private:
  caf::actor actor_;
  std::mutex mx_;
  std::condition_variable cv_;
  bool done_ = false;
  clock_type::time_point dispatched_at_;
  std::string rejected_;
};

double process_cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

int run_pipeline(const pipeline_args& a, const std::string& command_line) {
  quiet_config cfg(a.scheduler_threads);
  caf::actor_system sys{cfg};
  memory_ledger ml;
  if (!open_memory_ledger(ml)) return 1;
  const std::shared_ptr<actors::store>& db = ml.db;
  // The directory: a tenant without limits and one limited at every level, each with a key.
  accounts::limits big;
  big.rpm = 1'000'000'000;
  big.tpm = 1'000'000'000'000;
  big.max_concurrent = 1'000'000;
  big.daily_budget = 1e9;
  auto dir = std::make_shared<actors::directory>();
  const std::string free_secret = "sk-tc-bench-free-key-0000000000000000000000000000";
  const std::string limited_secret = "sk-tc-bench-limited-key-00000000000000000000000000";
  for (const char* id : {"free", "limited"}) {
    accounts::tenant t;
    t.id = id;
    if (t.id == "limited") t.limit = big;
    dir->tenants[t.id] = t;
  }
  accounts::project p;
  p.tenant = "limited";
  p.id = "web";
  p.limit = big;
  dir->projects["limited/web"] = p;
  for (int i = 0; i < 2; ++i) {
    accounts::api_key k;
    k.id = i == 0 ? "key_free" : "key_limited";
    k.tenant = i == 0 ? "free" : "limited";
    if (i == 1) {
      k.project = "web";
      k.limit = big;
    }
    k.hash = accounts::secret_hash(i == 0 ? free_secret : limited_secret);
    dir->keys[k.id] = k;
    dir->key_by_hash[k.hash] = k.id;
  }
  auto cell = std::make_shared<actors::directory_cell>();
  cell->set(std::move(dir));

  auto ledger = sys.spawn<caf::detached>(actors::ledger, db, ml.book,
                                         std::make_shared<const actors::ledger_hooks>());
  std::vector<caf::actor> quota;
  for (uint32_t i = 0; i < 4; ++i)
    quota.push_back(sys.spawn(actors::tenant_quota, i,
                              std::make_shared<const actors::quota_hooks>(), int64_t{600'000}));

  timing_port port;
  auto ctx = std::make_shared<actors::pipeline>();
  actors::model_route r;
  r.provider = "sim";
  r.upstream_model = "bench-chat";
  r.base_url = "sim://sim/v1";
  r.price_input_per_m = 2;
  r.price_output_per_m = 8;
  ctx->models["bench-chat"].endpoints.push_back(r);
  ctx->ports.push_back(&port);
  ctx->accounts.directory = cell;
  ctx->accounts.quota = quota;
  ctx->accounts.ledger = ledger;
  auto actor = sys.spawn(actors::connection, std::shared_ptr<const actors::pipeline>(ctx));
  port.set_actor(actor);

  struct mode {
    const char* name;
    std::string key;
    std::vector<double> us;
    double cpu_us = 0;
  };
  std::vector<mode> modes = {
      {"no key (anonymous, no limits)", "", {}, 0},
      {"API key, no limits (auth)", free_secret, {}, 0},
      {"API key, tenant+project+key limits (auth + quota)", limited_secret, {}, 0}};
  const std::string body =
      R"({"model":"bench-chat","messages":[{"role":"user","content":"Explain why load testing matters before a launch."}],"max_tokens":64,"temperature":0.2})";
  uint64_t slot = 0;
  int exit_code = 0;
  const auto deadline = clock_type::now() + std::chrono::seconds(a.max_seconds);
  for (uint32_t round = 0; round < a.rounds && exit_code == 0; ++round) {
    for (auto& m : modes) {
      const double cpu0 = process_cpu_us();
      for (uint32_t i = 0; i < a.requests_per_round; ++i) {
        openai::request req;
        req.kind = openai::endpoint::chat_completions;
        req.model = "bench-chat";
        req.body = body;
        req.max_tokens = 64;
        req.input_chars = 60;
        request_meta meta;
        meta.request_id = "req_" + std::to_string(++slot);
        meta.api_key = m.key;
        const auto t0 = clock_type::now();
        caf::anon_send(actor, std::move(req), reply_target{0, slot}, std::move(meta));
        const double us = port.wait(t0);
        if (us < 0) {
          std::fprintf(stderr, "tcbench: request refused or lost (%s)\n", port.rejected().c_str());
          exit_code = 1;
          break;
        }
        if (round > 0) m.us.push_back(us);  // round 0 warms up
      }
      if (round > 0) m.cpu_us += process_cpu_us() - cpu0;
      if (clock_type::now() > deadline) break;
    }
    if (clock_type::now() > deadline) break;
  }
  // Every record written before the report.
  {
    caf::scoped_actor self{sys};
    self->request(ledger, std::chrono::seconds(30), actors::ledger_sync_atom::value)
        .receive([](bool) {}, [](const caf::error&) {});
  }
  std::printf("\n### Steps 1-2 in process: request -> dispatch latency\n\n");
  std::printf(
      "| caller | requests | p50 us | p90 us | p99 us | p50 added | CPU per request (all "
      "threads) |\n|---|---:|---:|---:|---:|---:|---:|\n");
  const double base = percentile(modes[0].us, 50);
  for (const auto& m : modes) {
    const double p50 = percentile(m.us, 50);
    char added[32] = "";
    if (&m != &modes[0]) std::snprintf(added, sizeof added, "%+.1f us", p50 - base);
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %s | %.1f us |\n", m.name, m.us.size(), p50,
                percentile(m.us, 90), percentile(m.us, 99), added,
                m.us.empty() ? 0.0 : m.cpu_us / static_cast<double>(m.us.size()));
  }
  std::printf("\nLedger records written: %llu. Command: `%s`\n",
              static_cast<unsigned long long>(ml.book->appended()), command_line.c_str());
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ledger, caf::exit_reason::user_shutdown);
  for (auto& q : quota) caf::anon_send_exit(q, caf::exit_reason::user_shutdown);
  return exit_code;
}

}  // namespace tc::bench
