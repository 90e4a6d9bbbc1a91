// tcbench records: what a request's two records (step 13) cost the node's record writer.
// The audit writer is spawned detached with the ledger's book on an in-memory store (the
// node's default store.path ""), as node/node.cpp does; the main thread sends it (audit record,
// usage record) pairs shaped like an exact cache hit's (digests made by the sender, as step 13
// makes them when no text is kept), `burst` at a time, and waits while more
// than `max_behind` are unwritten (the node's store.max_records_behind does the same). CPU time
// is read per thread from /proc/self/task/*/schedstat (nanoseconds on the CPU), so the sender's
// share is kept apart from the writer's and RocksDB's background threads'.
#include "tools/tcbench/records.hpp"

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/audit_writer.hpp"
#include "actors/ledger.hpp"
#include "actors/ledger_book.hpp"
#include "actors/store.hpp"
#include "protocol/messages.hpp"
#include "tools/tcbench/common.hpp"

namespace tc::bench {

namespace {

using clock_type = std::chrono::steady_clock;

/// Nanoseconds on the CPU of each of this process's threads, by thread id, with its name.
struct thread_time {
  std::string name;
  uint64_t ns = 0;
};
std::map<int, thread_time> thread_times() {
  std::map<int, thread_time> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string base = std::string("/proc/self/task/") + e->d_name;
    thread_time t;
    std::ifstream(base + "/comm") >> t.name;
    std::ifstream(base + "/schedstat") >> t.ns;
    out[std::atoi(e->d_name)] = std::move(t);
  }
  closedir(dir);
  return out;
}

/// A 330-byte chat body and a 700-byte answer: the sizes of scripts/bench's cache load.
std::string sized_text(const char* head, size_t size) {
  std::string s = head;
  while (s.size() < size) s += " the quick brown fox jumps over the lazy dog";
  s.resize(size);
  return s;
}

struct sender_state {
  std::mutex mx;
  std::condition_variable cv;
  uint64_t written = 0;  ///< audit records durable (each carries its usage record)
  std::string failure;
};

}  // namespace

int run_records(const records_args& a, const std::string& command_line) {
  quiet_config cfg(1);
  caf::actor_system sys{cfg};
  memory_ledger ml;
  if (!open_memory_ledger(ml)) return 1;
  const std::shared_ptr<actors::store>& db = ml.db;
  auto state = std::make_shared<sender_state>();
  auto ledger_hooks = std::make_shared<actors::ledger_hooks>();
  auto audit_ledger = std::make_shared<const actors::audit_ledger>(
      actors::audit_ledger{ml.book, std::shared_ptr<const actors::ledger_hooks>(ledger_hooks)});
  auto hooks = std::make_shared<actors::audit_hooks>();
  hooks->on_written = [state](size_t n) {
    {
      std::lock_guard<std::mutex> lock(state->mx);
      state->written += n;
    }
    state->cv.notify_one();
  };
  hooks->on_write_failed = [state](const std::string& error, size_t) {
    {
      std::lock_guard<std::mutex> lock(state->mx);
      state->failure = error;
    }
    state->cv.notify_one();
  };
  auto settings = std::make_shared<actors::audit_settings>();  // the node's defaults
  settings->node = "bench";
  const auto main_tid = static_cast<int>(gettid());
  caf::actor writer = sys.spawn<caf::detached>(
      actors::audit_writer, db, std::shared_ptr<const actors::audit_settings>(settings),
      std::shared_ptr<const actors::audit_hooks>(hooks), audit_ledger);
  // Stops the writer on every way out: the actor system waits for its actors when it goes.
  struct stop_writer {
    caf::actor& w;
    ~stop_writer() { caf::anon_send_exit(w, caf::exit_reason::user_shutdown); }
  } stop{writer};

  const std::string input = sized_text("{\"model\":\"sim-chat\",\"messages\":", 330);
  const std::string output =
      sized_text("{\"id\":\"chatcmpl-sim\",\"object\":\"chat.completion\"", 700);
  uint64_t sent = 0;
  std::mt19937_64 id_bits(42);
  // False, having said why, if the writer failed or wrote nothing for 30 s.
  auto wait_until_behind = [&](uint64_t behind) {
    std::unique_lock<std::mutex> lock(state->mx);
    if (state->cv.wait_for(
            lock, std::chrono::seconds(30),
            [&] { return !state->failure.empty() || sent - state->written <= behind; }) &&
        state->failure.empty())
      return true;
    std::fprintf(stderr, "tcbench: the writer failed or stalled for 30 s: %s\n",
                 state->failure.c_str());
    return false;
  };
  auto send_pair = [&] {
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    // Shaped like the node's ids: milliseconds, then 64 random bits (the ledger's keys).
    char id[40];
    std::snprintf(id, sizeof id, "req_%012llx%016llx", static_cast<unsigned long long>(now_ms),
                  static_cast<unsigned long long>(id_bits()));
    billing::usage_record u;
    u.request_id = id;
    u.ts_ms = now_ms;
    u.tenant = "default";
    u.model = "sim-chat";
    u.provider = "sim";
    u.endpoint = "chat";
    u.status = 200;
    u.prompt_tokens = 40;
    u.completion_tokens = 64;
    u.saved_micros = 120;
    audit::audit_record r;
    r.request_id = id;
    r.ts_ms = now_ms;
    r.tenant = "default";
    r.model = "sim-chat";
    r.provider = "sim";
    r.endpoint = "chat";
    r.status = 200;
    r.prompt_tokens = 40;
    r.completion_tokens = 64;
    r.cost_currency = "CNY";
    // As step 13 sends them under audit.text = "none": the digests, made by the sender.
    r.input_digest = audit::digest(settings->algo, input);
    r.output_digest = audit::digest(settings->algo, output);
    caf::anon_send(writer, std::move(r), std::move(u));
    ++sent;
  };

  std::printf("### The record writer: an exact hit's audit and usage records\n\n");
  std::printf(
      "| round | pairs | wall ms | writer us/pair | rocksdb bg us/pair | sender us/pair |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  std::vector<double> writer_us, background_us, sender_us;
  const auto deadline = clock_type::now() + std::chrono::seconds(a.max_seconds);
  for (uint32_t round = 0; round < a.rounds && clock_type::now() < deadline; ++round) {
    const auto t0 = thread_times();
    const auto w0 = clock_type::now();
    const uint64_t first = sent;
    while (sent - first < a.records) {
      const uint64_t n = std::min<uint64_t>(a.burst, a.records - (sent - first));
      for (uint64_t i = 0; i < n; ++i) send_pair();
      if (!wait_until_behind(a.max_behind)) return 1;
    }
    if (!wait_until_behind(0)) return 1;
    const double wall_ms =
        std::chrono::duration<double, std::milli>(clock_type::now() - w0).count();
    const auto t1 = thread_times();
    // The writer is the busiest thread that is neither this one nor RocksDB's.
    double writer = 0, background = 0, sender = 0;
    for (const auto& [tid, t] : t1) {
      auto old = t0.find(tid);
      const double us = static_cast<double>(t.ns - (old == t0.end() ? 0 : old->second.ns)) / 1e3;
      if (tid == main_tid) {
        sender = us;
      } else if (t.name.rfind("rocksdb", 0) == 0) {
        background += us;
      } else {
        writer = std::max(writer, us);
      }
    }
    const auto pairs = static_cast<double>(a.records);
    std::printf("| %u%s | %u | %.0f | %.2f | %.2f | %.2f |\n", round,
                round == 0 ? " (warm-up)" : "", a.records, wall_ms, writer / pairs,
                background / pairs, sender / pairs);
    if (round == 0) continue;
    writer_us.push_back(writer / pairs);
    background_us.push_back(background / pairs);
    sender_us.push_back(sender / pairs);
  }
  std::printf(
      "\nMedians over %zu rounds: writer %.2f us per pair, RocksDB background %.2f, "
      "sender %.2f.\n",
      writer_us.size(), percentile(writer_us, 50), percentile(background_us, 50),
      percentile(sender_us, 50));
  std::printf("\n`%s`\n", command_line.c_str());
  return 0;
}

}  // namespace tc::bench
